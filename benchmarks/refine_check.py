"""The ladder's own held-out-rung check of the law-guided refinement (oasl.validate.riskcheck), on the stores
of finished ladders, with and without the valley's measured asymmetry in the refinement's likelihood.

For each store: the sweep runs (role "sweep"), the largest rung held out, the lr law fitted on the others as
`oasl fit` does, and k = 2, 3, 4 target runs replayed on the held-out rung's valley of each sweep seed; the
answer (posterior mean, and risk-adjusted) read off its seed-mean valley, in % of the loss, averaged over
the seeds (:func:`risk_check`).
Run twice: as the library does it (asymmetric likelihood, `with_asymmetry`) and with the asymmetry switched
off (a symmetric parabola, the rule before 2026-12-05). These are the figures docs/refine.md quotes for
keeping the asymmetric likelihood (pooled mean over every store, optimizer and k) and for the posterior
mean over the risk-adjusted answer (``refine_prefer``, per store). A last section replays the held-out
rung with the prior as wide as the full ladder's law makes it at the target (:func:`target_width_check`),
so the runs are placed as at the target, and compares the current valley noise with 258593f's. The last
section puts alternatives to the rule (:func:`alternatives`) to both, by a criterion fixed before they
ran. Training-only:
no target run's loss is read (the target's size and tokens come from its runs' configuration).

Run from the repository root, on the stores of `benchmarks/extrapolation.py` (v3, the GNU-manuals ladder,
the man-pages ladder, Lion on the GNU manuals, SGD on the GNU manuals and Lion on the man pages, issue 25)
and, as docs/refine.md does, the demo's (`oasl demo --out DEMO`):

    .venv/bin/python benchmarks/refine_check.py --store V3.db --store INFO.db --store MAN.db \
        --store INFO_LION.db --store INFO_SGD.db --store MAN_LION.db --store DEMO/runs.db

(about a minute; without ``--store``, the stores `make bench` leaves: benchmarks/results/extrapolation.db,
extrapolation_info.db, extrapolation_man.db, extrapolation_info_lion.db, extrapolation_info_sgd.db and
extrapolation_man_lion.db). Writes
benchmarks/results/refine_check.json and its RESULTS.md section.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

from oasl.validate.riskcheck import TIE_PCT  # noqa: E402

DEFAULT_STORES = (
    "benchmarks/results/extrapolation.db",
    "benchmarks/results/extrapolation_info.db",
    "benchmarks/results/extrapolation_man.db",
    "benchmarks/results/extrapolation_info_lion.db",
    "benchmarks/results/extrapolation_info_sgd.db",
    "benchmarks/results/extrapolation_man_lion.db",
)


def label(store: str, stem: bool = False) -> str:
    """How a store is named in the tables: its file name (or stem), with its folder when the file is the
    generic ``runs.db`` of an ``oasl demo`` or ``oasl sweep`` folder."""
    p = Path(store)
    name = p.stem if stem else p.name
    return f"{p.parent.name}/{name}" if p.stem == "runs" else name


def sweep_runs(store: str):
    """The finished sweep runs of ``store`` (target runs left out)."""
    from oasl.store import SQLiteStore

    df = SQLiteStore(store).to_dataframe(finished_only=True)
    return df[df["role"].fillna("sweep") == "sweep"] if "role" in df else df


def check(df, asymmetric: bool) -> dict:
    """:func:`oasl.validate.riskcheck.risk_check`, with the likelihood's asymmetry on or off."""
    from oasl.validate.riskcheck import risk_check

    if asymmetric:
        return risk_check(df)
    with mock.patch("oasl.validate.refine.with_asymmetry", lambda valley, risk: valley):
        return risk_check(df)


