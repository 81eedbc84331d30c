"""Loss laws extrapolated to a larger model on Gadre et al.'s over-training runs (arXiv 2403.08540).

Data: ../shared/data/gadre_overtraining (NOTES.md): final C4 validation loss (``loss__eval_data/c4_val``,
the one their paper fits) of models of 10.6M, 78.9M, 153.7M and 411.6M parameters (with embeddings),
each trained on three corpora (c4_original, rpj, rw_original) at token multipliers 0.25-32 x 20 tokens per
parameter. Protocol: per corpus, fit on every model but the largest, predict the largest at every token
multiplier; report the mean relative error |L - Lhat| / L over those runs (and per multiplier). The
figure scored against the aim is oasl's default path: LossLaw (Chinchilla's
form) on oasl's non-embedding ``n_params``. A selection inside the training sizes (the same protocol one size
down: fit on the two smallest, predict the third) is reported beside it; with three sizes it is not
informative (Chinchilla's form is not identified from two sizes).

Laws: Chinchilla's form (:class:`oasl.laws.LossLaw`, Hoffmann et al. 2022, Eq. 2) and Gadre et al.'s
over-training form (:class:`oasl.laws.OvertrainingLossLaw`, their Eq. 4: one exponent for N and D), each
with N counted with embeddings (``params``, Gadre et al.'s and Chinchilla's count) and without
(``params_no_embed``, oasl's ``n_params``).

Runs that end inside their LR warmup are left out of fits and scores (main figures): with the fixed
per-size recipe (warmup 2000 steps at 411.6M, 400 at 78.9M), the 0.25x runs of those two sizes stop
before the schedule reaches its peak, so their loss is not on the curve of fully scheduled runs. The
figures with them kept are reported too.

Fitting choices, selected on the training sizes only. Four ways to fit the default form (Chinchilla's, on
non-embedding N) are compared: Huber loss on log loss with delta 1e-3 (the papers' recipe and oasl's
default: Hoffmann et al. 2022, App. D.2; Besiroglu et al. 2024, Sec. 2); Huber with delta set from the
residuals (1.345 x the MAD scale of the log residuals, iterated: Huber's estimator with a concurrent scale,
Huber 1981, Sec. 7.7; ``LossLaw(delta="scaled")``); least squares on log loss (Gadre et al.'s code fits by
least squares); and the papers' recipe with the training runs that spend at least half their steps in
warmup left out. The criterion: mean relative error over both leave-one-training-size-out folds (153.7M
from 10.6M + 78.9M, 78.9M from 10.6M + 153.7M), each corpus, and all eight evaluation losses of the data
(more signal than the C4 loss alone; every one from the training sizes only). The rule, stated before the
comparison: the choice with the lowest criterion becomes the default. The held-out figure of every choice is
printed beside it but was not used to choose; the lead over the papers' recipe, paired over the 16 fold x
loss cells, is printed with its standard error.

Paper's figures for comparison (NOTES.md, their Sec. 4): 0.71% relative error predicting a 1.4B model at
M = 640 (tokens per parameter 20 x 32) and 0.73% for a 6.9B model at M = 20, from fits on smaller runs.

Run: ``.venv/bin/python benchmarks/loss_overtraining.py`` (under a minute). Writes
benchmarks/results/loss_overtraining.json and its section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import curve_fit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cluster_bootstrap, write_result  # noqa: E402

from oasl.laws import LossLaw, OvertrainingLossLaw  # noqa: E402
from oasl.testing import shared_data  # noqa: E402

LOSS = "loss__eval_data/c4_val"
FORMS = {"Chinchilla (E + A/N^a + B/D^b)": LossLaw, "Gadre et al. Eq. 4 (one exponent)": OvertrainingLossLaw}
NS = {"with embeddings": "params", "without embeddings": "params_no_embed"}
PAPER = {"1.4B at M = 640": 0.0071, "6.9B at M = 20": 0.0073}


def load() -> pd.DataFrame:
    path = shared_data("gadre_overtraining") / "overtraining_losses.csv"
    if not path.exists():
        sys.exit(f"Gadre et al. data not found at {path}: see ../shared/data/gadre_overtraining/NOTES.md")
    d = pd.read_csv(path)
    d["steps"] = d["tokens"] / (d["global_bs"] * 2048)  # sequence length 2048 in their runs
    d["in_warmup"] = d["steps"] <= d["warmup"]
    return d


def evaluate(d: pd.DataFrame) -> dict:
    """For each form x N count: per-run errors on the largest N of ``d``, fitted per corpus on the smaller
    ones."""
    big = d["params"].max()
    out = {}
    for fname, cls in FORMS.items():
        for nname, ncol in NS.items():
            rows, formulas = [], {}
            for ds, g in d.groupby("dataset"):
                tr, te = g[g["params"] < big], g[g["params"] == big]
                law = cls().fit(tr[ncol], tr["tokens"], tr[LOSS])
                formulas[ds] = {"formula": law.formula(), "warnings": law.warnings_}
                pred = law.predict(te[ncol], te["tokens"])
                for m, p, obs in zip(te["chinchilla_multiplier"], pred, te[LOSS], strict=True):
                    rows.append({"dataset": ds, "M": float(m), "pred": float(p), "obs": float(obs)})
            r = pd.DataFrame(rows)
            r["rel_err"] = (r["pred"] - r["obs"]).abs() / r["obs"]
            out[f"{fname} | N {nname}"] = {
                "mean_rel": float(r["rel_err"].mean()),
                "max_rel": float(r["rel_err"].max()),
                "by_M": {f"{k:g}": float(v) for k, v in r.groupby("M")["rel_err"].mean().items()},
                "formulas": formulas,
                "runs": r.to_dict(orient="records"),
            }
    return out


def mean_error_interval(runs: list[dict], n_boot: int = 20000, level: float = 0.9, seed: int = 0) -> dict:
    """How well the held-out runs resolve the mean error against the 1% aim: a bootstrap over token
    multipliers (each resample draws whole multipliers, the runs of every corpus at that M kept together,
    so each corpus's systematic error stays in every resample). Returns the mean error's ``level`` interval
    and the share of resamples at or below 1%."""
    r = pd.DataFrame(runs)
    err = r["rel_err"].to_numpy()
    interval, means = cluster_bootstrap(r["M"].to_numpy(), lambda i: err[i].mean(), n_boot, level, seed)
    return {
        "level": level,
        "interval": interval,
        "share_le_1pct": float(np.mean(means <= 0.01)),
        "multipliers": int(r["M"].nunique()),
        "n_boot": n_boot,
    }


PAPERS_CHOICE = "Huber delta 1e-3 on log loss (the papers' recipe, oasl's default)"
DEFAULT_CHOICE = PAPERS_CHOICE
# name: (law factory, whether training runs with warmup >= half their steps are left out)
CHOICES = {
    PAPERS_CHOICE: (lambda: LossLaw(delta=1e-3), False),
    "Huber, delta 1.345 x residual scale": (lambda: LossLaw(delta="scaled"), False),
    "least squares on log loss": (lambda: LossLaw(delta=1.0), False),
    "papers' recipe, runs with warmup >= half their steps left out": (lambda: LossLaw(delta=1e-3), True),
}


def choice_error(d: pd.DataFrame, train_sizes, test_size: float, make, drop_warm: bool, loss: str) -> float:
    """Mean relative error on the runs of ``test_size`` of a law fitted per corpus on ``train_sizes``
    (Chinchilla's form on non-embedding N; ``drop_warm``: leave out training runs with warmup >= half)."""
    errs = []
    for _, g in d.groupby("dataset"):
        tr, te = g[g["params"].isin(train_sizes)], g[g["params"] == test_size]
        if drop_warm:
            tr = tr[tr["steps"] > 2 * tr["warmup"]]
        law = make().fit(tr["params_no_embed"], tr["tokens"], tr[loss])
        errs.extend(np.abs(law.predict(te["params_no_embed"], te["tokens"]) / te[loss] - 1))
    return float(np.mean(errs))


def select_choice(d: pd.DataFrame) -> dict:
    """Per fitting choice: the selection criterion (training sizes only, all evaluation losses) and the
    error on the largest model (C4 loss, the scored figure), with each choice's lead over the default paired
    over the (fold x loss) cells and its standard error; ``lowest``: the lowest criterion."""
    sizes = sorted(d["params"].unique())
    train, big = sizes[:-1], sizes[-1]
    folds = [(train[:-1], train[-1]), ([train[0], *train[2:]], train[1])]
    losses = [c for c in d.columns if c.startswith("loss__")]
    out = {}
    for name, (make, drop_warm) in CHOICES.items():
        cv = [choice_error(d, tr, te, make, drop_warm, ls) for tr, te in folds for ls in losses]
        out[name] = {
            "criterion": float(np.mean(cv)),
            "cells": [float(c) for c in cv],
            "criterion_c4": float(np.mean(cv[losses.index(LOSS) :: len(losses)])),
            "held_out": choice_error(d, train, big, make, drop_warm, LOSS),
        }
        print(
            f"choice {name}: criterion {out[name]['criterion']:.4f}, held out {out[name]['held_out']:.4f}",
            flush=True,
        )
    # the lead over the default, paired cell by cell (fold x evaluation loss), and its standard error
    base = np.array(out[PAPERS_CHOICE]["cells"])
    for v in out.values():
        diff = base - np.array(v["cells"])
        v["lead"], v["lead_se"] = float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff)))
    lowest = min(out, key=lambda k: out[k]["criterion"])
    return {"choices": out, "lowest": lowest, "losses": losses}


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def adoption_note(sel: dict) -> str:
    """What the rule (lowest criterion) chose, and how strong the evidence is (one or two sentences)."""
    low, ch = sel["lowest"], sel["choices"]
    if low == DEFAULT_CHOICE:
        return "Chosen by the rule: the papers' recipe, which stays oasl's default."
    lead, se, n = ch[low]["lead"], ch[low]["lead_se"], len(ch[low]["cells"])
    return (
        f"Chosen by the rule: {low}, NOT oasl's default (change LossLaw's default to it). Its lead over the "
        f"papers' recipe, {pct(lead)} +- {pct(se)} (paired over the {n} fold x loss cells), is "
        f"{'beyond' if lead > 2 * se else 'within'} 2 standard errors."
    )


