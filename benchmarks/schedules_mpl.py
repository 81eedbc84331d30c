"""Schedule-aware loss laws on the multi-power-law paper's curves (Luo et al., ICLR 2025, arXiv 2503.12811).

The paper's split: fit on cosine_24000, constant_24000 and wsdcon_9; predict constant_72000, cosine_72000,
wsd_20000_24000, wsdld_20000_24000, wsdcon_3 and wsdcon_18, for the 25M and 100M models. For each law and
size: per test curve the mean and worst relative error |L - Lhat| / L and the final-loss error, and their
means over the six curves beside the paper's figures. No fit here uses a prior built from a published
parameter set (issue 14): the default MultiPowerLaw is the paper's plain objective in its Eq. 5 warmup form (the
convention chosen on the training curves alone: leave one training schedule out, first section); one variant centres a
shape prior on the other size's own fit (a fit the user has). The same split through the CLI on the CSV
files as released (`oasl schedules fit --curves ...`, `oasl schedules eval --format json`). Then model
size: a joint fit of both sizes; the transfer 25M law + 100M's constant_24000 curve alone -> 100M
(:func:`oasl.curves.transfer_law`, also through `oasl schedules fit --transfer-from`); and, for reference,
25M + slopes taken from the authors' published 25M/400M fits. Then the 90% bootstrap intervals' coverage.

Run: ``.venv/bin/python benchmarks/schedules_mpl.py`` (about 20 minutes on 2 shared CPU cores); writes
``benchmarks/results/schedules_mpl.json`` and the schedules_mpl section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

from oasl.curves import AnnealingLaw, MultiPowerLaw, ScaledScheduleLaw, transfer_law  # noqa: E402
from oasl.curves.paper import (  # noqa: E402
    PAPER_PARAMS,
    PAPER_TEST_ERRORS,
    SIZES,
    TEST_SCHEDULES,
    TRAIN_SCHEDULES,
    load_paper_curves,
    paper_slopes,
)

DEFAULT = "MPL (oasl default: paper's Eq. 5 warmup form, paper objective, no prior)"
VARIANTS = {
    DEFAULT: lambda: MultiPowerLaw(),
    "MPL (authors' code warmup convention)": lambda: MultiPowerLaw(warmup="include"),
    "Annealing law (warmup included)": lambda: AnnealingLaw(),
    "Annealing law (warmup excluded)": lambda: AnnealingLaw(warmup="exclude"),
}


def per_curve(predict, cs, names):
    out = {}
    for n in names:
        c = cs[n]
        pred = predict(c)
        rel = np.abs(pred - c.loss) / c.loss
        ss = float(np.sum((c.loss - c.loss.mean()) ** 2))
        out[n] = {
            "mean_rel": float(rel.mean()),
            "worst_rel": float(rel.max()),
            "final_rel": float(rel[-1]),
            "final_abs": float(pred[-1] - c.loss[-1]),
            "r2": 1 - float(np.sum((c.loss - pred) ** 2)) / ss,
        }
    return out


def summary(rows: dict) -> dict:
    v = list(rows.values())
    return {
        "mean_rel": float(np.mean([r["mean_rel"] for r in v])),
        "worst_rel_mean": float(np.mean([r["worst_rel"] for r in v])),
        "worst_rel_max": float(np.max([r["worst_rel"] for r in v])),
        "final_rel_mean": float(np.mean([r["final_rel"] for r in v])),
        "r2_mean": float(np.mean([r["r2"] for r in v])),
    }


def pct(x: float, d: int = 3) -> str:
    return f"{100 * x:.{d}f}%"


def choose_warmup(data) -> dict:
    """The evidence behind the default warmup convention, from the training curves only: for each size, each
    way of building the per-step schedule (the authors' definitions, and the CSV rows as `oasl schedules fit
    --curves` reads them) and each convention, fit on two of the three training schedules and score the third
    (mean relative error). Returns per convention the fold errors and their mean; ``chosen``: the lowest."""
    from oasl.curves.io import read_curve_file
    from oasl.testing import shared_data

    root = shared_data("multipowerlaw")
    out: dict = {"folds": {}, "mean": {}}
    for conv in ("exclude", "include"):
        errs = []
        for size, cs in data.items():
            files = {n: read_curve_file(root / f"csv_{size[:-1]}" / f"{n}.csv") for n in TRAIN_SCHEDULES}
            for build, curves in (("authors' schedule", cs), ("CSV rows", files)):
                for held in TRAIN_SCHEDULES:
                    law = MultiPowerLaw(warmup=conv).fit([curves[n] for n in TRAIN_SCHEDULES if n != held])
                    e = law.score(curves[held])["mean_rel"]
                    out["folds"][f"{conv} | {size} | {build} | {held}"] = e
                    errs.append(e)
            print("warmup", conv, size, pct(float(np.mean(errs))), flush=True)
        out["mean"][conv] = float(np.mean(errs))
    out["chosen"] = min(out["mean"], key=out["mean"].get)
    # the chosen convention's lead over the other, paired fold by fold, and its standard error
    other = next(c for c in out["mean"] if c != out["chosen"])
    diff = np.array(
        [
            out["folds"][k.replace(out["chosen"], other, 1)] - v
            for k, v in out["folds"].items()
            if k.startswith(out["chosen"] + " |")
        ]
    )
    out["lead"], out["lead_se"] = float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff)))
    return out


def cli_split(data) -> dict:
    """The paper's split through `oasl schedules fit --curves` / `eval --format json` on the CSV files, and
    the size transfer through `fit --transfer-from`; returns eval's JSON per size (and "transfer")."""
    import json
    import os
    import subprocess
    import tempfile

    from oasl.testing import shared_data

    root = shared_data("multipowerlaw")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src")}

    def oasl(*args):
        r = subprocess.run(
            [sys.executable, "-m", "oasl", *map(str, args)], capture_output=True, text=True, env=env
        )
        if r.returncode:
            sys.exit(f"oasl {' '.join(map(str, args))} failed: {r.stdout}{r.stderr}")
        return r.stdout

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in data:
            folder = root / f"csv_{size[:-1]}"
            law = Path(tmp) / f"law_{size}.json"
            train = [a for n in TRAIN_SCHEDULES for a in ("--curves", folder / f"{n}.csv")]
            oasl("schedules", "fit", *train, "--boot", "0", "--out", law)
            test = [a for n in TEST_SCHEDULES for a in ("--curves", folder / f"{n}.csv")]
            out[size] = json.loads(oasl("schedules", "eval", "--law", law, *test, "--format", "json"))
            print("CLI", size, pct(out[size]["mean"]["mean_rel"]), flush=True)
        moved = Path(tmp) / "law_100M_from_25M.json"
        const = root / "csv_100" / "constant_24000.csv"
        oasl(
            "schedules",
            "fit",
            "--curves",
            const,
            "--transfer-from",
            Path(tmp) / "law_25M.json",
            "--out",
            moved,
        )
        test = [a for n in TEST_SCHEDULES for a in ("--curves", root / "csv_100" / f"{n}.csv")]
        out["transfer 25M -> 100M"] = json.loads(
            oasl("schedules", "eval", "--law", moved, *test, "--format", "json")
        )
        print("CLI transfer", pct(out["transfer 25M -> 100M"]["mean"]["mean_rel"]), flush=True)
    return out


def main() -> None:
    data = {size: load_paper_curves(size) for size in ("25M", "100M")}
    payload: dict = {"split": {"train": TRAIN_SCHEDULES, "test": TEST_SCHEDULES}, "paper": PAPER_TEST_ERRORS}
    md = [
        "Multi-power law (Luo et al. 2025) and LR-annealing law (Tissue et al. 2024) on the paper's released "
        "curves: fit on cosine_24000, constant_24000, wsdcon_9; predict the six other schedules (incl. 72k-step "
        "runs, 3x the training horizon). Errors are |L - Lhat| / L; 'mean' and 'worst' are per curve, averaged "
        "over the six test curves (the paper's PredE and WorstE); 'max worst' is the worst point of any curve.",
        "",
    ]
    choice = choose_warmup(data)
    payload["warmup_choice"] = choice
    md += [
        "### Choosing the default warmup convention (training curves only)",
        "",
        "Fit on two of the three training schedules, score the third (mean relative error), for each size and "
        "each way of building the per-step schedule (the authors' definitions; the CSV rows as `oasl schedules "
        "fit --curves` reads them). 'exclude' is the paper's Eq. 5 (LR changes up to the end of warmup left out "
        "of the loss-drop term), 'include' the authors' code. No test schedule enters this choice.",
        "",
        "| convention | size | schedule built from | "
        + " | ".join(f"{n} held out" for n in TRAIN_SCHEDULES)
        + " | mean |",
        "| --- | --- | --- | " + "--- | " * len(TRAIN_SCHEDULES) + "--- |",
    ]
    for conv in ("exclude", "include"):
        for size in data:
            for build in ("authors' schedule", "CSV rows"):
                es = [choice["folds"][f"{conv} | {size} | {build} | {h}"] for h in TRAIN_SCHEDULES]
                md.append(
                    f"| {conv} | {size} | {build} | "
                    + " | ".join(pct(e) for e in es)
                    + f" | {pct(float(np.mean(es)))} |"
                )
    md += [
        "",
        "Mean over all folds: "
        + ", ".join(f"{c} {pct(v)}" for c, v in choice["mean"].items())
        + f"; chosen by the rule stated before the comparison (lowest mean): {choice['chosen']} "
        + (
            "(oasl's default)."
            if choice["chosen"] == MultiPowerLaw().warmup
            else "(NOT oasl's default: change it)."
        )
        + f" Its lead, paired fold by fold, is {pct(choice['lead'])} +- {pct(choice['lead_se'])} (standard error, "
        f"{len(choice['folds']) // 2} folds): "
        + ("beyond" if choice["lead"] > 2 * choice["lead_se"] else "within")
        + " 2 standard errors, so the evidence for it is weak. The authors' published parameter sets are used in "
        "their code's convention ('include') throughout.",
        "",
    ]
    laws = {}
    for size, cs in data.items():
        paper = PAPER_TEST_ERRORS[size]
        train = [cs[n] for n in TRAIN_SCHEDULES]
        res = {}
        readme = MultiPowerLaw.from_params(PAPER_PARAMS[size], warmup="include")  # the code's convention
        rows = per_curve(lambda c, law=readme: law.predict(c.lrs, c.steps), cs, TEST_SCHEDULES)
        res["MPL, paper's published parameters"] = {
            "summary": summary(rows),
            "curves": rows,
            "params": PAPER_PARAMS[size],
        }
        for name, make in VARIANTS.items():
            t0 = time.perf_counter()
            law = make().fit(train)
            secs = time.perf_counter() - t0
            rows = per_curve(lambda c, law=law: law.predict(c.lrs, c.steps), cs, TEST_SCHEDULES)
            res[name] = {
                "summary": summary(rows),
                "curves": rows,
                "params": law.params_,
                "fit_seconds": secs,
                "train_mean_rel": float(np.mean([e["mean_rel"] for e in law.train_errors_.values()])),
            }
            laws[(size, name)] = law
            print(size, name, pct(res[name]["summary"]["mean_rel"]), f"{secs:.1f}s", flush=True)
        payload[size] = res
        md += [
            f"### {size} (paper: mean {pct(paper['mean_rel'])}, worst {pct(paper['worst_rel'], 2)}, R2 {paper['r2']})",
            "",
            "| law | test mean | test worst (mean) | max worst | mean final-loss error | R2 | train mean | fit s |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, r in res.items():
            s = r["summary"]
            md.append(
                f"| {name} | {pct(s['mean_rel'])} | {pct(s['worst_rel_mean'], 2)} | {pct(s['worst_rel_max'], 2)} | "
                f"{pct(s['final_rel_mean'])} | {s['r2_mean']:.4f} | "
                f"{pct(r['train_mean_rel']) if 'train_mean_rel' in r else '-'} | {r.get('fit_seconds', 0):.1f} |"
            )
        default = res[DEFAULT]["curves"]
        md += [
            "",
            f"Per test curve, oasl default MPL ({size}): "
            + "; ".join(
                f"{n} {pct(r['mean_rel'])} / worst {pct(r['worst_rel'], 2)} / final {r['final_abs']:+.4f}"
                for n, r in default.items()
            )
            + ".",
            "",
        ]

    # -- a shape prior from the other size's own fit (no published numbers) ------------------------
    for size, other in (("25M", "100M"), ("100M", "25M")):
        cs = data[size]
        law = MultiPowerLaw(prior=laws[(other, DEFAULT)]).fit([cs[n] for n in TRAIN_SCHEDULES])
        rows = per_curve(lambda c, law=law: law.predict(c.lrs, c.steps), cs, TEST_SCHEDULES)
        payload[size][f"MPL, prior from the {other} fit"] = {
            "summary": summary(rows),
            "curves": rows,
            "params": law.params_,
        }
        print(size, "prior from", other, pct(summary(rows)["mean_rel"]), flush=True)
    md += ["### A shape prior from the other size's fit (sd 0.25 in log units on C, beta, gamma)", ""]
    md += [
        f"- {size}: test mean {pct(payload[size][f'MPL, prior from the {o} fit']['summary']['mean_rel'])} "
        f"(no prior: {pct(payload[size][DEFAULT]['summary']['mean_rel'])})"
        for size, o in (("25M", "100M"), ("100M", "25M"))
    ]
    md.append("")

    # -- the same split through the CLI, on the CSV files as released ------------------------------
    cli = cli_split(data)
    payload["cli_files"] = cli
    md += [
        "### Through the CLI on the released CSVs",
        "",
        "`oasl schedules fit --curves csv_S/{cosine_24000,constant_24000,wsdcon_9}.csv --boot 0`, then "
        "`oasl schedules eval --law law.json --curves <the six test CSVs> --format json` (the per-step schedule "
        "rebuilt from each file's rows: linear between logged steps, a linear warmup from 0 before the first).",
        "",
        "| size | test mean | test worst (mean) | mean final-loss error | paper mean |",
        "| --- | --- | --- | --- | --- |",
    ]
    for size, r in cli.items():
        if size.startswith("transfer"):
            continue
        m = r["mean"]
        md.append(
            f"| {size} | {pct(m['mean_rel'])} | {pct(m['worst_rel'], 2)} | {pct(m['final_rel'])} | "
            f"{pct(PAPER_TEST_ERRORS[size]['mean_rel'])} |"
        )
    md.append("")
    aims = [(size, cli[size]["mean"]["mean_rel"], PAPER_TEST_ERRORS[size]["mean_rel"]) for size in data]
    md += [
        "Aims (issue 14, this CLI path, no published-parameter prior): "
        + "; ".join(
            f"{size} mean test error {pct(v)} <= paper's {pct(a)}: {'met' if v <= a else 'NOT met'}"
            for size, v, a in aims
        )
        + ". The same split on the authors' per-step schedules (tables above, oasl default): "
        + "; ".join(f"{size} {pct(payload[size][DEFAULT]['summary']['mean_rel'])}" for size in data)
        + ". The two differ only in how the per-step schedule is built (the CSV rows are every 128 steps, a step "
        "drop spread over the rows around it), which moves this fit's test error by tens of percent: the shape "
        "of the loss drop (C, beta, gamma) is weakly identified by three training schedules.",
        "",
    ]
    payload["aims"] = {size: {"mean_rel": v, "aim": a, "met": v <= a} for size, v, a in aims}

    # -- model size: joint fit and transfer 25M -> 100M --------------------------------------------
    c25, c100 = data["25M"], data["100M"]
    t0 = time.perf_counter()
    joint = ScaledScheduleLaw().fit([c25[n] for n in TRAIN_SCHEDULES] + [c100[n] for n in TRAIN_SCHEDULES])
    joint_s = time.perf_counter() - t0
    scale = {"joint_fit_seconds": joint_s, "joint_slopes": joint.slopes_}
    for size, cs in data.items():
        rows = per_curve(
            lambda c, s=size: joint.predict(c.lrs, c.steps, n_params=SIZES[s]), cs, TEST_SCHEDULES
        )
        scale[f"joint_{size}"] = {"summary": summary(rows), "curves": rows}
    all9 = TRAIN_SCHEDULES + TEST_SCHEDULES
    base25 = laws[("25M", DEFAULT)]
    moved = transfer_law(base25, [c100["constant_24000"]])
    rows = per_curve(lambda c: moved.predict(c.lrs, c.steps), c100, TEST_SCHEDULES)
    scale["transfer_constant_run"] = {"summary": summary(rows), "curves": rows, "params": moved.params_}
    rows = per_curve(lambda c: moved.predict(c.lrs, c.steps), c100, all9)
    scale["transfer_constant_run_all9"] = {"summary": summary(rows), "curves": rows}
    print(
        "transfer from one constant run",
        pct(scale["transfer_constant_run"]["summary"]["mean_rel"]),
        flush=True,
    )
    slopes = paper_slopes(("25M", "400M"))
    transfer = ScaledScheduleLaw(slopes=slopes).fit([c25[n] for n in TRAIN_SCHEDULES])
    rows = per_curve(lambda c: transfer.predict(c.lrs, c.steps, n_params=SIZES["100M"]), c100, all9)
    scale["transfer_paper_slopes"] = {"slopes": slopes, "summary": summary(rows), "curves": rows}
    same = laws[("25M", DEFAULT)]
    rows = per_curve(lambda c: same.predict(c.lrs, c.steps), c100, all9)
    scale["no_transfer"] = {"summary": summary(rows), "curves": rows}
    own = laws[("100M", DEFAULT)]
    rows = per_curve(lambda c: own.predict(c.lrs, c.steps), c100, all9)
    scale["own_fit_100M"] = {"summary": summary(rows), "curves": rows}
    payload["scale"] = scale
    print("scale done", flush=True)
    md += [
        "### Model size (ScaledScheduleLaw)",
        "",
        "'25M law + 100M constant_24000' keeps the 25M fit's loss-drop term (B, C, beta, gamma) and refits L0, A, "
        "alpha on 100M's constant-LR curve alone (`transfer_law`; aim <= 0.3% on the six test schedules). "
        "'joint' (ScaledScheduleLaw: L0, A, alpha, B powers of N, C, beta, gamma shared) fits 25M and 100M "
        "training schedules together. For reference: 25M moved to 100M with slopes from the authors' published "
        "25M and 400M fits, the 25M law unchanged, and 100M's own fit.",
        "",
        "| predictor | curves | mean | worst (mean) | mean final-loss error | mean signed final error |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for key, label, curves_label in (
        ("transfer_constant_run", "25M law + 100M constant_24000 -> 100M", "6 test"),
        ("transfer_constant_run_all9", "25M law + 100M constant_24000 -> 100M", "all 9"),
        ("joint_25M", "joint 25M+100M -> 25M", "6 test"),
        ("joint_100M", "joint 25M+100M -> 100M", "6 test"),
        ("transfer_paper_slopes", "25M + published slopes -> 100M", "all 9"),
        ("no_transfer", "25M law unchanged -> 100M", "all 9"),
        ("own_fit_100M", "100M's own fit (reference)", "all 9"),
    ):
        s = scale[key]["summary"]
        signed = np.mean([r["final_abs"] for r in scale[key]["curves"].values()])
        md.append(
            f"| {label} | {curves_label} | {pct(s['mean_rel'])} | {pct(s['worst_rel_mean'], 2)} | "
            f"{pct(s['final_rel_mean'])} | {signed:+.4f} |"
        )

    t = payload["cli_files"]["transfer 25M -> 100M"]["mean"]
    md += [
        "",
        "Through the CLI (`oasl schedules fit --curves csv_100/constant_24000.csv --transfer-from law_25M.json`, "
        f"then `schedules eval` on the six 100M test CSVs): mean {pct(t['mean_rel'])}, worst (mean) "
        f"{pct(t['worst_rel'], 2)}, final {pct(t['final_rel'])}. Aim <= 0.3%: "
        + ("met" if t["mean_rel"] <= 0.003 else "NOT met")
        + f" (API path: {pct(scale['transfer_constant_run']['summary']['mean_rel'])}).",
    ]

    # -- bootstrap intervals: coverage of the test curves' final losses -----------------------------
    cover = {}
    for size, cs in data.items():
        law = laws[(size, DEFAULT)]
        t0 = time.perf_counter()
        law.bootstrap(30)
        inside, widths = 0, []
        for n in TEST_SCHEDULES:
            lo, hi = law.predict_interval(cs[n].lrs, [cs[n].steps[-1]], level=0.9)
            inside += int(lo[0] <= cs[n].loss[-1] <= hi[0])
            widths.append(float(hi[0] - lo[0]))
        cover[size] = {
            "inside": inside,
            "of": len(TEST_SCHEDULES),
            "mean_width": float(np.mean(widths)),
            "seconds": time.perf_counter() - t0,
        }
    payload["interval_coverage_final_loss"] = cover
    md += [
        "",
        "90% segment-bootstrap intervals (30 refits) of the final loss of the six test curves, oasl default MPL: "
        + "; ".join(
            f"{s}: {c['inside']}/{c['of']} inside, mean width {c['mean_width']:.4f}" for s, c in cover.items()
        )
        + ". They reflect fit uncertainty only, not the law's misspecification, so they under-cover.",
    ]
    write_result("schedules_mpl", payload, "\n".join(md))


if __name__ == "__main__":
    main()
