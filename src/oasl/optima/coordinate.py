"""Optima from coordinate-descent data: the 1-D valley of each HP through a sweep's best configuration.

A coordinate-descent sweep (Marin's optimizer sweeps, :mod:`oasl.store.marin`) ends at a best
configuration and reports one-change-at-a-time runs around it. For each HP, the baseline and the
runs that changed only that HP form a 1-D valley on a coarse grid (about x2 per step). Per
(sweep, HP) the optimum is located on it:

- in log h, or in log(1 - h) for HPs just below 1 (``beta1``, ``beta2``, ``momentum``, ... :func:`space_of`),
  where Marin's grids (0.8, 0.9, 0.95, 0.98) are the same x2 steps;
- with 3 or more distinct finite points, the vertex of a parabola through the best point and its
  neighbours (:func:`oasl.optima.locate_one`'s estimator, one grid step either side); otherwise the
  best point;
- with an interval bounded by the nearest tried values either side of the best point: with one run per
  point and steps of x2 the optimum is only known to lie between them (a bootstrap of three single
  runs says little). A diverged run as the upper neighbour bounds the optimum from above and is marked
  (``high_bound`` "diverged"); a side with no tried value is open (NaN, ``at_edge``) and warned about.

Values <= 0 (weight decay 0, no warmup) cannot enter a log valley: they bound the valley from below
(``low_bound`` "zero") and, when a zero is the best point, the optimum is 0 and the note says so.

:func:`valley_points` gives the same valleys as (log distance from the optimum, loss increase,
diverged) rows: the measured valley shape that :class:`oasl.laws.risk.ValleyShape` reads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from oasl.errors import FitError
from oasl.optima._common import LOSS, fmt, run_masks

NAN = math.nan
# Marin's HP names map to these columns in an imported store (oasl.store.marin.RENAME)
COLUMN = {
    "learning_rate": "lr",
    "train_batch_size": "batch_seqs",
    "epsilon": "eps",
    "max_grad_norm": "grad_clip",
}
GROUP = ("optimizer", "n_params", "tokens")


def space_of(hp: str) -> str:
    """ "log1m" (log(1 - h)) for HPs just below 1 (betas, momenta), else "log"."""
    name = hp.lower()
    return "log1m" if name.startswith("beta") or "momentum" in name or name.endswith("_beta") else "log"


def _to_u(x: np.ndarray, space: str) -> np.ndarray:
    return 1.0 - x if space == "log1m" else x


def _from_u(u: float, space: str) -> float:
    return 1.0 - u if space == "log1m" else u


def _numeric(v) -> float:
    if isinstance(v, bool) or v is None:
        return NAN
    try:
        return float(v)
    except (TypeError, ValueError):
        return NAN


def locate_valley(values, loss, diverged=None, *, name: str = "lr", space: str | None = None) -> dict:
    """The optimum of one 1-D valley from arrays: tried ``values`` (raw units), final ``loss`` (NaN =
    diverged or missing) and optional ``diverged`` flags. ``space``: "log" or "log1m" (default
    :func:`space_of` ``name``). Returns a dict: ``opt``, ``grid_argmin``, ``ci_low``, ``ci_high`` (raw
    units, ordered low < high; NaN on an open side), ``low_bound``/``high_bound`` ("finite",
    "diverged", "zero" or "open": what bounds the interval on that side), ``at_edge`` ("low"/"high"/""),
    ``refined`` (parabola vertex used), ``n_points``, ``n_diverged``, ``loss_at_opt`` and ``note``.
    FitError when no tried value has a finite loss."""
    from oasl.optima.single import locate_one

    space = space or space_of(name)
    x = np.asarray(values, dtype=float).ravel()
    y = np.asarray(loss, dtype=float).ravel()
    div = ~np.isfinite(y)
    if diverged is not None:
        div |= np.asarray(diverged, dtype=bool).ravel()
    ok = ~div & np.isfinite(x)
    if not ok.any():
        raise FitError(f"no finite run in the {name} valley: nothing to locate")
    u = _to_u(x, space)
    k = int(np.flatnonzero(ok)[np.argmin(y[ok])])
    best_u, best_loss = u[k], float(y[k])
    notes: list[str] = []
    tried = np.isfinite(u)
    # interval: nearest tried values either side of the best point (in u, then mapped back)
    below, above = tried & (u < best_u * (1 - 1e-9)), tried & (u > best_u * (1 + 1e-9))
    lo_u = float(u[below].max()) if below.any() else NAN
    hi_u = float(u[above].min()) if above.any() else NAN
    lo_kind = (
        "open"
        if not below.any()
        else "zero"
        if lo_u <= 0
        else "diverged"
        if div[below & (u == lo_u)].all()
        else "finite"
    )
    hi_kind = "open" if not above.any() else "diverged" if div[above & (u == hi_u)].all() else "finite"
    refined, opt_u, loss_at = False, best_u, best_loss
    pos = ok & (u > 0)
    if best_u <= 0:
        notes.append(
            f"the best {name} tried is {fmt(_from_u(best_u, space))} (not in log space): the optimum is taken as it"
        )
    elif len(np.unique(np.round(np.log(u[pos]), 6))) >= 3:
        o = locate_one(u[pos], y[pos], name=name, n_boot=0)
        if o.refined:
            refined, opt_u, loss_at = True, float(o.opt), float(o.loss_at_opt)
    edge = ""
    if hi_kind == "open":
        edge = "high"
    elif lo_kind == "open":
        edge = "low"
    # in log1m space "above" in u is below in h: report edges and bounds in h's own direction
    if space == "log1m":
        lo_u, hi_u, lo_kind, hi_kind = hi_u, lo_u, hi_kind, lo_kind
        edge = {"high": "low", "low": "high", "": ""}[edge]
    ci_low, ci_high = _from_u(lo_u, space), _from_u(hi_u, space)
    if edge:
        side, direction = ("lower", "below") if edge == "low" else ("upper", "above")
        notes.append(
            f"optimum at the {side} edge of the {name} values tried (a bound, not an estimate): "
            f"try {name} {direction} {fmt(_from_u(best_u, space))}"
        )
    if hi_kind == "diverged":
        notes.append(f"bounded above by a diverged run at {name}={fmt(ci_high)}")
    if lo_kind == "diverged":
        notes.append(f"bounded below by a diverged run at {name}={fmt(ci_low)}")
    steps = np.diff(np.unique(np.log(u[tried & (u > 0)])))
    return {
        "opt": _from_u(opt_u, space),
        "step_log": float(np.median(steps)) if len(steps) else NAN,
        "grid_argmin": _from_u(best_u, space),
        "ci_low": ci_low,
        "ci_high": ci_high,
        "low_bound": lo_kind,
        "high_bound": hi_kind,
        "at_edge": edge,
        "refined": refined,
        "n_points": int(ok.sum()),
        "n_diverged": int((div & np.isfinite(x)).sum()),
        "loss_at_opt": loss_at,
        "best_loss": best_loss,
        "space": space,
        "note": "; ".join(notes),
    }


def _valleys(df: pd.DataFrame, hps: Sequence[str] | None, loss: str):
    """``(sweep key, hp, column, valley rows)`` for each HP ablated in each sweep."""
    for col in ("sweep", "ablated", loss):
        if col not in df.columns:
            raise FitError(
                f"coordinate optima need a runs table with a {col!r} column (import Marin results with "
                "`oasl import FOLDER --format marin`)"
            )
    finished, diverged = run_masks(df, loss)
    work = df.assign(_div=diverged)[finished]
    for sweep, g in work.groupby("sweep", sort=True):
        base = g[g["ablated"] == "baseline"]
        for hp in sorted(set(g["ablated"]) - {"baseline"}):
            col = COLUMN.get(hp, hp)
            if hps is not None and col not in hps and hp not in hps:
                continue
            if col not in g.columns:
                continue
            yield sweep, hp, col, pd.concat([base, g[g["ablated"] == hp]])


def coordinate_optima(df: pd.DataFrame, hps: Sequence[str] | None = None, loss: str = LOSS) -> pd.DataFrame:
    """The optimum of every ablated HP in every sweep of a coordinate-descent runs table.

    ``df``: runs with columns ``sweep`` (one id per coordinate sweep), ``ablated`` ("baseline" or the
    changed HP), the HP columns, ``loss``, the group columns optimizer/n_params/tokens and optional
    ``status``/``diverged`` (failed runs are left out; diverged ones bound the valley). ``hps``: only
    these HPs (oasl column names, e.g. "lr", "batch_seqs"; default all). Returns one row per (sweep,
    HP): the group columns, ``sweep``, ``hp`` (column name), ``best_config`` (the sweep's chosen
    value), then :func:`locate_valley`'s fields. Non-numeric HPs (flags, names) are skipped."""
    rows = []
    for sweep, _hp, col, v in _valleys(df, hps, loss):
        x = np.array([_numeric(a) for a in v[col]], dtype=float)
        if not np.isfinite(x).any() or len(np.unique(x[np.isfinite(x)])) < 2:
            continue
        y = pd.to_numeric(v[loss], errors="coerce").to_numpy(dtype=float)
        base = v[v["ablated"] == "baseline"]
        try:
            res = locate_valley(x, y, v["_div"].to_numpy(bool), name=col)
        except FitError:
            continue
        first = v.iloc[0]
        row = {g: first[g] for g in GROUP if g in v.columns}
        for extra in ("model_size", "multiple"):
            if extra in v.columns:
                row[extra] = first[extra]
        row.update(sweep=sweep, hp=col, best_config=_numeric(base[col].iloc[0]) if len(base) else NAN)
        row.update(res)
        rows.append(row)
    if not rows:
        raise FitError(
            "no HP valley with a finite run and 2 or more values: is this coordinate-descent data?"
        )
    return pd.DataFrame(rows)


