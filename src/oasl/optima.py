"""The optimum of a swept hyperparameter per group, with an uncertainty band, not just an argmin.

For each group (e.g. optimizer x model size x token budget) the loss is fitted as a parabola in
``log(h)`` over the points around the best one; the vertex is the refined optimum, a percentile
bootstrap over runs gives its confidence interval, and the near-optimal band collects every ``h``
within ``eps`` relative loss of the best (Step Law, Li et al. 2025 Sec. 3, uses 0.25%). Flags say
when the answer is only a bound (optimum at a grid edge), when too few points exist, or when diverged
runs sit next to the optimum. :func:`fit_surface` does the same for two HPs jointly (a quadratic
surface in log space, e.g. lr x batch size).

Works on any DataFrame with the needed columns, so results from other training code can be used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from oasl.errors import FitError

LOSS = "final_val_loss"


def _finite_mask(df: pd.DataFrame, loss: str) -> np.ndarray:
    ok = np.isfinite(pd.to_numeric(df[loss], errors="coerce").to_numpy(dtype=float))
    if "diverged" in df:
        ok &= ~df["diverged"].fillna(False).astype(bool).to_numpy()
    if "status" in df:
        ok &= (df["status"].fillna("done") != "stopped").to_numpy()  # pruned runs: partial budget
    return ok


def _check(df: pd.DataFrame, cols: Sequence[str]) -> None:
    if df is None or len(df) == 0:
        raise FitError("no runs to locate optima in: the table is empty")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise FitError(f"the runs table has no column {', '.join(missing)} (columns: {', '.join(map(str, df.columns))})")


def _window(x: np.ndarray, y: np.ndarray, half: int) -> np.ndarray:
    """Indices of the distinct x values within ``half`` grid steps of the best mean loss."""
    ux = np.unique(x)
    means = np.array([y[x == v].mean() for v in ux])
    i = int(np.argmin(means))
    lo, hi = max(0, i - half), min(len(ux), i + half + 1)
    if hi - lo < 3 and len(ux) >= 3:  # at an edge: still take three distinct values
        lo, hi = (0, 3) if i < 1 else (len(ux) - 3, len(ux))
    keep = ux[lo:hi]
    return np.isin(x, keep)


def _parabola(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float] | None:
    """Least-squares ``y = a (x - v)^2 + c``; returns (v, c, a) or None when not convex."""
    if len(np.unique(x)) < 3:
        return None
    a2, a1, a0 = np.polyfit(x, y, 2)
    if not a2 > 0:
        return None
    v = -a1 / (2 * a2)
    return float(v), float(a0 - a1 * a1 / (4 * a2)), float(a2)


@dataclass
class Optimum:
    """The optimum of one group (see :func:`locate_optima` for the fields)."""

    grid_argmin: float
    opt: float
    ci_low: float
    ci_high: float
    loss_at_opt: float
    best_loss: float
    band_low: float
    band_high: float
    at_edge: str
    too_few: bool
    diverged_near: bool
    n_points: int
    n_diverged: int
    refined: bool
    note: str


def locate_one(h: np.ndarray, loss: np.ndarray, diverged: np.ndarray | None = None, name: str = "lr",
               eps: float = 0.0025, level: float = 0.9, n_boot: int = 200, half_window: int = 1,
               seed: int = 0) -> Optimum:
    """Optimum of one group: ``h`` values (positive), their final losses (NaN for diverged runs)."""
    h = np.asarray(h, dtype=float)
    loss = np.asarray(loss, dtype=float)
    if np.any(~np.isfinite(h)) or np.any(h <= 0):
        raise FitError(f"{name} values must be positive and finite to work in log space")
    bad = ~np.isfinite(loss) if diverged is None else (~np.isfinite(loss) | np.asarray(diverged, bool))
    grid = np.unique(h)
    x, y = np.log(h[~bad]), loss[~bad]
    nan = math.nan
    if len(np.unique(x)) < 3:
        best = float(h[~bad][np.argmin(y)]) if len(y) else nan
        return Optimum(best, best, nan, nan, nan, float(y.min()) if len(y) else nan, nan, nan, "", True, False,
                       int((~bad).sum()), int(bad.sum()), False,
                       f"fewer than 3 distinct finite {name} values: add points to the {name} grid")
    ux = np.unique(x)
    means = np.array([y[x == v].mean() for v in ux])
    i_best = int(np.argmin(means))
    grid_argmin, best_loss = float(np.exp(ux[i_best])), float(means[i_best])
    edge = "low" if i_best == 0 else "high" if i_best == len(ux) - 1 else ""
    # diverged runs adjacent (in the full grid) to the best finite value
    gi = int(np.searchsorted(grid, grid_argmin))
    neighbours = grid[max(0, gi - 1): gi + 2]
    diverged_near = bool(np.any(np.isin(h[bad], neighbours)))
    keep = _window(x, y, half_window)
    fit = _parabola(x[keep], y[keep])
    notes = []
    refined = fit is not None and ux[0] <= fit[0] <= ux[-1]
    if refined:
        opt, loss_at = float(np.exp(fit[0])), fit[1]
    else:
        opt, loss_at = grid_argmin, best_loss
        notes.append("parabola not convex or vertex outside the data: grid argmin used")
    rng = np.random.default_rng(seed)
    boots = []
    n = len(x)
    for _ in range(n_boot if refined else 0):
        idx = rng.integers(0, n, n)
        bx, by = x[idx], y[idx]
        if len(np.unique(bx)) < 3:
            continue
        k = _window(bx, by, half_window)
        f = _parabola(bx[k], by[k])
        if f is not None:
            boots.append(min(max(f[0], ux[0] - 1.0), ux[-1] + 1.0))  # a wild refit counts as far, not infinite
        else:
            uxb = np.unique(bx)
            boots.append(uxb[np.argmin([by[bx == v].mean() for v in uxb])])
    alpha = (1 - level) / 2
    if boots:
        ci_low, ci_high = (float(np.exp(q)) for q in np.quantile(boots, [alpha, 1 - alpha]))
    else:
        ci_low = ci_high = nan
    within = ux[means <= best_loss * (1 + eps)]
    band_low, band_high = float(np.exp(within.min())), float(np.exp(within.max()))
    if edge:
        direction = "below" if edge == "low" else "above"
        bound = np.exp(ux[0] if edge == "low" else ux[-1])
        notes.insert(0, f"optimum at the {'lower' if edge == 'low' else 'upper'} edge of the {name} grid "
                        f"(a bound, not an estimate): extend {name} {direction} {bound:.3g}")
    if diverged_near:
        notes.append(f"diverged runs next to the optimum: the loss landscape is sharp near {grid_argmin:.3g}")
    return Optimum(grid_argmin, opt, ci_low, ci_high, float(loss_at), best_loss, band_low, band_high, edge, False,
                   diverged_near, int((~bad).sum()), int(bad.sum()), refined, "; ".join(notes))


def locate_optima(df: pd.DataFrame, over: str = "lr", group_by: Sequence[str] = ("optimizer", "n_params", "tokens"),
                  loss: str = LOSS, eps: float = 0.0025, level: float = 0.9, n_boot: int = 200,
                  half_window: int = 1, seed: int = 0) -> pd.DataFrame:
    """Optimum of ``over`` for each group of ``group_by`` in a runs table.

    Returns one row per group: the group columns; ``grid_argmin`` (best finite value, mean over
    seeds); ``opt`` (vertex of the parabola of loss vs log(h) over the ``half_window`` grid values
    either side of the best: the default 1 fits the best point and its two neighbours, which follows
    an asymmetric valley better than a wide window); ``ci_low``/``ci_high`` (percentile bootstrap over runs at ``level``);
    ``loss_at_opt``, ``best_loss``; ``band_low``/``band_high`` (h whose mean loss is within ``eps``
    relative of the best); ``at_edge`` ("low", "high" or ""), ``too_few``, ``diverged_near``,
    ``n_points``, ``n_diverged``, ``refined``, and ``note`` (what to do about a flag).
    """
    group_by = list(group_by)
    _check(df, [over, loss, *group_by])
    finite = _finite_mask(df, loss)
    work = df.assign(_ok=finite)
    if "status" in work:
        work = work[work["status"].fillna("done") != "stopped"]
    rows = []
    groups = work.groupby(group_by, dropna=False, sort=True) if group_by else [((), work)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        o = locate_one(g[over].to_numpy(float), np.where(g["_ok"], g[loss].astype(float), np.nan), name=over,
                       eps=eps, level=level, n_boot=n_boot, half_window=half_window, seed=seed)
        rows.append({**dict(zip(group_by, key, strict=True)), **o.__dict__})
    return pd.DataFrame(rows)


@dataclass
class QuadraticSurface:
    """Loss as a full quadratic in ``(log h1, log h2)``; ``coef_`` = (c, b1, b2, a11, a12, a22)."""

    over: tuple[str, str]
    coef_: np.ndarray
    hessian_: np.ndarray
    positive_definite_: bool
    n_points_: int

    def predict(self, X) -> np.ndarray:
        """Predicted loss at raw HP values ``X`` (array of shape (n, 2) or a DataFrame with ``over``)."""
        X = X[list(self.over)].to_numpy(float) if isinstance(X, pd.DataFrame) else np.asarray(X, float)
        if np.any(X <= 0):
            raise FitError("surface queries must be positive (they are taken in log space)")
        u, v = np.log(X[:, 0]), np.log(X[:, 1])
        c, b1, b2, a11, a12, a22 = self.coef_
        return c + b1 * u + b2 * v + a11 * u * u + a12 * u * v + a22 * v * v

    def argmin(self) -> tuple[float, float]:
        """Raw HP values at the surface's minimum (only meaningful when positive definite)."""
        _, b1, b2, *_ = self.coef_
        z = np.linalg.solve(self.hessian_, -np.array([b1, b2]))
        return float(np.exp(z[0])), float(np.exp(z[1]))


