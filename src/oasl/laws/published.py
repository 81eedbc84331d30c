"""Published laws of optimal hyperparameters, as the same objects as fitted laws, with citations.

Each set says which optimizer and setup the law was measured with, its units, and the range it was
fitted on, so a recommendation can warn when it extrapolates a published law too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from oasl.errors import ConfigError
from oasl.laws.power import PowerLaw, _as_frame


class KaplanLR:
    """Kaplan et al. 2020 (arXiv 2001.08361), App. D.6, Eq. D.1: the learning rate that worked across
    their models, ``lr(N) ~ 0.003239 - 0.0001395 log(N)`` (natural log, N non-embedding parameters),
    for Adam with 3,000 warmup steps and cosine decay to zero."""

    features, target, kind = ("N",), "lr", "kaplan_lr"
    citation = "Kaplan et al. 2020, arXiv 2001.08361, App. D.6, Eq. D.1"

    def __init__(self):
        self.range_ = {"N": (7.7e2, 1.5e9)}

    def predict(self, X) -> np.ndarray:
        N = _as_frame(X, self.features)["N"].to_numpy(float)
        return np.maximum(0.003239 - 0.0001395 * np.log(N), 1e-6)

    def predict_interval(self, X, level: float = 0.9, method: str = "bayes"):
        p = self.predict(X)
        return p, p

    def extrapolation_ratio(self, X) -> np.ndarray:
        return _ratio(_as_frame(X, self.features), self.range_)

    def formula(self) -> str:
        return "lr = 0.003239 - 0.0001395 ln N"

    def to_dict(self):
        return {"kind": self.kind, "citation": self.citation}


class KaplanCriticalBatch:
    """Kaplan et al. 2020, Sec. 5.1, Eq. 5.3 and Table 4: critical batch size in tokens as a function
    of the loss, ``B_crit(L) = B* / L^(1/alpha_B)`` with ``B* = 2e8`` tokens and ``alpha_B = 0.21``
    (L in nats/token on their WebText2 setup)."""

    features, target, kind = ("L",), "batch_tokens", "kaplan_bcrit"
    citation = "Kaplan et al. 2020, arXiv 2001.08361, Sec. 5.1, Eq. 5.3, Table 4"
    B_star, alpha_B = 2e8, 0.21

    def __init__(self):
        self.range_ = {"L": (2.0, 6.0)}

    def predict(self, X) -> np.ndarray:
        L = _as_frame(X, self.features)["L"].to_numpy(float)
        return self.B_star / L ** (1 / self.alpha_B)

    def predict_interval(self, X, level: float = 0.9, method: str = "bayes"):
        p = self.predict(X)
        return p, p

    def extrapolation_ratio(self, X) -> np.ndarray:
        return _ratio(_as_frame(X, self.features), self.range_)

    def formula(self) -> str:
        return "B_crit = 2e8 / L^(1/0.21) tokens"

    def to_dict(self):
        return {"kind": self.kind, "citation": self.citation}


def _ratio(X: pd.DataFrame, rng: dict) -> np.ndarray:
    r = np.ones(len(X))
    for f, (lo, hi) in rng.items():
        if f in X:
            v = X[f].to_numpy(float)
            r = np.maximum(r, np.maximum(v / hi, lo / v))
    return r


@dataclass
class PublishedLawSet:
    """Laws from one paper: ``laws`` maps a target (lr, batch_tokens, ...) to a law object."""

    name: str
    citation: str
    optimizer: str
    setup: str
    units: dict[str, str]
    laws: dict[str, object]
    valid_range: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __getitem__(self, target: str):
        if target not in self.laws:
            raise ConfigError(f"published law set {self.name} has no law of {target} (it has {', '.join(self.laws)})")
        return self.laws[target]


def _fixed(coef, exps, target, citation, valid) -> PowerLaw:
    law = PowerLaw.fixed(coef, exps, target, citation)
    law.range_ = {k: v for k, v in valid.items() if k in exps}
    return law


def deepseek_flops(n_layers: int, width: int, seq_len: int, tokens: float) -> float:
    """DeepSeek LLM's compute C = M D (Bi et al. 2024, Sec. 3.1, Eq. 2): M = 72 n_layer d_model^2 +
    6 n_layer d_model l_seq, the non-embedding FLOPs per token including attention."""
    return (72 * n_layers * width**2 + 6 * n_layers * width * seq_len) * tokens


_STEP_RANGE = {"N": (6.0e7, 1.0e9), "D": (2.0e9, 1.0e12)}
_DS_RANGE = {"C": (1e17, 3e20)}

PUBLISHED: dict[str, PublishedLawSet] = {
    "step-law": PublishedLawSet(
        name="step-law",
        citation="Li et al. 2025, 'Predictable Scale: Part I', arXiv 2503.04715, Sec. 3 (Eq. 1-2)",
        optimizer="adamw",
        setup="dense decoder LLMs, AdamW, cosine-style decay to min lr 1e-5, seq 2048; optimum = runs within 0.25%",
        units={"lr": "peak learning rate", "batch_tokens": "tokens per batch", "N": "non-embedding parameters",
               "D": "training tokens"},
        laws={"lr": _fixed(1.79, {"N": -0.713, "D": 0.307}, "lr", "Li et al. 2025, Eq. 1", _STEP_RANGE),
              "batch_tokens": _fixed(0.58, {"D": 0.571}, "batch_tokens", "Li et al. 2025, Eq. 2", _STEP_RANGE)},
        valid_range=_STEP_RANGE,
    ),
    "deepseek": PublishedLawSet(
        name="deepseek",
        citation="DeepSeek-AI (Bi et al.) 2024, 'DeepSeek LLM', arXiv 2401.02954, Sec. 3.1, Eq. 1",
        optimizer="adamw",
        setup="AdamW (beta1 0.9, beta2 0.95, wd 0.1), multi-step schedule; C = M D with M non-embedding "
              "FLOPs/token (see deepseek_flops)",
        units={"lr": "peak learning rate", "batch_tokens": "tokens per batch", "C": "FLOPs, C = M D"},
        laws={"lr": _fixed(0.3118, {"C": -0.1250}, "lr", "Bi et al. 2024, Eq. 1", _DS_RANGE),
              "batch_tokens": _fixed(0.2920, {"C": 0.3271}, "batch_tokens", "Bi et al. 2024, Eq. 1", _DS_RANGE)},
        valid_range=_DS_RANGE,
    ),
    "kaplan": PublishedLawSet(
        name="kaplan",
        citation="Kaplan et al. 2020, 'Scaling Laws for Neural Language Models', arXiv 2001.08361",
        optimizer="adamw",
        setup="Adam, 3000 warmup steps, cosine decay to 0, WebText2, seq 1024",
        units={"lr": "learning rate", "batch_tokens": "critical batch in tokens", "N": "non-embedding parameters",
               "L": "loss in nats/token"},
        laws={"lr": KaplanLR(), "batch_tokens": KaplanCriticalBatch()},
        valid_range={"N": (7.7e2, 1.5e9)},
    ),
}


def get_published(name: str) -> PublishedLawSet:
    """The published law set ``name`` (step-law, deepseek, kaplan); ConfigError listing names otherwise."""
    key = name.lower().replace("_", "-")
    if key in ("steplaw", "step"):
        key = "step-law"
    if key not in PUBLISHED:
        raise ConfigError(f"unknown published law {name!r}: choose one of {', '.join(PUBLISHED)}")
    return PUBLISHED[key]


def describe_published() -> pd.DataFrame:
    """One row per published law: name, target, formula, optimizer, citation, valid range."""
    rows = []
    for s in PUBLISHED.values():
        for target, law in s.laws.items():
            rng = getattr(law, "range_", {}) or s.valid_range
            rows.append({"name": s.name, "target": target, "formula": law.formula(), "optimizer": s.optimizer,
                         "citation": getattr(law, "citation", "") or s.citation,
                         "range": ", ".join(f"{k} {lo:.3g}-{hi:.3g}" for k, (lo, hi) in rng.items()),
                         "setup": s.setup})
    return pd.DataFrame(rows)

