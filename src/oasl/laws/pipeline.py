"""From a runs table to fitted laws: optima of each swept HP, then the best law of each.

``fit_laws`` is what ``oasl fit`` calls. When both lr and batch size are swept it locates their
optimum jointly per (optimizer, N, D), on the lr x batch loss surface (:func:`oasl.optima.locate_joint_optima`);
every other swept HP is located alone, profiling out the others by keeping, for each (optimizer, N, D),
the setting whose best loss is lowest. Each law is fitted with precision weights (the inverse variance of
each optimum's bootstrap interval in log space), which held-out tests on Step Law's released sweep support
(benchmarks/laws_steplaw.py: variant located-w beside located), and its form and optimizer sharing are
chosen by held-out error (:func:`oasl.laws.select_law`) measured the way the law is used: forward
chaining, each size predicted from the smaller ones (``cv="forward"``; leave-one-group-out below 3
sizes). Leave-one-group-out error judges a law by interpolation and by extrapolation towards the
small end too, where embedding-dominated models bend lr*(N); on the CPU ladder of docs/ladders.md it
chose a constant law (+12.9% regret at 9x N, no better than naive transfer) that forward chaining
rejects.

Intervals are jackknife+ prediction intervals (Barber et al. 2021): the law refitted without each
(N, D) group, widened by that group's held-out residual. They are about the optimum of a new group,
which scatters about the law more than its bootstrap interval or the law's posterior say (located
optima are uneven and heavy-tailed: on Step Law's released sweep two of 15 groups sit 0.3 log units
from any smooth law). Chosen on evidence inside the training groups: nested leave-one-group-out over
the training groups of each leave-one-N-out fold of that sweep, the 90% Bayesian predictive interval
covered 84% of the held-out groups' optima, jackknife+ 91% (benchmarks/laws_steplaw_cli.py). With too
few groups for a finite jackknife+ interval (fewer than 9 at 90%) the Bayesian interval is used.
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
JOINT = ("lr", "batch_tokens")  # located together when both are swept
# floor of an optimum's log-space sd for its weight: a CI narrower than this (a grid step of ~1.4x has
# log width 0.35) says more about the bootstrap than about the optimum
MIN_SD_LOG = 0.02


@dataclass
class FitReport:
    """Fitted laws by target HP, the optima they were fitted on, and each selection table."""

    laws: dict[str, object]
    optima: dict[str, pd.DataFrame]
    selection: dict[str, pd.DataFrame]
    features: tuple[str, ...]
    loss_law: LossLaw | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    #: target -> what the exponent prior did (:func:`oasl.laws.prior.with_exponent_prior`)
    priors: dict[str, dict] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """One row per (target, optimizer): formula, R^2, RMSE (log), held-out MAPE
        (``loo_mape``: of the selection's scheme, forward chaining by default), fitted range."""
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


def profile_optima(
    df: pd.DataFrame, over: str, loss: str = "final_val_loss", n_boot: int = 200
) -> pd.DataFrame:
    """Optimum of ``over`` per (optimizer, N, D), the other swept HPs set to their best setting."""
    from oasl.optima import locate_optima

    others = [h for h in swept_hps(df) if h != over]
    opt = locate_optima(df, over=over, group_by=[*BASE_GROUP, *others], loss=loss, n_boot=n_boot)
    opt = opt[np.isfinite(opt["opt"].astype(float)) & ~opt["too_few"].astype(bool)]
    if opt.empty:
        return opt
    best = opt.loc[opt.groupby(list(BASE_GROUP))["best_loss"].idxmin()].reset_index(drop=True)
    return drop_bounds(best)


def joint_profile_optima(
    df: pd.DataFrame, loss: str = "final_val_loss", n_boot: int = 200
) -> dict[str, pd.DataFrame]:
    """Joint optimum of lr and batch_tokens per (optimizer, N, D) (other swept HPs at their best
    setting), as one table per HP in :func:`profile_optima`'s layout (``opt``, ``ci_low``,
    ``ci_high``, ``at_edge``, ...). Groups whose surface fit is refused or too small are left out."""
    from oasl.optima import locate_joint_optima

    others = [h for h in swept_hps(df) if h not in JOINT]
    opt = locate_joint_optima(df, over=JOINT, group_by=[*BASE_GROUP, *others], loss=loss, n_boot=n_boot)
    ok = ~opt["too_few"].astype(bool)
    for h in JOINT:
        ok &= np.isfinite(opt[f"opt_{h}"].astype(float))
    opt = opt[ok]
    out = {}
    for h in JOINT:
        if opt.empty:
            out[h] = opt
            continue
        one = opt.assign(
            opt=opt[f"opt_{h}"],
            ci_low=opt[f"ci_low_{h}"],
            ci_high=opt[f"ci_high_{h}"],
            at_edge=opt[f"at_edge_{h}"],
            partner=[f"{JOINT[1 - JOINT.index(h)]}={v:.4g}" for v in opt[f"opt_{JOINT[1 - JOINT.index(h)]}"]],
        )
        best = one.loc[one.groupby(list(BASE_GROUP))["best_loss"].idxmin()].reset_index(drop=True)
        out[h] = drop_bounds(best)
    return out


def law_table(optima: pd.DataFrame, h: str, weighted: bool = True) -> pd.DataFrame:
    """The table :func:`select_law` fits a law of ``h`` on: the located optima with columns N, D, C
    (= 6 N D), ``h`` (the optimum) and ``weight`` (:func:`precision_weights`, or 1 when not ``weighted``)."""
    table = optima.rename(columns={"n_params": "N", "tokens": "D"}).assign(**{h: optima["opt"].astype(float)})
    table["C"] = 6.0 * table["N"] * table["D"]
    table["weight"] = precision_weights(optima) if weighted else 1.0
    return table


def precision_weights(optima: pd.DataFrame, level: float = 0.9) -> np.ndarray:
    """Weight of each optimum: 1 / sd^2 of its log value, the sd read off its ``level`` bootstrap
    interval (``ci_low``/``ci_high``) and floored at ``MIN_SD_LOG``; groups without a finite interval get
    the median weight of the others (1 when none has one)."""
    from scipy.stats import norm

    lo, hi = optima["ci_low"].astype(float).to_numpy(), optima["ci_high"].astype(float).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        sd = (np.log(hi) - np.log(lo)) / (2 * norm.ppf(0.5 + level / 2))
    w = 1.0 / np.maximum(sd, MIN_SD_LOG) ** 2
    good = np.isfinite(w) & (w > 0)
    fill = float(np.median(w[good])) if good.any() else 1.0
    return np.where(good, w, fill)


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


def _positive_rows(df: pd.DataFrame, h: str, notes: dict[str, str]) -> pd.DataFrame:
    """The runs whose ``h`` can be taken in log space (finite, > 0). Runs with ``h`` = 0 (e.g. warmup 0,
    `oasl train`'s default) are left out of locating ``h`` alone, and ``notes[h]`` says which."""
    x = pd.to_numeric(df[h], errors="coerce")
    zero = x.notna() & (x <= 0)
    if not zero.any():
        return df
    keys = df.loc[zero, "key"].astype(str).tolist() if "key" in df else []
    named = f" (run {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''})" if keys else ""
    notes[h] = (
        f"left out {int(zero.sum())} run(s) with {h} <= 0{named} from locating {h}: its law is fitted in "
        "log space"
    )
    return df[~zero]


def fit_laws(
    df: pd.DataFrame,
    hps: Sequence[str] | None = None,
    features: Sequence[str] | None = None,
    loss: str = "final_val_loss",
    forms: Sequence[str] | None = None,
    sharings: Sequence[str] | None = None,
    joint: bool = True,
    weighted: bool = True,
    n_boot: int = 200,
    interval: str = "jackknife+",
    cv: str = "forward",
    exponent_prior: bool = True,
) -> FitReport:
    """Fit a law for each swept HP (default: all swept among lr, batch_tokens, betas, momentum, weight
    decay, warmup) of a runs table; also the loss law L(N, D) when N and D vary enough.

    ``joint``: locate lr and batch_tokens together when both are fitted (module docstring);
    ``weighted``: precision weights from each optimum's bootstrap interval (:func:`precision_weights`);
    ``n_boot``: bootstrap refits per group for those intervals; ``interval``: how the laws' prediction
    intervals are computed (module docstring; :meth:`oasl.laws.PowerLaw.predict_interval`); ``cv``: how
    :func:`select_law` measures held-out error ("forward" or "loo"). ``forms`` and ``sharings`` restrict the
    candidates of :func:`select_law` (default: all). A loss law whose E sits at its bound is kept, with a
    line in ``skipped["loss_law"]`` saying so (its E is then not an estimate). ``exponent_prior``: the lr law
    of a standard-parametrisation ladder is combined with the prior on its N exponent
    (:mod:`oasl.laws.prior`; a law selected constant in N is refitted as a power law first); what it
    did is in the report's ``priors``."""
    for col in (*BASE_GROUP, loss):
        if col not in df:
            raise FitError(
                f"the runs table has no column {col}: is it an oasl store or a CSV with that column?"
            )
    hps = list(hps) if hps is not None else swept_hps(df)
    if not hps:
        raise FitError("no hyperparameter takes more than one value in these runs: sweep at least lr")
    for h in hps:
        if h not in df:
            raise FitError(f"no column {h} in the runs table")
    laws, optima, selection, skipped, priors = {}, {}, {}, {}, {}
    if joint and set(JOINT) <= set(hps) and set(JOINT) <= set(swept_hps(df)):
        optima.update(joint_profile_optima(df, loss, n_boot))
    feats: tuple[str, ...] = tuple(features) if features else ()
    for h in hps:
        opt = optima.get(h)
        if opt is not None and opt.empty:  # the joint surface was refused everywhere: locate h alone
            opt = None
        try:
            opt = opt if opt is not None else profile_optima(_positive_rows(df, h, skipped), h, loss, n_boot)
        except FitError as exc:  # this HP cannot be located; the others may still be fitted
            skipped[h] = "; ".join(filter(None, (skipped.get(h), str(exc))))
            optima[h] = pd.DataFrame()
            continue
        optima[h] = opt
        if opt.empty:
            most = int(df.groupby(list(BASE_GROUP))[h].nunique().max()) if h in df and len(df) else 0
            why = (
                f"at most {most} distinct {h} value(s) per (optimizer, N, D) group, and locating an optimum "
                f"needs 3 or more finite points: add {h} values"
            )
            skipped[h] = "; ".join(filter(None, (skipped.get(h), why)))
            continue
        f = feats or choose_features(opt)
        table = law_table(opt, h, weighted)
        try:
            law, sel = select_law(
                table,
                h,
                f,
                forms=forms,
                weights="weight",
                interval=interval,
                cv=cv,
                **({"sharings": sharings} if sharings else {}),
            )
        except FitError as exc:
            skipped[h] = "; ".join(filter(None, (skipped.get(h), str(exc))))
            continue
        if exponent_prior and h == "lr" and "N" in f and not _is_mup(df):
            from oasl.laws.prior import with_exponent_prior

            law, priors[h] = with_exponent_prior(law, table)
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
        else:
            for w in loss_law.warnings_:
                skipped["loss_law"] = w
    if not laws:
        raise FitError("no law could be fitted: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    return FitReport(laws, optima, selection, feats or ("N",), loss_law, skipped, priors)


def _is_mup(df: pd.DataFrame) -> bool:
    """Whether the runs are of a muP ladder (the lr is then meant not to move with width)."""
    if "parametrization" not in df:
        return False
    return bool((df["parametrization"].astype(str) == "mup").any())
