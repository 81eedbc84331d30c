"""A GPT-style decoder in one readable file, under the standard (SP) or maximal-update (muP)
parametrization.

Pre-LayerNorm blocks, causal ``F.scaled_dot_product_attention``, GELU MLP, learned positions,
optional weight tying, no biases (LayerNorms have a weight only). The layout follows nanoGPT's
``model.py``; the muP rules follow Yang et al. 2022 ("Tensor Programs V", arXiv 2203.03466) as
implemented by microsoft/mup, relative to a base width:

* hidden (matrix-like) weights: init std ``0.02 / sqrt(m)`` with ``m = width / base_width`` (variance
  proportional to 1/fan_in, equal to SP at the base width); Adam LR ``x 1/m``, SGD LR ``x 1``
  (TP-V Table 3; mup ``MuAdam``/``MuSGD``).
* vector-like weights (token and position embeddings, LayerNorm weights, an untied readout): init as
  SP; Adam LR ``x 1``, SGD LR ``x m`` (mup ``MuSGD`` multiplies vector-like LRs by the width multiplier).
* readout: logits multiplied by ``1/m`` (mup ``MuReadout``/``MuSharedReadout``; with tied embeddings the
  shared weight is used with that multiplier).
* attention: scores scaled by ``sqrt(d_base) / d_head`` (``1/d`` scaling, TP-V Sec. 4 / mup's
  ``attn_mult / d``), equal to SP's ``1/sqrt(d_head)`` at the base head dimension.

Metadata (roles, LR multipliers) is keyed by parameter name, so it survives ``torch.save``, deepcopy
and DDP/FSDP wrapping (tensor attributes, as in mup, do not: mup issue #59).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from oasl.config import ModelShape

INIT_STD = 0.02  # GPT-2 / nanoGPT init scale


@dataclass(frozen=True)
class Parametrization:
    """SP or muP, relative to ``base_width`` (ignored under SP)."""

    kind: Literal["sp", "mup"] = "sp"
    base_width: int = 64

    def __post_init__(self):
        if self.kind not in ("sp", "mup"):
            from oasl.errors import ConfigError

            raise ConfigError(f"unknown parametrization {self.kind!r}: use sp or mup")

    def width_mult(self, width: int) -> float:
        """``width / base_width`` under muP, 1 under SP."""
        return width / self.base_width if self.kind == "mup" else 1.0


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
    """Decoder-only transformer. ``forward(idx, targets)`` returns ``(logits, loss)``; loss is the mean
    cross-entropy in nats per token (None without targets). Parameters are initialised from torch's
    global RNG: seed it before construction for reproducible models."""

    def __init__(self, shape: ModelShape, parametrization: Parametrization | None = None):
        super().__init__()
        self.shape = shape
        self.parametrization = parametrization or Parametrization()
        self.width_mult = self.parametrization.width_mult(shape.width)
        if self.parametrization.kind == "mup":
            base_head_dim = self.parametrization.base_width / shape.heads
            attn_scale = math.sqrt(base_head_dim) / shape.head_dim
        else:
            attn_scale = 1.0 / math.sqrt(shape.head_dim)
        self.wte = nn.Embedding(shape.vocab_size, shape.width)
        self.wpe = nn.Embedding(shape.seq_len, shape.width)
        self.blocks = nn.ModuleList([Block(shape, attn_scale) for _ in range(shape.depth)])
        self.ln_f = nn.LayerNorm(shape.width, bias=False)
        self.lm_head = None if shape.tie_embeddings else nn.Linear(shape.width, shape.vocab_size, bias=False)
        self._init_weights()

    def _init_weights(self) -> None:
        hidden_std = INIT_STD / math.sqrt(self.width_mult)
        for name, p in self.named_parameters():
            role = self.param_roles()[name]
            if role == "norm":
                nn.init.ones_(p)
            elif role == "hidden":
                # GPT-2's residual-projection scaling 1/sqrt(2 depth) (Radford et al. 2019, Sec. 2.3).
                std = hidden_std / math.sqrt(2 * self.shape.depth) if name.endswith("proj.weight") else hidden_std
                nn.init.normal_(p, 0.0, std)
            elif role == "readout" and self.parametrization.kind == "mup":
                nn.init.zeros_(p)  # mup's readout_zero_init: the 1/m multiplier makes any init vanish anyway
            else:
                nn.init.normal_(p, 0.0, INIT_STD)

    def param_roles(self) -> dict[str, str]:
        """Role of each named parameter: embedding, position, hidden, readout, norm (bias unused here)."""
        roles = {}
        for name, p in self.named_parameters():
            if name == "wte.weight":
                roles[name] = "embedding"
            elif name == "wpe.weight":
                roles[name] = "position"
            elif name == "lm_head.weight":
                roles[name] = "readout"
            elif p.ndim == 1:
                roles[name] = "norm" if ".ln" in f".{name}" else "bias"
            else:
                roles[name] = "hidden"
        return roles

    def lr_multipliers(self, family: Literal["adam", "sgd"]) -> dict[str, float]:
        """muP multiplier of the peak LR for each named parameter (all 1 under SP); see the module doc."""
        if family not in ("adam", "sgd"):
            raise ValueError(f"unknown optimizer family {family!r}")
        m = self.width_mult
        out = {}
        for name, role in self.param_roles().items():
            if role == "hidden":
                out[name] = 1.0 / m if family == "adam" else 1.0
            else:
                out[name] = 1.0 if family == "adam" else m
        return out

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        T = idx.shape[1]
        if T > self.shape.seq_len:
            raise ValueError(f"sequence of {T} tokens is longer than seq_len {self.shape.seq_len}")
        pos = torch.arange(T, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        weight = self.wte.weight if self.lm_head is None else self.lm_head.weight
        logits = F.linear(x, weight) / self.width_mult  # muP readout multiplier; 1 under SP
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss
