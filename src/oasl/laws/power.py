"""The law of an optimal hyperparameter as an estimator: ``PowerLaw``.

``h* = C * prod_i x_i^a_i`` over any of the features N (non-embedding parameters), D (tokens), C
(FLOPs), B (batch tokens), width, depth, L (loss), fitted as a linear regression of ``log h*`` on
``log x`` (see :mod:`oasl.laws.base` for the fit and its Bayesian intervals). The variants for HPs
near 1, the constant null model and the log-linear form are in :mod:`oasl.laws.forms`.

Estimator habits follow scikit-learn: the constructor stores the form and nothing else; ``fit``
learns attributes ending in ``_`` (``coef_`` = C, ``exponents_``, ``intercept_`` = ln C, ``cov_``);
``predict``, ``predict_interval``, ``exponent_interval``, ``score``; ``to_dict``/``from_dict`` round-trip
through JSON. Published laws are the same classes built by :meth:`PowerLaw.fixed`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from oasl.errors import ConfigError, FitError
from oasl.laws import base
from oasl.laws.base import FEATURES, as_frame
from oasl.laws.power_json import power_law_to_dict, restore_power_law

#: ways to compute :meth:`PowerLaw.predict_interval` (see there)
INTERVALS = ("bayes", "bootstrap", "jackknife+")


def _check_level(level: float) -> float:
    if not 0 < level < 1:
        raise ConfigError(f"interval level must lie strictly between 0 and 1, got {level}")
    return float(level)


class PowerLaw:
    """``h* = C * prod(x_i ^ a_i)``, fitted in log space.

    ``features``: names from :data:`~oasl.laws.base.FEATURES`. ``target``: the HP (e.g. "lr",
    "batch_tokens"). ``loss``: "l2" (least squares) or "huber" (robust to outlying optima;
    ``huber_delta`` in log units, None = 1.345 MAD-scaled residual deviations). ``by``: a column
    (e.g. "optimizer") whose levels get their own constant ``C_O`` with shared exponents (the
    proposal's ``h*(N, O) = C_O N^a``); None for one constant. ``interval``: default method of
    :meth:`predict_interval`, "bayes" (closed form), "bootstrap" (``n_boot`` resamples of the
    groups, seeded by ``seed``) or "jackknife+" (leave-one-group-out refits and residuals). ``citation``: where the form or the coefficients come from.

    Fitted attributes: ``coef_`` (C; a dict per level of ``by``), ``intercept_`` (ln C),
    ``exponents_`` (feature -> exponent), ``coef_vector_`` (intercept(s) then exponents), ``cov_``
    (scale matrix ``s^2 (A'WA)^-1`` of their Student-t posterior; the covariance is ``dof_ / (dof_ - 2)``
    times it), ``sigma2_`` (scatter of optima about the law, log units squared), ``dof_``, ``r2_`` and
    ``rmse_log_`` (on the rows, log space), ``n_``/``n_groups_``, ``range_`` (fitted range of each
    feature, for :meth:`extrapolation_ratio`), ``levels_``, and the data ``X_``, ``y_``, ``w_``,
    ``groups_`` (for the bootstrap and leave-one-group-out diagnostics).
    """

    kind: ClassVar[str] = "power"
    # kind -> class, filled as subclasses are defined (oasl.laws.forms), read by from_dict
    KINDS: ClassVar[dict[str, type[PowerLaw]]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            PowerLaw.KINDS[cls.kind] = cls

    _PARAMS: ClassVar[tuple[str, ...]] = (
        "features",
        "target",
        "loss",
        "huber_delta",
        "by",
        "interval",
        "n_boot",
        "seed",
        "citation",
    )

    def __init__(
        self,
        features: Sequence[str] = ("N", "D"),
        target: str = "lr",
        loss: str = "l2",
        huber_delta: float | None = None,
        by: str | None = None,
        interval: str = "bayes",
        n_boot: int = 1000,
        seed: int = 0,
        citation: str = "",
    ):
        if isinstance(features, str):
            features = (features,)
        bad = [f for f in features if f not in FEATURES]
        if bad:
            raise ConfigError(f"unknown feature {bad[0]!r}: use any of {', '.join(FEATURES)}")
        if len(set(features)) != len(features):
            raise ConfigError(f"features repeat a name: {list(features)}")
        if loss not in ("l2", "huber"):
            raise ConfigError(f"unknown loss {loss!r}: use 'l2' or 'huber'")
        if interval not in INTERVALS:
            raise ConfigError(f"unknown interval method {interval!r}: use {', '.join(map(repr, INTERVALS))}")
        if huber_delta is not None and not huber_delta > 0:
            raise ConfigError(f"huber_delta must be positive (log units) or None, got {huber_delta}")
        self.features, self.target, self.loss, self.huber_delta = tuple(features), target, loss, huber_delta
        self.by, self.interval, self.n_boot, self.seed, self.citation = (
            by,
            interval,
            int(n_boot),
            int(seed),
            citation,
        )
        # Where a published law comes from (set by `fixed`; empty for a fitted law).
        self.optimizer, self.setup, self.units, self.valid_range = "", "", {}, {}

    # -- the form: response transform and design ------------------------------------------------
    @property
    def _design_features(self) -> tuple[str, ...]:
        return self.features

    def _transform(self, y: np.ndarray) -> np.ndarray:
        if np.any(~np.isfinite(y)):
            raise FitError(f"{self.target} values contain NaN or inf: drop those rows before fitting")
        if np.any(y <= 0):
            raise FitError(
                f"{self.target} values must be positive for a power law (it is fitted on log "
                f"{self.target}); got {y[y <= 0][0]:g}"
            )
        return np.log(y)

    def _inverse(self, z: np.ndarray) -> np.ndarray:
        return np.exp(z)

    @staticmethod
    def _coef_from_intercept(b: float) -> float:
        return math.exp(b)

    @staticmethod
    def _intercept_from_coef(c: float) -> float:
        if not c > 0:
            raise ConfigError(f"the constant of a power law must be positive, got {c}")
        return math.log(c)

    def _design(self, X, levels: list[str] | None = None) -> np.ndarray:
        X = as_frame(X, self._design_features, f"the {self.target} law")
        logX = base.log_features(X, self._design_features)
        n = len(X)
        if self.by is None:
            inter = np.ones((n, 1))
        else:
            if self.by not in X.columns:
                raise FitError(f"column {self.by!r} is needed: this law has one constant per {self.by}")
            levels = levels if levels is not None else self.levels_
            vals = X[self.by].astype(str).to_numpy()
            unknown = sorted(set(vals) - set(levels))
            if unknown:
                raise FitError(
                    f"{self.by} {unknown[0]!r} was not in the fit (fitted: {', '.join(levels)}): "
                    f"add its optima or use a pooled law"
                )
            inter = np.column_stack([(vals == lv).astype(float) for lv in levels])
        return np.column_stack([inter, logX])

    @property
    def n_coef(self) -> int:
        """Number of coefficients: one constant (or one per level of ``by``) plus one exponent per feature."""
        return (1 if self.by is None else len(self.levels_)) + len(self._design_features)

    # -- fitting ----------------------------------------------------------------------------------
    def fit(self, X, y=None, weights=None, groups=None) -> PowerLaw:
        """Fit on a table of optima. Returns self.

        ``X``: DataFrame (or dict of arrays) with the feature columns (and ``by`` if set). ``y``: the
        optimal values of ``target`` (default: ``X[target]``). ``weights``: precision weights per row
        (array or column name), e.g. 1 for each located optimum, or for every near-optimal run.
        ``groups``: a label per row (array or column name) when a group contributes several rows
        (near-optimal runs, replicates); intervals and the leave-one-group-out error then count
        groups. Default: every row its own group. Raises FitError on too few optima, a singular
        design (a feature constant everywhere, collinear features), non-positive or NaN values.
        """
        return self._fit(X, y, weights, groups, point_only=False)

    def _fit(self, X, y, weights, groups, point_only: bool) -> PowerLaw:
        X = as_frame(X, self._design_features, f"the {self.target} law")
        if y is None:
            if self.target not in X.columns:
                raise FitError(f"no target given: pass y or a column {self.target!r} in X")
            y = X[self.target]
        y = np.asarray(pd.to_numeric(pd.Series(np.asarray(y).ravel()), errors="coerce"), dtype=float)
        n = len(X)
        if len(y) != n:
            raise FitError(f"{n} feature row(s) but {len(y)} {self.target} value(s)")
        if n == 0:
            raise FitError(f"no optima to fit the {self.target} law on")
        w = base.check_weights(base.column_or_array(X, weights, "weights"), n)
        g = base.column_or_array(X, groups, "groups", dtype=None)
        g = np.arange(n) if g is None else np.asarray([str(v) for v in g])
        levels = None
        if self.by is not None:
            if self.by not in X.columns:
                raise FitError(f"column {self.by!r} is needed: this law has one constant per {self.by}")
            levels = sorted(X.loc[w > 0, self.by].astype(str).unique())
        z = self._transform(y)
        A = self._design(X, levels)
        p = A.shape[1]
        used = w > 0
        n_groups = len(np.unique(g[used]))
        what = f"{self.target} law ({self.kind}, {', '.join(self._design_features) or 'no features'})"
        if not point_only and n_groups <= p:
            raise FitError(
                f"{n_groups} optimum/optima cannot fit a {what} with {p} coefficient(s) and an error estimate: "
                f"give at least {p + 1} optima (more model sizes or token budgets), or use fewer features"
            )
        if np.linalg.matrix_rank(A[used]) < p:
            raise FitError(
                f"cannot fit the {what}: {base.degenerate_hint(A[used, p - len(self._design_features) :], self._design_features)}"
            )
        beta, w_eff = base.solve(A, z, w, self.loss, self.huber_delta)
        self.levels_ = levels
        self._set_coefs(beta)
        if point_only:
            return self
        post = base.posterior(A, z, w_eff, g, beta)
        if post.rank < p:
            raise FitError(f"cannot fit the {what}: the features vary only within groups, not across them")
        self.unscaled_cov_, self.sigma2_, self.dof_ = post.unscaled, post.sigma2, post.dof
        self.new_group_var_ = post.new_var
        self.cov_ = post.sigma2 * post.unscaled
        self.n_groups_, self.group_resid_ = post.n_groups, post.group_resid
        resid = z - A @ beta
        zbar = np.average(z, weights=w)
        ss_tot = float(np.sum(w * (z - zbar) ** 2))
        self.r2_ = 1 - float(np.sum(w * resid**2)) / ss_tot if ss_tot > 0 else math.nan
        self.rmse_log_ = float(np.sqrt(np.average(resid**2, weights=w)))
        self.n_ = int(used.sum())
        keep = [c for c in dict.fromkeys([*self.features, *([self.by] if self.by else [])]) if c in X.columns]
        self.X_ = X[keep].reset_index(drop=True)
        self.y_, self.w_, self.groups_ = y, w, g
        self.range_ = {
            f: (float(X.loc[used, f].min()), float(X.loc[used, f].max()))
            for f in self.features
            if f in X.columns
        }
        if hasattr(self, "boot_coefs_"):
            del self.boot_coefs_
        jk = (
            base.jackknife_fits(A, z, w, g, self.loss, self.huber_delta)
            if self.interval == "jackknife+"
            else None
        )
        if jk is not None:
            self.jk_coefs_, self.jk_resid_ = jk
        else:
            for a in ("jk_coefs_", "jk_resid_"):
                if hasattr(self, a):
                    delattr(self, a)
        if self.interval == "bootstrap":
            self._bootstrap_coefs()
        return self

    def _set_coefs(self, beta: np.ndarray) -> None:
        self.coef_vector_ = np.asarray(beta, dtype=float)
        k = len(self._design_features)
        self.exponents_ = {
            f: float(b) for f, b in zip(self._design_features, beta[len(beta) - k :], strict=True)
        }
        inter = beta[: len(beta) - k]
        if self.by is None:
            self.intercept_ = float(inter[0])
            self.coef_ = self._coef_from_intercept(self.intercept_)
        else:
            self.intercept_ = {lv: float(b) for lv, b in zip(self.levels_, inter, strict=True)}
            self.coef_ = {lv: self._coef_from_intercept(b) for lv, b in self.intercept_.items()}

    # -- bootstrap over groups --------------------------------------------------------------------
    def _bootstrap_coefs(self) -> np.ndarray:
        if hasattr(self, "boot_coefs_"):
            return self.boot_coefs_
        if not hasattr(self, "X_"):
            raise FitError(
                "this law carries no fitted data (a published or stripped law): use the 'bayes' interval"
            )
        rng = np.random.default_rng(self.seed)
        A = self._design(self.X_, self.levels_)
        z = self._transform(self.y_)
        keys = np.unique(self.groups_[self.w_ > 0])
        rows = [np.nonzero((self.groups_ == k) & (self.w_ > 0))[0] for k in keys]
        # Stratify by level of `by` so every resample keeps every optimizer's constant identifiable.
        strata = [np.arange(len(keys))]
        if self.by is not None:
            lv = np.array([str(self.X_[self.by].iloc[r[0]]) for r in rows])
            strata = [np.nonzero(lv == level)[0] for level in self.levels_]
        p, out = A.shape[1], []
        for _ in range(self.n_boot):
            pick = np.concatenate([rng.choice(s, size=len(s), replace=True) for s in strata])
            idx = np.concatenate([rows[i] for i in pick])
            if np.linalg.matrix_rank(A[idx]) < p:
                continue
            beta, _ = base.solve(A[idx], z[idx], self.w_[idx], self.loss, self.huber_delta)
            out.append(beta)
        if len(out) < max(10, self.n_boot // 2):
            raise FitError(
                f"bootstrap: most resamples of the {len(keys)} groups were degenerate; "
                f"add optima or use interval='bayes'"
            )
        self.boot_coefs_ = np.array(out)
        return self.boot_coefs_

    # -- prediction -------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_vector_"):
            raise FitError(f"this {type(self).__name__} of {self.target} is not fitted yet: call fit() first")

    def predict_z(self, X) -> np.ndarray:
        """The law in its linear (log) space at each row of ``X``."""
        self._check_fitted()
        return self._design(X) @ self.coef_vector_

    def predict(self, X) -> np.ndarray:
        """Predicted optimum ``h*`` (units of ``target``) at each row of ``X`` (features as in ``fit``)."""
        return self._inverse(self.predict_z(X))

    def predict_interval(
        self, X, level: float = 0.9, method: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Central ``level`` interval ``(low, high)`` of the optimum at each row of ``X``.

        "bayes": the Student-t posterior predictive, which holds both the scatter of optima about
        the law and the uncertainty of the coefficients (wider away from the fitted points); with
        precision weights, the scatter is that of a group located as precisely as a typical fitted one.
        "bootstrap": refit on resampled groups, add a resampled group residual (inflated by
        ``sqrt(G / (G - p))``), take percentiles. "jackknife+": the distribution-free interval of
        Barber et al. 2021 (:func:`oasl.laws.base.jackknife_plus_interval`) from the law refitted
        without each group and that group's held-out residual; it covers a new group's optimum at
        about ``level`` whatever the shape of the scatter (heavy tails, uneven precision), provided the
        groups are exchangeable; with too few groups for a finite interval at ``level`` (fewer than 9
        at 90%), or a law saved without its refits, it falls back to "bayes". Default: the law's
        ``interval``.
        """
        level = _check_level(level)
        method = method or self.interval
        self._check_fitted()
        A = self._design(X)
        z = A @ self.coef_vector_
        if method == "jackknife+":
            jk = (
                base.jackknife_plus_interval(self.jk_coefs_, self.jk_resid_, A, level)
                if hasattr(self, "jk_coefs_")
                else None
            )
            if jk is not None:
                lo, hi = self._inverse(jk[0]), self._inverse(jk[1])
                return np.minimum(lo, hi), np.maximum(lo, hi)
            method = "bayes"
        if method == "bayes":
            if not hasattr(self, "unscaled_cov_"):
                raise FitError("this law has no posterior (it was fitted without an error estimate)")
            lev = np.einsum("ij,jk,ik->i", A, self.unscaled_cov_, A)
            new = getattr(self, "new_group_var_", 1.0)  # a new group of typical precision (base.Posterior)
            scale = np.sqrt(self.sigma2_ * (new + lev)) if self.sigma2_ > 0 else np.zeros(len(z))
            half = stats.t.ppf(0.5 + level / 2, self.dof_) * scale
            lo, hi = self._inverse(z - half), self._inverse(z + half)
        elif method == "bootstrap":
            boot = self._bootstrap_coefs()
            rng = np.random.default_rng(self.seed + 1)
            infl = math.sqrt(self.n_groups_ / self.dof_) if self.dof_ > 0 else 1.0
            noise = rng.choice(self.group_resid_ * infl, size=(len(boot), len(z)))
            sims = boot @ A.T + noise
            qlo, qhi = np.quantile(sims, [0.5 - level / 2, 0.5 + level / 2], axis=0)
            lo, hi = self._inverse(qlo), self._inverse(qhi)
        else:
            raise ConfigError(f"unknown interval method {method!r}: use {', '.join(map(repr, INTERVALS))}")
        return np.minimum(lo, hi), np.maximum(lo, hi)

    def exponent_interval(self, level: float | str = 0.9, method: str | float | None = None):
        """Central ``level`` interval of each exponent: feature -> (low, high).

        "bayes" (also for a "jackknife+" law): the Student-t marginal posterior (equal to the classical t
        confidence interval under the reference prior); "bootstrap": percentiles of the exponents over
        group resamples.
        Also callable as ``exponent_interval("N", 0.9)`` for one exponent's (low, high); a feature the
        law does not scale with (a ConstantLaw's) gives (nan, nan).
        """
        if isinstance(level, str):
            feature, lvl = level, 0.9 if method is None else float(method)
            return self.exponent_interval(lvl).get(feature, (math.nan, math.nan))
        level = _check_level(level)
        method = method or self.interval
        if method == "jackknife+":  # a prediction interval; the exponents keep their posterior
            method = "bayes"
        self._check_fitted()
        k = len(self._design_features)
        p = len(self.coef_vector_)
        out = {}
        if method == "bootstrap":
            boot = self._bootstrap_coefs()
            for j, f in enumerate(self._design_features):
                lo, hi = np.quantile(boot[:, p - k + j], [0.5 - level / 2, 0.5 + level / 2])
                out[f] = (float(lo), float(hi))
            return out
        if method != "bayes":
            raise ConfigError(f"unknown interval method {method!r}: use 'bayes' or 'bootstrap'")
        t = stats.t.ppf(0.5 + level / 2, self.dof_) if self.dof_ > 0 else math.inf
        for j, f in enumerate(self._design_features):
            c = self.coef_vector_[p - k + j]
            half = t * math.sqrt(max(self.cov_[p - k + j, p - k + j], 0.0)) if self.sigma2_ > 0 else 0.0
            out[f] = (float(c - half), float(c + half))
        return out

    # -- diagnostics ------------------------------------------------------------------------------
    def extrapolation_ratio(self, X, per_feature: bool = False):
        """How far each query lies outside the fitted range of its features, as a factor:
        ``max over features of max(x / max_fitted, min_fitted / x, 1)`` (1 inside the range; 10 at ten
        times the largest fitted N). ``per_feature=True`` returns a DataFrame with one column per
        feature instead of the maximum."""
        self._check_fitted()
        X = X if isinstance(X, pd.DataFrame) else as_frame(X, self._design_features)
        table = base.ratio_outside(X, getattr(self, "range_", {}) or {})
        if per_feature:
            return table
        return table.max(axis=1).to_numpy() if table.shape[1] else np.ones(len(X))

    def _require_data(self) -> None:
        if not hasattr(self, "X_"):
            raise FitError(
                "this law carries no fitted data (a published or stripped law): diagnostics need the optima"
            )

    def loo_errors(self) -> pd.DataFrame:
        """Leave-one-group-out predictions: one row per group with the held-out optimum (``truth``,
        the weighted geometric mean of its rows for a power law), the prediction of the law refitted
        without the group (``pred``), the absolute percentage error ``ape`` and the error in log units
        ``log_err``. A group whose refit is impossible (too few points left) gets NaN."""
        self._check_fitted()
        self._require_data()
        return base.leave_one_group_out(self, self.X_, self.y_, self.w_, self.groups_)

    def loo_error(self) -> float:
        """Mean absolute percentage error of ``h*`` over held-out groups (NaN when some group cannot
        be held out, e.g. only ``n_coef`` groups)."""
        errs = self.loo_errors()["ape"].to_numpy()
        return float(np.mean(errs)) if len(errs) and np.all(np.isfinite(errs)) else math.nan

    def score(self, X=None, y=None) -> dict[str, float]:
        """Diagnostics. Without arguments: R^2 and RMSE of the fit in log space, leave-one-group-out
        MAPE and log RMSE, numbers of rows and groups. With ``X, y``: R^2, RMSE (log) and MAPE of the
        predictions on that data (e.g. held-out optima)."""
        self._check_fitted()
        if X is not None:
            X = as_frame(X, self._design_features)
            y = np.asarray(X[self.target] if y is None else y, dtype=float)
            z, zp = self._transform(y), self.predict_z(X)
            ss = float(np.sum((z - z.mean()) ** 2))
            pred = self._inverse(zp)
            return {
                "r2": 1 - float(np.sum((z - zp) ** 2)) / ss if ss > 0 else math.nan,
                "rmse_log": float(np.sqrt(np.mean((z - zp) ** 2))),
                "mape": float(np.mean(np.abs(pred - y) / np.abs(y))),
                "n": len(y),
            }
        loo = self.loo_errors()
        ok = np.all(np.isfinite(loo["ape"]))
        return {
            "r2": self.r2_,
            "rmse_log": self.rmse_log_,
            "loo_mape": float(loo["ape"].mean()) if ok else math.nan,
            "loo_rmse_log": float(np.sqrt(np.mean(loo["log_err"] ** 2))) if ok else math.nan,
            "n": self.n_,
            "n_groups": self.n_groups_,
        }

    # -- presentation -----------------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """The constructor arguments (scikit-learn's ``get_params``)."""
        return {k: getattr(self, k) for k in self._PARAMS}

    def clone(self) -> PowerLaw:
        """An unfitted copy with the same form."""
        return type(self)(**self.get_params())

    def _lhs(self) -> str:
        return self.target

    def _constant_str(self) -> str:
        if self.by is None:
            return f"{self.coef_:.4g}"
        return f"C[{self.by}] (" + ", ".join(f"{k} {v:.4g}" for k, v in self.coef_.items()) + ")"

    def formula(self) -> str:
        """The fitted law as text, e.g. ``lr = 1.79 N^-0.713 D^0.307``."""
        self._check_fitted()
        terms = " ".join(f"{f}^{a:.4g}" for f, a in self.exponents_.items())
        return f"{self._lhs()} = {self._constant_str()} {terms}".strip()

    def __repr__(self) -> str:
        try:
            return f"{type(self).__name__}({self.formula()})"
        except FitError:
            return f"{type(self).__name__}(features={self.features}, target={self.target!r})"

    # -- serialisation (the JSON layout lives in oasl.laws.power_json) ---------------------------
    def to_dict(self, data: bool = True) -> dict[str, Any]:
        """JSON-able dict of the form, the fitted state (coefficients, posterior, fitted range,
        diagnostics), the source of a published law, and (``data=True``) the optima it was fitted on."""
        return power_law_to_dict(self, data)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PowerLaw:
        """Rebuild a law written by :meth:`to_dict` (any registered kind: power, one_minus, constant,
        log_linear)."""
        klass = PowerLaw.KINDS.get(d.get("kind", "power"))
        if klass is None:
            raise ConfigError(f"unknown law kind {d.get('kind')!r} (known: {', '.join(PowerLaw.KINDS)})")
        return restore_power_law(klass(**{k: d[k] for k in klass._PARAMS if k in d}), d)

    @classmethod
    def fixed(
        cls,
        coef: float,
        exponents: dict[str, float],
        target: str,
        citation: str = "",
        optimizer: str = "",
        setup: str = "",
        units: dict[str, str] | None = None,
        valid_range: dict[str, tuple[float, float]] | None = None,
        sigma_log: float = 0.0,
        features: Sequence[str] | None = None,
    ) -> PowerLaw:
        """A law with given coefficients (a published law): ``h* = coef * prod x^a``.

        ``optimizer``, ``setup`` (what it was measured with), ``units`` and ``valid_range`` (the range
        of each feature it was fitted on, used by :meth:`extrapolation_ratio`) describe its source.
        ``sigma_log``: the scatter of optima about the law (log units) its intervals assume; 0 gives
        point predictions (low == high).
        """
        law = cls(tuple(features) if features is not None else tuple(exponents), target, citation=citation)
        law.optimizer, law.setup, law.units = optimizer, setup, dict(units or {})
        law.valid_range = {k: (float(a), float(b)) for k, (a, b) in (valid_range or {}).items()}
        law.levels_ = None
        beta = np.array(
            [cls._intercept_from_coef(coef), *[exponents[f] for f in law._design_features]], dtype=float
        )
        law._set_coefs(beta)
        p = len(beta)
        law.unscaled_cov_, law.sigma2_, law.dof_ = np.zeros((p, p)), float(sigma_log) ** 2, 10**6
        law.cov_ = np.zeros((p, p))
        law.n_, law.n_groups_, law.r2_, law.rmse_log_ = 0, 0, math.nan, math.nan
        law.group_resid_ = np.zeros(0)
        law.range_ = dict(law.valid_range)
        return law


PowerLaw.KINDS["power"] = PowerLaw
