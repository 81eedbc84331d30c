"""Fitting laws of every HP of several optimizers from coordinate-descent sweeps, with risk-adjusted lr and batch.

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

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from oasl.errors import FitError
from oasl.laws.risk import ValleyShape

if TYPE_CHECKING:
    from oasl.laws.coordinate import CoordinateLawSet

# Valleys coarser than this (log step; x2.5) are not located: a parabola over an epsilon grid of
# 1e-25 ... 1e-10 means nothing. The sweep's chosen value is used instead.
MAX_STEP_LOG = math.log(2.5)
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
    from oasl.laws.coordinate import CoordinateLawSet

    out = CoordinateLawSet(
        laws, law_opts, constants, _valleys(df, optima, optimizers), {**facts, **(meta or {})}
    )
    out.selection_ = selection  # type: ignore[attr-defined]
    out.optima_ = optima  # type: ignore[attr-defined]
    out.cells_ = cells  # type: ignore[attr-defined]
    return out
