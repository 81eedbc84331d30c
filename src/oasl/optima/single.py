"""The optimum of one swept HP per group: a parabola in log(h) around the best point, bootstrapped.

Method. Runs are grouped by their (snapped) grid value of ``h``; seeds at one ``h`` are averaged,
which for the quadratic fit is the same as least squares on every run (the count weights each mean).
The parabola ``loss = a (log h - v)^2 + c`` is fitted over the ``window`` finite grid points either
side of the best one; its vertex ``v`` is the refined optimum. A narrow window follows an asymmetric
valley (loss rises faster above the optimal lr than below it) better than a wide one; a wide one
averages more noise. If the parabola is not convex or its vertex leaves the fitted points, the grid
argmin is kept and the note says so.

Uncertainty: a percentile bootstrap of the whole procedure (Efron & Tibshirani 1993, *An
Introduction to the Bootstrap*, ch. 13): runs are resampled with replacement, within each grid point
when every point of the window has several runs (seeds; this keeps the design fixed) or over the whole
group otherwise, and the window, the fit and the fallback are redone on each resample.

Near-optimal band: every grid value whose mean loss is within ``eps`` (relative) of the best;
Step Law (Li et al. 2025, arXiv 2503.04715, Sec. 2.3) counts runs within 0.25% of the best as
near-optimal, hence the default ``eps=0.0025``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from oasl.errors import FitError
from oasl.optima._common import (
    GRID_TOL,
    LOSS,
    check_frame,
    fmt,
    iter_groups,
    mark_excess,
    positive_values,
    run_masks,
    snap_grid,
)

NAN = math.nan


@dataclass
class Optimum:
    """The optimum of one HP in one group; every ``h`` is in raw units of the swept HP.

    ``grid_argmin``: h of the best finite run (at the grid point of lowest mean loss over seeds).
    ``opt``: refined optimum (parabola vertex; the grid argmin when the fit is refused, see ``refined``).
    ``ci_low``/``ci_high``: percentile bootstrap interval of ``opt`` at ``level``; NaN on the open side
    of an edge optimum (the optimum may lie anywhere beyond the grid) and when no fit was possible.
    ``loss_at_opt``: parabola value at ``opt`` (``best_loss`` when not refined). ``best_loss``: mean
    loss at the grid argmin. ``band_low``/``band_high``: extreme grid values whose mean loss is within
    ``eps`` relative of ``best_loss``; ``band_low_fit``/``band_high_fit``: the same from the parabola
    (``loss_at_opt * (1 + eps)``). ``at_edge``: "low"/"high" when the grid argmin is the lowest/highest
    value of the whole grid (diverged runs included), so ``opt`` is a bound. ``too_few``: fewer than 3
    distinct finite values. ``diverged_near``: a diverged run at the grid argmin or one grid step from
    it. ``n_points``/``n_diverged``: finite and diverged runs. ``n_fit``: runs inside the fitted window,
    ``fit_low``/``fit_high`` its h range, ``curvature``: ``a`` in loss per (log h)^2. ``note``: what to do.
    """

    grid_argmin: float
    opt: float
    ci_low: float
    ci_high: float
    loss_at_opt: float
    best_loss: float
    band_low: float
    band_high: float
    band_low_fit: float
    band_high_fit: float
    at_edge: str
    too_few: bool
    diverged_near: bool
    n_points: int
    n_diverged: int
    n_fit: int
    refined: bool
    curvature: float
    fit_low: float
    fit_high: float
    note: str

    def to_dict(self) -> dict:
        """The fields as a plain dict (one row of :func:`locate_optima`'s table)."""
        return asdict(self)


@dataclass
class _Fit:
    """One run of the estimator on aggregated points (all in log h)."""

    v: float  # optimum (log h)
    refined: bool
    k: int  # index of the best point among the points given
    lo: int  # fitted window [lo, hi) over the points given
    hi: int
    a: float = NAN
    c: float = NAN  # loss at the vertex


def auto_window(u: np.ndarray) -> int:
    """Grid steps either side of the best so the window spans about a factor 2 (ln 2) each way.

    Why: a wider span averages more noise, but on asymmetric valleys (loss rising faster above the
    optimal lr than below) it pulls the vertex toward the shallow side; a narrower one only adds
    noise. Spanning a factor 2 keeps that bias under a tenth of an octave on the simulated valleys
    of benchmarks/optima_steplaw.py (table "window"), where a factor-4 span reaches a third of one.
    """
    step = float(np.median(np.diff(u))) if len(u) > 1 else math.log(2)
    return max(1, int(round(math.log(2) / step))) if step > 0 else 1


def _estimate(u: np.ndarray, s: np.ndarray, n: np.ndarray, window: int, weighted: bool) -> _Fit:
    """The estimator on grid points ``u`` (sorted log h) with loss sums ``s`` over ``n`` > 0 runs each."""
    m = s / n
    k = int(np.argmin(m))
    lo, hi = max(0, k - window), min(len(u), k + window + 1)
    if hi - lo < 3:  # at an edge: still fit three points, the vertex then decides
        lo, hi = (0, min(len(u), 3)) if lo == 0 else (max(0, len(u) - 3), len(u))
    if hi - lo < 3:
        return _Fit(float(u[k]), False, k, lo, hi)
    x = u[lo:hi] - u[k]  # centred for conditioning
    w = n[lo:hi].astype(float)
    if weighted:  # tricube in grid steps: the best point and its neighbours count most
        d = np.abs(np.arange(lo, hi) - k) / (window + 1)
        w = w * (1 - np.clip(d, 0, 1) ** 3) ** 3
    sw = np.sqrt(w)
    A = np.column_stack([np.ones_like(x), x, x * x]) * sw[:, None]
    (c0, b, a), *_ = np.linalg.lstsq(A, m[lo:hi] * sw, rcond=None)
    if not a > 0:
        return _Fit(float(u[k]), False, k, lo, hi, float(a))
    v = -b / (2 * a)
    if not x[0] <= v <= x[-1]:
        return _Fit(float(u[k]), False, k, lo, hi, float(a))
    return _Fit(float(u[k] + v), True, k, lo, hi, float(a), float(c0 - b * b / (4 * a)))


def _bootstrap(u, gi, y, window, weighted, n_boot, stratified, rng) -> np.ndarray:
    """Optima (log h) of ``n_boot`` resamples of the finite runs (grid index ``gi`` into ``u``, loss ``y``)."""
    G = len(u)
    out = np.empty(n_boot)
    if stratified:
        order = np.argsort(gi, kind="stable")
        gi, y = gi[order], y[order]
        starts = np.searchsorted(gi, np.arange(G))
        sizes = np.bincount(gi, minlength=G)
        mean = np.bincount(gi, weights=y, minlength=G) / np.maximum(sizes, 1)
        # a resample of n seeds has (n-1)/n of their variance: inflate the deviations back, the
        # usual small-sample correction (Davison & Hinkley 1997, *Bootstrap Methods and their
        # Application*, ch. 3)
        infl = np.sqrt(sizes / np.maximum(sizes - 1, 1))
    for b in range(n_boot):
        if stratified:
            idx = starts[gi] + (rng.random(len(gi)) * sizes[gi]).astype(int)
            yb = mean[gi] + infl[gi] * (y[idx] - mean[gi])
            n = sizes
            s = np.bincount(gi, weights=yb, minlength=G)
        else:
            idx = rng.integers(0, len(y), len(y))
            n = np.bincount(gi[idx], minlength=G)
            s = np.bincount(gi[idx], weights=y[idx], minlength=G)
        p = n > 0
        if p.sum() < 3:
            out[b] = u[p][np.argmin(s[p] / n[p])]
            continue
        out[b] = _estimate(u[p], s[p], n[p], window, weighted).v
    return out


def locate_one(
    h,
    loss,
    diverged=None,
    *,
    name: str = "lr",
    eps: float = 0.0025,
    level: float = 0.9,
    n_boot: int = 200,
    window: int | str = "auto",
    weighted: bool = False,
    bootstrap: str = "auto",
    seed: int = 0,
    grid_tol: float = GRID_TOL,
    pruned=None,
) -> Optimum:
    """Optimum of one group from arrays: ``h`` (raw, > 0), final ``loss`` (NaN = diverged), optional
    ``diverged`` flags, and ``pruned``: h of runs stopped early because they were losing (not fitted,
    but they extend the grid: an optimum next to them is not at the grid's edge). ``name`` is used in
    notes. See :func:`locate_optima` for the other parameters and :class:`Optimum` for the result."""
    if not 0 < level < 1:
        raise FitError(f"level must be in (0, 1), got {level}: e.g. 0.9 for a 90% interval")
    if window != "auto" and not (isinstance(window, (int, np.integer)) and window >= 1):
        raise FitError(
            f"window must be 'auto' or a whole number >= 1 of grid steps either side of the best, got {window!r}"
        )
    if bootstrap not in ("auto", "runs", "stratified"):
        raise FitError(f"bootstrap must be 'auto', 'runs' or 'stratified', got {bootstrap!r}")
    h = np.asarray(h, dtype=float).ravel()
    y = np.asarray(loss, dtype=float).ravel()
    if len(h) != len(y):
        raise FitError(f"{name} and loss have different lengths ({len(h)} vs {len(y)})")
    if len(h) == 0:
        raise FitError(f"no runs to locate the optimum of {name} in")
    bad = ~np.isfinite(h) | (h <= 0)
    if bad.any():
        raise FitError(
            f"{name} must be positive and finite (log space); found {float(h[bad][0]):g}: drop those runs"
        )
    div = ~np.isfinite(y)
    if diverged is not None:
        div |= np.asarray(diverged, dtype=bool).ravel()
    ok = ~div
    ph = np.zeros(0) if pruned is None else np.asarray(pruned, dtype=float).ravel()
    if np.any(~np.isfinite(ph)) or np.any(ph <= 0):
        raise FitError(f"{name} of pruned runs must be positive and finite (log space): drop those runs")
    grid, gi = snap_grid(np.log(np.concatenate([h, ph])), grid_tol)
    gi = gi[: len(h)]
    G = len(grid)
    n_ok, n_div = int(ok.sum()), int(div.sum())
    if n_ok == 0:
        return Optimum(
            NAN,
            NAN,
            NAN,
            NAN,
            NAN,
            NAN,
            NAN,
            NAN,
            NAN,
            NAN,
            "",
            True,
            n_div > 0,
            0,
            n_div,
            0,
            False,
            NAN,
            NAN,
            NAN,
            f"no finite run in this group ({n_div} diverged): lower the {name} grid or check the runs",
        )
    counts = np.bincount(gi[ok], minlength=G)
    sums = np.bincount(gi[ok], weights=y[ok], minlength=G)
    fin = np.flatnonzero(counts > 0)
    means = sums[fin] / counts[fin]
    kb = int(np.argmin(means))
    ib = int(fin[kb])
    best_loss = float(means[kb])
    at = ok & (gi == ib)
    grid_argmin = float(h[at][np.argmin(y[at])])
    edge = "low" if ib == 0 else "high" if ib == G - 1 else ""
    diverged_near = bool(np.any(div & (np.abs(gi - ib) <= 1)))
    near = fin[means <= best_loss * (1 + eps)]
    band_low, band_high = float(np.exp(grid[near].min())), float(np.exp(grid[near].max()))
    notes: list[str] = []
    if edge:
        side, direction = ("lower", "below") if edge == "low" else ("upper", "above")
        notes.append(
            f"optimum at the {side} edge of the {name} grid (a bound, not an estimate): "
            f"extend {name} {direction} {fmt(float(np.exp(grid[ib])))}"
        )
    if diverged_near:
        nd = int(np.sum(div & (np.abs(gi - ib) <= 1)))
        notes.append(
            f"{nd} diverged run(s) at or next to the optimum: the optimum sits at the stability edge; "
            f"add {name} values between the best and the diverged ones, or seeds"
        )
    if len(fin) < 3:
        notes.append(
            f"fewer than 3 distinct finite {name} values ({len(fin)}): add points to the {name} grid"
        )
        return Optimum(
            grid_argmin,
            grid_argmin,
            NAN,
            NAN,
            best_loss,
            best_loss,
            band_low,
            band_high,
            NAN,
            NAN,
            edge,
            True,
            diverged_near,
            n_ok,
            n_div,
            n_ok,
            False,
            NAN,
            NAN,
            NAN,
            "; ".join(notes),
        )
    u = grid[fin]
    window = auto_window(u) if window == "auto" else int(window)
    f = _estimate(u, sums[fin], counts[fin], window, weighted)
    n_fit = int(counts[fin][f.lo : f.hi].sum())
    if f.refined:
        opt, loss_at = float(np.exp(f.v)), f.c
        half = math.sqrt(eps * f.c / f.a) if f.c > 0 else NAN
        band_low_fit, band_high_fit = float(np.exp(f.v - half)), float(np.exp(f.v + half))
    else:
        opt, loss_at, band_low_fit, band_high_fit = grid_argmin, best_loss, NAN, NAN
        why = (
            "the parabola is not convex"
            if not f.a > 0
            else "the parabola's vertex lies outside the fitted points"
        )
        if not edge:  # at an edge the edge note already says what to do
            notes.append(
                f"{why}: the grid argmin is used (add {name} points around {fmt(grid_argmin)} to refine it)"
            )
    # bootstrap
    ci_low = ci_high = NAN
    if n_boot > 0:
        # local index of each finite run among the finite grid points
        pos = np.searchsorted(fin, gi[ok])
        stratified = bootstrap == "stratified" or (
            bootstrap == "auto" and counts[fin][f.lo : f.hi].min() >= 2
        )
        boots = _bootstrap(u, pos, y[ok], window, weighted, n_boot, stratified, np.random.default_rng(seed))
        alpha = (1 - level) / 2
        qlo, qhi = np.quantile(boots, [alpha, 1 - alpha])
        ci_low, ci_high = float(np.exp(qlo)), float(np.exp(qhi))
        if edge == "low":
            ci_low = NAN
        elif edge == "high":
            ci_high = NAN
        if math.isfinite(ci_low) and math.isfinite(ci_high) and not ci_low <= grid_argmin <= ci_high:
            notes.append(
                f"the best run ({name} {fmt(grid_argmin)}) lies outside the optimum's CI: the CI is about the "
                f"fitted parabola's vertex, which the valley's other points pull off the best grid point; add "
                f"seeds or {name} points around {fmt(grid_argmin)}"
            )
    if band_low == band_high and not math.isclose(opt, band_low, rel_tol=1e-9):
        notes.append(
            f"band = the best grid point {fmt(band_low)} alone (no other within {eps:.2%}); the refined "
            f"optimum {fmt(opt)} lies between grid points"
        )
    return Optimum(
        grid_argmin,
        opt,
        ci_low,
        ci_high,
        float(loss_at),
        best_loss,
        band_low,
        band_high,
        band_low_fit,
        band_high_fit,
        edge,
        False,
        diverged_near,
        n_ok,
        n_div,
        n_fit,
        f.refined,
        f.a,
        float(np.exp(u[f.lo])),
        float(np.exp(u[f.hi - 1])),
        "; ".join(notes),
    )


def locate_optima(
    df: pd.DataFrame,
    over: str = "lr",
    group_by: Sequence[str] = ("optimizer", "n_params", "tokens"),
    loss: str = LOSS,
    eps: float = 0.0025,
    n_boot: int = 200,
    seed: int = 0,
    window: int | str = "auto",
    *,
    level: float = 0.9,
    weighted: bool = False,
    bootstrap: str = "auto",
    diverged_above: float | None = None,
    grid_tol: float = GRID_TOL,
) -> pd.DataFrame:
    """Optimum of the swept HP ``over`` for each group of ``group_by`` in a runs table.

    ``df``: one row per run with columns ``over`` (raw units, > 0), ``loss`` and ``group_by``;
    optional ``diverged`` (bool) and ``status`` (runs "failed"/"running" are left out; "stopped" runs,
    pruned early for losing, are not fitted but extend the grid; "diverged" counts as diverged).
    Diverged runs (non-finite loss or flagged) are excluded from the fit and counted; with ``diverged_above`` set, runs whose loss exceeds the group's best by more than
    that fraction also count as diverged (for data without a flag). ``window``: grid points either
    side of the best fitted by the parabola ("auto": as many as span a factor 2 each way, i.e. 1 on a
    factor-2 grid, 2 on a sqrt(2) grid; see :func:`auto_window`); ``weighted``: tricube weights over that
    window. ``level``: CI level (0.9: 5th-95th percentiles of ``n_boot`` bootstrap refits, seeded by
    ``seed``). ``bootstrap``: "stratified" resamples seeds within each h, "runs" resamples all runs of
    the group, "auto" stratifies when every fitted h has two or more runs. Values of ``over`` closer
    than ``grid_tol`` in log space are one grid point.

    Returns a DataFrame, one row per group (sorted by group): the group columns, then the fields of
    :class:`Optimum` (``grid_argmin``, ``opt``, ``ci_low``, ``ci_high``, ``loss_at_opt``, ``best_loss``,
    ``band_low``, ``band_high``, ``band_low_fit``, ``band_high_fit``, ``at_edge``, ``too_few``,
    ``diverged_near``, ``n_points``, ``n_diverged``, ``n_fit``, ``refined``, ``curvature``,
    ``fit_low``, ``fit_high``, ``note``). A group without any finite run is a row with ``too_few``
    and NaNs, not an error. Raises FitError for an empty table, missing columns or ``over`` <= 0.
    """
    group_by = [group_by] if isinstance(group_by, str) else list(group_by)
    check_frame(df, [over, loss, *group_by], f"locate the optimum of {over}")
    finished, diverged = run_masks(df, loss)
    stopped = ~finished
    if "status" in df.columns:  # pruned on purpose: evidence that the loss there is worse
        stopped &= (df["status"].astype("string") == "stopped").fillna(False).to_numpy()
    else:
        stopped[:] = False
    work = df[finished | stopped]
    if len(work) == 0:
        raise FitError(
            f"cannot locate the optimum of {over}: no finished run (all failed or are still running)"
        )
    h_all = positive_values(work, over)
    y_all = pd.to_numeric(work[loss], errors="coerce").to_numpy(dtype=float)
    div_all, stop_all = diverged[finished | stopped], stopped[finished | stopped]
    rows = []
    for key, g in iter_groups(work.assign(_pos=np.arange(len(work))), group_by):
        j = g["_pos"].to_numpy()
        i, p = j[~stop_all[j]], j[stop_all[j]]
        if len(i) == 0:
            nan = math.nan
            o = Optimum(
                nan,
                nan,
                nan,
                nan,
                nan,
                nan,
                nan,
                nan,
                nan,
                nan,
                "",
                True,
                False,
                0,
                0,
                0,
                False,
                nan,
                nan,
                nan,
                f"every run of this group was stopped early ({len(p)}): rerun some "
                "without pruning, or with a larger pruning margin",
            )
            rows.append({**key, **o.to_dict()})
            continue
        d = mark_excess(y_all[i], div_all[i], diverged_above)
        o = locate_one(
            h_all[i],
            y_all[i],
            d,
            name=over,
            eps=eps,
            level=level,
            n_boot=n_boot,
            window=window,
            weighted=weighted,
            bootstrap=bootstrap,
            seed=seed,
            grid_tol=grid_tol,
            pruned=h_all[p],
        )
        rows.append({**key, **o.to_dict()})
    return pd.DataFrame(rows)