def noise_floor(d: pd.DataFrame) -> dict[str, float]:
    """Per corpus, mean relative residual of ``E + B D^-b`` fitted (least squares) to the largest model's
    own runs: how far single runs sit from any smooth curve in D, a floor for an extrapolated law."""
    big = d["params"].max()
    out = {}
    for ds, g in d[d["params"] == big].groupby("dataset"):
        x, y = g["tokens"].to_numpy(float) / 1e9, g[LOSS].to_numpy(float)
        p, _ = curve_fit(lambda x, e, b, k: e + b * x**-k, x, y, p0=[2.0, 1.0, 0.3], maxfev=20000)
        out[str(ds)] = float(np.mean(np.abs(p[0] + p[1] * x ** -p[2] - y) / y))
    return out


def main() -> None:
    t0 = time.time()
    d = load()
    main_res = evaluate(d[~d["in_warmup"]])
    all_res = evaluate(d)
    big = d["params"].max()
    # a selection inside the training sizes (the same protocol one size down), reported beside the default
    cv_res = evaluate(d[~d["in_warmup"] & (d["params"] < big)])
    cv_size = float(d.loc[d["params"] < big, "params"].max())
    floor = noise_floor(d[~d["in_warmup"]])
    sel = select_choice(d[~d["in_warmup"]])
    best_held = min(sel["choices"], key=lambda k: sel["choices"][k]["held_out"])
    n_test = int((~d["in_warmup"] & (d["params"] == big)).sum())
    best = f"{next(iter(FORMS))} | N without embeddings"  # oasl's default: LossLaw on n_params
    best_cv = min(cv_res, key=lambda k: cv_res[k]["mean_rel"])
    best_test = min(main_res, key=lambda k: main_res[k]["mean_rel"])
    ok = main_res[best]["mean_rel"] <= 0.01
    resolution = mean_error_interval(main_res[best]["runs"])
    e_at_bound = (
        "; ".join(
            f"{key} on {', '.join(ds for ds, f in r['formulas'].items() if f['warnings'])}"
            for key, r in main_res.items()
            if any(f["warnings"] for f in r["formulas"].values())
        )
        or "none"
    )

    ms = sorted({m for r in main_res.values() for m in r["by_M"]}, key=float)
    md = [
        f"Gadre et al.'s over-training runs (C4 validation loss): per corpus, fit on the 10.6M-153.7M models, "
        f"predict the {big / 1e6:.1f}M model at every token multiplier ({n_test} runs; runs that end inside "
        "their LR warmup left out, see the script). Mean relative error |L - Lhat| / L; aim <= 1%. Paper, "
        "their law fitted on small runs: "
        + ", ".join(f"{k}: {pct(v)}" for k, v in PAPER.items())
        + " (different, larger targets; not the same test).",
        "",
        f"| law | N | selection: error at {cv_size / 1e6:.1f}M from smaller | mean error | max error | "
        + " | ".join(f"M={m}" for m in ms)
        + " | with warmup-only runs |",
        "|---|---|---|---|---|" + "---|" * len(ms) + "---|",
    ]
    for key, r in main_res.items():
        form, n = key.split(" | ")
        md.append(
            f"| {form} | {n.removeprefix('N ')} | {pct(cv_res[key]['mean_rel'])} | {pct(r['mean_rel'])} | "
            f"{pct(r['max_rel'])} | "
            + " | ".join(pct(r["by_M"].get(m, float("nan"))) for m in ms)
            + f" | {pct(all_res[key]['mean_rel'])} |"
        )
    md += [
        "",
        f"oasl's default path (LossLaw on the non-embedding n_params, Huber delta 1e-3): "
        f"{pct(main_res[best]['mean_rel'])} on the {big / 1e6:.1f}M model (aim <= 1%: {'met' if ok else 'NOT met'}; "
        f"lowest of the four on the held-out model: {best_test}). Selected inside the training sizes instead "
        f"(lowest error predicting the {cv_size / 1e6:.1f}M model from the two smaller): {best_cv}, "
        f"{pct(main_res[best_cv]['mean_rel'])} on the {big / 1e6:.1f}M model: two sizes do not identify "
        "Chinchilla's N term (E, A, alpha from two levels), so that check is not informative here. The per-size "
        f"noise floor: a curve E + B D^-b fitted to the {big / 1e6:.1f}M model's own runs leaves "
        + ", ".join(f"{k} {pct(v)}" for k, v in floor.items())
        + " mean residual, so an extrapolation has little room below 1%. "
        f"E at its bound 0 (oasl warns): {e_at_bound}. Per multiplier, the largest errors of Gadre et al.'s "
        "form are at the longest runs (M = 16, 32), where its single exponent ties the D term to the N term.",
        "",
        f"How well {n_test} held-out runs resolve the default path's {pct(main_res[best]['mean_rel'])} against "
        f"the 1% aim: a bootstrap over the {resolution['multipliers']} token multipliers (whole multipliers "
        f"resampled, all corpora at each kept together) gives a {resolution['level']:.0%} interval of "
        f"[{pct(resolution['interval'][0])}, {pct(resolution['interval'][1])}] for the mean error, with "
        f"{resolution['share_le_1pct']:.0%} of the resamples at or below 1%.",
        "",
        "Fitting choices for the default form, selected on the training sizes only (see the script): criterion = "
        "mean relative error over the two leave-one-training-size-out folds, three corpora and all "
        f"{len(sel['losses'])} evaluation losses; the held-out error (C4 loss, {big / 1e6:.1f}M) was not used to "
        "choose.",
        "",
        "| fitting choice | criterion (all losses) | criterion (C4 loss) | held-out error |",
        "|---|---|---|---|",
        *(
            f"| {k} | {pct(v['criterion'])} | {pct(v['criterion_c4'])} | {pct(v['held_out'])} |"
            for k, v in sel["choices"].items()
        ),
        "",
        f"Lowest criterion: {sel['lowest']} ({pct(sel['choices'][sel['lowest']]['criterion'])}; the papers' recipe "
        f"{pct(sel['choices'][PAPERS_CHOICE]['criterion'])}). "
        + adoption_note(sel)
        + " Leave-one-size-out errors from two training sizes are 3-5%, far above the 1% of the three-size "
        "extrapolation: two sizes barely identify the N term, so this criterion separates the choices weakly. "
        f"Lowest held-out error: {best_held} ({pct(sel['choices'][best_held]['held_out'])}), rank "
        f"{sorted(sel['choices'], key=lambda k: sel['choices'][k]['criterion']).index(best_held) + 1} of "
        f"{len(sel['choices'])} on the criterion.",
        "",
        f"Wall time {time.time() - t0:.0f} s.",
    ]
    payload = {
        "data": str(shared_data("gadre_overtraining") / "overtraining_losses.csv"),
        "loss_column": LOSS,
        "held_out_params": float(big),
        "excluded_in_warmup": d.loc[d["in_warmup"], "name"].tolist(),
        "results": main_res,
        "results_with_warmup_only_runs": {
            k: {x: v[x] for x in ("mean_rel", "max_rel", "by_M")} for k, v in all_res.items()
        },
        "best": best,
        "selection": {"held_out_params": cv_size, "mean_rel": {k: v["mean_rel"] for k, v in cv_res.items()}},
        "best_in_sample": best_cv,
        "best_on_test": best_test,
        "noise_floor_largest": floor,
        "fitting_choice_selection": sel,
        "aim_met": ok,
        "aim_resolution": resolution,
        "paper": PAPER,
    }
    path = write_result("loss_overtraining", payload, "\n".join(md))
    print("\n".join(md))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
