"""From a runs table to fitted laws: optima of each swept HP, then the best law of each.

``fit_laws`` is what ``oasl fit`` calls: for every swept hyperparameter it locates the optimum per
(optimizer, N, D) — profiling out the other swept HPs by keeping, for each (optimizer, N, D), the
setting of the others whose best loss is lowest — and chooses the law form and optimizer sharing by
leave-one-group-out error (:func:`oasl.laws.select_law`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from oasl.errors import FitError
from oasl.laws.loss import LossLaw
from oasl.laws.select import select_law

HP_COLUMNS = ("lr", "batch_tokens", "beta1", "beta2", "momentum", "weight_decay", "warmup_frac")
BASE_GROUP = ("optimizer", "n_params", "tokens")


@dataclass
class FitReport:
    """Fitted laws by target HP, the optima they were fitted on, and each selection table."""

    laws: dict[str, object]
    optima: dict[str, pd.DataFrame]
    selection: dict[str, pd.DataFrame]
    features: tuple[str, ...]
    loss_law: LossLaw | None = None
    skipped: dict[str, str] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """One row per (target, optimizer): formula, R^2, RMSE (log), LOGO MAPE, fitted range."""
        rows = []
        for target, law in self.laws.items():
            sel = self.selection[target].iloc[0]
            for key, sub in law.laws_.items():
                rows.append(
                    {
                        "target": target,
                        "optimizer": key,
                        "form": law.form,
                        "sharing": law.sharing,
                        "formula": sub.formula(),
                        "r2": sub.r2_,
                        "rmse_log": sub.rmse_log_,
                        "loo_mape": sel["loo_mape"],
                        "n": sub.n_,
                        "range": ", ".join(f"{k} {lo:.3g}-{hi:.3g}" for k, (lo, hi) in sub.range_.items()),
                    }
                )
        return pd.DataFrame(rows)


def swept_hps(df: pd.DataFrame) -> list[str]:
    """HP columns that take more than one value within some optimizer."""
    out = []
    for h in HP_COLUMNS:
        if h in df and df.groupby("optimizer")[h].nunique(dropna=True).max() > 1:
            out.append(h)
    return out


def choose_features(optima: pd.DataFrame) -> tuple[str, ...]:
    """("N", "D") when D varies independently of N among the optima, else ("N",)."""
    n, d = np.log(optima["n_params"].astype(float)), np.log(optima["tokens"].astype(float))
    if d.nunique() > 1 and n.nunique() > 1:
        A = np.column_stack([np.ones(len(n)), n, d])
        if np.linalg.matrix_rank(A) == 3:
            return ("N", "D")
    return ("N",)


def profile_optima(df: pd.DataFrame, over: str, loss: str = "final_val_loss") -> pd.DataFrame:
    """Optimum of ``over`` per (optimizer, N, D), the other swept HPs set to their best setting."""
    from oasl.optima import locate_optima

    others = [h for h in swept_hps(df) if h != over]
    opt = locate_optima(df, over=over, group_by=[*BASE_GROUP, *others], loss=loss)
    opt = opt[np.isfinite(opt["opt"].astype(float)) & ~opt["too_few"].astype(bool)]
    if opt.empty:
        return opt
    best = opt.loc[opt.groupby(list(BASE_GROUP))["best_loss"].idxmin()].reset_index(drop=True)
    return drop_bounds(best)


def drop_bounds(optima: pd.DataFrame, min_points: int = 3) -> pd.DataFrame:
    """Leave out optima at a grid edge (bounds, not estimates) where each optimizer keeps at least
    ``min_points`` others; otherwise keep them (the fit then says so through its ``note`` column)."""
    if "at_edge" not in optima:
        return optima
    keep = []
    for _, sub in optima.groupby("optimizer"):
        inner = sub[sub["at_edge"].fillna("") == ""]
        keep.append(inner if len(inner) >= min_points else sub)
    return pd.concat(keep).reset_index(drop=True) if keep else optima


def fit_laws(
    df: pd.DataFrame,
    hps: Sequence[str] | None = None,
    features: Sequence[str] | None = None,
    loss: str = "final_val_loss",
    forms: Sequence[str] | None = None,
    sharings: Sequence[str] | None = None,
) -> FitReport:
    """Fit a law for each swept HP (default: all swept among lr, batch_tokens, betas, momentum, weight
    decay, warmup) of a runs table; also the loss law L(N, D) when N and D vary enough. ``forms`` and
    ``sharings`` restrict the candidates of :func:`select_law` (default: all)."""
    for col in (*BASE_GROUP, loss):
        if col not in df:
            raise FitError(
                f"the runs table has no column {col}: is it an oasl store or a CSV with that column?"
            )
    hps = list(hps) if hps is not None else swept_hps(df)
    if not hps:
        raise FitError("no hyperparameter takes more than one value in these runs: sweep at least lr")
    laws, optima, selection, skipped = {}, {}, {}, {}
    feats: tuple[str, ...] = tuple(features) if features else ()
    for h in hps:
        if h not in df:
            raise FitError(f"no column {h} in the runs table")
        opt = profile_optima(df, h, loss)
        optima[h] = opt
        if opt.empty:
            skipped[h] = "no group has 3 or more finite points"
            continue
        f = feats or choose_features(opt)
        table = opt.rename(columns={"n_params": "N", "tokens": "D"}).assign(**{h: opt["opt"].astype(float)})
        table["C"] = 6.0 * table["N"] * table["D"]
        try:
            law, sel = select_law(table, h, f, forms=forms, **({"sharings": sharings} if sharings else {}))
        except FitError as exc:
            skipped[h] = str(exc)
            continue
        laws[h], selection[h] = law, sel
        feats = feats or f
    loss_law = None
    fin = df[np.isfinite(df[loss].astype(float))]
    if fin["n_params"].nunique() >= 3 and fin["tokens"].nunique() >= 3 and len(fin) >= 6:
        best = fin.loc[fin.groupby(["n_params", "tokens"])[loss].idxmin()]
        try:
            loss_law = LossLaw().fit(best["n_params"], best["tokens"], best[loss])
        except FitError as exc:
            skipped["loss_law"] = str(exc)
    if not laws:
        raise FitError("no law could be fitted: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    return FitReport(laws, optima, selection, feats or ("N",), loss_law, skipped)
