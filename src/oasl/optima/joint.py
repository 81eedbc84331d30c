"""The joint optimum of two HPs (e.g. learning rate x batch size) from a quadratic surface in log space.

Method. In ``z = (log h1, log h2)`` the loss near its minimum is a full quadratic
``L(z) = c + b.z + 1/2 z'Hz`` (cross term included: the optimal lr moves with the batch size). It is
fitted by weighted least squares on the runs near the best one: every finite run whose loss is within
``near`` (relative) of the best, widened to the ``min_points`` lowest-loss runs and until each HP has
three distinct values. Weights fall with the loss excess (``w = 1 / (1 + excess / near)^2``), so the
bottom of the bowl decides the vertex and the rim only steadies the curvature. The default
``near=0.01`` keeps to the bottom on purpose: loss valleys are asymmetric (steeper toward divergence
at high lr), and a wider window reaches further up the shallow side, pulling the vertex there (on
simulated asymmetric valleys near=0.03 moved the lr optimum 0.13-0.25 octaves toward low lr, near=0.01
0.04-0.09; on Step Law's smooth loss near=0.01 put 13 of 15 optima inside the observed 0.25% band,
near=0.03 only 8; benchmarks/optima_steplaw.py). The minimum is the
vertex ``-H^-1 b`` when ``H`` is positive definite and the vertex lies inside the fitted points' box;
otherwise the best run is kept and the note says why. Step Law (Li et al. 2025, arXiv 2503.04715,
Sec. 3) fits its lr/bs laws on the runs within 0.25% of the best of each (N, D) themselves; oasl
deviates by summarising each group with one smooth optimum and its interval (the band is still
reported: ``band_*`` columns), so that a law fit can weight optima by their uncertainty.

Uncertainty: percentile bootstrap of the whole procedure (resampling runs, or seeds within each
(h1, h2) cell when every fitted cell has several), per coordinate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

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


def _design(z: np.ndarray) -> np.ndarray:
    u, v = z[:, 0], z[:, 1]
    return np.column_stack([np.ones_like(u), u, v, u * u, u * v, v * v])


@dataclass
class QuadraticSurface:
    """Loss as a full quadratic in ``z = (log h1, log h2)`` (natural log of raw HP values).

    ``coef_`` = (c, b1, b2, a11, a12, a22) with ``L = c + b1 z1 + b2 z2 + a11 z1^2 + a12 z1 z2 + a22 z2^2``;
    ``hessian_`` = [[2 a11, a12], [a12, 2 a22]]; ``eigenvalues_`` its eigenvalues (ascending);
    ``positive_definite_``: both > 0 (a true bowl with one minimum); ``n_points_`` runs fitted,
    ``range_`` the raw (min, max) of each HP over them; ``rmse_`` the weighted residual RMS (loss units);
    ``near_`` the relative loss window actually used.
    """

    over: tuple[str, str]
    coef_: np.ndarray
    hessian_: np.ndarray
    eigenvalues_: np.ndarray
    positive_definite_: bool
    n_points_: int
    range_: dict[str, tuple[float, float]]
    rmse_: float
    near_: float
    center_: np.ndarray = field(repr=False)  # log point the fit was centred on (best run)
    local_: np.ndarray = field(repr=False)  # coefficients in z - center_, numerically better

    def _z(self, X) -> np.ndarray:
        if isinstance(X, pd.DataFrame):
            missing = [h for h in self.over if h not in X.columns]
            if missing:
                raise FitError(f"surface queries need columns {list(self.over)}; missing {missing}")
            X = X[list(self.over)].to_numpy(float)
        X = np.atleast_2d(np.asarray(X, dtype=float))
        if X.ndim != 2 or X.shape[1] != 2:
            raise FitError(
                f"surface queries must have shape (n, 2) ({self.over[0]}, {self.over[1]}), got {X.shape}"
            )
        if np.any(~np.isfinite(X)) or np.any(X <= 0):
            raise FitError(
                f"surface queries must be positive and finite (raw {self.over}, taken in log space)"
            )
        return np.log(X)

    def predict(self, X) -> np.ndarray:
        """Predicted loss at raw HP values ``X``: array of shape (n, 2) in the order of ``over``, or a
        DataFrame with those columns. Outside ``range_`` this extrapolates a quadratic: treat with care."""
        return _design(self._z(X) - self.center_) @ self.local_

    def inside(self, X) -> np.ndarray:
        """Whether each raw point of ``X`` lies inside the box of the fitted points (``range_``)."""
        Z = self._z(X)
        lo = np.log([self.range_[h][0] for h in self.over])
        hi = np.log([self.range_[h][1] for h in self.over])
        return np.all((lo - 1e-9 <= Z) & (hi + 1e-9 >= Z), axis=1)

    def argmin(self, bounded: bool = False) -> tuple[float, float]:
        """Raw HP values at the surface's minimum.

        Unbounded: the vertex; FitError when the surface is not positive definite (it has no minimum).
        ``bounded=True``: the minimum over the box of the fitted points (``range_``), which exists for
        any surface.
        """
        if not bounded:
            if not self.positive_definite_:
                raise FitError(
                    f"the fitted surface over {self.over} is not convex (Hessian eigenvalues "
                    f"{self.eigenvalues_[0]:.3g}, {self.eigenvalues_[1]:.3g}): it has no minimum; "
                    "use argmin(bounded=True), the best run, or more runs around it"
                )
            return tuple(float(x) for x in np.exp(self.center_ + _vertex(self.local_)))
        lo = np.log([self.range_[h][0] for h in self.over]) - self.center_
        hi = np.log([self.range_[h][1] for h in self.over]) - self.center_
        return tuple(float(x) for x in np.exp(self.center_ + _box_min(self.local_, lo, hi)))

    def diagnostics(self) -> dict:
        """The honest check as data: convexity, conditioning, vertex inside the data, fit error."""
        inside = False
        if self.positive_definite_:
            inside = bool(self.inside(np.array([self.argmin()]))[0])
        ev = self.eigenvalues_
        return {
            "positive_definite": self.positive_definite_,
            "eigenvalues": [float(e) for e in ev],
            "condition": float(abs(ev[1] / ev[0])) if ev[0] != 0 else math.inf,
            "vertex_inside": inside,
            "rmse": self.rmse_,
            "n_points": self.n_points_,
        }


def _hessian(p: np.ndarray) -> np.ndarray:
    return np.array([[2 * p[3], p[4]], [p[4], 2 * p[5]]])


def _vertex(p: np.ndarray) -> np.ndarray:
    return np.linalg.solve(_hessian(p), -p[1:3])


def _box_min(p: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Minimum of the quadratic ``p`` over the box [lo, hi]: interior vertex, else best of each edge's
    1-D minimum and the corners (exact for a quadratic in two variables)."""
    H, b = _hessian(p), p[1:3]

    def q(z):
        return b @ z + 0.5 * z @ H @ z

    cands = [np.array([x, y]) for x in (lo[0], hi[0]) for y in (lo[1], hi[1])]
    if np.all(np.linalg.eigvalsh(H) > 0):
        v = _vertex(p)
        if np.all(v >= lo) and np.all(v <= hi):
            return v
    for i in (0, 1):  # fix coordinate i at a bound, minimize the other
        j = 1 - i
        for fixed in (lo[i], hi[i]):
            if H[j, j] > 0:
                t = np.clip(-(b[j] + H[i, j] * fixed) / H[j, j], lo[j], hi[j])
                z = np.empty(2)
                z[i], z[j] = fixed, t
                cands.append(z)
    return min(cands, key=q)