def alternatives() -> dict:
    """The rule's alternatives, each as it was put to both checks (session 14): a list of patches of the
    library and a line saying what it changes. The rule since then bounds the optimum by a run over the
    cliff (``Valley.cliff == "bound"``); the first row is the rule before, the others were tested against
    it (docs/refine.md has each criterion, fixed before it ran, and the decisions)."""
    from dataclasses import replace

    from oasl.validate import refine

    shipped_asym, shipped_fit, shipped_valley = refine.with_asymmetry, refine.fit_runs, refine.ladder_valley

    def fitted(valley, risk):
        return replace(shipped_asym(valley, risk), cliff="fit")

    def untied(valley, risk):
        return replace(shipped_asym(valley, risk), cliff="fit", sides="independent")

    def pretest(center, interval, lrs, losses, valley=None, batch_seqs=None, risk=None):
        res = shipped_fit(center, interval, lrs, losses, valley, batch_seqs, risk)
        finite = int(np.isfinite(np.asarray(losses, dtype=float)).sum())
        if finite >= 2 and risk is None and res.interval[0] <= center <= res.interval[1]:
            return replace(res, lr=float(center))
        return res

    def equal_rise(valley, risk):
        return replace(shipped_asym(valley, risk), placement="equal-rise")

    def side_noise(valley, risk):
        return replace(shipped_asym(valley, risk), noise_sides="sides")

    def largest_noise(runs, optimizer=None, window=1.2, noise_from="median"):
        return shipped_valley(runs, optimizer, window, noise_from="largest")

    asym = "oasl.validate.refine.with_asymmetry"
    return {
        "largest-rung noise": (
            [mock.patch("oasl.validate.refine.ladder_valley", largest_noise)],
            "one run's noise and the run-to-run scatter taken from the largest measured rung (as the "
            'curvature is) instead of the median over rungs (`ladder_valley(noise_from="largest")`, session 18)',
        ),
        "side noise": (
            [mock.patch(asym, side_noise)],
            "each run's likelihood noise that of its side of the lowest run (above it: the noisier), measured on "
            "the ladder "
            '(`Valley(noise_sides="sides")`, session 17)',
        ),
        "equal-rise placement": (
            [mock.patch(asym, equal_rise)],
            "the run above the centre placed at e^(d / sqrt(rho)) instead of e^d, rho the ladder's first "
            'steps\' ratio (`Valley(placement="equal-rise")`, session 15)',
        ),
        "cliff fitted": (
            [mock.patch(asym, fitted)],
            'every finite run is a point of the parabola (`Valley(cliff="fit")`; the rule until 2026-12-05)',
        ),
        "independent sides": (
            [mock.patch(asym, untied)],
            "cliff fitted, and each side's curvature marginalised on its own (log-normal, sd log 2; "
            '`Valley(sides="independent")`) instead of one multiplier with the ladder\'s asymmetry fixed',
        ),
        "pre-test": (
            [mock.patch(asym, fitted), mock.patch("oasl.validate.refine.fit_runs", pretest)],
            "cliff fitted, and the law's centre kept unless it falls outside the posterior's 90% interval "
            "(the runs clearly disagree), else the posterior mean",
        ),
    }


def ladder_cases(held: dict, width: dict) -> dict[str, dict[str, list[float]]]:
    """The posterior-mean regrets per "store optimizer": ``held`` from each store's held-out-rung check
    (:func:`check`), ``width`` from its target-width replays (:func:`target_width_check`, current valley)."""
    out: dict[str, dict[str, list[float]]] = {}
    for store in held:
        for opt, row in held[store].get("optimizers", {}).items():
            cell = out.setdefault(f"{label(store, stem=True)} {opt}", {"held": [], "width": []})
            cell["held"] += [v["mean"] for v in (row.get("refine") or {}).values()]
        for opt, row in width[store].get("optimizers", {}).items():
            cell = out.setdefault(f"{label(store, stem=True)} {opt}", {"held": [], "width": []})
            cell["width"] += [v["regret_pct"] for v in row["valleys"]["current"].values()]
    return out


def both_checks(stores) -> dict[str, dict[str, list[float]]]:
    """:func:`ladder_cases` of both checks run afresh on ``stores``, as the library now stands (patched or
    not)."""
    held = {store: check(sweep_runs(store), True) for store in stores}
    return ladder_cases(held, {store: target_width_check(store) for store in stores})


