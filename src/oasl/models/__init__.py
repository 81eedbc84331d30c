"""The transformer, its parametrizations (SP, muP), and parameter/FLOP counting."""

from oasl.models.counting import ParamCount, count_params, flops_per_token, measure_matmul_peak
from oasl.models.gpt import GPT, Parametrization

__all__ = ["GPT", "ParamCount", "Parametrization", "count_params", "flops_per_token", "measure_matmul_peak"]
