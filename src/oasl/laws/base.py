"""What every law shares: feature names, input checks, and the log-space linear regression under them.

A law of an optimal hyperparameter ``h*`` is linear in log space once its response is transformed
(``log h*`` for a power law, ``log(1 - h*)`` for HPs near 1): ``z = A beta`` with ``A`` a column of
ones (or one indicator per optimizer) and one column ``log x`` per feature. This module fits that
regression from a table of optima and says how sure it is:

* Point estimate: weighted least squares on the rows, or Huber-robust by iteratively reweighted
  least squares (Huber 1964; tuning constant 1.345 of a MAD scale unless a fixed ``delta`` is given).
* Uncertainty: Bayesian linear regression under the reference prior ``p(beta, sigma^2) ~ 1/sigma^2``
  (Gelman et al., *Bayesian Data Analysis*, 3rd ed., Sec. 14.2). The posterior of ``beta`` is
  multivariate Student-t with ``G - p`` degrees of freedom, centre ``beta_hat`` and scale
  ``s^2 (A'WA)^-1``; the posterior predictive of a new optimum at features ``a0`` is Student-t with
  centre ``a0 . beta_hat`` and scale ``s sqrt(1 + a0' (A'WA)^-1 a0)``. The leverage term
  ``a0' (A'WA)^-1 a0`` grows with the distance of ``a0`` from the fitted points, so intervals widen as
  a query extrapolates.

Rows and groups: a table may hold several rows per group, e.g. every run within 0.25% of its
group's best loss as Step Law fits (Li et al. 2025, arXiv 2503.04715, Sec. 3), or replicate optima.
Those rows are not independent draws of the law, so the uncertainty is computed on the weighted
group means (``G`` groups, ``G - p`` degrees of freedom): the point estimate is the same as on the
rows whenever the features are constant within a group, and the intervals are not made narrower by
adding correlated rows. Weights are precision weights (a row of weight 2 counts as two
measurements); a group's weight is the sum of its rows'.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from oasl.errors import ConfigError, DataError, FitError

#: Feature names a law may use, with their units (the scaling-law letters of Kaplan et al. 2020).
FEATURE_UNITS = {
    "N": "non-embedding parameters",
    "D": "training tokens",
    "C": "training FLOPs (6 N D unless a law says otherwise)",
    "B": "batch size in tokens",
    "width": "model width (d_model)",
    "depth": "number of layers",
    "L": "loss in nats/token",
}
FEATURES = tuple(FEATURE_UNITS)


def as_frame(X, features: Sequence[str], what: str = "the law") -> pd.DataFrame:
    """``X`` (DataFrame, dict of arrays, or an (n, k) array in the order of ``features``) as a
    DataFrame holding at least the ``features`` columns; FitError naming what is missing."""
    if isinstance(X, pd.Series):
        X = X.to_frame().T
    if isinstance(X, dict):
        try:
            X = pd.DataFrame({k: np.atleast_1d(v) for k, v in X.items()})
        except ValueError as exc:
            raise FitError(f"the columns given to {what} have different lengths ({exc})") from None
    if not isinstance(X, pd.DataFrame):
        arr = np.asarray(X, dtype=float)
        arr = arr.reshape(-1, 1) if arr.ndim <= 1 and len(features) == 1 else np.atleast_2d(arr)
        if arr.shape[1] != len(features):
            raise FitError(
                f"{what} expects {len(features)} feature column(s) {list(features)}, got {arr.shape[1]}"
            )
        X = pd.DataFrame(arr, columns=list(features))
    missing = [f for f in features if f not in X.columns]
    if missing:
        raise FitError(
            f"missing column(s) {', '.join(missing)}: {what} uses {', '.join(features)} "
            f"({'; '.join(f'{f} = {FEATURE_UNITS.get(f, f)}' for f in missing)})"
        )
    return X


def log_features(X: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    """(n, k) matrix of ``log x`` for each feature; FitError on NaN, inf or non-positive values."""
    cols = []
    for f in features:
        v = pd.to_numeric(X[f], errors="coerce").to_numpy(float)
        if np.any(~np.isfinite(v)):
            raise FitError(f"feature {f} contains NaN, inf or non-numbers: drop or fix those rows")
        if np.any(v <= 0):
            raise FitError(
                f"feature {f} must be positive (it enters the law as log {f}); got {v[v <= 0][0]:g}"
            )
        cols.append(np.log(v))
    return np.column_stack(cols) if cols else np.zeros((len(X), 0))


def column_or_array(df: pd.DataFrame, value, name: str, dtype=float) -> np.ndarray | None:
    """``value`` as an array aligned with ``df``: None stays None, a string names a column of ``df``."""
    if value is None:
        return None
    if isinstance(value, str):
        if value not in df.columns:
            raise FitError(
                f"{name} column {value!r} is not in the table (columns: {', '.join(map(str, df.columns))})"
            )
        value = df[value].to_numpy()
    arr = np.asarray(value, dtype=dtype) if dtype is not None else np.asarray(value)
    if arr.shape != (len(df),):
        raise FitError(f"{name} has {arr.size} value(s) for {len(df)} row(s)")
    return arr


def check_weights(w: np.ndarray | None, n: int) -> np.ndarray:
    """Row weights: ones when None; FitError when negative, non-finite or all zero."""
    if w is None:
        return np.ones(n)
    w = np.asarray(w, dtype=float)
    if w.shape != (n,):
        raise FitError(f"{w.size} weight(s) for {n} row(s)")
    if np.any(~np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise FitError("weights must be finite, non-negative and not all zero")
    return w


def ratio_outside(X: pd.DataFrame, ranges: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """Per feature of ``ranges``, how far each row lies outside ``[lo, hi]`` as a factor:
    ``max(x / hi, lo / x, 1)`` (1 inside the range, 10 at ten times the largest fitted value)."""
    out = {}
    for f, (lo, hi) in ranges.items():
        if f not in X.columns:
            continue
        v = pd.to_numeric(X[f], errors="coerce").to_numpy(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f] = np.maximum(np.maximum(v / hi, lo / v), 1.0)
    return pd.DataFrame(out, index=X.index)


def near_optimal(
    runs: pd.DataFrame, loss: str = "loss", group_by: Sequence[str] = ("N", "D"), rel_tol: float = 0.0025
) -> pd.DataFrame:
    """Every run whose loss is within ``rel_tol`` (relative) of its group's best, with a ``group`` column.

    This is Step Law's definition of the optimum (Li et al. 2025, arXiv 2503.04715, Sec. 3: all runs
    within 0.25% of the best of their (N, D) count as optimal); fit a law on the result with
    ``groups="group"`` so that its intervals count groups, not rows. Runs with a non-finite loss
    (diverged) are left out. Returns a copy of the selected rows.
    """
    for c in (loss, *group_by):
        if c not in runs.columns:
            raise DataError(
                f"the runs table has no column {c!r} (columns: {', '.join(map(str, runs.columns))})"
            )
    if not rel_tol >= 0:
        raise ConfigError(f"rel_tol must be >= 0, got {rel_tol}")
    fin = runs[np.isfinite(pd.to_numeric(runs[loss], errors="coerce"))].copy()
    if fin.empty:
        raise DataError(f"no run has a finite {loss}")
    best = fin.groupby(list(group_by))[loss].transform("min")
    sel = fin[fin[loss] <= best * (1 + rel_tol)].copy()
    sel["group"] = sel[list(group_by)].astype(str).agg("/".join, axis=1)
    return sel


def best_runs(runs: pd.DataFrame, loss: str = "loss", group_by: Sequence[str] = ("N", "D")) -> pd.DataFrame:
    """The lowest-loss run of each group (the grid argmin; prefer :mod:`oasl.optima` for a refined optimum)."""
    sel = near_optimal(runs, loss, group_by, 0.0)
    return sel.loc[sel.groupby("group")[loss].idxmin()].reset_index(drop=True)


# -- the linear core -----------------------------------------------------------------------------


def solve(
    A: np.ndarray,
    z: np.ndarray,
    w: np.ndarray,
    loss: str = "l2",
    delta: float | None = None,
    max_iter: int = 100,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least squares of ``z`` on ``A`` (or Huber IRLS). Returns (beta, effective row weights)."""
    wt = w.copy()
    beta = np.zeros(A.shape[1])
    for _ in range(max_iter if loss == "huber" else 1):
        sw = np.sqrt(wt)
        beta, *_ = np.linalg.lstsq(A * sw[:, None], z * sw, rcond=None)
        if loss != "huber":
            break
        r = z - A @ beta
        d = delta
        if d is None:
            # Huber's proposal: 1.345 robust standard deviations (MAD / 0.6745) of the residuals.
            used = r[w > 0]
            scale = 1.4826 * np.median(np.abs(used - np.median(used)))
            d = 1.345 * scale if scale > 0 else math.inf
        new = w * np.where(np.abs(r) <= d, 1.0, d / np.maximum(np.abs(r), 1e-300))
        if np.allclose(new, wt, rtol=1e-8, atol=1e-12):
            wt = new
            break
        wt = new
    return beta, wt


