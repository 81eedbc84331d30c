"""Parameter and FLOP counts computed from a shape alone (no model built)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from oasl.config import ModelShape


@dataclass(frozen=True)
class ParamCount:
    """``n_params``: non-embedding parameters, the N of scaling laws (Kaplan et al. 2020, Sec. 2.1):
    all but the token and position embeddings and an untied readout. ``n_params_total``: all."""

    n_params: int
    n_params_total: int


def count_params(shape: ModelShape) -> ParamCount:
    """Parameter counts of :class:`oasl.models.GPT` for ``shape`` (equal to the torch count)."""
    w, h, v = shape.width, shape.mlp_hidden, shape.vocab_size
    per_block = 4 * w * w + 2 * w * h + 2 * w  # qkv + proj, fc + proj, two LayerNorm weights
    n = shape.depth * per_block + w  # + final LayerNorm
    emb = v * w + shape.seq_len * w + (0 if shape.tie_embeddings else v * w)
    return ParamCount(n_params=n, n_params_total=n + emb)


def flops_per_token(shape: ModelShape) -> float:
    """Training FLOPs per token: 6 (N + V w) for the matmuls forward and backward, plus the attention
    term 12 L T w (Kaplan et al. 2020 Table 1; nanoGPT ``estimate_mfu``; PaLM App. B).

    The readout matmul (V w per token) is counted, unlike Kaplan's C = 6N, because at the small
    widths oasl sweeps it is a large share of the compute.
    """
    n = count_params(shape).n_params
    return 6.0 * (n + shape.vocab_size * shape.width) + 12.0 * shape.depth * shape.seq_len * shape.width


def measure_matmul_peak(seconds: float = 1.0, size: int = 2048) -> float:
    """Measured fp32 matmul throughput of this machine's CPU (FLOP/s), with torch's current threads."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.matmul(a, b)  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.matmul(a, b)
        n += 1
    return 2.0 * size**3 * n / (time.perf_counter() - t0)
