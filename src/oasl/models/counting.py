"""Parameter and FLOP counts of :class:`oasl.models.GPT`, computed from a :class:`ModelShape` alone."""

from __future__ import annotations

from dataclasses import dataclass

from oasl.config import ModelShape


@dataclass(frozen=True)
class ParamCount:
    """Parameter counts of one shape.

    ``n_params``: non-embedding parameters, the N of scaling laws (Kaplan et al. 2020, Sec. 2.1): every
    parameter except the token and position embeddings and an untied readout (the readout is an
    embedding-sized V x width matrix whichever way it is tied, so excluding it keeps N the same for tied and
    untied models). LayerNorm weights count. ``n_params_total``: every parameter, a tied matrix once.
    """

    n_params: int
    n_params_total: int

    @property
    def n_embedding(self) -> int:
        """Parameters left out of ``n_params`` (token/position embeddings, untied readout)."""
        return self.n_params_total - self.n_params


def count_params(shape: ModelShape) -> ParamCount:
    """Parameter counts of ``GPT(shape)``; equal to ``sum(p.numel() for p in model.parameters())``."""
    w, h, v = shape.width, shape.mlp_hidden, shape.vocab_size
    per_block = 3 * w * w + w * w + 2 * w * h + 2 * w  # qkv, attn proj, mlp fc + proj, two LayerNorm weights
    n = shape.depth * per_block + w  # + final LayerNorm weight
    embedding = v * w + shape.seq_len * w + (0 if shape.tie_embeddings else v * w)
    return ParamCount(n_params=n, n_params_total=n + embedding)


def flops_per_token(shape: ModelShape) -> float:
    """Training FLOPs per token (forward + backward) of ``GPT(shape)`` on sequences of ``shape.seq_len``.

    ``6 (N + V w) + 12 L T w``: each weight costs 2 FLOPs per token forward and 4 backward (Kaplan et al.
    2020, Table 1 and Sec. 2.1: C = 6N), applied to N and to the readout matmul (V w, Kaplan's "De-embed"
    row); the attention scores and the weighted sum of values cost 2 * 2 T w forward per layer, times 3 for
    training (PaLM, Chowdhery et al. 2022, App. B; nanoGPT ``estimate_mfu``; no discount for the causal
    mask). Kaplan's C = 6N drops the readout and counts one attention matmul (2 L T w forward); oasl counts
    the readout because at oasl's small widths it can dominate (width 64, depth 4, 4096-token BPE vocabulary:
    57% of the matmul FLOPs; docs/deviations.md). Embedding lookups and element-wise ops count 0.
    """
    n = count_params(shape).n_params
    w, depth = shape.width, shape.depth
    return 6.0 * (n + shape.vocab_size * w) + 12.0 * depth * shape.seq_len * w


def non_embedding_params(
    total: float, vocab: int, width: int, tied: bool = True, positions: int = 0
) -> float:
    """N (non-embedding parameters, as :class:`ParamCount` counts them) from a model's total count: the
    total less the token embedding (``vocab x width``), an untied readout (another ``vocab x width``
    when not ``tied``) and learned position embeddings (``positions x width``; 0 for rotary). ConfigError
    when nothing is left (the total is not larger than its embeddings)."""
    from oasl.errors import ConfigError

    emb = vocab * width * (1 if tied else 2) + positions * width
    n = float(total) - emb
    if not n > 0:
        raise ConfigError(
            f"a total of {float(total):.3g} parameters is not more than its {emb:.3g} embedding parameters "
            f"(vocab {vocab} x width {width}{'' if tied else ' x 2, untied'}): check --params-total, --vocab, --width"
        )
    return n