@dataclass
class _SurfaceFit:
    local: np.ndarray
    center: np.ndarray
    sel: np.ndarray  # indices of the fitted runs
    rmse: float
    near: float


def _fit_arrays(z, y, cells, near, min_points, weighted) -> _SurfaceFit:
    """Weighted quadratic fit on log points ``z`` (n, 2) with losses ``y``; ``cells`` (n, 2) are the
    snapped grid indices of each HP (for the distinct-values rule)."""
    order = np.argsort(y, kind="stable")
    best = y[order[0]]
    k = int(np.searchsorted(y[order], best * (1 + near), side="right"))
    k = min(len(y), max(k, min_points))
    while k < len(y) and (len(np.unique(cells[order[:k], 0])) < 3 or len(np.unique(cells[order[:k], 1])) < 3):
        k += 1
    sel = order[:k]
    if len(np.unique(cells[sel, 0])) < 3 or len(np.unique(cells[sel, 1])) < 3:
        raise FitError(
            "a quadratic surface needs at least 3 distinct values of each HP among the finite runs"
        )
    center = z[order[0]]
    A = _design(z[sel] - center)
    ys = y[sel]
    near_used = max(near, float(ys.max() / best - 1)) if best > 0 else near
    if weighted and best > 0:
        excess = ys / best - 1
        w = 1.0 / (1.0 + excess / max(near, 1e-12)) ** 2
    else:
        w = np.ones(len(ys))
    sw = np.sqrt(w)
    p, *_ = np.linalg.lstsq(A * sw[:, None], ys * sw, rcond=None)
    resid = (A @ p - ys) * sw
    rmse = float(np.sqrt(np.sum(resid**2) / np.sum(w)))
    return _SurfaceFit(p, center, sel, rmse, near_used)


