"""Schedule-aware loss laws on the multi-power-law paper's curves (Luo et al., ICLR 2025, arXiv 2503.12811).

The paper's split: fit on cosine_24000, constant_24000 and wsdcon_9; predict constant_72000, cosine_72000,
wsd_20000_24000, wsdld_20000_24000, wsdcon_3 and wsdcon_18, for the 25M and 100M models. For each law and
size: per test curve the mean and worst relative error |L - Lhat| / L and the final-loss error, and their
means over the six curves beside the paper's figures. Then the size extension: a joint fit of both sizes,
and a law fitted on 25M alone transferred to 100M with published slopes. Then the 90% bootstrap intervals'
coverage of the final losses.

Run: ``.venv/bin/python benchmarks/schedules_mpl.py`` (about 5 minutes on 2 CPU cores); writes
``benchmarks/results/schedules_mpl.json`` and the schedules_mpl section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

from oasl.curves import AnnealingLaw, MultiPowerLaw, ScaledScheduleLaw  # noqa: E402
from oasl.curves.paper import (  # noqa: E402
    PAPER_PARAMS,
    PAPER_TEST_ERRORS,
    SIZES,
    TEST_SCHEDULES,
    TRAIN_SCHEDULES,
    load_paper_curves,
    paper_slopes,
)

VARIANTS = {
    "MPL (oasl default: shape prior)": lambda: MultiPowerLaw(),
    "MPL (paper objective, no prior)": lambda: MultiPowerLaw(shape_prior=None),
    "MPL (paper's Eq. 5 warmup form)": lambda: MultiPowerLaw(warmup="exclude"),
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
    laws = {}
    for size, cs in data.items():
        paper = PAPER_TEST_ERRORS[size]
        train = [cs[n] for n in TRAIN_SCHEDULES]
        res = {}
        readme = MultiPowerLaw.from_params(PAPER_PARAMS[size])
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
        default = res["MPL (oasl default: shape prior)"]["curves"]
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
    slopes = paper_slopes(("25M", "400M"))
    transfer = ScaledScheduleLaw(slopes=slopes).fit([c25[n] for n in TRAIN_SCHEDULES])
    all9 = TRAIN_SCHEDULES + TEST_SCHEDULES
    rows = per_curve(lambda c: transfer.predict(c.lrs, c.steps, n_params=SIZES["100M"]), c100, all9)
    scale["transfer_paper_slopes"] = {"slopes": slopes, "summary": summary(rows), "curves": rows}
    same = laws[("25M", "MPL (oasl default: shape prior)")]
    rows = per_curve(lambda c: same.predict(c.lrs, c.steps), c100, all9)
    scale["no_transfer"] = {"summary": summary(rows), "curves": rows}
    own = laws[("100M", "MPL (oasl default: shape prior)")]
    rows = per_curve(lambda c: own.predict(c.lrs, c.steps), c100, all9)
    scale["own_fit_100M"] = {"summary": summary(rows), "curves": rows}
    payload["scale"] = scale
    print("scale done", flush=True)
    md += [
        "### Model size (ScaledScheduleLaw)",
        "",
        "L0, A, alpha, B are powers of N (slopes fitted or given), C, beta, gamma shared. 'joint' fits 25M and "
        "100M training schedules together and predicts each size's six test schedules. 'transfer' fits 25M alone "
        "and moves the parameters to 100M with slopes from the authors' published 25M and 400M fits (no 100M "
        "information); it is scored on all nine 100M curves, beside using the 25M law unchanged and a law fitted "
        "on 100M's own training curves.",
        "",
        "| predictor | curves | mean | worst (mean) | mean final-loss error | mean signed final error |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for key, label, curves_label in (
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

    # -- bootstrap intervals: coverage of the test curves' final losses -----------------------------
    cover = {}
    for size, cs in data.items():
        law = laws[(size, "MPL (oasl default: shape prior)")]
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
