"""Which zero-run point a ladder should recommend: the law's centre or its risk-adjusted point, decided by
the ladder's own runs, out of sample, before any target run (issue 25, item 5).

The risk-adjusted point (:func:`oasl.validate.refine.zero_run` with the ladder's asymmetric valley,
:mod:`oasl.laws.risk`) minimises the expected regret *if* the law's interval and the valley's shape are
right. Whether they are is a question the ladder can answer by holding out its largest rung: fit the lr
law on the smaller rungs exactly as ``oasl fit`` does (prior on the exponent included), predict the
largest rung's optimum (centre and risk-adjusted, with the valley measured on the smaller rungs), and
read both off the largest rung's measured seed-mean valley. The criterion is the one Marin's default was
set by (docs/marin.md), fixed before either was run: the risk-adjusted point is preferred only if its
mean regret over the optimizers is lower than the centre's by more than :data:`TIE_PCT` % of the loss.

The same held-out rung settles the refinement's answer (:mod:`oasl.validate.refine`): with k = 2, 3 and 4
runs replayed on the held-out rung's valley of each sweep seed in turn (that seed's runs, interpolated in
log lr; a diverged run reads as twice the valley's worst loss, as the validation's replay does), the
posterior mean and the risk-adjusted answer are each read off the seed-mean valley, and the regrets are
averaged over the seeds (each seed is one draw of the runs' noise). Same criterion and margin: the
risk-adjusted answer only if its mean regret over optimizers and budgets is lower by more than
:data:`TIE_PCT` % (``refine_prefer``). A single run cannot move the answer, so k = 1 follows the zero-run
verdict (:func:`uses_risk`).

Reading a point off a valley (:func:`read_off`): between two tried lrs the seed-mean loss is interpolated
linearly in log lr; at or beyond a diverged lr (seen from the best) the run is lost and costs
:data:`oasl.laws.risk.DIVERGE_COST` nats, the rule's own cost model; beyond the tried range with no
divergence, the nearest tried edge's loss (a lower bound).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from oasl.errors import FitError

TIE_PCT = 0.01  # % of the loss: the same margin as Marin's check (benchmarks/laws_marin.py)
REFINE_KS = (2, 3, 4)  # the budgets whose answer the check compares


def uses_risk(check: dict[str, Any], k: int) -> bool:
    """Whether a refinement of ``k`` runs risk-adjusts, by the ladder's check (:func:`risk_check`): its
    zero-run verdict for k <= 1 (the one run is placed where the answer would be), its refinement verdict
    for k >= 2."""
    key = "prefer" if k <= 1 else "refine_prefer"
    return check.get(key) == "risk"


def seed_replay(runs: pd.DataFrame, seed=None):
    """``train(lrs) -> losses`` replaying one seed's runs (``seed``; the first when None) of one size and
    optimizer as the validation's replay does (:func:`oasl.validate.stats.seed0_curve`); None with fewer
    than 2 finite runs."""
    from oasl.validate.stats import seed0_curve

    if "seed" in runs:
        r = runs[runs["seed"] == (runs["seed"].min() if seed is None else seed)]
    else:
        r = runs
    loss = pd.to_numeric(r["final_val_loss"], errors="coerce").to_numpy(float)
    if "status" in r:
        loss = np.where((r["status"] == "done").to_numpy(), loss, np.nan)
    curve = seed0_curve(dict(zip(r["lr"].to_numpy(float), loss, strict=True)))
    if curve is None:
        return None
    x, y = curve
    return lambda lrs: [float(np.interp(math.log(v), x, y)) for v in lrs]


def read_off(runs: pd.DataFrame, lr: float) -> dict[str, float]:
    """The regret (nats and % of the best) of training at ``lr`` on the valley of ``runs`` (one size and
    optimizer: ``lr``, ``final_val_loss``, optional ``status``), read as the module docstring says."""
    from oasl.laws.risk import DIVERGE_COST

    loss = pd.to_numeric(runs["final_val_loss"], errors="coerce").to_numpy(float)
    div = ~np.isfinite(loss)
    if "status" in runs:
        div |= (runs["status"] != "done").to_numpy()
    frame = pd.DataFrame({"lr": runs["lr"].to_numpy(float), "loss": np.where(div, np.inf, loss)})
    mean = frame.groupby("lr")["loss"].mean()  # a diverged seed makes the lr diverged
    x, y = np.log(mean.index.to_numpy(float)), mean.to_numpy(float)
    ok = np.isfinite(y)
    if not ok.any():
        raise FitError("no finite run to read a regret off")
    kb = int(np.flatnonzero(ok)[np.argmin(y[ok])])
    best, lp = float(y[kb]), math.log(lr)
    lost = [j for j in np.flatnonzero(~ok) if (s := np.sign(x[j] - x[kb])) != 0 and s * (lp - x[j]) >= -1e-9]
    if lost:
        regret = DIVERGE_COST
    else:
        fx, fy = x[ok], y[ok]
        regret = float(np.interp(lp, fx, fy) - best)  # np.interp holds the edge values beyond the range
    return {"regret": regret, "regret_pct": 100 * regret / best, "diverged": bool(lost)}


def risk_check(runs: pd.DataFrame, features: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Hold out the ladder's largest rung (``runs``: the sweep's runs, every optimizer), fit on the rest,
    and compare the centre with the risk-adjusted point on the held-out valley (module docstring).
    Returns per optimizer the predictions and regrets, the means, and ``prefer`` ("centre" or "risk");
    ``{"prefer": "centre", "why": ...}`` when the ladder has too few rungs or the fit fails."""
    from oasl.laws.pipeline import fit_laws
    from oasl.validate.refine import ladder_risk, ladder_valley, refine, with_asymmetry, zero_run

    sizes = sorted(runs["n_params"].unique())
    if len(sizes) < 3:
        return {"prefer": "centre", "why": f"{len(sizes)} rung(s): the check needs 3 (2 to fit, 1 held out)"}
    held, train = sizes[-1], runs[runs["n_params"] < sizes[-1]]
    try:
        report = fit_laws(train, hps=["lr"], features=features or None)  # as oasl fit and validate do
        if "lr" not in report.laws:
            raise FitError(report.skipped.get("lr", "too few optima"))
    except FitError as exc:
        return {"prefer": "centre", "why": f"the law could not be fitted without the largest rung: {exc}"}
    law, optima = report.laws["lr"], report.optima["lr"]
    out: dict[str, Any] = {"held_out_n_params": int(held), "optimizers": {}}
    for opt, sub in runs[runs["n_params"] == held].groupby("optimizer"):
        tr = train[train["optimizer"] == opt]
        op = optima[optima["optimizer"] == opt] if "optimizer" in optima else optima
        tokens = float(sub["tokens"].iloc[0]) if "tokens" in sub else math.nan
        q = pd.DataFrame({"N": [float(held)], "D": [tokens], "C": [6.0 * held * tokens], "optimizer": [opt]})
        try:
            centre = float(law.predict(q)[0])
            lo, hi = (float(v[0]) for v in law.predict_interval(q, 0.9))
        except FitError:
            continue
        risk = ladder_risk(tr, op, opt)
        valley = with_asymmetry(ladder_valley(tr, opt), risk)
        point = zero_run(centre, (lo, hi), valley, risk).lr
        row = out["optimizers"][str(opt)] = {
            "centre": centre,
            "risk": point,
            "interval": [lo, hi],
            "asym": valley.asym,
            "centre_regret_pct": read_off(sub, centre)["regret_pct"],
            "risk_regret_pct": read_off(sub, point)["regret_pct"],
        }
        seeds = sorted(sub["seed"].unique()) if "seed" in sub else [None]
        trains = [(sd, f) for sd in seeds if (f := seed_replay(sub, sd)) is not None]
        if risk is not None and trains:
            # every seed's valley replayed (each one draw of the runs' noise), the regrets averaged
            row["refine"] = {}
            for k in REFINE_KS:
                mean = {sd: refine(centre, (lo, hi), k, fn, valley) for sd, fn in trains}
                adjusted = [refine(centre, (lo, hi), k, fn, valley, risk=risk) for _, fn in trains]
                row["refine"][str(k)] = {
                    "mean": float(np.mean([read_off(sub, r.lr)["regret_pct"] for r in mean.values()])),
                    "risk": float(np.mean([read_off(sub, r.lr)["regret_pct"] for r in adjusted])),
                    "lrs": {str(sd): r.lrs for sd, r in mean.items()},
                    "seeds": len(trains),
                }
    rows = out["optimizers"].values()
    if not rows:
        return {"prefer": "centre", "why": "no optimizer could be predicted at the held-out rung"}
    c = float(np.mean([r["centre_regret_pct"] for r in rows]))
    r = float(np.mean([r["risk_regret_pct"] for r in rows]))
    out.update(centre_regret_pct=c, risk_regret_pct=r, prefer="risk" if r < c - TIE_PCT else "centre")
    refined = [v for row in rows for v in (row.get("refine") or {}).values()]
    if refined:
        m = float(np.mean([v["mean"] for v in refined]))
        rr = float(np.mean([v["risk"] for v in refined]))
        out.update(
            refine_mean_regret_pct=m,
            refine_risk_regret_pct=rr,
            refine_prefer="risk" if rr < m - TIE_PCT else "posterior mean",
        )
    else:
        out["refine_prefer"] = "posterior mean"
    return out
