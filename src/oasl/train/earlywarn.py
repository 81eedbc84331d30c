"""Divergence early warning: from the first part of a run, predict whether it will diverge or end far
from its group's best, and stop it early.

Features come only from the first ``frac`` of a run's steps (:func:`curve_features`): loss spikes,
the slope and the drop of the log training loss, growth and spikes of the gradient norm, the
update-to-weight ratio and non-finite values. :class:`DivergencePredictor` is an L2-regularised
logistic regression on standardised features, trained on the finished runs of a store
(:func:`oasl.workflows.training_table`, labels from :func:`label_runs`) and scored on held-out groups
(:func:`cross_validate`). :class:`EarlyWarnStopper` is the ``should_stop`` callback that sweeps use.

Opt-Laws (Xie et al. 2024, arXiv 2409.04777, Sec. 5) predict divergence from early training
statistics with F1 = 0.92; oasl's features and classifier are its own (docs/deviations.md).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oasl.errors import ConfigError, DataError, FitError

FEATURES = (
    "loss_spike",
    "loss_slope",
    "loss_drop",
    "loss_end",
    "loss_vs_group",
    "gnorm_growth",
    "gnorm_spike",
    "update_ratio",
    "nonfinite",
)
FEATURE_DOCS = {
    "loss_spike": "largest rise of log train loss above its running minimum (second half of the window)",
    "loss_slope": "slope of log train loss per window length over the second half of the window",
    "loss_drop": "log train loss at the start minus at the end of the window (progress made)",
    "loss_end": "mean log train loss over the last 10% of the window's steps (comparable on one corpus and tokenizer)",
    "loss_vs_group": "loss_end minus the lowest loss_end of the other runs of its group (NaN, imputed, when none)",
    "gnorm_growth": "log of the median gradient norm, last quarter over first quarter of the window",
    "gnorm_spike": "log of the largest gradient norm over the window's median",
    "update_ratio": "log of the last update-to-weight ratio logged in the window (imputed when absent)",
    "nonfinite": "fraction of steps in the window with a non-finite loss or gradient norm",
}
# A value standing in for infinity in log features, so a blow-up is large but finite.
_BIG = 20.0


def _log(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(np.asarray(x, dtype=float))
    return np.where(np.isfinite(out), out, _BIG)


def window_end(total_steps: int, frac: float) -> int:
    """Last step (counted from 1) that the early warning may read."""
    return max(4, int(frac * total_steps))


def curve_features(
    curve: pd.DataFrame | Sequence[dict], total_steps: int, frac: float = 0.2, reference: float | None = None
) -> dict[str, float]:
    """Features (see ``FEATURE_DOCS``) of the first ``frac`` of a run of ``total_steps`` steps.

    ``curve``: the run's per-step records (columns step (from 1), train_loss, grad_norm and, at
    evaluation steps, update_ratio), as in :attr:`oasl.train.RunResult.curve` or
    :meth:`oasl.store.Store.curve`. Only steps <= ``frac * total_steps`` are read. A run that ended
    inside the window (diverged) counts its missing steps as non-finite. ``reference``: the lowest
    ``loss_end`` among the other runs of the group (see :func:`oasl.sweep.execute.group_reference`), None when unknown."""
    if not 0 < frac <= 1:
        raise ConfigError(f"early-warning window frac must lie in (0, 1], got {frac}")
    if total_steps < 1:
        raise ConfigError(f"total_steps must be positive, got {total_steps}")
    df = pd.DataFrame(curve)
    end = window_end(total_steps, frac)
    if df.empty or "step" not in df:
        return {**dict.fromkeys(FEATURES, 0.0), "nonfinite": 1.0, "loss_vs_group": math.nan}
    df = df[df["step"] <= end].sort_values("step")
    loss = pd.to_numeric(df.get("train_loss"), errors="coerce").to_numpy(float)
    gn = pd.to_numeric(df.get("grad_norm", pd.Series(np.nan, index=df.index)), errors="coerce").to_numpy(
        float
    )
    bad = ~np.isfinite(loss) | ~np.isfinite(gn)
    missing = max(0, end - len(df))  # steps never reached: the run stopped (diverged) inside the window
    nonfinite = (bad.sum() + missing) / end
    ok = ~bad
    f = dict.fromkeys(FEATURES, 0.0)
    f["nonfinite"] = float(nonfinite)
    if ok.sum() < 4:
        return {
            **f,
            "loss_spike": _BIG,
            "loss_slope": _BIG,
            "loss_end": _BIG,
            "gnorm_growth": _BIG,
            "gnorm_spike": _BIG,
            "loss_vs_group": _BIG,
        }
    ll, g, steps = _log(loss[ok]), gn[ok], df["step"].to_numpy(float)[ok]
    half = len(ll) // 2
    run_min = np.minimum.accumulate(ll)
    f["loss_spike"] = float(np.max(ll[half:] - run_min[half:]))
    x = steps[half:] / end
    f["loss_slope"] = float(np.polyfit(x, ll[half:], 1)[0]) if np.ptp(x) > 0 else 0.0
    k = max(1, len(ll) // 10)
    f["loss_drop"] = float(np.mean(ll[:k]) - np.mean(ll[-k:]))
    f["loss_end"] = float(np.mean(ll[steps > 0.9 * end])) if np.any(steps > 0.9 * end) else _BIG
    f["loss_vs_group"] = (
        f["loss_end"] - reference if reference is not None and math.isfinite(reference) else math.nan
    )
    q = max(1, len(g) // 4)
    f["gnorm_growth"] = float(_log(np.median(g[-q:]) + 1e-12) - _log(np.median(g[:q]) + 1e-12))
    f["gnorm_spike"] = float(_log(np.max(g) + 1e-12) - _log(np.median(g) + 1e-12))
    if "update_ratio" in df:
        ur = pd.to_numeric(df["update_ratio"], errors="coerce").to_numpy(float)
        ur = ur[np.isfinite(ur) & (ur > 0)]
        f["update_ratio"] = float(np.log(ur[-1])) if len(ur) else math.nan
    else:
        f["update_ratio"] = math.nan
    return f


def label_runs(frame: pd.DataFrame, far: float = 0.05) -> pd.Series:
    """1 for a run that diverged or ended more than ``far`` (relative) above its group's best final
    validation loss, 0 otherwise, NaN for runs that carry no verdict (stopped by pruning or early
    warning, failed, running). ``frame`` needs columns status, final_val_loss and group."""
    if far <= 0:
        raise ConfigError(f"`far` is a relative loss gap and must be positive, got {far}")
    loss = pd.to_numeric(frame["final_val_loss"], errors="coerce")
    done = frame["status"] == "done"
    best = loss.where(done).groupby(frame["group"]).transform("min")
    lab = pd.Series(np.nan, index=frame.index)
    lab[done] = (loss[done] > best[done] * (1 + far)).astype(float)
    lab[frame["status"] == "diverged"] = 1.0
    return lab


class DivergencePredictor:
    """Logistic regression (L2 penalty ``l2`` on standardised features, classes weighted to balance)
    of "diverges or ends more than ``far`` above the group's best" on features of the first ``frac``
    of a run. Fitted attributes: ``mean_``, ``scale_``, ``coef_``, ``intercept_``, ``impute_``."""

    def __init__(self, frac: float = 0.2, threshold: float = 0.5, far: float = 0.05, l2: float = 1.0):
        self.frac, self.threshold, self.far, self.l2 = frac, threshold, far, l2

    def _matrix(self, table: pd.DataFrame, impute: bool = True) -> np.ndarray:
        """The feature matrix, clipped to +-_BIG; missing values imputed with ``impute_`` when asked."""
        missing = [c for c in FEATURES if c not in table]
        if missing:
            raise DataError(f"feature table lacks {', '.join(missing)}: build it with curve_features()")
        X = table[list(FEATURES)].to_numpy(float)
        X = np.where(np.isfinite(X), X, np.nan)
        if impute:
            X = np.where(np.isnan(X), self.impute_, X)
        return np.clip(X, -_BIG, _BIG)

    def fit(self, table: pd.DataFrame) -> DivergencePredictor:
        """Fit on a feature table with a ``label`` column (from :func:`oasl.workflows.training_table`). Returns self."""
        from scipy.optimize import minimize

        if "label" not in table or len(table) < 6:
            raise FitError(
                f"{len(table)} labelled runs are too few to train the early warning: sweep at least 6 runs "
                "including some that diverge or end far from their group's best (high learning rates)"
            )
        y = table["label"].to_numpy(float)
        if y.min() == y.max():
            kind = "diverging or far-from-best" if y.min() == 0 else "healthy"
            raise FitError(f"every training run has the same label: add {kind} runs (widen the lr grid)")
        X = self._matrix(table, impute=False)
        with warnings.catch_warnings():  # a feature never observed (e.g. no evaluation in the window)
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(X, axis=0)
        self.impute_ = np.where(np.isnan(med), 0.0, med)
        X = np.where(np.isnan(X), self.impute_, X)
        self.mean_ = X.mean(0)
        self.scale_ = np.where(X.std(0) > 1e-9, X.std(0), 1.0)
        Z = (X - self.mean_) / self.scale_
        w = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))  # balanced class weights

        def nll(theta):
            z = Z @ theta[:-1] + theta[-1]
            p = 1 / (1 + np.exp(-z))
            loss = np.sum(w * (np.logaddexp(0, z) - y * z)) + 0.5 * self.l2 * np.sum(theta[:-1] ** 2)
            grad = np.r_[Z.T @ (w * (p - y)) + self.l2 * theta[:-1], np.sum(w * (p - y))]
            return loss, grad

        res = minimize(nll, np.zeros(Z.shape[1] + 1), jac=True, method="L-BFGS-B")
        self.coef_, self.intercept_ = res.x[:-1], float(res.x[-1])
        self.n_train_, self.n_pos_ = len(y), int(y.sum())
        return self

    def _check(self) -> None:
        if not hasattr(self, "coef_"):
            raise FitError("this DivergencePredictor is not fitted: call fit() or load() first")

    def predict_proba(self, table: pd.DataFrame | dict) -> np.ndarray:
        """Probability of the bad outcome for each row of a feature table (or one feature dict)."""
        self._check()
        t = pd.DataFrame([table]) if isinstance(table, dict) else table
        Z = (self._matrix(t) - self.mean_) / self.scale_
        return 1 / (1 + np.exp(-(Z @ self.coef_ + self.intercept_)))

    def predict(self, table) -> np.ndarray:
        """1 where :meth:`predict_proba` reaches ``threshold``."""
        return (self.predict_proba(table) >= self.threshold).astype(int)

    def evaluate(self, table: pd.DataFrame) -> dict[str, float]:
        """Precision, recall and F1 of :meth:`predict` against ``table['label']``."""
        return scores(table["label"].to_numpy(int), self.predict(table))

    def to_dict(self) -> dict[str, Any]:
        self._check()
        return {
            "kind": "oasl-early-warning",
            "frac": self.frac,
            "threshold": self.threshold,
            "far": self.far,
            "l2": self.l2,
            "features": list(FEATURES),
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
            "coef": self.coef_.tolist(),
            "intercept": self.intercept_,
            "impute": self.impute_.tolist(),
            "n_train": self.n_train_,
            "n_pos": self.n_pos_,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DivergencePredictor:
        if d.get("kind") != "oasl-early-warning" or list(d.get("features", [])) != list(FEATURES):
            raise ConfigError("not an early-warning predictor written by this version of oasl")
        p = cls(d["frac"], d["threshold"], d["far"], d["l2"])
        p.mean_, p.scale_ = np.asarray(d["mean"]), np.asarray(d["scale"])
        p.coef_, p.intercept_, p.impute_ = (
            np.asarray(d["coef"]),
            float(d["intercept"]),
            np.asarray(d["impute"]),
        )
        p.n_train_, p.n_pos_ = d["n_train"], d["n_pos"]
        return p

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_dict(), indent=1))
        return p

    @classmethod
    def load(cls, path: str | Path) -> DivergencePredictor:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(
                f"early-warning predictor {p} does not exist: write one with `oasl earlywarn fit`"
            )
        try:
            return cls.from_dict(json.loads(p.read_text()))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigError(f"{p} is not an early-warning predictor file ({exc})") from None


def scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Precision, recall, F1 (NaN where undefined), n and n_pos of binary predictions."""
    y, pred = np.asarray(y, int), np.asarray(pred, int)
    tp, fp, fn = (
        int(((pred == 1) & (y == 1)).sum()),
        int(((pred == 1) & (y == 0)).sum()),
        int(((pred == 0) & (y == 1)).sum()),
    )
    prec = tp / (tp + fp) if tp + fp else math.nan
    rec = tp / (tp + fn) if tp + fn else math.nan
    f1 = 2 * prec * rec / (prec + rec) if tp else (0.0 if tp + fp + fn else math.nan)
    return {"precision": prec, "recall": rec, "f1": f1, "n": int(len(y)), "n_pos": int(y.sum())}