def _design(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones_like(u), u, v, u * u, u * v, v * v])


def fit_surface(df: pd.DataFrame, over: tuple[str, str] = ("lr", "batch_size"), loss: str = LOSS,
                near: float = 0.02, min_points: int = 10) -> QuadraticSurface:
    """Fit a quadratic loss surface in log space to one group's runs.

    Uses the runs whose loss is within ``near`` (relative) of the best, widened to at least
    ``min_points`` nearest-by-loss runs, so far-off runs (a different regime) do not bend the bowl.
    """
    over = tuple(over)
    _check(df, [*over, loss])
    ok = _finite_mask(df, loss)
    d = df[ok]
    if len(d) < 6:
        raise FitError(f"a quadratic surface over {over} needs at least 6 finite runs, got {len(d)}")
    X = d[list(over)].to_numpy(float)
    if np.any(X <= 0):
        raise FitError(f"{over} values must be positive to work in log space")
    y = d[loss].to_numpy(float)
    order = np.argsort(y)
    k = max(min_points, int(np.sum(y <= y.min() * (1 + near))))
    k = min(k, len(y))
    sel = order[:k]
    while k < len(y) and (len(np.unique(X[sel, 0])) < 3 or len(np.unique(X[sel, 1])) < 3):
        k += 1  # widen until both HPs have three distinct values
        sel = order[:k]
    u, v = np.log(X[sel, 0]), np.log(X[sel, 1])
    if len(np.unique(u)) < 3 or len(np.unique(v)) < 3:
        raise FitError(f"a quadratic surface needs at least 3 distinct values of each of {over} near the optimum")
    coef, *_ = np.linalg.lstsq(_design(u, v), y[sel], rcond=None)
    H = np.array([[2 * coef[3], coef[4]], [coef[4], 2 * coef[5]]])
    pd_ = bool(np.all(np.linalg.eigvalsh(H) > 0))
    return QuadraticSurface(over, coef, H, pd_, len(sel))