def _surface(fit: _SurfaceFit, over, X: np.ndarray) -> QuadraticSurface:
    p, c0 = fit.local, fit.center
    # expand L(z) = q(z - c0) into coefficients of z itself
    H = _hessian(p)
    b = p[1:3] - H @ c0
    c = p[0] - p[1:3] @ c0 + 0.5 * c0 @ H @ c0
    coef = np.array([c, b[0], b[1], p[3], p[4], p[5]])
    ev = np.linalg.eigvalsh(H)
    rng_ = {h: (float(X[fit.sel, i].min()), float(X[fit.sel, i].max())) for i, h in enumerate(over)}
    return QuadraticSurface(
        tuple(over), coef, H, ev, bool(np.all(ev > 0)), len(fit.sel), rng_, fit.rmse, fit.near, c0, p
    )


def _prepare(df: pd.DataFrame, over, loss, diverged_above, grid_tol):
    """Finished runs of one group as arrays: raw X (n, 2), loss y, diverged mask, grid cells (n, 2), grids."""
    finished, diverged = run_masks(df, loss)
    d = df[finished]
    X = np.column_stack([positive_values(d, h) for h in over]) if len(d) else np.zeros((0, 2))
    y = pd.to_numeric(d[loss], errors="coerce").to_numpy(dtype=float)
    div = mark_excess(y, diverged[finished], diverged_above)
    grids, cells = [], np.zeros((len(d), 2), int)
    for i in range(2):
        g, idx = snap_grid(np.log(X[:, i]), grid_tol)
        grids.append(g)
        cells[:, i] = idx
    return X, y, div, cells, grids


def fit_surface(
    df: pd.DataFrame,
    over: Sequence[str] = ("lr", "batch_size"),
    loss: str = LOSS,
    near: float = 0.01,
    min_points: int = 12,
    weighted: bool = True,
    diverged_above: float | None = None,
    grid_tol: float = GRID_TOL,
) -> QuadraticSurface:
    """Fit the quadratic loss surface of one group's runs over two HPs in log space.

    ``df``: runs of one group (columns ``over`` in raw units > 0, and ``loss``; ``diverged``/``status``
    honoured as in :func:`locate_optima`). ``near``: relative loss window around the best run whose
    runs are fitted (widened to ``min_points`` lowest-loss runs and to 3 distinct values of each HP);
    ``weighted``: down-weight runs by their loss excess. A larger ``near`` (e.g. 0.03) gives a surface
    that describes a wider landscape (better predictions a few % above the best) at the cost of the
    bottom's accuracy and of a vertex pulled toward the shallow side of an asymmetric valley. Returns a
    :class:`QuadraticSurface`; raises FitError on missing columns, non-positive HPs or too few runs.
    """
    over = tuple(over)
    if len(over) != 2:
        raise FitError(f"fit_surface takes exactly two HPs in over=, got {over}")
    check_frame(df, [*over, loss], f"fit a loss surface over {over}")
    X, y, div, cells, _ = _prepare(df, over, loss, diverged_above, grid_tol)
    ok = ~div
    if ok.sum() < 6:
        raise FitError(
            f"a quadratic surface over {over} has 6 coefficients and needs more finite runs than that, "
            f"got {int(ok.sum())}: add runs around the best one"
        )
    fit = _fit_arrays(np.log(X[ok]), y[ok], cells[ok], near, min_points, weighted)
    return _surface(fit, over, X[ok])


def _estimate(z, y, cells, near, min_points, weighted) -> tuple[np.ndarray, bool, _SurfaceFit | None, str]:
    """(optimum in log space, refined?, fit, why not refined) of one set of finite runs."""
    best = z[int(np.argmin(y))]
    try:
        fit = _fit_arrays(z, y, cells, near, min_points, weighted)
    except (FitError, np.linalg.LinAlgError) as exc:
        return best, False, None, str(exc)
    H = _hessian(fit.local)
    if not np.all(np.linalg.eigvalsh(H) > 0):
        return best, False, fit, "the surface is not convex (saddle or ridge)"
    v = fit.center + _vertex(fit.local)
    zs = z[fit.sel]
    if np.any(v < zs.min(axis=0) - 1e-9) or np.any(v > zs.max(axis=0) + 1e-9):
        return best, False, fit, "the surface minimum lies outside the fitted runs"
    return v, True, fit, ""