def collapse(A: np.ndarray, z: np.ndarray, w: np.ndarray, groups: np.ndarray):
    """Weighted means of design rows and responses per group: (A_g, z_g, W_g, index of each row's group)."""
    keys, inv = np.unique(groups, return_inverse=True)
    W = np.bincount(inv, weights=w, minlength=len(keys))
    keep = W > 0
    Wsafe = np.where(keep, W, 1.0)
    Ag = (
        np.column_stack(
            [np.bincount(inv, weights=w * A[:, j], minlength=len(keys)) / Wsafe for j in range(A.shape[1])]
        )
        if A.shape[1]
        else np.zeros((len(keys), 0))
    )
    zg = np.bincount(inv, weights=w * z, minlength=len(keys)) / Wsafe
    return Ag[keep], zg[keep], W[keep], inv


@dataclass
class Posterior:
    """The reference-prior posterior of a log-space linear law (see the module docstring)."""

    beta: np.ndarray  # posterior mean (= the least-squares estimate)
    unscaled: np.ndarray  # (A_g' Omega A_g)^-1, Omega = group weights scaled to mean 1
    sigma2: float  # s^2: residual variance of a group of average weight (log units squared)
    dof: int  # G - p
    n_groups: int
    group_resid: np.ndarray  # residuals of the group means (for the bootstrap's noise)
    rank: int  # rank of the group-level design (< p: the features vary only within groups)
    # variance of a new group's optimum about the law, in units of sigma2: mean(1 / Omega), the typical
    # precision of the groups fitted (1 without weights; > 1 when weights vary, since a new group is
    # located as precisely as a typical fitted group, not as an average-weight one)
    new_var: float = 1.0