def seed_mean_noise(runs, optimizer: str) -> float:
    """The valley noise as the refinement measured it before 2026-12-05 (258593f): the residual sd of the
    seed-MEAN losses about their parabola (kept here only to compare the two rules), which is
    :func:`~oasl.validate.refine.ladder_valley`'s noise on a ladder of one (mean) run per lr."""
    from oasl.validate.refine import ladder_valley

    df = runs[(runs["optimizer"] == optimizer) & (runs["status"] == "done")]
    means = df.groupby(["n_params", "lr"], as_index=False)["final_val_loss"].mean()
    return ladder_valley(means.assign(optimizer=optimizer, status="done"), optimizer).noise


def target_width_check(store: str) -> dict:
    """The held-out rung's replays with the prior as wide as the full ladder's law makes it at the target
    (sweep runs only; the target's size and tokens from its runs' configuration, not their losses), so the
    runs are placed as they would be at the target; the current valley against 258593f's seed-mean noise."""
    from dataclasses import replace

    import pandas as pd

    from oasl.errors import FitError
    from oasl.laws.pipeline import fit_laws
    from oasl.store import SQLiteStore
    from oasl.validate.refine import ladder_risk, ladder_valley, refine, with_asymmetry
    from oasl.validate.riskcheck import read_off, seed_replay

    every = SQLiteStore(store).to_dataframe(finished_only=True)
    sweep = every[every["role"].fillna("sweep") == "sweep"]
    target = every[every["role"].fillna("sweep") != "sweep"]
    if target.empty:
        return {"why": "no target runs' configuration in the store"}
    n_t, d_t = float(target["n_params"].max()), float(target["tokens"].iloc[0])
    sizes = sorted(sweep["n_params"].unique())
    if len(sizes) < 3:
        return {"why": f"{len(sizes)} rung(s): the check needs 3"}
    held, train = sizes[-1], sweep[sweep["n_params"] < sizes[-1]]
    try:
        full = fit_laws(sweep, hps=["lr"]).laws["lr"]
        part = fit_laws(train, hps=["lr"])
        law, optima = part.laws["lr"], part.optima["lr"]
    except (FitError, KeyError) as exc:
        return {"why": f"no lr law: {exc}"}
    out: dict = {"target_n_params": n_t, "optimizers": {}}
    for opt, sub in sweep[sweep["n_params"] == held].groupby("optimizer"):

        def query(n, d, o=opt):
            return pd.DataFrame({"N": [n], "D": [d], "C": [6 * n * d], "optimizer": [o]})

        ct = float(full.predict(query(n_t, d_t))[0])
        lo_t, hi_t = (float(v[0]) for v in full.predict_interval(query(n_t, d_t), 0.9))
        centre = float(law.predict(query(float(held), float(sub["tokens"].iloc[0])))[0])
        interval = (centre * lo_t / ct, centre * hi_t / ct)
        tr = train[train["optimizer"] == opt]
        op = optima[optima["optimizer"] == opt] if "optimizer" in optima else optima
        risk = ladder_risk(tr, op, opt)
        now = with_asymmetry(ladder_valley(tr, opt), risk)
        before = replace(now, noise=seed_mean_noise(tr, opt), scatter=None)
        fns = [f for sd in sorted(sub["seed"].unique()) if (f := seed_replay(sub, sd)) is not None]
        row = {"centre": centre, "interval": list(interval), "target_interval": [lo_t, hi_t], "valleys": {}}
        row["law_regret_pct"] = read_off(sub, centre)["regret_pct"]
        for name, valley in (("current", now), ("seed_mean_noise", before)):
            cells = {}
            for k in (2, 3, 4):
                res = [refine(centre, interval, k, fn, valley) for fn in fns]
                cells[str(k)] = {
                    "regret_pct": float(np.mean([read_off(sub, r.lr)["regret_pct"] for r in res])),
                    "step": float(max(v / centre for v in res[0].lrs[:2])),
                }
            row["valleys"][name] = cells
        out["optimizers"][str(opt)] = row
    return out


