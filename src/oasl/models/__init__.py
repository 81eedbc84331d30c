"""The transformer, its parametrizations (SP, muP), parameter/FLOP counting, and the matmul peak."""

from oasl.models.counting import ParamCount, count_params, flops_per_token
from oasl.models.gpt import GPT, Parametrization
from oasl.models.perf import measure_matmul_peak

__all__ = ["GPT", "ParamCount", "Parametrization", "count_params", "flops_per_token", "measure_matmul_peak"]
