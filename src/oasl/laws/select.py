"""Optimizer-aware laws and choosing between law forms by held-out error.

Three ways to let a law depend on the optimizer O (proposal: ``h*(N, O) = C_O N^a_O``):

* ``separate``: one law per optimizer (own constant and exponents);
* ``shared_exponents``: one constant per optimizer, exponents shared;
* ``pooled``: one law for all optimizers.

:func:`select_law` fits every candidate (forms x sharing modes, plus the constant null model) and
keeps the one with the lowest leave-one-group-out error of ``h*``: more flexible laws must earn
their extra coefficients on points they did not see.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from oasl.errors import FitError
from oasl.laws.power import ConstantLaw, OneMinusPowerLaw, PowerLaw

FORMS = {"power": PowerLaw, "one_minus": OneMinusPowerLaw, "constant": ConstantLaw}
SHARING = ("separate", "shared_exponents", "pooled")


class OptimizerLaw:
    """A law of ``target`` over ``features`` that depends on the optimizer as ``sharing`` says."""

    def __init__(self, form: str = "power", features: Sequence[str] = ("N",), target: str = "lr",
                 sharing: str = "shared_exponents", by: str = "optimizer", loss: str = "l2"):
        if form not in FORMS:
            raise FitError(f"unknown law form {form!r}: use {', '.join(FORMS)}")
        if sharing not in SHARING:
            raise FitError(f"unknown sharing {sharing!r}: use {', '.join(SHARING)}")
        self.form, self.features, self.target = form, tuple(features), target
        self.sharing, self.by, self.loss = sharing, by, loss

    def _make(self, by: str | None) -> PowerLaw:
        return FORMS[self.form](self.features, self.target, loss=self.loss, by=by)

    def fit(self, df: pd.DataFrame, y=None, weights=None, groups=None) -> OptimizerLaw:
        """Fit on a table with the feature columns, ``by`` and ``target`` (or ``y``)."""
        if self.by not in df.columns:
            raise FitError(f"column {self.by!r} is missing from the optima table")
        y = df[self.target].to_numpy(float) if y is None else np.asarray(y, float)
        w = None if weights is None else np.asarray(weights, float)
        g = np.arange(len(df)) if groups is None else np.asarray(groups)
        if self.sharing == "separate":
            self.laws_ = {}
            for level, idx in df.groupby(df[self.by].astype(str)).indices.items():
                self.laws_[level] = self._make(None).fit(df.iloc[idx], y[idx], None if w is None else w[idx], g[idx])
        elif self.sharing == "shared_exponents":
            self.laws_ = {"*": self._make(self.by).fit(df, y, w, g)}
        else:
            self.laws_ = {"*": self._make(None).fit(df, y, w, g)}
        self.groups_, self.df_, self.y_, self.w_ = g, df.reset_index(drop=True), y, w
        return self

    def law_for(self, optimizer: str) -> PowerLaw:
        """The fitted law that predicts for ``optimizer``."""
        if "*" in self.laws_:
            return self.laws_["*"]
        if optimizer not in self.laws_:
            raise FitError(f"no law was fitted for {self.by} {optimizer!r} (fitted: {', '.join(self.laws_)})")
        return self.laws_[optimizer]

    def _rows(self, df: pd.DataFrame):
        for level, idx in df.groupby(df[self.by].astype(str)).indices.items():
            yield self.law_for(level), idx

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        out = np.full(len(df), np.nan)
        for law, idx in self._rows(df):
            out[idx] = law.predict(df.iloc[idx])
        return out

    def predict_interval(self, df: pd.DataFrame, level: float = 0.9, method: str = "bayes"):
        lo, hi = np.full(len(df), np.nan), np.full(len(df), np.nan)
        for law, idx in self._rows(df):
            lo[idx], hi[idx] = law.predict_interval(df.iloc[idx], level, method)
        return lo, hi

    def loo_error(self) -> float:
        """Leave-one-group-out MAPE of ``h*`` over all optimizers."""
        errs = []
        for gval in np.unique(self.groups_):
            test = self.groups_ == gval
            m = OptimizerLaw(self.form, self.features, self.target, self.sharing, self.by, self.loss)
            try:
                m.fit(self.df_[~test], self.y_[~test], None if self.w_ is None else self.w_[~test], self.groups_[~test])
                pred = m.predict(self.df_[test])
            except FitError:
                return math.nan
            errs.extend(np.abs(pred - self.y_[test]) / np.abs(self.y_[test]))
        return float(np.mean(errs)) if errs else math.nan

    def n_coef(self) -> int:
        return sum(law.n_coef for law in self.laws_.values())

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "optimizer_law", "form": self.form, "features": list(self.features), "target": self.target,
                "sharing": self.sharing, "by": self.by, "loss": self.loss,
                "laws": {k: v.to_dict() for k, v in self.laws_.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OptimizerLaw:
        m = cls(d["form"], d["features"], d["target"], d["sharing"], d.get("by", "optimizer"), d.get("loss", "l2"))
        m.laws_ = {k: PowerLaw.from_dict(v) for k, v in d["laws"].items()}
        return m

    def __repr__(self) -> str:
        return f"OptimizerLaw({self.form}, {self.sharing}: " + "; ".join(
            f"{k}: {v.formula()}" for k, v in self.laws_.items()) + ")"


def select_law(df: pd.DataFrame, target: str, features: Sequence[str] = ("N",), forms: Sequence[str] | None = None,
               sharings: Sequence[str] = SHARING, by: str = "optimizer", groups=None, weights=None,
               ) -> tuple[OptimizerLaw, pd.DataFrame]:
    """Fit every candidate law of ``target`` and return the best by leave-one-group-out MAPE, with the
    comparison table (form, sharing, coefficients, R^2 of each sub-law, LOGO MAPE)."""
    if forms is None:
        forms = ["one_minus", "constant"] if target in ("beta1", "beta2", "momentum") else ["power", "constant"]
    rows, fitted = [], []
    for form in forms:
        for sharing in sharings:
            law = OptimizerLaw(form, features, target, sharing, by)
            try:
                law.fit(df, weights=weights, groups=groups)
            except FitError as exc:
                rows.append({"form": form, "sharing": sharing, "loo_mape": math.nan, "error": str(exc)})
                continue
            err = law.loo_error()
            rows.append({"form": form, "sharing": sharing, "n_coef": law.n_coef(), "loo_mape": err,
                         "r2": np.nanmean([v.r2_ for v in law.laws_.values()]), "error": ""})
            fitted.append((err if math.isfinite(err) else math.inf, law.n_coef(), law))
    if not fitted:
        reasons = "; ".join(sorted({r["error"] for r in rows if r.get("error")}))
        raise FitError(f"no law of {target} could be fitted: {reasons}")
    fitted.sort(key=lambda t: (t[0], t[1]))
    return fitted[0][2], pd.DataFrame(rows).sort_values("loo_mape").reset_index(drop=True)
