"""What the validation harness measured, as plain dataclasses, and their ``validation.json`` form.

Schema of ``validation.json`` (fractions are relative to the oracle's loss, e.g. 0.012 = 1.2%)::

    name            str
    noise_floor     float  the largest per-optimizer noise floor (oracle's spread over seeds / mean)
    law             dict   the validated law of lr (an OptimizerLaw dict, as in laws.json["laws"]["lr"])
    law_formula     str    its formula, e.g. "adamw: lr = 12.9 N^-0.554; sgd: lr = 0.1"
    seeds           [int]  evaluation seeds shared by every method
    optimizers      [ {optimizer, target_n_params, largest_swept_n_params, extrapolation_ratio,
                       law (that optimizer's sub-law dict), law_formula, law_exponent_interval
                       {feature: [lo, hi]} (90%), recommended_lr,
                       recommended_interval [lo, hi], target_tokens, target_shape {width, depth, ...},
                       oracle_lr, oracle_losses [per seed], oracle_flops,
                       oracle_note, sweep_flops, target_run_flops, noise_floor,
                       methods: [ {method, lr, losses [per seed], regret_mean, regret_std,
                                   regret_ci [lo, hi] (paired-bootstrap 90%), regrets [per seed],
                                   verdict ("better than oasl" | "indistinguishable" | "worse than oasl" |
                                   "one seed: no verdict"; "" for oasl and the oracle), tuning_flops, tuning_runs, note,
                                   expected (random search only: its regret over draws of the search,
                                   :func:`oasl.validate.stats.expected_search_regret`; {} otherwise)} ],
                       efficiency, optima, oracle_grid,
                       clipping: {grad_clip, sizes [ {n_params, lr, median_grad_norm, clip_frac} ], slope,
                                  predicted_norm, measured_norm, measured_clip_frac, warning}
                       (:class:`oasl.optima.clipping.ClipRegime`; {} in files written before it),
                       interval_regret: {lo, hi: {lr, regret, beyond_measured}} the regret at each end of
                       recommended_interval read off the lrs trained on every seed (a lower bound when
                       beyond_measured; {} in files written before it),
                       curves: {method: [ {k, mean, lo, hi, range90, draws, source ("trained" |
                                "replayed"), ...} ]} the cost-to-regret curves (:mod:`oasl.validate.curves`;
                                {} in files written before them),
                       cost_to_regret: {law, refine, refine_k, runs_to_match {search: m | ">8"},
                                best_search, saving_ratio, ladder_runs, below {k: {search: bool}}, valley}
                                (:func:`oasl.validate.curves.summary`; {} in files written before it)} ]
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class MethodResult:
    """One method at the target: the lr it chose, its regret over seeds, the compute it spent to choose.

    ``regrets`` are per seed; ``regret_ci`` the paired-bootstrap 90% interval of their mean; ``verdict``
    compares the method with oasl seed by seed (see :func:`oasl.validate.stats.verdict`); ``expected``, for
    random search, its regret over draws of the search rather than the one draw trained
    (:func:`oasl.validate.stats.expected_search_regret`)."""

    method: str
    lr: float
    losses: list[float]
    regret_mean: float
    regret_std: float
    tuning_flops: float
    tuning_runs: float  # tuning_flops as a multiple of one target run
    note: str = ""
    regret_ci: tuple[float, float] = (math.nan, math.nan)
    regrets: list[float] = field(default_factory=list)
    verdict: str = ""
    expected: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimizerValidation:
    """Everything measured for one optimizer."""

    optimizer: str
    target_n_params: int
    largest_swept_n_params: int
    extrapolation_ratio: float
    law: dict[str, Any]
    recommended_lr: float
    recommended_interval: tuple[float, float]
    oracle_lr: float
    oracle_losses: list[float]
    oracle_flops: float
    sweep_flops: float
    target_run_flops: float
    methods: list[MethodResult] = field(default_factory=list)
    efficiency: dict[str, Any] = field(default_factory=dict)
    optima: list[dict[str, Any]] = field(default_factory=list)
    oracle_grid: list[dict[str, float]] = field(default_factory=list)
    noise_floor: float = math.nan
    law_formula: str = ""
    law_exponent_interval: dict[str, tuple[float, float]] = field(default_factory=dict)
    oracle_note: str = ""
    clipping: dict[str, Any] = field(default_factory=dict)
    interval_regret: dict[str, Any] = field(default_factory=dict)
    target_tokens: float = math.nan  # the target's training tokens D (NaN in files written before it)
    target_shape: dict[str, Any] = field(default_factory=dict)  # ModelShape fields ({} before it)
    curves: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    cost_to_regret: dict[str, Any] = field(default_factory=dict)


@dataclass
class ValidationResult:
    """The harness's result: one :class:`OptimizerValidation` per optimizer, the validated law (the
    ``OptimizerLaw`` dict that ``oasl fit`` writes for lr) and the noise floor."""

    name: str
    optimizers: list[OptimizerValidation]
    law: dict[str, Any] = field(default_factory=dict)
    law_formula: str = ""
    noise_floor: float = math.nan
    seeds: list[int] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """One row per (optimizer, method): lr, regret (mean, sd, 90% interval), verdict, tuning compute."""
        rows = []
        for ov in self.optimizers:
            for m in ov.methods:
                rows.append(
                    {
                        "optimizer": ov.optimizer,
                        "method": m.method,
                        "lr": m.lr,
                        "regret_mean": m.regret_mean,
                        "regret_std": m.regret_std,
                        "regret_lo": m.regret_ci[0],
                        "regret_hi": m.regret_ci[1],
                        "verdict": m.verdict,
                        "noise_floor": ov.noise_floor,
                        "tuning_flops": m.tuning_flops,
                        "tuning_runs": m.tuning_runs,
                        "note": m.note,
                    }
                )
        return pd.DataFrame(rows)

    def to_json(self, path: str | Path) -> None:
        """Write ``validation.json`` (schema in this module's docstring); non-finite numbers become null."""
        Path(path).write_text(json.dumps(_clean(asdict(self)), indent=2))


def _clean(x):
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _num(v):
    return math.nan if v is None else v


def _nums(v):
    if isinstance(v, list):
        return [_num(x) for x in v]
    return _num(v)


def load_validation(path: str | Path) -> ValidationResult:
    """Read a ``validation.json`` written by :func:`oasl.validate.validate` (this version or the one
    before intervals and verdicts) back into a :class:`ValidationResult`."""
    from oasl.errors import ConfigError

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"validation file {p} does not exist")
    try:
        d = json.loads(p.read_text())
        ovs = []
        for o in d["optimizers"]:
            methods = []
            for m in o.pop("methods"):
                m = {k: (v if k in ("note", "verdict") else _num(v)) for k, v in m.items()}
                m["losses"] = [_num(v) for v in m["losses"]]
                m["regrets"] = [_num(v) for v in m.get("regrets", [])]
                m["regret_ci"] = tuple(_num(v) for v in m.get("regret_ci", (None, None)))
                methods.append(MethodResult(**m))
            o["recommended_interval"] = tuple(o["recommended_interval"])
            o["noise_floor"] = _num(o.get("noise_floor"))
            o["target_tokens"] = _num(o.get("target_tokens"))
            o["curves"] = {
                name: [{k: _nums(v) for k, v in p.items()} for p in pts]
                for name, pts in (o.get("curves") or {}).items()
            }
            o["cost_to_regret"] = o.get("cost_to_regret") or {}
            ovs.append(OptimizerValidation(**o, methods=methods))
        return ValidationResult(
            d["name"],
            ovs,
            law=d.get("law") or {},
            law_formula=d.get("law_formula", ""),
            noise_floor=_num(d.get("noise_floor")),
            seeds=list(d.get("seeds", [])),
        )
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"{p} is not a validation.json written by oasl ({exc})") from None
