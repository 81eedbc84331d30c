"""A GPT-style decoder in one readable file, under the standard (SP) or maximal-update (muP)
parametrization.

Pre-LayerNorm blocks, causal ``F.scaled_dot_product_attention``, GELU MLP, learned position
embeddings, optional weight tying, and no biases anywhere: linear layers have none and LayerNorms have
a weight only (nanoGPT's ``bias=False``), so the role ``"bias"`` never occurs in this model. The layout
follows nanoGPT's ``model.py``.

SP is nanoGPT's: every weight N(0, 0.02^2) (residual projections / sqrt(2 depth), GPT-2, Radford et al.
2019, Sec. 2.3), LayerNorm weights 1, one LR for all. muP follows Yang et al. 2022 ("Tensor Programs V",
arXiv 2203.03466), Table 3 in the equivalent form of its Table 8 (a 1/fan_in output multiplier, which
allows tied embeddings) as the microsoft/mup package implements it, relative to ``base_width`` with the
width multiplier ``m = width / base_width``. At ``m = 1`` muP and SP are the same model but for the
output multiplier ``a_out`` (with ``output_mult=1`` they are the same model).

    muP rule                 init std            multiplier    Adam LR   SGD LR
    hidden (2-D in blocks)   0.02 / sqrt(m)      1             x 1/m     x 1
    token/pos. embedding     0.02                1             x 1       x m
    LayerNorm weight         1                   1             x 1       x m
    untied readout           0 (mup zero init)   a_out / m     x 1       x m
    tied readout (= wte)     as embedding        a_out / m     as embedding
    attention scores         --                  sqrt(d0) / d  --        --

* Init: hidden variance proportional to 1/fan_in (mup ``init``), vector-like weights unchanged.
* LRs: mup ``MuAdam`` divides the LR of matrix-like weights (two width dimensions) by the fan-in
  multiplier; ``MuSGD`` multiplies vector-like weights (one width dimension: embeddings, LayerNorm, readout)
  by the width multiplier and leaves hidden weights (fan-in and fan-out both scale) unchanged.
* Readout: mup ``MuReadout`` multiplies its input by ``output_mult / m``; with tied embeddings
  ``MuSharedReadout`` does the same with the embedding's weight, which is what oasl does (no untying needed).
  ``a_out`` (mup's ``output_mult``; TP-V Table 1 counts such parameter multipliers among the
  muTransferable HPs, tuned on the base model; mup's examples/MLP tunes it to 32) defaults to
  :data:`MUP_OUTPUT_MULT` = 8, not mup's 1: the base model is muP's whole tuning, and SP's readout
  (a_out = 1) is a poor base at small widths. Per Adam
  step the tied readout's logits move by ~ lr x a_out x base_width, a hidden layer's outputs by ~ lr x
  base_width, so a_out is the ratio of the two speeds that one global lr cannot set; on the byte-level
  ladders the readout wants several times the hidden layers' speed. With a_out = 8 muP beats SP at widths
  16-64 of ``benchmarks/mup_ladder.py`` and its lr* transfers; at width 128 it is 0.4% behind SP and its
  lr* drifts up (docs/deviations.md, "muP output multiplier").
* Attention: scores use ``1/d_head`` instead of ``1/sqrt(d_head)`` (TP-V Definition 4.1; the mup README
  writes ``8/d`` to equal ``1/sqrt(d)`` at d = 64). oasl writes it ``sqrt(d0)/d_head`` with ``d0`` the head
  dimension of the base model (this shape at ``base_width``), so muP equals SP at the base width. With the
  default head count (``width // 32``) the head dimension stays 32 at every width and the scale stays SP's.

Metadata (roles, LR multipliers) is keyed by parameter name, so it survives ``torch.save``, deepcopy and
DDP/FSDP wrapping (tensor attributes, as mup uses, do not: mup issue #59).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from oasl.config import MUP_OUTPUT_MULT, ModelShape
from oasl.errors import ConfigError

INIT_STD = 0.02  # GPT-2 / nanoGPT init scale, the SP of this model and muP's scale at the base width


@dataclass(frozen=True)
class Parametrization:
    """SP (``kind="sp"``) or muP (``kind="mup"``) relative to ``base_width`` (d_model; ignored under SP).

    ``output_mult`` is muP's output multiplier a_out (None: :data:`MUP_OUTPUT_MULT`); SP has none."""

    kind: Literal["sp", "mup"] = "sp"
    base_width: int = 64
    output_mult: float | None = None

    def __post_init__(self):
        if self.kind not in ("sp", "mup"):
            raise ConfigError(f"unknown parametrization {self.kind!r}: use 'sp' or 'mup'")
        if not isinstance(self.base_width, int) or self.base_width < 1:
            raise ConfigError(f"base_width must be a positive integer, got {self.base_width!r}")
        if self.output_mult is not None:
            if self.kind != "mup":
                raise ConfigError("output_mult is muP's output multiplier: leave it unset under SP")
            if not (math.isfinite(self.output_mult) and self.output_mult > 0):
                raise ConfigError(f"output_mult must be a positive finite number, got {self.output_mult!r}")

    @classmethod
    def of(cls, spec) -> Parametrization:
        """The parametrization a :class:`oasl.config.RunSpec` asks for."""
        return cls(spec.parametrization, spec.base_width, spec.output_mult)

    @property
    def alpha_out(self) -> float:
        """muP's output multiplier a_out (``output_mult`` or :data:`MUP_OUTPUT_MULT`); 1 under SP."""
        if self.kind != "mup":
            return 1.0
        return MUP_OUTPUT_MULT if self.output_mult is None else float(self.output_mult)

    def width_mult(self, width: int) -> float:
        """``width / base_width`` under muP, 1 under SP."""
        return width / self.base_width if self.kind == "mup" else 1.0

    def attn_scale(self, shape: ModelShape) -> float:
        """Multiplier of q.k in attention: ``1/sqrt(d_head)`` under SP, ``sqrt(d0)/d_head`` under muP, where
        ``d0`` is the head dimension of ``shape`` at ``base_width`` (an explicit ``n_heads`` is held fixed,
        the default rule ``max(1, width // 32)`` is applied to the base width)."""
        if self.kind == "sp":
            return 1.0 / math.sqrt(shape.head_dim)
        base_heads = shape.n_heads if shape.n_heads is not None else max(1, self.base_width // 32)
        return math.sqrt(self.base_width / base_heads) / shape.head_dim


class CausalSelfAttention(nn.Module):
    def __init__(self, shape: ModelShape, scale: float):
        super().__init__()
        self.n_heads, self.scale = shape.heads, scale
        self.qkv = nn.Linear(shape.width, 3 * shape.width, bias=False)
        self.proj = nn.Linear(shape.width, shape.width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
        return self.proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, shape: ModelShape):
        super().__init__()
        self.fc = nn.Linear(shape.width, shape.mlp_hidden, bias=False)
        self.proj = nn.Linear(shape.mlp_hidden, shape.width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    def __init__(self, shape: ModelShape, attn_scale: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(shape.width, bias=False)
        self.attn = CausalSelfAttention(shape, attn_scale)
        self.ln2 = nn.LayerNorm(shape.width, bias=False)
        self.mlp = MLP(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Decoder-only transformer of ``shape`` under ``parametrization`` (SP when None).

    ``forward(idx[B, T], targets[B, T] | None)`` returns ``(logits[B, T, vocab], loss)``; ``loss`` is the
    mean cross-entropy in nats per token, None without targets. Parameters are drawn from torch's global
    RNG in the constructor: call ``torch.manual_seed`` first for a reproducible model.
    """

    def __init__(self, shape: ModelShape, parametrization: Parametrization | None = None):
        super().__init__()
        self.shape = shape
        self.parametrization = parametrization or Parametrization()
        self.width_mult = self.parametrization.width_mult(shape.width)
        # the logits' multiplier: a_out / m under muP (MuReadout), 1 under SP
        self.readout_mult = self.parametrization.alpha_out / self.width_mult
        attn_scale = self.parametrization.attn_scale(shape)
        self.wte = nn.Embedding(shape.vocab_size, shape.width)
        self.wpe = nn.Embedding(shape.seq_len, shape.width)
        self.blocks = nn.ModuleList([Block(shape, attn_scale) for _ in range(shape.depth)])
        self.ln_f = nn.LayerNorm(shape.width, bias=False)
        self.lm_head = None if shape.tie_embeddings else nn.Linear(shape.width, shape.vocab_size, bias=False)
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        mup = self.parametrization.kind == "mup"
        for name, p in self.named_parameters():
            role = self.role_of(name)
            if role == "norm":
                nn.init.ones_(p)
            elif role == "hidden":
                std = INIT_STD / math.sqrt(self.width_mult)  # variance ~ 1/fan_in under muP (TP-V Table 8)
                if name.endswith("proj.weight"):  # GPT-2's residual scaling (Radford et al. 2019, Sec. 2.3)
                    std /= math.sqrt(2 * self.shape.depth)
                nn.init.normal_(p, 0.0, std)
            elif role == "readout" and mup:
                nn.init.zeros_(p)  # mup ``readout_zero_init``: removes the init-time 1/sqrt(m) transient
            else:
                nn.init.normal_(p, 0.0, INIT_STD)

    @staticmethod
    def role_of(name: str) -> str:
        """Role of the parameter called ``name`` in this model (see :meth:`param_roles`)."""
        if name == "wte.weight":
            return "embedding"
        if name == "wpe.weight":
            return "position"
        if name == "lm_head.weight":
            return "readout"
        if ".ln" in f".{name}":
            return "norm"
        if name.endswith(".bias"):
            return "bias"
        return "hidden"

    def param_roles(self) -> dict[str, str]:
        """Role of each named parameter: ``embedding`` (token embedding, also the readout when tied),
        ``position``, ``hidden`` (2-D weights inside blocks), ``readout`` (untied lm_head), ``norm``."""
        return {name: self.role_of(name) for name, _ in self.named_parameters()}

    def lr_multipliers(self, family: Literal["adam", "sgd"]) -> dict[str, float]:
        """Factor on the peak LR for each named parameter: the muP rule of the module docstring for an
        Adam-like (entrywise-normalised update) or SGD-like optimizer family; all 1.0 under SP."""
        if family not in ("adam", "sgd"):
            raise ConfigError(f"unknown optimizer family {family!r}: use 'adam' or 'sgd'")
        m = self.width_mult
        mults = {}
        for name, role in self.param_roles().items():
            if role == "hidden":  # matrix-like: MuAdam lr / fan_in mult; MuSGD lr * fan_out/fan_in = 1
                mults[name] = 1.0 / m if family == "adam" else 1.0
            else:  # vector-like: MuAdam unchanged; MuSGD lr * width mult
                mults[name] = 1.0 if family == "adam" else m
        return mults

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        t = idx.shape[1]
        if t > self.shape.seq_len:
            raise ConfigError(
                f"input of {t} tokens exceeds seq_len {self.shape.seq_len}: crop it or raise seq_len"
            )
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        weight = self.wte.weight if self.lm_head is None else self.lm_head.weight
        logits = F.linear(x, weight)
        if self.readout_mult != 1.0:  # muP output multiplier a_out / m (MuReadout); 1 (SP) would cost a pass
            logits = logits * self.readout_mult
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss
