"""Laws of every HP of several optimizers from coordinate-descent sweeps, with risk-adjusted lr and batch.

:func:`fit_coordinate_laws` takes a runs table of coordinate sweeps (Marin's, :mod:`oasl.store.marin`)
and, for each HP that any optimizer's best configuration varies across (N, D) cells:

1. the optimum per cell: the located optimum of its 1-D valley (:func:`oasl.optima.coordinate.coordinate_optima`)
   where the sweep ablated the HP on a grid of at most x2.5 steps, else the sweep's chosen value (Marin's larger sweeps ablate only lr
   and batch around a configuration carried over from the smaller ones);
2. a law in (N, D) chosen by :func:`oasl.laws.select_law` among power-law and constant forms (1 - h
   laws for betas and momenta) and the three sharings across optimizers (separate, shared exponents,
   pooled), by held-out error (leave one optimum out: the sweeps have two or three sizes, too few
   for forward chaining), with jackknife+ prediction intervals (Bayesian below 9 optima);
3. for lr and the batch, the valley shape measured on the same sweeps (:class:`oasl.laws.risk.ValleyShape`,
   per optimizer, with the boundary of divergence taken from all optimizers when an optimizer never
   diverged), which :meth:`CoordinateLawSet.predict` uses to shift the recommendation below the law's
   centre (:func:`oasl.laws.risk.risk_adjusted`).

HPs that never vary for an optimizer, or whose optimum was never located on a valley (only chosen
from grids over decades, as the epsilons), are kept as constants (the median chosen value). Batch laws are in tokens
(``batch_tokens`` = sequences x sequence length); the recommendation gives both. Warmup is in steps,
as Marin sets it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oasl.errors import ConfigError, FitError
from oasl.laws.risk import ValleyShape, risk_adjusted, sd_from_interval

FORMAT = "oasl-coordinate-laws"
FORMAT_VERSION = 1
RISK_HPS = ("lr", "batch_tokens")
# Valleys coarser than this (log step; x2.5) are not located: a parabola over an epsilon grid of
# 1e-25 ... 1e-10 means nothing. The sweep's chosen value is used instead.
MAX_STEP_LOG = math.log(2.5)  # HPs whose recommendation is risk-adjusted
# HPs never fitted: sweep bookkeeping, or settings a law over (N, D) would not mean anything for
SKIP = {
    "n_params",
    "tokens",
    "multiple",
    "width",
    "depth",
    "d_ff",
    "n_heads",
    "seq_len",
    "steps",
    "batch_seqs",
    "warmup_frac",
    "final_val_loss",
    "ablated_value",
}


def _space(hp: str) -> str:
    from oasl.optima.coordinate import space_of

    return space_of(hp)


def cell_optima(df: pd.DataFrame, optima: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (optimizer, N, D) cell and HP: ``optimizer``, ``N``, ``D``, ``hp``, ``value`` (the
    optimum used for the law: located when the HP was ablated, else the sweep's chosen value),
    ``located`` (bool), ``at_edge``, ``sweep``. Batch appears as ``batch_tokens``."""
    from oasl.optima.coordinate import coordinate_optima

    base = df[df["ablated"] == "baseline"]
    if base.empty:
        raise FitError("no baseline runs (ablated == 'baseline'): is this coordinate-descent data?")
    opt = optima if optima is not None else coordinate_optima(df)
    located = {(r.sweep, r.hp): r for r in opt.itertuples()}
    rows = []
    for b in base.itertuples(index=False):
        b = b._asdict()
        for hp, v in b.items():
            if hp in SKIP or hp.startswith("_") or isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if (
                hp in ("key", "status", "source", "role", "diverged")
                or v is None
                or not math.isfinite(float(v))
            ):
                continue
            r = located.get((b["sweep"], hp))
            if r is not None and not r.step_log <= MAX_STEP_LOG:
                r = None  # a valley over decades (epsilons) locates nothing: keep the chosen value
            value, loc, edge = (
                (float(r.opt), True, r.at_edge)
                if r is not None and math.isfinite(r.opt)
                else (float(v), False, "")
            )
            name = hp
            if hp == "batch_seqs":
                continue
            rows.append(
                {
                    "optimizer": b["optimizer"],
                    "N": float(b["n_params"]),
                    "D": float(b["tokens"]),
                    "sweep": b["sweep"],
                    "hp": name,
                    "value": value,
                    "located": loc,
                    "at_edge": edge,
                }
            )
        r = located.get((b["sweep"], "batch_seqs"))
        bs = float(r.opt) if r is not None and math.isfinite(r.opt) else float(b["batch_seqs"])
        rows.append(
            {
                "optimizer": b["optimizer"],
                "N": float(b["n_params"]),
                "D": float(b["tokens"]),
                "sweep": b["sweep"],
                "hp": "batch_tokens",
                "value": bs * float(b["seq_len"]),
                "located": r is not None,
                "at_edge": "" if r is None else r.at_edge,
            }
        )
    return pd.DataFrame(rows)


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
        risk: bool = True,
    ) -> dict[str, dict[str, Any]]:
        """Every HP for ``optimizer`` at (``n_params``, ``tokens``): name -> dict with ``value``, ``low``,
        ``high`` (the law's ``level`` prediction interval, None for constants), ``center`` (the law's
        own prediction), ``shift`` (log shift of the risk rule, 0 when not applied), ``source``,
        ``extrapolation`` (ratio beyond the fitted range) and ``formula``. With ``risk``, lr and
        batch_tokens are moved to :func:`oasl.laws.risk.risk_adjusted` of the law's predictive
        distribution and the optimizer's valley."""
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
                value, shift, how = center, 0.0, "law"
                if risk and hp in RISK_HPS and center > 0:
                    valley = self.valleys.get(opt, {}).get(hp)
                    sd = sd_from_interval(lo, hi, level)
                    if not math.isfinite(sd):
                        sd = float(getattr(sub, "rmse_log_", math.nan))
                    if valley is not None and math.isfinite(sd):
                        v_log, shift = risk_adjusted(math.log(center), sd, valley)
                        value = math.exp(v_log)
                        how = f"law, risk-adjusted x{math.exp(shift):.2f} (docs/marin.md)"
                out[hp] = {
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
    try:
        return CoordinateLawSet.from_dict(json.loads(p.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"laws file {p} is not a valid coordinate laws file ({type(exc).__name__}: {exc})"
        ) from None


def _valleys(
    df: pd.DataFrame, optima: pd.DataFrame, optimizers: Sequence[str]
) -> dict[str, dict[str, ValleyShape]]:
    from oasl.optima.coordinate import valley_points

    out: dict[str, dict[str, ValleyShape]] = {o: {} for o in optimizers}
    for hp, name in (("lr", "lr"), ("batch_seqs", "batch_tokens")):
        pts = valley_points(df, hp, optima=optima)
        if pts.empty:
            continue
        pooled = ValleyShape.from_runs(pts["log_dist"], pts["dloss"], pts["diverged"], pts["sweep"])
        for o in optimizers:
            p = pts[pts["optimizer"] == o]
            if len(p) == 0:
                out[o][name] = pooled
                continue
            v = ValleyShape.from_runs(p["log_dist"], p["dloss"], p["diverged"], p["sweep"])
            # too few points on a side, or never diverged on a side: take that part from all optimizers
            kw = {}
            if v.n_below < 3:
                kw["curv_below"] = pooled.curv_below
            if v.n_above < 3:
                kw["curv_above"] = pooled.curv_above
            if math.isinf(v.diverge_at):
                kw["diverge_at"] = pooled.diverge_at
            if math.isinf(v.diverge_below):
                kw["diverge_below"] = pooled.diverge_below
            out[o][name] = ValleyShape(**{**v.__dict__, **kw})
    return out


def fit_coordinate_laws(
    df: pd.DataFrame,
    hps: Sequence[str] | None = None,
    interval: str = "jackknife+",
    meta: dict[str, Any] | None = None,
) -> CoordinateLawSet:
    """Fit a :class:`CoordinateLawSet` on a coordinate-descent runs table (module docstring).

    ``hps``: only these HPs get laws (default: every numeric HP some optimizer varies; the others
    are constants). ``interval``: the laws' prediction interval method. ``meta``: provenance to keep.
    FitError when the table is not coordinate data."""
    from oasl.laws.select import select_law
    from oasl.optima.coordinate import coordinate_optima

    for col in ("optimizer", "n_params", "tokens", "sweep", "ablated", "seq_len"):
        if col not in df.columns:
            raise FitError(
                f"coordinate laws need a {col!r} column: import Marin results with `oasl import FOLDER --format marin`"
            )
    optima = coordinate_optima(df)
    cells = cell_optima(df, optima)
    optimizers = sorted(cells["optimizer"].unique())
    laws: dict[str, Any] = {}
    law_opts: dict[str, list[str]] = {}
    constants: dict[str, dict[str, float]] = {o: {} for o in optimizers}
    selection: dict[str, pd.DataFrame] = {}
    for hp, t in cells.groupby("hp", sort=True):
        space = _space(hp)
        varying = []
        for o, g in t.groupby("optimizer"):
            vals = g["value"].to_numpy(float)
            ok = (vals < 1) & (vals >= 0) if space == "log1m" else vals > 0
            # a law needs distinct values in its space, at least 3 usable optima, and at least one of
            # them located on a valley (chosen values alone, e.g. epsilons picked across decades, are
            # not optima of a grid: they stay constants)
            if (
                (hps is None or hp in hps)
                and len(np.unique(np.round(vals, 12))) > 1
                and ok.sum() >= 3
                and g["located"].any()
            ):
                varying.append(o)
            else:
                u = vals[ok] if ok.any() else vals
                constants[o][hp] = float(np.median(u)) if len(np.unique(np.round(u, 12))) > 1 else float(u[0])
        if not varying:
            continue
        table = t[t["optimizer"].isin(varying)].rename(columns={"value": hp}).reset_index(drop=True)
        vals = table[hp].to_numpy(float)
        table = table[((vals < 1) & (vals >= 0)) if space == "log1m" else vals > 0].reset_index(drop=True)
        table["C"] = 6.0 * table["N"] * table["D"]
        forms = ["one_minus", "constant"] if space == "log1m" else ["power", "constant"]
        if len(varying) == 1:
            table = table.drop(columns=["optimizer"])
        try:
            law, sel = select_law(table, hp, ("N", "D"), forms=forms, interval=interval, cv="loo")
        except (FitError, OverflowError, np.linalg.LinAlgError) as exc:
            import warnings

            warnings.warn(f"no law of {hp} ({type(exc).__name__}: {exc}); kept as constants", stacklevel=2)
            for o in varying:
                g = t[t["optimizer"] == o]["value"]
                constants[o][hp] = float(np.median(g))
            continue
        laws[hp], law_opts[hp], selection[hp] = law, varying, sel
    for o in optimizers:
        constants[o] = {h: v for h, v in constants[o].items() if not (h in law_opts and o in law_opts[h])}
    sizes = sorted({int(n) for n in cells["N"]})
    facts = {
        "optimizers": optimizers,
        "n_params": sizes,
        "tokens_range": [float(cells["D"].min()), float(cells["D"].max())],
        "seq_len": int(pd.to_numeric(df["seq_len"]).iloc[0]),
        "n_runs": int(len(df)),
        "n_sweeps": int(df["sweep"].nunique()),
        "created": time.strftime("%Y-%m-%d"),
        "selected": {h: f"{s.iloc[0]['form']}/{s.iloc[0]['sharing']}" for h, s in selection.items()},
    }
    out = CoordinateLawSet(
        laws, law_opts, constants, _valleys(df, optima, optimizers), {**facts, **(meta or {})}
    )
    out.selection_ = selection  # type: ignore[attr-defined]
    out.optima_ = optima  # type: ignore[attr-defined]
    out.cells_ = cells  # type: ignore[attr-defined]
    return out