def posterior(A: np.ndarray, z: np.ndarray, w: np.ndarray, groups: np.ndarray, beta: np.ndarray) -> Posterior:
    """Posterior of the coefficients given the row fit ``beta`` (group-level residuals and design)."""
    Ag, zg, W, _ = collapse(A, z, w, groups)
    G, p = Ag.shape
    omega = W * G / W.sum()
    r = zg - Ag @ beta
    dof = G - p
    s2 = float(np.sum(omega * r**2) / dof) if dof > 0 else math.nan
    unscaled = np.linalg.pinv((Ag * omega[:, None]).T @ Ag)
    return Posterior(
        beta, unscaled, s2, dof, G, r, int(np.linalg.matrix_rank(Ag)), float(np.mean(1.0 / omega))
    )


def _held_out(law, X, y, w, groups, z, train, test, gval) -> dict:
    """One fold: the held-out group's optimum (weighted mean of its rows in the law's linear space) and
    the prediction of a copy of ``law`` refitted on ``train`` (NaN when that refit is impossible)."""
    zt = float(np.average(z[test], weights=np.where(w[test] > 0, w[test], 1e-12)))
    truth = float(law._inverse(np.array([zt]))[0])
    pred_z = math.nan
    try:
        m = law.clone()._fit(X[train], y[train], w[train], groups[train], point_only=True)
        pred_z = float(np.mean(m.predict_z(X[test])))
    except FitError:
        pass
    pred = float(law._inverse(np.array([pred_z]))[0]) if math.isfinite(pred_z) else math.nan
    ape = abs(pred - truth) / abs(truth) if math.isfinite(pred) and truth != 0 else math.nan
    return {"group": gval, "truth": truth, "pred": pred, "ape": ape, "log_err": pred_z - zt}


def leave_one_group_out(
    law, X: pd.DataFrame, y: np.ndarray, w: np.ndarray, groups: np.ndarray
) -> pd.DataFrame:
    """Held-out error of ``law`` (a PowerLaw or OptimizerLaw) per group of rows.

    For each group: its optimum in the law's linear space (weighted mean of its rows' transformed
    values, e.g. the weighted geometric mean of lr for a power law), and the prediction of a copy of
    the law refitted (point estimate only) on the other groups. Returns one row per group: ``group``,
    ``truth``, ``pred``, ``ape`` (absolute percentage error) and ``log_err`` (error in the linear
    space); NaN where the refit is impossible (too few optima left).
    """
    z = law._transform(np.asarray(y, dtype=float))
    rows = []
    for gval in np.unique(groups[w > 0]):
        test = groups == gval
        train = ~test & (w > 0)
        rows.append(_held_out(law, X, y, w, groups, z, train, test, gval))
    return pd.DataFrame(rows, columns=["group", "truth", "pred", "ape", "log_err"])


