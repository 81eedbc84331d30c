"""Power laws of optimal hyperparameters, fitted in log space, with honest intervals.

``h* = C * prod_i x_i^a_i`` over any subset of the features N (non-embedding parameters), D (tokens),
C (FLOPs), B (batch tokens), width and depth is linear in log space: ``log h* = log C + sum a_i log x_i``.
Fitting is (weighted) least squares, or Huber-robust by iteratively reweighted least squares.

Uncertainty, first method: Bayesian linear regression under the reference prior
``p(beta, sigma^2) ~ 1/sigma^2`` (Gelman et al., *Bayesian Data Analysis* 3rd ed., Sec. 14.2), whose
posterior predictive at a query ``a0`` is Student-t with ``n - p`` degrees of freedom, centre
``a0 . beta_hat`` and scale ``s sqrt(1 + a0' (A'WA)^-1 a0)``. The leverage term ``a0' (A'WA)^-1 a0``
grows with the distance of the query from the fitted points, so intervals widen as a query
extrapolates. Second method: a bootstrap over groups (or rows), refitting each time.

Estimator habits follow scikit-learn: the constructor only stores the form; ``fit`` learns attributes
ending in ``_``; ``to_dict``/``from_dict`` round-trip through JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from oasl.errors import FitError

FEATURES = ("N", "D", "C", "B", "width", "depth")


def _as_frame(X, features: Sequence[str]) -> pd.DataFrame:
    if isinstance(X, dict):
        X = pd.DataFrame(X)
    if not isinstance(X, pd.DataFrame):
        arr = np.atleast_2d(np.asarray(X, dtype=float))
        if arr.shape[1] != len(features):
            raise FitError(f"expected {len(features)} feature column(s) {list(features)}, got {arr.shape[1]}")
        X = pd.DataFrame(arr, columns=list(features))
    missing = [f for f in features if f not in X.columns]
    if missing:
        raise FitError(f"missing feature column(s) {', '.join(missing)}: the law uses {', '.join(features)}")
    return X


class PowerLaw:
    """``h* = C * prod(x_i ^ a_i)``. ``features`` from :data:`FEATURES`; ``target`` names the HP.

    ``loss``: "l2" (least squares) or "huber" (robust to outlying optima, IRLS with ``huber_delta``
    in log units). ``by``: a column (e.g. "optimizer") whose levels get their own constant C_O with
    shared exponents (the proposal's ``h*(N, O) = C_O N^a``); None for one constant.
    """

    kind = "power"

    def __init__(self, features: Sequence[str] = ("N",), target: str = "lr", loss: str = "l2",
                 huber_delta: float = 0.3, by: str | None = None, citation: str = ""):
        bad = [f for f in features if f not in FEATURES]
        if bad:
            raise FitError(f"unknown feature {bad[0]!r}: use any of {', '.join(FEATURES)}")
        if loss not in ("l2", "huber"):
            raise FitError(f"unknown loss {loss!r}: use l2 or huber")
        self.features, self.target, self.loss = tuple(features), target, loss
        self.huber_delta, self.by, self.citation = huber_delta, by, citation

    # -- transforms between h and the linear response z ------------------------------------------
    def _to_z(self, y: np.ndarray) -> np.ndarray:
        if np.any(~np.isfinite(y)):
            raise FitError(f"{self.target} values contain NaN or inf: drop those rows before fitting")
        if np.any(y <= 0):
            raise FitError(f"{self.target} values must be positive for a power law (log space)")
        return np.log(y)

    def _from_z(self, z: np.ndarray) -> np.ndarray:
        return np.exp(z)

    # -- design -----------------------------------------------------------------------------------
    def _design(self, X: pd.DataFrame, levels: list[str] | None = None) -> np.ndarray:
        X = _as_frame(X, self.features)
        cols = []
        for f in self.features:
            v = pd.to_numeric(X[f], errors="coerce").to_numpy(float)
            if np.any(~np.isfinite(v)):
                raise FitError(f"feature {f} contains NaN or inf")
            if np.any(v <= 0):
                raise FitError(f"feature {f} must be positive (it enters as log {f})")
            cols.append(np.log(v))
        n = len(X)
        if self.by is None:
            inter = [np.ones(n)]
        else:
            if self.by not in X.columns:
                raise FitError(f"column {self.by!r} is needed: this law has one constant per {self.by}")
            levels = levels if levels is not None else self.levels_
            vals = X[self.by].astype(str).to_numpy()
            unknown = sorted(set(vals) - set(levels))
            if unknown:
                raise FitError(f"{self.by} {unknown[0]!r} was not in the fit (known: {', '.join(levels)})")
            inter = [(vals == lv).astype(float) for lv in levels]
        return np.column_stack(inter + cols) if cols or inter else np.zeros((n, 0))

    @property
    def n_coef(self) -> int:
        return (1 if self.by is None else len(self.levels_)) + len(self.features)

    # -- fitting ----------------------------------------------------------------------------------
    def fit(self, X, y, weights=None, groups=None) -> PowerLaw:
        """Fit on features ``X`` (DataFrame/dict/array) and optima ``y``; ``groups`` label rows for the
        bootstrap and leave-one-group-out error (default: each row its own group). Returns self."""
        X = _as_frame(X, self.features)
        y = np.asarray(y, dtype=float).ravel()
        if len(y) != len(X):
            raise FitError(f"{len(X)} feature rows but {len(y)} target values")
        if self.by is not None:
            if self.by not in X.columns:
                raise FitError(f"column {self.by!r} is needed: this law has one constant per {self.by}")
            self.levels_ = sorted(X[self.by].astype(str).unique())
        A = self._design(X, getattr(self, "levels_", None))
        z = self._to_z(y)
        w = np.ones(len(y)) if weights is None else np.asarray(weights, float)
        if np.any(w < 0) or not np.any(w > 0):
            raise FitError("weights must be non-negative and not all zero")
        p = A.shape[1]
        if len(y) <= p:
            raise FitError(
                f"{len(y)} point(s) cannot fit {p} coefficient(s) with an error estimate: "
                f"give at least {p + 1} optima (more model sizes or token budgets)"
            )
        if np.linalg.matrix_rank(A * np.sqrt(w)[:, None]) < p:
            const = [f for f, c in zip(self.features, A.T[-len(self.features):], strict=False)
                     if np.ptp(c) == 0] if self.features else []
            hint = f"{const[0]} has the same value in every row; vary it or drop it from the features" if const \
                else "features are collinear (e.g. D proportional to N); drop one of them"
            raise FitError(f"cannot fit {self.target} law on {', '.join(self.features) or 'a constant'}: {hint}")
        self.groups_ = np.asarray(groups) if groups is not None else np.arange(len(y))
        self._fit_arrays(A, z, w)
        self.X_ = X[[c for c in [*self.features, self.by] if c]].reset_index(drop=True)
        self.y_, self.w_ = y, w
        self.range_ = {f: (float(X[f].min()), float(X[f].max())) for f in self.features}
        return self

    def _fit_arrays(self, A: np.ndarray, z: np.ndarray, w: np.ndarray) -> None:
        wt = w.copy()
        for _ in range(50 if self.loss == "huber" else 1):
            sw = np.sqrt(wt)
            beta, *_ = np.linalg.lstsq(A * sw[:, None], z * sw, rcond=None)
            if self.loss != "huber":
                break
            r = np.abs(z - A @ beta)
            new = w * np.where(r <= self.huber_delta, 1.0, self.huber_delta / np.maximum(r, 1e-12))
            if np.allclose(new, wt, rtol=1e-6):
                break
            wt = new
        n, p = A.shape
        resid = z - A @ beta
        dof = max(n - p, 1)
        s2 = float(np.sum(wt * resid**2) / dof * (n / max(np.sum(wt), 1e-12)))
        self.coef_vector_ = beta
        self.xtwx_inv_ = np.linalg.pinv((A * wt[:, None]).T @ A) * (np.sum(wt) / n)
        self.sigma2_ = s2
        self.dof_ = dof
        self.cov_ = s2 * self.xtwx_inv_
        zbar = np.average(z, weights=w)
        ss_tot = float(np.sum(w * (z - zbar) ** 2))
        self.r2_ = 1 - float(np.sum(w * resid**2)) / ss_tot if ss_tot > 0 else math.nan
        self.rmse_log_ = float(np.sqrt(np.average(resid**2, weights=w)))
        self.n_ = n
        k = len(self.features)
        self.exponents_ = {f: float(b) for f, b in zip(self.features, beta[len(beta) - k:], strict=True)}
        inter = beta[: len(beta) - k]
        self.intercept_ = float(inter[0]) if self.by is None else {lv: float(b) for lv, b in zip(self.levels_, inter, strict=True)}
        self.coef_ = math.exp(self.intercept_) if self.by is None else {lv: math.exp(b) for lv, b in self.intercept_.items()}

    # -- prediction -------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_vector_"):
            raise FitError(f"this {type(self).__name__} is not fitted yet: call fit() first")

    def predict_z(self, X) -> np.ndarray:
        self._check_fitted()
        return self._design(X) @ self.coef_vector_

    def predict(self, X) -> np.ndarray:
        """Predicted optimum ``h*`` at each row of ``X``."""
        return self._from_z(self.predict_z(X))

    def predict_interval(self, X, level: float = 0.9, method: str = "bayes", n_boot: int = 500,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Central ``level`` interval of ``h*`` at each row of ``X``: ``(low, high)``.

        "bayes": Student-t posterior predictive (includes the scatter of optima about the law and the
        uncertainty of the coefficients). "bootstrap": refit on resampled groups, add resampled
        residuals, take percentiles.
        """
        self._check_fitted()
        A = self._design(X)
        z = A @ self.coef_vector_
        if method == "bayes":
            lev = np.einsum("ij,jk,ik->i", A, self.xtwx_inv_, A)
            scale = np.sqrt(self.sigma2_ * (1 + lev))
            t = stats.t.ppf(0.5 + level / 2, self.dof_)
            lo, hi = self._from_z(z - t * scale), self._from_z(z + t * scale)
        elif method == "bootstrap":
            sims = self._bootstrap_z(A, n_boot, seed)
            qlo, qhi = np.nanquantile(sims, [0.5 - level / 2, 0.5 + level / 2], axis=0)
            lo, hi = self._from_z(qlo), self._from_z(qhi)
        else:
            raise FitError(f"unknown interval method {method!r}: use bayes or bootstrap")
        return np.minimum(lo, hi), np.maximum(lo, hi)

    def _bootstrap_z(self, A_query: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        A = self._design(self.X_)
        z = self._to_z(self.y_)
        resid = z - A @ self.coef_vector_
        groups = np.unique(self.groups_)
        out = []
        for _ in range(n_boot):
            pick = rng.choice(groups, size=len(groups), replace=True)
            idx = np.concatenate([np.nonzero(self.groups_ == g)[0] for g in pick])
            Ab, zb, wb = A[idx], z[idx], self.w_[idx]
            if np.linalg.matrix_rank(Ab) < A.shape[1]:
                continue
            sw = np.sqrt(wb)
            beta, *_ = np.linalg.lstsq(Ab * sw[:, None], zb * sw, rcond=None)
            out.append(A_query @ beta + rng.choice(resid, size=len(A_query)))
        if not out:
            raise FitError("bootstrap failed: every resample was degenerate; use method='bayes'")
        return np.array(out)

    def exponent_interval(self, feature: str, level: float = 0.9) -> tuple[float, float]:
        """Credible interval of the exponent of ``feature`` (Student-t marginal posterior)."""
        self._check_fitted()
        j = len(self.coef_vector_) - len(self.features) + self.features.index(feature)
        t = stats.t.ppf(0.5 + level / 2, self.dof_)
        half = t * math.sqrt(self.cov_[j, j])
        return self.coef_vector_[j] - half, self.coef_vector_[j] + half

    # -- diagnostics ------------------------------------------------------------------------------
    def extrapolation_ratio(self, X) -> np.ndarray:
        """How far each query lies outside the fitted range: max over features of
        ``max(x / max_fit, min_fit / x, 1)`` (1 inside the range)."""
        self._check_fitted()
        X = _as_frame(X, self.features)
        r = np.ones(len(X))
        for f, (lo, hi) in self.range_.items():
            v = X[f].to_numpy(float)
            r = np.maximum(r, np.maximum(v / hi, lo / v))
        return r

    def loo_error(self) -> float:
        """Leave-one-group-out mean absolute percentage error of ``h*`` (NaN if too few groups)."""
        self._check_fitted()
        groups = np.unique(self.groups_)
        errs = []
        for g in groups:
            test = self.groups_ == g
            if (~test).sum() <= self.n_coef:
                return math.nan
            m = self.clone()
            try:
                m.fit(self.X_[~test], self.y_[~test], self.w_[~test])
                pred = m.predict(self.X_[test])
            except FitError:
                return math.nan
            errs.extend(np.abs(pred - self.y_[test]) / np.abs(self.y_[test]))
        return float(np.mean(errs))

    def score(self) -> dict[str, float]:
        """Goodness of fit: R^2 and RMSE in log space, LOGO MAPE, number of points."""
        return {"r2": self.r2_, "rmse_log": self.rmse_log_, "loo_mape": self.loo_error(), "n": self.n_}

    def clone(self) -> PowerLaw:
        return type(self)(self.features, self.target, self.loss, self.huber_delta, self.by, self.citation)

    def formula(self) -> str:
        self._check_fitted()
        terms = " ".join(f"{f}^{a:+.3f}" for f, a in self.exponents_.items())
        c = f"{self.coef_:.4g}" if self.by is None else "C_" + self.by
        lhs = self.target if self.kind != "one_minus" else f"1 - {self.target}"
        return f"{lhs} = {c} {terms}".strip()

    def __repr__(self) -> str:
        try:
            return f"{type(self).__name__}({self.formula()})"
        except FitError:
            return f"{type(self).__name__}(features={self.features}, target={self.target!r})"

    # -- serialisation ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "features": list(self.features), "target": self.target,
                             "loss": self.loss, "huber_delta": self.huber_delta, "by": self.by,
                             "citation": self.citation}
        if hasattr(self, "coef_vector_"):
            d.update(coef_vector=self.coef_vector_.tolist(), xtwx_inv=self.xtwx_inv_.tolist(), sigma2=self.sigma2_,
                     dof=self.dof_, r2=self.r2_, rmse_log=self.rmse_log_, n=self.n_, range=self.range_,
                     levels=getattr(self, "levels_", None), exponents=self.exponents_, formula=self.formula())
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PowerLaw:
        kinds = {"power": PowerLaw, "one_minus": OneMinusPowerLaw, "constant": ConstantLaw}
        klass = kinds.get(d.get("kind", "power"))
        if klass is None:
            raise FitError(f"unknown law kind {d.get('kind')!r} in a laws file")
        law = klass.__new__(klass)
        PowerLaw.__init__(law, d["features"], d["target"], d.get("loss", "l2"), d.get("huber_delta", 0.3),
                          d.get("by"), d.get("citation", ""))
        if "coef_vector" in d:
            if d.get("levels") is not None:
                law.levels_ = list(d["levels"])
            A_dummy = np.zeros((1, len(d["coef_vector"])))
            law._restore(np.array(d["coef_vector"]), np.array(d["xtwx_inv"]), d["sigma2"], d["dof"], A_dummy)
            law.r2_, law.rmse_log_, law.n_ = d.get("r2", math.nan), d.get("rmse_log", math.nan), d.get("n", 0)
            law.range_ = {k: tuple(v) for k, v in d.get("range", {}).items()}
        return law

    def _restore(self, beta, xtwx_inv, sigma2, dof, _A) -> None:
        self.coef_vector_, self.xtwx_inv_, self.sigma2_, self.dof_ = beta, xtwx_inv, float(sigma2), int(dof)
        self.cov_ = self.sigma2_ * self.xtwx_inv_
        k = len(self.features)
        self.exponents_ = {f: float(b) for f, b in zip(self.features, beta[len(beta) - k:], strict=True)}
        inter = beta[: len(beta) - k]
        if self.by is None:
            self.intercept_ = float(inter[0])
            self.coef_ = math.exp(self.intercept_)
        else:
            self.intercept_ = {lv: float(b) for lv, b in zip(self.levels_, inter, strict=True)}
            self.coef_ = {lv: math.exp(b) for lv, b in self.intercept_.items()}

    @classmethod
    def fixed(cls, coef: float, exponents: dict[str, float], target: str, citation: str,
              sigma_log: float = 0.0) -> PowerLaw:
        """A law with given coefficients (a published law): ``h* = coef * prod x^a``.

        ``sigma_log`` is the scatter (log units) its intervals assume; 0 gives a point prediction.
        """
        law = cls(tuple(exponents), target, citation=citation)
        beta = np.array([math.log(coef) if cls.kind == "power" or cls.kind == "one_minus" else coef,
                         *exponents.values()])
        law._restore(beta, np.zeros((len(beta), len(beta))), sigma_log**2, 10**6, None)
        law.r2_, law.rmse_log_, law.n_, law.range_ = math.nan, math.nan, 0, {}
        return law


class OneMinusPowerLaw(PowerLaw):
    """For HPs near 1 (beta1, beta2, momentum): ``1 - h* = C * prod(x_i ^ a_i)``."""

    kind = "one_minus"

    def _to_z(self, y: np.ndarray) -> np.ndarray:
        if np.any(~np.isfinite(y)):
            raise FitError(f"{self.target} values contain NaN or inf: drop those rows before fitting")
        if np.any((y >= 1) | (y < 0)):
            raise FitError(f"{self.target} values must lie in [0, 1) for a 1 - h law")
        return np.log1p(-y)

    def _from_z(self, z: np.ndarray) -> np.ndarray:
        return 1.0 - np.exp(z)


class ConstantLaw(PowerLaw):
    """``h*`` independent of scale: the null model every other form must beat (a power law with no
    features, i.e. the geometric mean of the optima, with the same intervals)."""

    kind = "constant"

    def __init__(self, features: Sequence[str] = (), target: str = "lr", loss: str = "l2",
                 huber_delta: float = 0.3, by: str | None = None, citation: str = ""):
        super().__init__((), target, loss, huber_delta, by, citation)

    def _design(self, X, levels=None):
        if isinstance(X, dict):
            X = pd.DataFrame(X)
        n = len(X) if hasattr(X, "__len__") else 1
        if self.by is None:
            return np.ones((n, 1))
        return super()._design(X, levels)

    def extrapolation_ratio(self, X) -> np.ndarray:
        return np.ones(len(X))

    def clone(self) -> ConstantLaw:
        return ConstantLaw((), self.target, self.loss, self.huber_delta, self.by, self.citation)