def locate_joint_optima(
    df: pd.DataFrame,
    over: Sequence[str] = ("lr", "batch_size"),
    group_by: Sequence[str] = ("optimizer", "n_params", "tokens"),
    loss: str = LOSS,
    eps: float = 0.0025,
    n_boot: int = 200,
    seed: int = 0,
    *,
    level: float = 0.9,
    near: float = 0.01,
    min_points: int = 12,
    weighted: bool = True,
    diverged_above: float | None = None,
    grid_tol: float = GRID_TOL,
) -> pd.DataFrame:
    """Joint optimum of two HPs ``over`` per group of ``group_by``, from :func:`fit_surface`.

    Returns one row per group: the group columns; for each HP ``h`` of ``over``: ``argmin_<h>`` (the
    best cell's best run), ``opt_<h>`` (surface minimum, or the best run when the fit is refused),
    ``ci_low_<h>``/``ci_high_<h>`` (percentile bootstrap at ``level`` over ``n_boot`` refits),
    ``band_low_<h>``/``band_high_<h>`` (extent of the observed cells within ``eps`` relative of the
    best), ``band_low_fit_<h>``/``band_high_fit_<h>`` (extent of the fitted set
    ``L <= loss_at_opt * (1 + eps)``), ``at_edge_<h>`` ("low"/"high"/""); then ``at_edge`` (e.g.
    "batch_size low"), ``best_loss``, ``loss_at_opt`` (surface at ``opt``), ``in_band`` (refined
    optimum inside the observed near-optimal box), ``n_band`` (cells in the band), ``n_points``,
    ``n_diverged``, ``n_fit``, ``too_few``, ``diverged_near`` (a diverged run in a cell adjacent to the
    best), ``positive_definite``, ``refined``, ``rmse``, ``note``. A group without enough finite runs
    is a flagged row.
    """
    over = tuple(over)
    if len(over) != 2:
        raise FitError(f"locate_joint_optima takes exactly two HPs in over=, got {over}")
    if not 0 < level < 1:
        raise FitError(f"level must be in (0, 1), got {level}: e.g. 0.9 for a 90% interval")
    group_by = [group_by] if isinstance(group_by, str) else list(group_by)
    check_frame(df, [*over, loss, *group_by], f"locate the joint optimum of {over}")
    rng = np.random.default_rng(seed)
    alpha = (1 - level) / 2
    rows = []
    for key, g in iter_groups(df, group_by):
        rows.append(
            {
                **key,
                **_one_group(
                    g,
                    over,
                    loss,
                    eps,
                    n_boot,
                    alpha,
                    near,
                    min_points,
                    weighted,
                    diverged_above,
                    grid_tol,
                    rng,
                ),
            }
        )
    return pd.DataFrame(rows)