def forward_chaining(
    law, X: pd.DataFrame, y: np.ndarray, w: np.ndarray, groups: np.ndarray, size: str, min_sizes: int = 2
) -> pd.DataFrame:
    """Held-out error in the direction a law is used: each group predicted by a copy of ``law``
    refitted (point estimate only) on the groups of strictly smaller ``size`` (a feature column, e.g.
    N), the "rolling origin" of time-series cross-validation. A group with fewer than ``min_sizes``
    distinct smaller sizes below it is left out (nothing to extrapolate from). Same columns as
    :func:`leave_one_group_out`; NaN where the refit is impossible."""
    z = law._transform(np.asarray(y, dtype=float))
    logsize = np.log(np.asarray(X[size], dtype=float))
    keep = w > 0
    gsize = {g: float(np.mean(logsize[(groups == g) & keep])) for g in np.unique(groups[keep])}
    rows = []
    for gval, ls in sorted(gsize.items(), key=lambda kv: kv[1]):
        train = keep & (logsize < ls - 1e-9)
        if len(np.unique(np.round(logsize[train], 9))) < min_sizes:
            continue
        test = groups == gval
        rows.append(_held_out(law, X, y, w, groups, z, train, test, gval))
    return pd.DataFrame(rows, columns=["group", "truth", "pred", "ape", "log_err"])


def degenerate_hint(logX: np.ndarray, features: Sequence[str]) -> str:
    """Why a design is singular, in words a user can act on."""
    for j, f in enumerate(features):
        if logX.shape[0] and np.ptp(logX[:, j]) == 0:
            return f"{f} has the same value in every row; vary it across optima or drop it from the features"
    return (
        "the features are collinear (e.g. D proportional to N, or C = 6 N D with all three used); "
        "drop one of them or vary them independently"
    )


# -- jackknife+ prediction intervals -------------------------------------------------------------


def jackknife_fits(
    A: np.ndarray,
    z: np.ndarray,
    w: np.ndarray,
    groups: np.ndarray,
    loss: str = "l2",
    delta: float | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Leave-one-group-out refits for jackknife+ intervals (Barber, Candes, Ramdas & Tibshirani 2021,
    "Predictive inference with the jackknife+", Ann. Statist. 49(1), Sec. 1.1).

    For each group ``i`` (rows of positive weight): the coefficients fitted without it (``coefs``, shape
    (G, p)) and its held-out residual ``|z_i - mu_{-i}(x_i)|`` in the law's linear space (``resid``,
    shape (G,)), ``z_i`` the weighted mean of the group's rows. None when some refit is impossible (a
    group whose removal leaves a singular design), since jackknife+ needs every group."""
    used = w > 0
    keys = np.unique(groups[used])
    p = A.shape[1]
    coefs, resid = np.empty((len(keys), p)), np.empty(len(keys))
    for k, g in enumerate(keys):
        test = (groups == g) & used
        train = ~test & used
        if np.linalg.matrix_rank(A[train]) < p:
            return None
        beta, _ = solve(A[train], z[train], w[train], loss, delta)
        coefs[k] = beta
        zt = float(np.average(z[test], weights=w[test]))
        resid[k] = abs(zt - float(np.mean(A[test] @ beta)))
    return coefs, resid


def jackknife_plus_interval(
    coefs: np.ndarray, resid: np.ndarray, A: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """Jackknife+ interval in the linear space at each design row of ``A``: the
    ``floor(alpha (G + 1))``-th smallest of ``mu_{-i}(x) - R_i`` and the ``ceil((1 - alpha)(G + 1))``-th
    smallest of ``mu_{-i}(x) + R_i`` over the ``G`` groups (alpha = 1 - level; Barber et al. 2021, Eq. 4).
    None when ``G`` is too small for a finite interval at this level (``G < level / (1 - level)``, e.g.
    fewer than 9 groups at 90%)."""
    G = len(resid)
    alpha = 1.0 - level
    k_lo, k_hi = int(math.floor(alpha * (G + 1) + 1e-9)), int(math.ceil((1 - alpha) * (G + 1) - 1e-9))
    if G == 0 or k_lo < 1 or k_hi > G:
        return None
    mus = A @ coefs.T  # (n, G)
    lo = np.sort(mus - resid[None, :], axis=1)[:, k_lo - 1]
    hi = np.sort(mus + resid[None, :], axis=1)[:, k_hi - 1]
    return lo, hi