def loss_law_gate(df) -> list[dict]:
    """The feasibility gate of a sequential k = 2 (session 17; written down before it ran): could one run's
    excess over a loss law's predicted minimum tell the distance to the optimum? Per optimizer, the largest
    rung held out: ``L_min = A N^-alpha`` fitted (in logs) to the other rungs' minimal seed-mean losses
    predicts the held-out rung's; ``delta`` its relative error. The distance that error alone implies,
    ``sqrt(|delta| / c)`` (log lr; ``c`` the curvature ``ladder_valley`` measures on the other rungs), against
    the law's prior scale at the held-out rung (``prior_sd`` of the lr law fitted on the other rungs). The
    idea was to be implemented only if the distance is below half the scale in 3 of 4 (store, optimizer) pairs."""
    import pandas as pd

    from oasl.laws.pipeline import fit_laws
    from oasl.validate.refine import ladder_valley, prior_sd, seed_means

    sizes = sorted(df["n_params"].unique())
    held, train = sizes[-1], df[df["n_params"] < sizes[-1]]
    law = fit_laws(train, hps=["lr"]).laws["lr"]
    rows = []
    for opt, sub in df.groupby("optimizer"):
        best = seed_means(sub[sub["status"] == "done"]).groupby(level=0).min()
        fit = best.drop(held)
        if len(fit) < 2 or held not in best.index:
            continue
        slope, icpt = np.polyfit(np.log(fit.index.to_numpy(float)), np.log(fit.to_numpy(float)), 1)
        pred = float(np.exp(icpt + slope * math.log(held)))
        delta = pred / float(best[held]) - 1
        c = ladder_valley(train, opt).curvature
        tokens = float(sub["tokens"].iloc[0])
        q = pd.DataFrame({"N": [float(held)], "D": [tokens], "C": [6.0 * held * tokens], "optimizer": [opt]})
        centre = float(law.predict(q)[0])
        lo, hi = (float(v[0]) for v in law.predict_interval(q, 0.9))
        sd = prior_sd(centre, (lo, hi))
        dist = math.sqrt(abs(delta) / c)
        rows.append(
            {
                "optimizer": str(opt),
                "delta_pct": 100 * delta,
                "curvature": c,
                "distance": dist,
                "prior_sd": sd,
                "passes": dist < sd / 2,
            }
        )
    return rows


def first_steps(df) -> list[dict]:
    """The valley's shape at the largest rung of a ladder's sweep runs, per optimizer: the seed-mean loss one
    and two grid steps either side of the best tried lr, in % above the best, and ``ladder_risk``'s
    asymmetry (fitted on the smaller rungs, as the refinement uses it) beside the first steps' ratio."""
    from oasl.laws.pipeline import fit_laws
    from oasl.validate.refine import first_rises, ladder_risk, seed_means

    sizes = sorted(df["n_params"].unique())
    train = df[df["n_params"] < sizes[-1]]
    optima = fit_laws(train, hps=["lr"]).optima["lr"]
    rows = []
    for opt, sub in df[df["n_params"] == sizes[-1]].groupby("optimizer"):
        # the mean over a lr's finished runs, as this table has always read it (a diverged seed left out)
        mean = seed_means(sub[sub["status"] == "done"]).droplevel(0)
        kb, rises = first_rises(mean, steps=(-2, -1, 1, 2))
        at = {j: 100 * v for j, v in rises.items()}
        op = optima[optima["optimizer"] == opt] if "optimizer" in optima else optima
        risk = ladder_risk(train[train["optimizer"] == opt], op, opt)
        measured = (
            risk.curv_above / risk.curv_below if risk is not None and risk.curv_below > 0 else float("nan")
        )
        rows.append(
            {
                "optimizer": str(opt),
                "best_lr": float(mean.index[kb]),
                "step": float(mean.index[1] / mean.index[0]),
                "rise_pct": {str(j): v for j, v in at.items()},
                "first_step_ratio": at[1] / at[-1] if at[-1] > 0 else float("nan"),
                "ladder_risk_asym": measured,
            }
        )
    return rows