def cross_validate(table: pd.DataFrame, folds: int = 5, seed: int = 0, **predictor_kwargs) -> dict[str, Any]:
    """Held-out precision/recall/F1: groups (same shape, optimizer, budget; different HPs) are split
    into ``folds`` folds, each scored by a predictor fitted on the others; predictions are pooled.
    Also scores the runs still alive at the end of the window (``alive``: no non-finite step in it),
    where a warning is a forecast rather than a report. Returns a dict with ``all``, ``alive`` and
    ``predictions`` (the table with a ``p`` and ``pred`` column)."""
    groups = np.array(sorted(table["group"].unique()))
    if len(groups) < 2:
        raise FitError("held-out scores need runs of at least 2 groups (shapes or optimizers)")
    rng = np.random.default_rng(seed)
    rng.shuffle(groups)
    k = min(folds, len(groups))
    out = table.copy()
    out["p"] = np.nan
    for i in range(k):
        held = set(groups[i::k])
        test = out["group"].isin(held)
        train = out[~test]
        if train["label"].nunique() < 2:
            continue
        pred = DivergencePredictor(**predictor_kwargs).fit(train)
        out.loc[test, "p"] = pred.predict_proba(out[test])
    out = out[out["p"].notna()]
    out["pred"] = (out["p"] >= DivergencePredictor(**predictor_kwargs).threshold).astype(int)
    alive = out[out["nonfinite"] == 0]
    return {
        "all": scores(out["label"], out["pred"]),
        "alive": scores(alive["label"], alive["pred"]),
        "predictions": out,
    }


class EarlyWarnStopper:
    """``should_stop`` callback for :func:`oasl.train.train`: at the first evaluation at or after the
    predictor's window (``frac`` of the run's steps) it scores the curve so far and stops the run
    when the predictor flags it. Later evaluations are left alone. ``reference(end_step)`` returns the
    group's reference window loss (:func:`oasl.sweep.execute.group_reference`) or None."""

    def __init__(self, total_steps: int, predictor: DivergencePredictor, reference=None):
        self.total_steps, self.predictor, self.reference = total_steps, predictor, reference
        self.due = window_end(total_steps, predictor.frac)
        self.done = False

    def __call__(self, step: int, val_loss: float, curve) -> str | None:
        if self.done or step < self.due:
            return None
        self.done = True
        p = float(
            self.predictor.predict_proba(curve_features(curve, self.total_steps, self.predictor.frac))[0]
        )
        if p >= self.predictor.threshold:
            return (
                f"early warning at step {step}/{self.total_steps}: p(diverges or ends "
                f">{self.predictor.far:.0%} above the group's best) = {p:.2f}"
            )
        return None
