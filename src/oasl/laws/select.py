"""Optimizer-aware laws, and choosing a law's form and sharing by held-out error.

Three ways to let a law depend on the optimizer O (the proposal's ``h*(N, O) = C_O N^a``):

* ``separate``: one law per optimizer, each with its own constant and exponents;
* ``shared_exponents``: one constant per optimizer, exponents shared (the scaling is a property of
  the model family, the constant a property of the optimizer);
* ``pooled``: one law for all optimizers (the optimizer does not matter).

:func:`select_law` fits every candidate (forms x sharing modes, the constant null model included)
and keeps the simplest one whose held-out error (leave-one-group-out, or forward chaining: each size
predicted from the smaller ones, ``cv="forward"``) is within one standard error of the
best (the one-standard-error rule of Hastie, Tibshirani & Friedman, *Elements of Statistical
Learning*, 2nd ed., Sec. 7.10): more flexible laws must earn their coefficients on optima they did
not see.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from oasl.errors import ConfigError, FitError
from oasl.laws import base
from oasl.laws.forms import ConstantLaw, LogLinearLaw, OneMinusPowerLaw
from oasl.laws.power import PowerLaw

FORMS: dict[str, type[PowerLaw]] = {
    "power": PowerLaw,
    "one_minus": OneMinusPowerLaw,
    "constant": ConstantLaw,
    "log_linear": LogLinearLaw,
}
SHARING = ("separate", "shared_exponents", "pooled")
#: HPs that live just below 1: their default candidate form is 1 - h = C prod x^a.
NEAR_ONE = ("beta1", "beta2", "momentum")


def _nanmean(values) -> float:
    """The mean of the finite values, NaN when there is none (np.nanmean warns "Mean of empty slice" there:
    a law of one size has no R^2, which is not worth a warning on the user's screen)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


class OptimizerLaw:
    """A law of ``target`` over ``features`` whose dependence on the optimizer (column ``by``) is
    given by ``sharing`` ("separate", "shared_exponents" or "pooled"); ``form`` is one of
    :data:`FORMS`. Other keyword arguments (``loss``, ``interval``, ``n_boot``, ``seed``) go to the
    underlying law(s). Fitted state: ``laws_`` (optimizer -> law, or "*" -> the one joint law)."""

    def __init__(
        self,
        form: str = "power",
        features: Sequence[str] = ("N", "D"),
        target: str = "lr",
        sharing: str = "shared_exponents",
        by: str = "optimizer",
        loss: str = "l2",
        interval: str = "bayes",
        n_boot: int = 1000,
        seed: int = 0,
    ):
        if form not in FORMS:
            raise ConfigError(f"unknown law form {form!r}: use {', '.join(FORMS)}")
        if sharing not in SHARING:
            raise ConfigError(f"unknown sharing {sharing!r}: use {', '.join(SHARING)}")
        if isinstance(features, str):
            features = (features,)
        self.form, self.features, self.target, self.sharing, self.by = (
            form,
            tuple(features),
            target,
            sharing,
            by,
        )
        self.loss, self.interval, self.n_boot, self.seed = loss, interval, n_boot, seed
        self._make(None)  # validate the sub-law's arguments now

    def get_params(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in ("form", "features", "target", "sharing", "by", "loss", "interval", "n_boot", "seed")
        }

    def clone(self) -> OptimizerLaw:
        return OptimizerLaw(**self.get_params())

    def _make(self, by: str | None) -> PowerLaw:
        return FORMS[self.form](
            self.features,
            self.target,
            loss=self.loss,
            by=by,
            interval=self.interval,
            n_boot=self.n_boot,
            seed=self.seed,
        )

    # -- fitting ----------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y=None, weights=None, groups=None) -> OptimizerLaw:
        """Fit on a table with the feature columns, ``by`` (except for "pooled") and ``target`` (or
        ``y``). ``weights``/``groups``: arrays or column names, as in :meth:`PowerLaw.fit`. Returns self."""
        return self._fit(X, y, weights, groups, point_only=False)

    def _fit(self, X, y, weights, groups, point_only: bool) -> OptimizerLaw:
        if isinstance(X, dict):
            X = pd.DataFrame(X)
        if not isinstance(X, pd.DataFrame):
            raise FitError("an optimizer law is fitted on a DataFrame with the feature and optimizer columns")
        X = X.reset_index(drop=True)
        if y is None:
            if self.target not in X.columns:
                raise FitError(f"no target given: pass y or a column {self.target!r}")
            y = X[self.target]
        y = np.asarray(y, dtype=float).ravel()
        w = base.column_or_array(X, weights, "weights")
        g = base.column_or_array(X, groups, "groups", dtype=None)
        g = np.arange(len(X)).astype(str) if g is None else np.asarray([str(v) for v in g])
        if self.sharing != "pooled" and self.by not in X.columns:
            raise FitError(
                f"column {self.by!r} is missing: a {self.sharing} law needs it (or use sharing='pooled')"
            )
        if self.sharing == "separate":
            laws = {}
            for level, idx in X.groupby(X[self.by].astype(str)).indices.items():
                law = self._make(None)
                try:
                    law._fit(X.iloc[idx], y[idx], None if w is None else w[idx], g[idx], point_only)
                except FitError as exc:
                    raise FitError(f"{self.by} {level}: {exc}") from None
                laws[level] = law
            self.laws_ = laws
        else:
            law = self._make(self.by if self.sharing == "shared_exponents" else None)
            self.laws_ = {"*": law._fit(X, y, w, g, point_only)}
        self.X_, self.y_, self.w_, self.groups_ = X, y, w, g
        return self

    # -- prediction -------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "laws_"):
            raise FitError(f"this OptimizerLaw of {self.target} is not fitted yet: call fit() first")

    def law_for(self, optimizer: str) -> PowerLaw:
        """The fitted law that predicts for ``optimizer``."""
        self._check_fitted()
        if "*" in self.laws_:
            law = self.laws_["*"]
            if law.by is not None and str(optimizer) not in law.levels_:
                raise FitError(
                    f"no optima of {self.by} {optimizer!r} were fitted (fitted: {', '.join(law.levels_)})"
                )
            return law
        if str(optimizer) not in self.laws_:
            raise FitError(f"no law was fitted for {self.by} {optimizer!r} (fitted: {', '.join(self.laws_)})")
        return self.laws_[str(optimizer)]

    def _parts(self, X: pd.DataFrame):
        if "*" in self.laws_ and self.laws_["*"].by is None:
            yield self.laws_["*"], np.arange(len(X))
            return
        if self.by not in X.columns:
            raise FitError(f"column {self.by!r} is needed to predict with a {self.sharing} law")
        for level, idx in X.groupby(X[self.by].astype(str)).indices.items():
            yield self.law_for(level), idx

    @staticmethod
    def _frame(X) -> pd.DataFrame:
        X = pd.DataFrame(X) if isinstance(X, dict) else X
        if not isinstance(X, pd.DataFrame):
            raise FitError(
                "an optimizer law predicts from a DataFrame with the feature and optimizer columns"
            )
        return X.reset_index(drop=True)

    def predict_z(self, X) -> np.ndarray:
        self._check_fitted()
        X = self._frame(X)
        out = np.full(len(X), np.nan)
        for law, idx in self._parts(X):
            out[idx] = law.predict_z(X.iloc[idx])
        return out

    def predict(self, X) -> np.ndarray:
        """Predicted optimum at each row of ``X`` (features and, unless pooled, the optimizer)."""
        self._check_fitted()
        X = self._frame(X)
        out = np.full(len(X), np.nan)
        for law, idx in self._parts(X):
            out[idx] = law.predict(X.iloc[idx])
        return out

    def predict_interval(
        self, X, level: float = 0.9, method: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Central ``level`` interval ``(low, high)`` at each row (see :meth:`PowerLaw.predict_interval`)."""
        self._check_fitted()
        X = self._frame(X)
        lo, hi = np.full(len(X), np.nan), np.full(len(X), np.nan)
        for law, idx in self._parts(X):
            lo[idx], hi[idx] = law.predict_interval(X.iloc[idx], level, method)
        return lo, hi

    def extrapolation_ratio(self, X) -> np.ndarray:
        """Factor by which each row lies outside the fitted range of the law that predicts it."""
        self._check_fitted()
        X = self._frame(X)
        out = np.ones(len(X))
        for law, idx in self._parts(X):
            out[idx] = law.extrapolation_ratio(X.iloc[idx])
        return out

    def constant(self, optimizer: str) -> float:
        """The constant ``C_O`` of ``optimizer``'s law."""
        law = self.law_for(optimizer)
        return law.coef_[str(optimizer)] if isinstance(law.coef_, dict) else law.coef_

    def exponents(self, optimizer: str) -> dict[str, float]:
        """The exponents of ``optimizer``'s law (shared ones unless sharing is "separate")."""
        return dict(self.law_for(optimizer).exponents_)

    def exponent_interval(self, level: float = 0.9, method: str | None = None) -> dict[str, dict]:
        """Interval of each exponent per fitted law: key ("*" for a joint law, else the optimizer) ->
        feature -> (low, high); see :meth:`PowerLaw.exponent_interval`."""
        self._check_fitted()
        return {k: law.exponent_interval(level, method) for k, law in self.laws_.items()}

    @property
    def n_coef(self) -> int:
        self._check_fitted()
        return sum(law.n_coef for law in self.laws_.values())

    # -- diagnostics ------------------------------------------------------------------------------
    def loo_errors(self) -> pd.DataFrame:
        """Leave-one-group-out: per held-out group, the optimum (weighted geometric mean of its rows
        for log-space forms), the prediction of the law refitted without it, ``ape`` and ``log_err``."""
        self._check_fitted()
        w = np.ones(len(self.X_)) if self.w_ is None else self.w_
        return base.leave_one_group_out(self, self.X_, self.y_, w, self.groups_)

    def forward_errors(self, size: str | None = None) -> pd.DataFrame:
        """Forward-chaining held-out errors (:func:`oasl.laws.base.forward_chaining`): each group
        predicted from the groups of smaller ``size`` (default: the first feature, e.g. N)."""
        self._check_fitted()
        w = np.ones(len(self.X_)) if self.w_ is None else self.w_
        return base.forward_chaining(self, self.X_, self.y_, w, self.groups_, size or self.features[0])

    def _transform(self, y: np.ndarray) -> np.ndarray:
        return self._make(None)._transform(y)

    def _inverse(self, z: np.ndarray) -> np.ndarray:
        return self._make(None)._inverse(z)

    def loo_error(self) -> float:
        """Leave-one-group-out MAPE of ``h*`` (NaN when some group cannot be held out)."""
        e = self.loo_errors()["ape"].to_numpy()
        return float(np.mean(e)) if len(e) and np.all(np.isfinite(e)) else math.nan

    def score(self) -> dict[str, float]:
        """R^2 and log RMSE of each sub-law, leave-one-group-out MAPE and log RMSE, coefficient count."""
        loo = self.loo_errors()
        ok = len(loo) and np.all(np.isfinite(loo["ape"]))
        return {
            "r2": _nanmean([v.r2_ for v in self.laws_.values()]),
            "rmse_log": _nanmean([v.rmse_log_ for v in self.laws_.values()]),
            "loo_mape": float(loo["ape"].mean()) if ok else math.nan,
            "loo_rmse_log": float(np.sqrt(np.mean(loo["log_err"] ** 2))) if ok else math.nan,
            "n_coef": self.n_coef,
            "n": len(self.X_),
        }

    # -- presentation and serialisation ---------------------------------------------------------
    def formula(self) -> str:
        self._check_fitted()
        return "; ".join(f"{k}: {v.formula()}" if k != "*" else v.formula() for k, v in self.laws_.items())

    def __repr__(self) -> str:
        try:
            return f"OptimizerLaw({self.form}, {self.sharing}: {self.formula()})"
        except FitError:
            return (
                f"OptimizerLaw({self.form}, {self.sharing}, features={self.features}, target={self.target!r})"
            )

    def to_dict(self, data: bool = True) -> dict[str, Any]:
        d = {"kind": "optimizer_law", **self.get_params(), "features": list(self.features)}
        if hasattr(self, "laws_"):
            d["laws"] = {k: v.to_dict(data=data) for k, v in self.laws_.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OptimizerLaw:
        params = {
            k: d[k]
            for k in ("form", "features", "target", "sharing", "by", "loss", "interval", "n_boot", "seed")
            if k in d
        }
        m = cls(**params)
        if "laws" in d:
            m.laws_ = {k: PowerLaw.from_dict(v) for k, v in d["laws"].items()}
        return m


# -- selection --------------------------------------------------------------------------------------


def _candidates(candidates, forms, sharings, target: str, has_by: bool) -> list[tuple[str, str]]:
    if candidates is not None:
        out = []
        for c in candidates:
            form, sharing = (c.split("/", 1) if "/" in c else (c, "pooled")) if isinstance(c, str) else c
            if form not in FORMS or sharing not in SHARING:
                raise ConfigError(
                    f"bad candidate {c!r}: use (form, sharing) with form in {', '.join(FORMS)} "
                    f"and sharing in {', '.join(SHARING)}"
                )
            out.append((form, sharing))
    else:
        forms = forms or (["one_minus", "constant"] if target in NEAR_ONE else ["power", "constant"])
        out = []
        for form in forms:
            for sharing in sharings or SHARING:
                # A constant per optimizer is the same law whether "separate" or "shared_exponents".
                if not (form == "constant" and sharing == "separate"):
                    out.append((form, sharing))
    if not has_by:
        out = list(dict.fromkeys((f, "pooled") for f, _ in out))
    return out


def select_law(
    df: pd.DataFrame,
    target: str,
    features: Sequence[str] | None = None,
    candidates: Iterable | None = None,
    forms: Sequence[str] | None = None,
    sharings: Sequence[str] | None = None,
    by: str = "optimizer",
    groups=None,
    weights=None,
    rule: str = "one_se",
    loss: str = "l2",
    interval: str = "bayes",
    cv: str = "loo",
) -> tuple[OptimizerLaw, pd.DataFrame]:
    """Fit every candidate law of ``target`` on a table of optima and return ``(best, comparison)``.

    ``features``: default ("N", "D") when both columns are there, else ("N",). ``candidates``:
    (form, sharing) pairs or "form/sharing" strings; default every form of ``forms`` (power and
    constant, or one_minus and constant for beta1/beta2/momentum) with every mode of ``sharings``.
    Without a ``by`` column only pooled laws are tried. ``groups``/``weights``: arrays or column
    names (default: each row its own group). ``rule``: "one_se" keeps the candidate with the fewest
    coefficients whose held-out MAPE is within one standard error of the best; "min" keeps the lowest.
    ``cv``: how the held-out error is measured: "loo" (leave one group out) or "forward" (each group
    predicted from the groups of smaller first feature, e.g. smaller N, as the law will be used:
    :func:`oasl.laws.base.forward_chaining`; candidates are compared on the groups every one of them
    can predict; with fewer than 3 distinct sizes there is nothing to chain and "loo" is used).
    ``interval``: the laws' default interval method (:meth:`PowerLaw.predict_interval`).
    The comparison table has one row per candidate (form, sharing, n_coef, loo_mape — the held-out
    MAPE of the ``cv`` column's scheme —, loo_mape_se, loo_rmse_log, r2, cv, selected, error), the
    selected one first.
    """
    if rule not in ("one_se", "min"):
        raise ConfigError(f"unknown selection rule {rule!r}: use 'one_se' or 'min'")
    if cv not in ("loo", "forward"):
        raise ConfigError(f"unknown cross-validation {cv!r}: use 'loo' or 'forward'")
    if features is None:
        features = ("N", "D") if {"N", "D"} <= set(df.columns) else ("N",)
    if cv == "forward" and df[features[0]].nunique() < 3:
        cv = "loo"
    cands = _candidates(candidates, forms, sharings, target, by in df.columns)
    rows, fitted, errors = [], [], []
    for form, sharing in cands:
        law = OptimizerLaw(form, features, target, sharing, by, loss=loss, interval=interval)
        try:
            law.fit(df, weights=weights, groups=groups)
            held = law.forward_errors() if cv == "forward" else law.loo_errors()
        except FitError as exc:
            rows.append({"form": form, "sharing": sharing, "error": str(exc)})
            continue
        rows.append({"form": form, "sharing": sharing})
        errors.append((len(rows) - 1, law, held.set_index("group")))
    if cv == "forward" and errors:  # compare on the groups every candidate could extrapolate to
        finite = [e[2].index[np.isfinite(e[2]["ape"])] for e in errors]
        finite = [f for f in finite if len(f)]
        common = set.intersection(*map(set, finite)) if finite else set()
        errors = [(i, law, held.loc[held.index.isin(common)]) for i, law, held in errors]
    for i, law, held in errors:
        ape = held["ape"].to_numpy()
        ok = len(ape) > 0 and np.all(np.isfinite(ape))
        mape = float(ape.mean()) if ok else math.nan
        se = float(ape.std(ddof=1) / math.sqrt(len(ape))) if ok and len(ape) > 1 else math.nan
        rows[i].update(
            n_coef=law.n_coef,
            loo_mape=mape,
            loo_mape_se=se,
            loo_rmse_log=float(np.sqrt(np.mean(held["log_err"] ** 2))) if ok else math.nan,
            r2=_nanmean([v.r2_ for v in law.laws_.values()]),
            error="" if ok else "some group cannot be held out (too few optima per law)",
        )
        fitted.append((mape if ok else math.inf, se if math.isfinite(se) else 0.0, law.n_coef, i, law))
    if not fitted:
        reasons = "; ".join(sorted({r["error"] for r in rows if r.get("error")}))
        raise FitError(f"no law of {target} could be fitted: {reasons}")
    best_err, best_se = min((f[0], f[1]) for f in fitted)
    if math.isfinite(best_err):
        bar = best_err + (best_se if rule == "one_se" else 0.0)
        eligible = [f for f in fitted if f[0] <= bar + 1e-12]
    else:  # no candidate could be cross-validated: keep the simplest that fitted
        eligible = fitted
    chosen = min(eligible, key=lambda f: (f[2], f[0], f[3]))
    cols = ["form", "sharing", "n_coef", "loo_mape", "loo_mape_se", "loo_rmse_log", "r2", "error"]
    table = pd.DataFrame(rows).reindex(columns=cols)
    table["cv"] = cv
    table["selected"] = False
    table.loc[chosen[3], "selected"] = True
    table = table.sort_values(["selected", "loo_mape"], ascending=[False, True], na_position="last")
    return chosen[4], table.reset_index(drop=True)


def fit_law(
    table: pd.DataFrame,
    target: str,
    features: Sequence[str] = ("N", "D"),
    form: str = "power",
    sharing: str | None = None,
    by: str = "optimizer",
    weights=None,
    groups=None,
    **kwargs,
):
    """Fit one law of ``target`` on a table of optima: a plain law (``sharing=None``) or an
    :class:`OptimizerLaw` with the given sharing. ``weights``/``groups``: arrays or column names;
    other keyword arguments go to the law's constructor. Returns the fitted law."""
    if form not in FORMS:
        raise ConfigError(f"unknown law form {form!r}: use {', '.join(FORMS)}")
    if sharing is None:
        return FORMS[form](features, target, **kwargs).fit(table, weights=weights, groups=groups)
    return OptimizerLaw(form, features, target, sharing, by, **kwargs).fit(
        table, weights=weights, groups=groups
    )