def valley_points(
    df: pd.DataFrame, hp: str, loss: str = LOSS, optima: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The valleys of ``hp`` as rows ``sweep``, ``optimizer``, ``n_params``, ``tokens``, ``log_dist``
    (log(h / optimum), or log((1 - h) / (1 - optimum)) for betas, so > 0 is always "larger step":
    higher lr, larger batch, shorter memory), ``dloss`` (loss minus the valley's best, NaN when
    diverged) and ``diverged``; points at the optimum itself are left out. ``optima``: a
    :func:`coordinate_optima` table to reuse."""
    opt = optima if optima is not None else coordinate_optima(df, [hp], loss)
    opt = opt[opt["hp"] == hp].set_index("sweep")
    out = []
    for sweep, _, col, v in _valleys(df, [hp], loss):
        if sweep not in opt.index:
            continue
        o = opt.loc[sweep]
        space = o["space"]
        x = np.array([_numeric(a) for a in v[col]], dtype=float)
        u, uo = _to_u(x, space), _to_u(float(o["grid_argmin"]), space)
        if not uo > 0:
            continue
        y = pd.to_numeric(v[loss], errors="coerce").to_numpy(dtype=float)
        for xi, ui, yi, di in zip(x, u, y, v["_div"].to_numpy(bool), strict=True):
            if not (np.isfinite(ui) and ui > 0) or abs(math.log(ui / uo)) < 1e-9:
                continue
            out.append(
                {
                    "sweep": sweep,
                    "optimizer": v["optimizer"].iloc[0],
                    "n_params": v["n_params"].iloc[0],
                    "tokens": v["tokens"].iloc[0],
                    "value": xi,
                    "log_dist": math.log(ui / uo),
                    "dloss": NAN if di or not np.isfinite(yi) else float(yi - o["best_loss"]),
                    "diverged": bool(di or not np.isfinite(yi)),
                }
            )
    return pd.DataFrame(
        out, columns=["sweep", "optimizer", "n_params", "tokens", "value", "log_dist", "dloss", "diverged"]
    )
