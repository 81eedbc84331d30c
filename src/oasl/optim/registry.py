"""Optimizer registry: each optimizer by name, with its hyperparameters, defaults and valid ranges.

An entry says which family of muP learning-rate rules applies to it (``adam`` for adaptive,
sign-like or normalized updates; ``sgd`` for plain gradient steps) and builds the torch optimizer
from param groups. ``weight_decay`` follows torch's convention in every entry: decoupled and
multiplied by the LR (AdamW, Lion, Muon), coupled L2 for SGD.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from oasl.errors import ConfigError


@dataclass(frozen=True)
class HP:
    """One optimizer hyperparameter: default and the closed range of valid values."""

    name: str
    default: float
    low: float
    high: float
    doc: str = ""
    log_scale: bool = False

    def check(self, value: float, optimizer: str) -> float:
        value = float(value)
        if not (self.low <= value <= self.high):
            raise ConfigError(
                f"{optimizer}.{self.name}={value:g} is outside its valid range [{self.low:g}, {self.high:g}]"
            )
        return value


@dataclass(frozen=True)
class OptimizerEntry:
    """A registered optimizer: name, muP family, hyperparameters and a builder."""

    name: str
    family: str  # "adam" or "sgd": which muP LR-multiplier rule applies
    hps: tuple[HP, ...]
    build: Callable[[list[dict[str, Any]], float, dict[str, float]], torch.optim.Optimizer]
    default_lr: float
    lr_range: tuple[float, float] = (1e-6, 10.0)
    hidden_only: bool = False  # True for Muon: the optimizer itself only takes 2-D hidden matrices
    doc: str = ""
    citation: str = ""
    hp_names: tuple[str, ...] = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "hp_names", tuple(h.name for h in self.hps))

    def defaults(self) -> dict[str, float]:
        return {h.name: h.default for h in self.hps}


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


_UNIT = (0.0, 1.0 - 1e-9)

REGISTRY: dict[str, OptimizerEntry] = {
    "adamw": OptimizerEntry(
        name="adamw",
        family="adam",
        default_lr=1e-3,
        build=_adamw,
        hps=(
            HP("beta1", 0.9, *_UNIT, "first-moment decay"),
            HP("beta2", 0.95, *_UNIT, "second-moment decay"),
            HP("eps", 1e-8, 0.0, 1.0, "denominator epsilon", log_scale=True),
            HP("weight_decay", 0.1, 0.0, 10.0, "decoupled, multiplied by lr (torch convention)"),
        ),
        citation="Loshchilov & Hutter 2019, arXiv 1711.05101",
    ),
    "sgd": OptimizerEntry(
        name="sgd",
        family="sgd",
        default_lr=0.1,
        build=_sgd,
        hps=(
            HP("momentum", 0.9, *_UNIT, "heavy-ball momentum"),
            HP("nesterov", 0.0, 0.0, 1.0, "1 for Nesterov momentum"),
            HP("weight_decay", 0.0, 0.0, 10.0, "coupled L2 (torch convention)"),
        ),
        citation="Sutskever et al. 2013 (momentum)",
    ),
    "adafactor": OptimizerEntry(
        name="adafactor",
        family="adam",
        default_lr=1e-2,
        build=_adafactor,
        hps=(
            HP("beta2_decay", -0.8, -1.0, 0.0, "second-moment decay exponent"),
            HP("clip_threshold", 1.0, 1e-3, 100.0, "update clipping threshold d"),
            HP("weight_decay", 0.0, 0.0, 10.0, "decoupled, multiplied by lr"),
        ),
        citation="Shazeer & Stern 2018, arXiv 1804.04235 (torch.optim.Adafactor)",
    ),
    "lion": OptimizerEntry(
        name="lion",
        family="adam",
        default_lr=1e-4,
        build=_lion,
        hps=(
            HP("beta1", 0.9, *_UNIT, "interpolation for the sign update"),
            HP("beta2", 0.99, *_UNIT, "momentum decay"),
            HP("weight_decay", 0.0, 0.0, 100.0, "decoupled, multiplied by lr"),
        ),
        citation="Chen et al. 2023, arXiv 2302.06675",
    ),
    "muon": OptimizerEntry(
        name="muon",
        family="adam",
        default_lr=2e-3,
        build=MuonWithAdamW,
        hidden_only=True,
        hps=(
            HP("momentum", 0.95, *_UNIT, "Muon momentum"),
            HP("nesterov", 1.0, 0.0, 1.0, "1 for Nesterov momentum"),
            HP("beta1", 0.9, *_UNIT, "AdamW part: first-moment decay"),
            HP("beta2", 0.95, *_UNIT, "AdamW part: second-moment decay"),
            HP("weight_decay", 0.1, 0.0, 10.0, "decoupled, multiplied by lr, both parts"),
            HP("adam_lr_ratio", 1.0, 1e-3, 1e3, "AdamW part's LR relative to the peak LR", log_scale=True),
        ),
        citation="Jordan et al. 2024 (Muon); torch.optim.Muon",
    ),
}


def get_optimizer(name: str) -> OptimizerEntry:
    """The registry entry of ``name``; ConfigError listing the known names otherwise."""
    try:
        return REGISTRY[name.lower()]
    except KeyError:
        raise ConfigError(
            f"unknown optimizer {name!r}: choose one of {', '.join(sorted(REGISTRY))}"
        ) from None


def validate_hps(optimizer: str, hps: dict[str, float]) -> dict[str, float]:
    """Fill defaults and range-check ``hps`` for ``optimizer``; ConfigError names an unknown HP."""
    entry = get_optimizer(optimizer)
    unknown = sorted(set(hps) - set(entry.hp_names))
    if unknown:
        raise ConfigError(
            f"optimizer {entry.name} has no hyperparameter {', '.join(unknown)}: "
            f"its hyperparameters are {', '.join(entry.hp_names)}"
        )
    out = entry.defaults()
    for h in entry.hps:
        if h.name in hps:
            out[h.name] = h.check(hps[h.name], entry.name)
    return out


def list_optimizers() -> Iterable[OptimizerEntry]:
    return REGISTRY.values()
