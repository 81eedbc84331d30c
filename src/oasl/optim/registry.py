"""Optimizer registry: each optimizer by name, with its hyperparameters, defaults and valid ranges
(the torch-free table of :mod:`oasl.hparams`) and a builder of the torch optimizer.

An entry says which family of muP learning-rate rules applies to it (``adam`` for adaptive,
sign-like or normalized updates; ``sgd`` for plain gradient steps) and builds the torch optimizer
from param groups. ``weight_decay`` follows torch's convention in every entry: decoupled and
multiplied by the LR (AdamW, Lion, Muon), coupled L2 for SGD.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any

import torch

from oasl.errors import ConfigError
from oasl.hparams import HP, TABLE, OptimizerHPs, validate_hps

__all__ = ["HP", "REGISTRY", "OptimizerEntry", "get_optimizer", "list_optimizers", "validate_hps"]


@dataclass(frozen=True, kw_only=True)
class OptimizerEntry(OptimizerHPs):
    """A registered optimizer: its torch-free table entry (:class:`oasl.hparams.OptimizerHPs`: name, muP
    family, hyperparameters, default lr) plus the torch builder ``build(groups, lr, hps)``."""

    build: Callable[[list[dict[str, Any]], float, dict[str, float]], torch.optim.Optimizer]


def _adamw(groups, lr, hp):
    return torch.optim.AdamW(
        groups, lr=lr, betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"], weight_decay=hp["weight_decay"]
    )


def _sgd(groups, lr, hp):
    nesterov = bool(hp["nesterov"]) and hp["momentum"] > 0
    return torch.optim.SGD(
        groups, lr=lr, momentum=hp["momentum"], nesterov=nesterov, weight_decay=hp["weight_decay"]
    )


def _adafactor(groups, lr, hp):
    return torch.optim.Adafactor(
        groups, lr=lr, beta2_decay=hp["beta2_decay"], d=hp["clip_threshold"], weight_decay=hp["weight_decay"]
    )


def _lion(groups, lr, hp):
    from oasl.optim.lion import Lion

    return Lion(groups, lr=lr, betas=(hp["beta1"], hp["beta2"]), weight_decay=hp["weight_decay"])


class MuonWithAdamW(torch.optim.Optimizer):
    """Muon on the 2-D hidden matrices, AdamW on everything else (embeddings, readout, norms, biases).

    Muon's update is orthogonalized by Newton-Schulz iterations (Jordan et al. 2024); torch's
    ``adjust_lr_fn="match_rms_adamw"`` rescales it so its RMS matches AdamW's (Liu et al. 2025,
    Moonlight, arXiv 2502.16982 Sec. 2.2), which lets one peak LR serve both parts; ``adam_lr_ratio``
    scales the AdamW part. The param groups of both are exposed together so schedules see them all.
    """

    def __init__(self, groups, lr, hp):
        muon_groups = [
            g for g in groups if g.get("role") == "hidden" and all(p.ndim == 2 for p in g["params"])
        ]
        other = [g for g in groups if not any(g is m for m in muon_groups)]
        for g in other:
            g["lr_mult"] = g.get("lr_mult", 1.0) * hp["adam_lr_ratio"]
        self.muon = (
            torch.optim.Muon(
                muon_groups,
                lr=lr,
                weight_decay=hp["weight_decay"],
                momentum=hp["momentum"],
                nesterov=bool(hp["nesterov"]),
                adjust_lr_fn="match_rms_adamw",
            )
            if muon_groups
            else None
        )
        self.adamw = (
            torch.optim.AdamW(
                other, lr=lr, betas=(hp["beta1"], hp["beta2"]), eps=1e-8, weight_decay=hp["weight_decay"]
            )
            if other
            else None
        )
        self._parts = [o for o in (self.muon, self.adamw) if o is not None]
        # Deliberately not calling Optimizer.__init__: this is a facade over two optimizers.
        self.defaults = {"lr": lr}
        self.state = {}

    @property
    def param_groups(self):
        return [g for o in self._parts for g in o.param_groups]

    def zero_grad(self, set_to_none: bool = True):
        for o in self._parts:
            o.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for o in self._parts:
            o.step()
        return loss

    def state_dict(self):
        return {"parts": [o.state_dict() for o in self._parts]}

    def load_state_dict(self, state_dict):
        for o, s in zip(self._parts, state_dict["parts"], strict=True):
            o.load_state_dict(s)


_BUILDERS = {"adamw": _adamw, "sgd": _sgd, "adafactor": _adafactor, "lion": _lion, "muon": MuonWithAdamW}

REGISTRY: dict[str, OptimizerEntry] = {
    name: OptimizerEntry(**{f.name: getattr(t, f.name) for f in fields(t) if f.init}, build=_BUILDERS[name])
    for name, t in TABLE.items()
}


def get_optimizer(name: str) -> OptimizerEntry:
    """The registry entry of ``name``; ConfigError listing the known names otherwise."""
    try:
        return REGISTRY[name.lower()]
    except KeyError:
        raise ConfigError(
            f"unknown optimizer {name!r}: choose one of {', '.join(sorted(REGISTRY))}"
        ) from None


def list_optimizers() -> Iterable[OptimizerEntry]:
    return REGISTRY.values()
