"""oasl: optimization-aware scaling laws.

From sweeps of small GPT-style models to fitted laws of the optimal hyperparameters, and a
recommendation (with intervals) for a much larger training run.
"""

__version__ = "0.1.0"

from oasl.errors import OaslError  # noqa: E402

__all__ = ["OaslError", "__version__"]
