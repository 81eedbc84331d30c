"""A set of laws of every HP of several optimizers, fitted on coordinate-descent sweeps, with risk-adjusted
lr and batch: :class:`CoordinateLawSet` (predict, JSON), what ``oasl recommend --laws`` and the shipped
``--published marin`` use. The fitting is :mod:`oasl.laws.coordinate_fit` (:func:`fit_coordinate_laws`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from oasl.errors import ConfigError
from oasl.laws.risk import ValleyShape, risk_adjusted, sd_from_interval

FORMAT = "oasl-coordinate-laws"
FORMAT_VERSION = 1
RISK_HPS = ("lr", "batch_tokens")  # HPs whose recommendation is risk-adjusted


@dataclass
class CoordinateLawSet:
    """Per-optimizer laws, constants and valley shapes (see the module docstring).

    ``laws``: HP -> fitted :class:`~oasl.laws.OptimizerLaw` (or a plain law for one optimizer);
    ``law_optimizers``: HP -> the optimizers that law covers; ``constants``: optimizer -> HP -> value;
    ``valleys``: optimizer -> HP (lr, batch_tokens) -> :class:`ValleyShape`; ``meta``: provenance and
    the data's facts (``seq_len`` among them)."""

    laws: dict[str, Any] = field(default_factory=dict)
    law_optimizers: dict[str, list[str]] = field(default_factory=dict)
    constants: dict[str, dict[str, float]] = field(default_factory=dict)
    valleys: dict[str, dict[str, ValleyShape]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def optimizers(self) -> list[str]:
        names = set(self.constants)
        for opts in self.law_optimizers.values():
            names |= set(opts)
        return sorted(names)

    def fitted_range(self) -> dict[str, tuple[float, float]]:
        """The range of N and D the laws were fitted on (from the lr law, else the meta)."""
        law = self.laws.get("lr")
        sub = None
        if law is not None:
            opts = self.law_optimizers.get("lr") or [None]
            sub = law.law_for(opts[0]) if hasattr(law, "law_for") else law
        rng = dict(getattr(sub, "range_", {}) or {})
        if not rng and self.meta.get("n_params"):
            rng = {
                "N": (min(self.meta["n_params"]), max(self.meta["n_params"])),
                "D": tuple(self.meta["tokens_range"]),
            }
        return {k: (float(a), float(b)) for k, (a, b) in rng.items()}

    def hps(self, optimizer: str) -> list[str]:
        """The HPs this set gives for ``optimizer`` (laws first, then constants)."""
        fitted = [h for h, opts in self.law_optimizers.items() if optimizer in opts]
        return fitted + [h for h in self.constants.get(optimizer, {}) if h not in fitted]

    def _check(self, optimizer: str) -> str:
        name = str(optimizer).strip().lower()
        if name not in self.optimizers:
            raise ConfigError(
                f"no laws for optimizer {optimizer!r} in this set: choose one of {', '.join(self.optimizers)}"
            )
        return name

    def predict(
        self,
        optimizer: str,
        n_params: float,
        tokens: float,
        level: float = 0.9,
        risk: bool = False,
    ) -> dict[str, dict[str, Any]]:
        """Every HP for ``optimizer`` at (``n_params``, ``tokens``): name -> dict with ``value``, ``low``,
        ``high`` (the law's ``level`` prediction interval, None for constants), ``center`` (the law's
        own prediction), ``shift`` (log shift of the risk rule, 0 when not applied), ``source``,
        ``extrapolation`` (ratio beyond the fitted range), ``formula`` and, for lr and batch_tokens,
        ``risk_value``: :func:`oasl.laws.risk.risk_adjusted` of the law's predictive distribution and the
        optimizer's valley (None without a valley). With ``risk`` that is the ``value``; by default the
        law's centre is (the rule raised the loss regret in the training-only check that sets its
        default: docs/marin.md)."""
        opt = self._check(optimizer)
        q = pd.DataFrame(
            {"N": [float(n_params)], "D": [float(tokens)], "C": [6.0 * n_params * tokens], "optimizer": [opt]}
        )
        out: dict[str, dict[str, Any]] = {}
        for hp in self.hps(opt):
            if hp in self.law_optimizers and opt in self.law_optimizers[hp]:
                law = self.laws[hp]
                sub = law.law_for(opt) if hasattr(law, "law_for") else law
                center = float(sub.predict(q)[0])
                lo, hi = (float(v[0]) for v in sub.predict_interval(q, level))
                ratio = float(sub.extrapolation_ratio(q)[0]) if getattr(sub, "range_", None) else None
                value, shift, how, risk_value = center, 0.0, "law", None
                if hp in RISK_HPS and center > 0:
                    valley = self.valleys.get(opt, {}).get(hp)
                    sd = sd_from_interval(lo, hi, level)
                    if not math.isfinite(sd):
                        sd = float(getattr(sub, "rmse_log_", math.nan))
                    if valley is not None and math.isfinite(sd):
                        v_log, rshift = risk_adjusted(math.log(center), sd, valley)
                        risk_value = math.exp(v_log)
                        if risk:
                            value, shift = risk_value, rshift
                            how = f"law, risk-adjusted x{math.exp(shift):.2f} (docs/marin.md)"
                out[hp] = {
                    "risk_value": risk_value,
                    "value": value,
                    "low": lo if hi > lo else None,
                    "high": hi if hi > lo else None,
                    "center": center,
                    "shift": shift,
                    "source": how,
                    "extrapolation": ratio,
                    "formula": formula_for(law, opt),
                }
            else:
                out[hp] = {
                    "value": self.constants[opt][hp],
                    "low": None,
                    "high": None,
                    "center": self.constants[opt][hp],
                    "shift": 0.0,
                    "risk_value": None,
                    "source": "constant: the sweeps' chosen value (their median where they differ without a located optimum)",
                    "extrapolation": None,
                    "formula": "",
                }
        return out

    # -- serialisation -----------------------------------------------------------------------------
    def to_dict(self, data: bool = False) -> dict[str, Any]:
        """JSON-able dict; ``data`` keeps the optima each law was fitted on (larger)."""
        from oasl.laws.io import _clean

        return _clean(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "meta": self.meta,
                "laws": {h: law.to_dict(data=data) for h, law in self.laws.items()},
                "law_optimizers": self.law_optimizers,
                "constants": self.constants,
                "valleys": {o: {h: v.to_dict() for h, v in vs.items()} for o, vs in self.valleys.items()},
            }
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CoordinateLawSet:
        from oasl.laws.io import law_from_dict

        if d.get("format") != FORMAT:
            raise ConfigError(f"not an {FORMAT} file (format {d.get('format')!r})")
        if int(d.get("format_version", 1)) > FORMAT_VERSION:
            raise ConfigError(
                f"coordinate laws format {d.get('format_version')} is newer than this oasl reads: upgrade oasl"
            )
        return cls(
            laws={h: law_from_dict(v) for h, v in d.get("laws", {}).items()},
            law_optimizers={h: list(v) for h, v in d.get("law_optimizers", {}).items()},
            constants={o: dict(v) for o, v in d.get("constants", {}).items()},
            valleys={
                o: {h: ValleyShape.from_dict(v) for h, v in vs.items()}
                for o, vs in d.get("valleys", {}).items()
            },
            meta=dict(d.get("meta", {})),
        )

    def save(self, path: str | Path, data: bool = False, compact: bool = False) -> Path:
        """Write the set as JSON at ``path`` (see :meth:`to_dict`); ``compact``: no indentation and numbers
        to 7 significant digits (a shipped file: predictions change by under 1e-6 relative)."""
        p = Path(path)
        d = self.to_dict(data)
        if compact:
            text = json.dumps(_round(d), separators=(",", ":"))
        else:
            text = json.dumps(d, indent=1)
        p.write_text(text + "\n")
        return p


def _round(v: Any) -> Any:
    if isinstance(v, float):
        return float(f"{v:.7g}")
    if isinstance(v, dict):
        return {k: _round(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_round(x) for x in v]
    return v


def formula_for(law, optimizer: str) -> str:
    """``law``'s formula for one optimizer, e.g. ``lr = 95.9 N^-0.217 D^-0.233`` (``1 - beta1 = ...``
    for betas), whether the law is shared across optimizers or not."""
    sub = law.law_for(optimizer) if hasattr(law, "law_for") else law
    if hasattr(law, "constant"):
        c, ex = law.constant(optimizer), law.exponents(optimizer)
    else:
        c, ex = sub.coef_, dict(getattr(sub, "exponents_", {}) or {})
    form = getattr(law, "form", getattr(sub, "kind", "power"))
    lhs = f"1 - {sub.target}" if form == "one_minus" else sub.target
    terms = " ".join(f"{k}^{v:.3g}" for k, v in ex.items() if v != 0)
    if not terms:
        value = c if form != "one_minus" else 1 - c
        return f"{sub.target} = {value:.4g} (constant in N, D)"
    return f"{lhs} = {c:.4g} {terms}"


def is_coordinate_file(path: str | Path) -> bool:
    """True when ``path`` is a JSON file written by :meth:`CoordinateLawSet.save`."""
    try:
        with open(path) as f:
            head = f.read(200)
    except OSError:
        return False
    return f'"{FORMAT}"' in head


def load_coordinate_laws(path: str | Path) -> CoordinateLawSet:
    """Read a :meth:`CoordinateLawSet.save` file; ConfigError when missing or malformed."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            f"laws file {p} does not exist: create it with `oasl fit --store runs.db --out {p}`"
        )
    from oasl.config import read_json_file

    d = read_json_file(p, "laws file")  # UTF-8 and nesting checked: one line
    try:
        return CoordinateLawSet.from_dict(d)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"laws file {p} is not a valid coordinate laws file ({type(exc).__name__}: {exc})"
        ) from None