def _one_group(g, over, loss, eps, n_boot, alpha, near, min_points, weighted, diverged_above, grid_tol, rng):
    X, y, div, cells, grids = _prepare(g, over, loss, diverged_above, grid_tol)
    ok = ~div
    row: dict = {}
    for h in over:
        for c in (
            "argmin",
            "opt",
            "ci_low",
            "ci_high",
            "band_low",
            "band_high",
            "band_low_fit",
            "band_high_fit",
        ):
            row[f"{c}_{h}"] = NAN
        row[f"at_edge_{h}"] = ""
    row.update(
        at_edge="",
        best_loss=NAN,
        loss_at_opt=NAN,
        in_band=False,
        n_band=0,
        n_points=int(ok.sum()),
        n_diverged=int(div.sum()),
        n_fit=0,
        too_few=True,
        diverged_near=False,
        positive_definite=False,
        refined=False,
        rmse=NAN,
        note="",
    )
    if ok.sum() == 0:
        row["note"] = (
            f"no finite run in this group ({int(div.sum())} diverged or none finished): check the runs"
        )
        return row
    # cells: mean loss over seeds
    Xo, yo, co = X[ok], y[ok], cells[ok]
    cell_id = co[:, 0] * (len(grids[1]) + 1) + co[:, 1]
    uid, inv = np.unique(cell_id, return_inverse=True)
    means = np.bincount(inv, weights=yo) / np.bincount(inv)
    kb = int(np.argmin(means))
    best_loss = float(means[kb])
    at = np.flatnonzero(inv == kb)
    ibest = at[np.argmin(yo[at])]
    bcell = co[ibest]
    notes: list[str] = []
    edges = []
    for i, h in enumerate(over):
        row[f"argmin_{h}"] = float(Xo[ibest, i])
        e = "low" if bcell[i] == 0 else "high" if bcell[i] == len(grids[i]) - 1 else ""
        row[f"at_edge_{h}"] = e
        if e:
            edges.append(f"{h} {e}")
            side, direction = ("lower", "below") if e == "low" else ("upper", "above")
            notes.append(
                f"best run at the {side} edge of the {h} grid (a bound): extend {h} {direction} "
                f"{fmt(float(Xo[ibest, i]))}"
            )
    in_band_cells = np.flatnonzero(means <= best_loss * (1 + eps))
    band_rows = np.isin(inv, in_band_cells)
    for i, h in enumerate(over):
        row[f"band_low_{h}"], row[f"band_high_{h}"] = (
            float(Xo[band_rows, i].min()),
            float(Xo[band_rows, i].max()),
        )
    adj = div & np.all(np.abs(cells - bcell) <= 1, axis=1)
    diverged_near = bool(adj.any())
    if diverged_near:
        notes.append(
            f"{int(adj.sum())} diverged run(s) in cells next to the best: the optimum is at the "
            "stability edge; add runs between the best and the diverged ones"
        )
    n_distinct = [len(np.unique(co[:, i])) for i in range(2)]
    too_few = len(yo) < 7 or min(n_distinct) < 3
    row.update(
        at_edge=", ".join(edges),
        best_loss=best_loss,
        n_band=len(in_band_cells),
        too_few=too_few,
        diverged_near=diverged_near,
    )
    if too_few:
        notes.append(
            f"too few finite runs for a surface ({len(yo)} runs, {n_distinct[0]} x {n_distinct[1]} "
            f"distinct values; need 7+ runs and 3+ values of each): add runs around the best"
        )
        for i, h in enumerate(over):
            row[f"opt_{h}"] = float(Xo[ibest, i])
        row.update(loss_at_opt=best_loss, note="; ".join(notes))
        return row
    z = np.log(Xo)
    v, refined, fit, why = _estimate(z, yo, co, near, min_points, weighted)
    if not refined:
        v = z[ibest]  # the best cell's best run, not the single lowest run of a noisy cell
        notes.append(f"{why}: the best run is used")
    opt = np.exp(v)
    if fit is not None:
        surf = _surface(fit, over, Xo)
        row.update(positive_definite=surf.positive_definite_, rmse=surf.rmse_, n_fit=surf.n_points_)
        if refined:
            lmin = float(surf.predict(opt[None, :])[0])
            row["loss_at_opt"] = lmin
            Hinv = np.linalg.inv(surf.hessian_)
            for i, h in enumerate(over):
                half = math.sqrt(2 * eps * lmin * Hinv[i, i]) if lmin > 0 else NAN
                row[f"band_low_fit_{h}"], row[f"band_high_fit_{h}"] = (
                    float(opt[i] * math.exp(-half)),
                    float(opt[i] * math.exp(half)),
                )
    if not refined:
        row["loss_at_opt"] = best_loss
    for i, h in enumerate(over):
        row[f"opt_{h}"] = float(opt[i])
    row["refined"] = refined
    row["in_band"] = bool(
        all(
            row[f"band_low_{h}"] * (1 - 1e-9) <= row[f"opt_{h}"] <= row[f"band_high_{h}"] * (1 + 1e-9)
            for h in over
        )
    )
    if n_boot > 0:
        sizes = np.bincount(inv)
        stratified = fit is not None and sizes[inv[fit.sel]].min() >= 2
        boots = np.empty((n_boot, 2))
        if stratified:
            members = [np.flatnonzero(inv == c) for c in range(len(uid))]
        for b in range(n_boot):
            if stratified:
                idx = np.concatenate([m[rng.integers(0, len(m), len(m))] for m in members])
            else:
                idx = rng.integers(0, len(yo), len(yo))
            vb, _, _, _ = _estimate(z[idx], yo[idx], co[idx], near, min_points, weighted)
            boots[b] = vb
        q = np.quantile(boots, [alpha, 1 - alpha], axis=0)
        for i, h in enumerate(over):
            lo, hi = float(np.exp(q[0, i])), float(np.exp(q[1, i]))
            e = row[f"at_edge_{h}"]
            row[f"ci_low_{h}"] = NAN if e == "low" else lo
            row[f"ci_high_{h}"] = NAN if e == "high" else hi
    row["note"] = "; ".join(notes)
    return row