def locate_joint_optima(df: pd.DataFrame, over: tuple[str, str] = ("lr", "batch_size"),
                        group_by: Sequence[str] = ("optimizer", "n_params", "tokens"), loss: str = LOSS,
                        eps: float = 0.0025, level: float = 0.9, n_boot: int = 200, near: float = 0.02,
                        seed: int = 0) -> pd.DataFrame:
    """Joint optimum of two HPs per group from a quadratic surface in log space.

    Columns: group columns; ``argmin_<h>`` (best run), ``opt_<h>`` (surface minimum, or the best run
    when the surface is not convex or its minimum leaves the data's range), ``ci_low_<h>``/
    ``ci_high_<h>`` (bootstrap over runs), ``band_low_<h>``/``band_high_<h>`` (range of the runs within
    ``eps`` of the best), ``n_band``, ``best_loss``, ``loss_at_opt``, ``in_band`` (is the refined
    optimum inside the near-optimal box), ``positive_definite``, ``at_edge``, ``note``.
    """
    group_by = list(group_by)
    _check(df, [*over, loss, *group_by])
    rng = np.random.default_rng(seed)
    alpha = (1 - level) / 2
    rows = []
    for key, g in df.groupby(group_by, dropna=False, sort=True) if group_by else [((), df)]:
        key = key if isinstance(key, tuple) else (key,)
        g = g[_finite_mask(g, loss)]
        row = dict(zip(group_by, key, strict=True))
        if len(g) == 0:
            rows.append({**row, "note": "no finite runs", "too_few": True})
            continue
        best = g.loc[g[loss].astype(float).idxmin()]
        best_loss = float(best[loss])
        band = g[g[loss].astype(float) <= best_loss * (1 + eps)]
        lo_hi = {h: (g[h].min(), g[h].max()) for h in over}
        notes = []
        try:
            surf = fit_surface(g, over, loss, near=near)
            opt = surf.argmin() if surf.positive_definite_ else None
            if opt is not None and not all(lo_hi[h][0] <= o <= lo_hi[h][1] for h, o in zip(over, opt, strict=True)):
                notes.append("surface minimum outside the swept range: best run used")
                opt = None
            elif opt is None:
                notes.append("surface not convex: best run used")
        except FitError as exc:
            surf, opt = None, None
            notes.append(str(exc))
        refined = opt is not None
        opt = opt or (float(best[over[0]]), float(best[over[1]]))
        boots = []
        for _ in range(n_boot if refined else 0):
            b = g.iloc[rng.integers(0, len(g), len(g))]
            try:
                s = fit_surface(b, over, loss, near=near)
            except (FitError, np.linalg.LinAlgError):
                continue
            if s.positive_definite_:
                boots.append(np.log(s.argmin()))
        for i, h in enumerate(over):
            row[f"argmin_{h}"] = float(best[h])
            row[f"opt_{h}"] = float(opt[i])
            if len(boots) >= 10:
                q = np.quantile(np.array(boots)[:, i], [alpha, 1 - alpha])
                row[f"ci_low_{h}"], row[f"ci_high_{h}"] = float(np.exp(q[0])), float(np.exp(q[1]))
            else:
                row[f"ci_low_{h}"] = row[f"ci_high_{h}"] = math.nan
            row[f"band_low_{h}"], row[f"band_high_{h}"] = float(band[h].min()), float(band[h].max())
        edges = [f"{h} {'low' if best[h] == lo_hi[h][0] else 'high'}" for h in over
                 if best[h] in lo_hi[h] and lo_hi[h][0] != lo_hi[h][1]]
        if edges:
            notes.insert(0, f"best run at the grid edge ({', '.join(edges)}): extend the grid there")
        row.update(
            n_points=len(g), n_band=len(band), best_loss=best_loss,
            loss_at_opt=float(surf.predict(np.array([opt]))[0]) if surf is not None else best_loss,
            in_band=all(row[f"band_low_{h}"] <= row[f"opt_{h}"] <= row[f"band_high_{h}"] for h in over),
            positive_definite=bool(surf.positive_definite_) if surf is not None else False,
            refined=refined, at_edge=", ".join(edges), too_few=False, note="; ".join(notes),
        )
        rows.append(row)
    return pd.DataFrame(rows)