def rung_noise(df) -> list[dict]:
    """Per optimizer, each rung's run-to-run scatter and one run's noise about its parabola (% of the loss,
    smallest rung first), each as :func:`~oasl.validate.refine.ladder_valley` measures it on that rung
    alone, and the ladder's noise above and below the best lr (medians over rungs)."""
    from oasl.validate.refine import ladder_valley

    rows = []
    for opt, sub in df.groupby("optimizer"):
        per = [ladder_valley(sub[sub["n_params"] == n], opt) for n in sorted(sub["n_params"].unique())]
        whole = ladder_valley(sub, opt)
        rows.append(
            {
                "optimizer": str(opt),
                "scatter_pct": [100 * v.scatter if v.scatter is not None else None for v in per],
                "noise_pct": [100 * v.noise for v in per],
                "noise_above_pct": 100 * whole.noise_above if whole.noise_above is not None else None,
                "noise_below_pct": 100 * whole.noise_below if whole.noise_below is not None else None,
            }
        )
    return rows


def store_table(out: dict, key: str, stores, measure, cells) -> list[str]:
    """The rows of a per-store, per-optimizer table: ``measure(sweep runs)`` of each store kept under
    ``out[key][store]``, each of its rows written as ``| store | optimizer | cells(row) |``."""
    out[key] = {store: measure(sweep_runs(store)) for store in stores}
    return [
        f"| {label(store)} | {r['optimizer']} | {cells(r)} |" for store in stores for r in out[key][store]
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--store",
        action="append",
        default=None,
        help="a finished ladder's store (repeatable; default: the stores `make bench` gives "
        "benchmarks/extrapolation.py, those that exist)",
    )
    args = ap.parse_args()
    stores = args.store or [s for s in DEFAULT_STORES if Path(s).exists()]
    if not stores:
        sys.exit(f"no store: run benchmarks/extrapolation.py first (looked for {', '.join(DEFAULT_STORES)})")
    out: dict = {"stores": {}}
    pooled: dict[str, list[float]] = {"symmetric": [], "asymmetric": []}
    lines = [
        "The refinement's answer on each ladder's held-out largest rung (training-only; `risk_check`), with "
        "the likelihood symmetric (before 2026-12-05) and asymmetric (the valley's measured curvature above "
        "and below, `with_asymmetry`). Regret in % of the loss of the posterior-mean answer (risk-adjusted "
        "in brackets) after k replayed runs, averaged over the replays on each sweep seed's valley.",
        "",
        "| store | optimizer | likelihood (curvature above / below) | k=2 runs at | k=2 | k=3 | k=4 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for store in stores:
        df = sweep_runs(store)
        per = {}
        for name, asym in (("symmetric", False), ("asymmetric", True)):
            c = check(df, asym)
            per[name] = c
            for opt, row in c.get("optimizers", {}).items():
                ref = row.get("refine") or {}
                pooled[name] += [v["mean"] for v in ref.values()]
                cells = " | ".join(f"{ref[k]['mean']:.2f}% ({ref[k]['risk']:.2f}%)" for k in sorted(ref))
                # where the two first runs went, as a factor of the centre (the cap is x/÷ 3.3)
                first = next(iter(ref["2"]["lrs"].values()), []) if "2" in ref else []
                step = f"x/÷ {max(v / row['centre'] for v in first):.2f}" if len(first) == 2 else "-"
                lines.append(f"| {label(store)} | {opt} | {name} ({row['asym']:.2f}) | {step} | {cells} |")
        out["stores"][store] = per
    means = {k: float(np.mean(v)) if v else float("nan") for k, v in pooled.items()}
    out["pooled_mean_regret_pct"] = means
    out["cases"] = len(pooled["asymmetric"])
    lines += [
        "",
        f"Pooled mean over {out['cases']} cases (stores x optimizers x k), posterior-mean answer: "
        f"**{means['asymmetric']:.2f}% asymmetric vs {means['symmetric']:.2f}% symmetric**.",
        "",
        "Per store, the check's verdict on the refinement's answer (posterior mean vs risk-adjusted, mean over "
        "optimizers and k; risk-adjusted only if lower by more than 0.01% of the loss):",
        "",
        *(
            f"- {label(s)}: symmetric {c['symmetric'].get('refine_mean_regret_pct', float('nan')):.2f}% vs "
            f"{c['symmetric'].get('refine_risk_regret_pct', float('nan')):.2f}% -> "
            f"{c['symmetric'].get('refine_prefer')}; asymmetric "
            f"{c['asymmetric'].get('refine_mean_regret_pct', float('nan')):.2f}% vs "
            f"{c['asymmetric'].get('refine_risk_regret_pct', float('nan')):.2f}% -> "
            f"{c['asymmetric'].get('refine_prefer')}"
            for s, c in out["stores"].items()
        ),
    ]
    # the same replays, with the runs placed as they would be at the target
    lines += [
        "",
        "At the target's prior width: the same held-out rung and replays, with the prior's 90% interval as "
        "wide (in log lr) as the full ladder's law makes it at the target size, so the first two runs go "
        "where they would go at the target. The current valley (one run's noise, placement on the run-to-run "
        "scatter) against 258593f's (noise of the seed means). Regret in % of the loss, mean over the seeds' "
        "replays; the two first runs' spread in brackets.",
        "",
        "| store | optimizer | law alone | valley | k=2 | k=3 | k=4 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    pooled_t: dict[str, list[float]] = {"current": [], "seed_mean_noise": []}
    out["target_width"] = {}
    for store in stores:
        tw = out["target_width"][store] = target_width_check(store)
        for opt, row in tw.get("optimizers", {}).items():
            for name, cells in row["valleys"].items():
                pooled_t[name] += [c["regret_pct"] for c in cells.values()]
                body = " | ".join(
                    f"{cells[k]['regret_pct']:.2f}% (x/÷ {cells[k]['step']:.2f})" for k in sorted(cells)
                )
                lines.append(f"| {label(store)} | {opt} | {row['law_regret_pct']:.2f}% | {name} | {body} |")
    tmeans = {k: float(np.mean(v)) if v else float("nan") for k, v in pooled_t.items()}
    out["target_width_pooled_regret_pct"] = tmeans
    lines += [
        "",
        f"Pooled: **current {tmeans['current']:.2f}% vs seed-mean noise {tmeans['seed_mean_noise']:.2f}%** "
        "(report only: the rule was not changed on it).",
    ]
    # the valley's shape near the optimum, against the asymmetry ladder_risk measures (report only)
    lines += [
        "",
        "The valley near the largest rung's best tried lr (seed means, % above the best), one and two grid "
        "steps either side, and `ladder_risk`'s asymmetry (curvature above over below, least squares through "
        "the optimum within x/÷ 4.5, on the smaller rungs) beside the first steps' ratio:",
        "",
        "| store | optimizer | best lr | grid step | 2 below | 1 below | 1 above | 2 above | first steps' ratio | ladder_risk's asymmetry |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += store_table(
        out,
        "first_steps",
        stores,
        first_steps,
        lambda r: (
            f"{r['best_lr']:.3g} | x{r['step']:.2f} | "
            + " | ".join(f"{r['rise_pct'][j]:+.1f}%" for j in ("-2", "-1", "1", "2"))
            + f" | {r['first_step_ratio']:.1f} | {r['ladder_risk_asym']:.2f}"
        ),
    )

    # the noise the valley is measured with, rung by rung (sessions 17-18), report only
    def pct(v) -> str:
        return "-" if v is None else f"{v:.1f}%"

    lines += [
        "",
        "The runs' noise on each rung (smallest first, as `ladder_valley` measures it on that rung alone): "
        "the run-to-run scatter (seeds at one lr; '-' with one seed) and one run's residual sd about the "
        "rung's parabola; and the ladder's residual sd above and below the best lr (medians over rungs).",
        "",
        "| store | optimizer | scatter per rung | one run's noise per rung | noise above / below the best lr |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += store_table(
        out,
        "rung_noise",
        stores,
        rung_noise,
        lambda r: (
            ", ".join(pct(v) for v in r["scatter_pct"])
            + " | "
            + ", ".join(pct(v) for v in r["noise_pct"])
            + f" | {pct(r['noise_above_pct'])} / {pct(r['noise_below_pct'])}"
        ),
    )

    # the sequential k = 2's feasibility gate (session 17), report only
    lines += [
        "",
        "Could one run's excess over a loss law's predicted minimum place the optimum (a sequential k = 2)? "
        "The held-out rung's minimal seed-mean loss predicted by `L_min = A N^-alpha` fitted on the other "
        "rungs; the distance in log lr its error alone implies, `sqrt(|delta| / c)`, against the lr law's "
        "prior scale there. Gate, written before it ran: the distance below half the scale in at least three "
        "quarters of the (store, optimizer) pairs, else the idea is dropped.",
        "",
        "| store | optimizer | loss-law error | curvature | implied distance | prior scale | below half |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += store_table(
        out,
        "loss_law_gate",
        stores,
        loss_law_gate,
        lambda r: (
            f"{r['delta_pct']:+.2f}% | {r['curvature']:.3f} | {r['distance']:.2f} | "
            f"{r['prior_sd']:.2f} | {'yes' if r['passes'] else 'no'}"
        ),
    )
    gate = [r["passes"] for rows in out["loss_law_gate"].values() for r in rows]
    lines += ["", f"Below half the scale in {sum(gate)} of {len(gate)} cases."]

    # alternatives to the rule, each put to both checks by the criterion fixed before it ran
    def summary(cells: dict[str, dict[str, list[float]]]) -> dict:
        held = [v for c in cells.values() for v in c["held"]]
        width = [v for c in cells.values() for v in c["width"]]
        return {
            "held_out": float(np.mean(held)),
            "target_width": float(np.mean(width)),
            "both": float(np.mean(held + width)),
            "cases": len(held + width),
            "per_ladder": {k: float(np.mean(c["held"] + c["width"])) for k, c in cells.items()},
        }

    # the rule's cases are the checks above, already run
    held = {store: per["asymmetric"] for store, per in out["stores"].items()}
    rule = summary(ladder_cases(held, out["target_width"]))
    out["alternatives"] = {"rule": rule}
    lines += [
        "",
        f"The rule and its alternatives on both checks ({rule['cases']} cases: the held-out rung and the target "
        "width, posterior mean; regret in % of the loss; per ladder and optimizer, the mean of its cases). "
        "Each alternative was put to the checks by a criterion fixed before it ran (lower than the rule of "
        f"the day by more than {TIE_PCT}% of the loss; docs/refine.md has the decisions).",
        "",
        "| alternative | what it changes | held-out rung | target width | both | minus the rule | per ladder |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]

    def row(name: str, what: str, r: dict) -> str:
        per = ", ".join(f"{k} {v:.2f}%" for k, v in r["per_ladder"].items())
        diff = "-" if r is rule else f"{r['both'] - rule['both']:+.3f}%"
        return (
            f"| {name} | {what} | {r['held_out']:.2f}% | {r['target_width']:.2f}% | {r['both']:.3f}% | "
            f"{diff} | {per} |"
        )

    lines.append(row("the rule", 'a run over the cliff bounds the optimum (`Valley(cliff="bound")`)', rule))
    for name, (patches, what) in alternatives().items():
        with contextlib.ExitStack() as stack:
            for patch in patches:
                stack.enter_context(patch)
            alt = summary(both_checks(stores))
        out["alternatives"][name] = {**alt, "minus_rule": alt["both"] - rule["both"]}
        lines.append(row(name, what, alt))
    text = "\n".join(lines)
    write_result("refine_check", out, text)
    print(text)


if __name__ == "__main__":
    main()
