"""Each optimizer's hyperparameters without torch: names, defaults, valid ranges, muP family, default lr.

Config validation (:class:`oasl.config.RunSpec`) reads this table, so loading a spec never imports the
optimizer builders (torch); :mod:`oasl.optim.registry` adds a builder to each entry. ``weight_decay``
follows torch's convention in every entry: decoupled and multiplied by the LR (AdamW, Lion, Muon),
coupled L2 for SGD.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
class OptimizerHPs:
    """An optimizer's table: name, muP family, hyperparameters, default and valid lr, citation."""

    name: str
    family: str  # "adam" or "sgd": which muP LR-multiplier rule applies
    hps: tuple[HP, ...]
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


_UNIT = (0.0, 1.0 - 1e-9)

TABLE: dict[str, OptimizerHPs] = {
    "adamw": OptimizerHPs(
        name="adamw",
        family="adam",
        default_lr=1e-3,
        hps=(
            HP("beta1", 0.9, *_UNIT, "first-moment decay"),
            HP("beta2", 0.95, *_UNIT, "second-moment decay"),
            HP("eps", 1e-8, 0.0, 1.0, "denominator epsilon", log_scale=True),
            HP("weight_decay", 0.1, 0.0, 10.0, "decoupled, multiplied by lr (torch convention)"),
        ),
        citation="Loshchilov & Hutter 2019, arXiv 1711.05101",
    ),
    "sgd": OptimizerHPs(
        name="sgd",
        family="sgd",
        default_lr=0.1,
        hps=(
            HP("momentum", 0.9, *_UNIT, "heavy-ball momentum"),
            HP("nesterov", 0.0, 0.0, 1.0, "1 for Nesterov momentum"),
            HP("weight_decay", 0.0, 0.0, 10.0, "coupled L2 (torch convention)"),
        ),
        citation="Sutskever et al. 2013 (momentum)",
    ),
    "adafactor": OptimizerHPs(
        name="adafactor",
        family="adam",
        default_lr=1e-2,
        hps=(
            HP("beta2_decay", -0.8, -1.0, 0.0, "second-moment decay exponent"),
            HP("clip_threshold", 1.0, 1e-3, 100.0, "update clipping threshold d"),
            HP("weight_decay", 0.0, 0.0, 10.0, "decoupled, multiplied by lr"),
        ),
        citation="Shazeer & Stern 2018, arXiv 1804.04235 (torch.optim.Adafactor)",
    ),
    "lion": OptimizerHPs(
        name="lion",
        family="adam",
        default_lr=1e-4,
        hps=(
            HP("beta1", 0.9, *_UNIT, "interpolation for the sign update"),
            HP("beta2", 0.99, *_UNIT, "momentum decay"),
            HP("weight_decay", 0.0, 0.0, 100.0, "decoupled, multiplied by lr"),
        ),
        citation="Chen et al. 2023, arXiv 2302.06675",
    ),
    "muon": OptimizerHPs(
        name="muon",
        family="adam",
        default_lr=2e-3,
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


def get_hps(name: str) -> OptimizerHPs:
    """The table entry of optimizer ``name``; ConfigError listing the known names otherwise."""
    try:
        return TABLE[name.lower()]
    except KeyError:
        raise ConfigError(f"unknown optimizer {name!r}: choose one of {', '.join(sorted(TABLE))}") from None


def validate_hps(optimizer: str, hps: dict[str, float]) -> dict[str, float]:
    """Fill defaults and range-check ``hps`` for ``optimizer``; ConfigError names an unknown HP."""
    entry = get_hps(optimizer)
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
