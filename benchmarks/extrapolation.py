"""Extrapolation benchmark (issue 11). Default ladder `v3` (docs/ladders.md section 7): widths 32/48/64
(depth 2), 10-point lr grids (x1.59 apart) for AdamW, SGD+momentum and Lion on the default corpus, 786k
tokens (768 steps) per run, every grid point on 2 sweep seeds; fit lr*(N) as `oasl fit` does, recommend
lr for width 192 (9.0x the largest swept N), and compare with the oracle, naive transfer, library defaults,
Step Law, random search (4 trials) and the law-guided refinement with 2 target runs (oasl-refine:2) at the
target, every method on the same 3 seeds: regret with a paired-bootstrap 90% interval, the noise floor, a
verdict against oasl, and each optimizer's gradient-clipping regime (:mod:`oasl.optima.clipping`); then
the cost-to-regret curves (every method's expected regret after k = 0..8 target runs, read off the target's
runs, :mod:`oasl.validate.curves`) and issue 25's acceptance figures (:func:`acceptance`), in the `curves`,
`cost_to_regret` and `acceptance` fields. Written as `extrapolation`. Budget: about 2 h of
an idle 2-core machine (one run per process; batching does not pay on CPU, see sweep_throughput).

`--ladder v2` is the former default: widths 24/32/48/64, 393k tokens, 1 sweep seed, all baselines
(muP, TPE, random:8 too), written as `extrapolation_v2`; `--ladder v4` adds width 96 to v3 (4.0x
extrapolation); `--ladder v3-long` is v3 with twice the steps per run (measured: `extrapolation_v3_long`),
`--ladder v3-long-untied` that ladder with the embedding and readout untied; `--ladder gpu`
is the H200 ladder of issue 11 (widths 64-192, depth 4, seq 256, 16.8M tokens per run, target width
576), for the three optimizers; run it on a GPU machine.

`--ladder v1` runs the first version instead: widths 32/48/64 over 7-point grids (x2 apart) of the same
lr ranges, written as `extrapolation_v1`; `--ladder v2-2opt` the second as first measured (AdamW and SGD,
2 seeds, 16k eval tokens). They share the store where their runs are the same.

Run: `.venv/bin/python benchmarks/extrapolation.py [--ladder v1|v2|v2-2opt|v3|v3-long|v3-long-untied|v3-untied|v4|mini|gpu] [--optimizers
adamw ...] [--seeds 0 1 2] [--baselines ...] [--store PATH]` (resumable: the store keeps runs).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import write_result  # noqa: E402

from oasl.validate.curves import card_line  # noqa: E402
from oasl.validate.stats import expected_search_text, interval_regret_text  # noqa: E402

SPEC = {
    "name": "extrapolation",
    "sweep": {
        "name": "extrapolation-ladder",
        "ladder": {"widths": [24, 32, 48, 64], "depth": 2},
        "shape_defaults": {"seq_len": 64},
        "optimizers": {
            "adamw": {"lr": {"log_range": [6.25e-4, 4e-2], "num": 10}},
            "sgd": {"lr": {"log_range": [2.5e-2, 1.6], "num": 10}, "momentum": 0.9},
            # Lion's sign update is ~3-10x larger per step than Adam's (Chen et al. 2023, Sec. 3.1)
            "lion": {"lr": {"log_range": [6.25e-5, 4e-3], "num": 10}},
        },
        "batch_seqs": 16,
        "tokens": 393216,
        "schedule": {"name": "cosine", "warmup_frac": 0.05},
        # 16k eval tokens: benchmarks/eval_noise.py measures a paired difference's eval error at 0.17% of
        # the loss against a 2.3% seed spread (13x below); 65k would cut it to 0.13% at ~20% more compute
        # per run and new run keys (eval_tokens is part of the key)
        "run": {"eval_interval": 128, "eval_tokens": 16384, "device": "cpu"},
    },
    "target": {"width": 192},
    "seeds": [0, 1, 2],
    "oracle_num": 7,
    "baselines": ["naive", "defaults", "mup", "step-law", "random:4", "random:8", "tpe:4", "tpe:8"],
}
# widths, points per lr grid, optimizers, seeds, eval tokens (v1/v2: the first versions' ladders, as measured)
LADDERS = {
    "v2": ([24, 32, 48, 64], 10, ("adamw", "sgd", "lion"), [0, 1, 2], 16384),
    "v2-2opt": ([24, 32, 48, 64], 10, ("adamw", "sgd"), [0, 1], 16384),
    "v1": ([32, 48, 64], 7, ("adamw", "sgd"), [0, 1], 16384),
    # a reduced check that fits ~40 min of a shared 2-core machine: AdamW, widths 16/24/32 -> 96 (8.9x N),
    # half the tokens, fewer baselines (see OVERRIDES); it has the flaws docs/ladders.md lists, more so
    "mini": ([16, 24, 32], 7, ("adamw",), [0, 1, 2], 16384),
}
LADDERS["v3"] = ([32, 48, 64], 10, ("adamw", "sgd", "lion"), [0, 1, 2], 16384)
# v3 plus a fourth, larger rung (width 96): the target is then 4.0x the largest swept N instead of 9.0x, and
# forward chaining gets two folds instead of one (docs/ladders.md section 8)
LADDERS["v4"] = ([32, 48, 64, 96], 10, ("adamw", "sgd", "lion"), [0, 1, 2], 16384)
# Overrides per ladder (docs/ladders.md): `mini` halves the tokens for a ~40-minute check; `v3` answers
# causes 1, 3 and 5 of docs/ladders.md: no width 24 (36% embedding parameters), twice the steps (786k
# tokens = 768 steps, where the 32/64/128 ladder of issue 11 had smooth valleys), and every grid point
# swept on 2 seeds so a located optimum is not one seed's jagged valley. Target width 192 stays (9.0x N).
OVERRIDES = {
    "mini": {
        "target": {"width": 96},
        "tokens": 196608,
        "baselines": ["naive", "defaults", "step-law", "random:4"],
    },
    "v3": {
        "tokens": 786432,
        "sweep_seeds": [0, 1],
        # oasl-refine:2 and the risk-adjusted zero-run point trained (issue 25); every other point of the cost-to-regret
        # curves (random search, TPE and GP-BO at 1-8 runs, the refinement at 1-4) is read off these runs
        "baselines": ["naive", "defaults", "step-law", "random:4", "oasl-refine:2", "oasl-risk"],
    },
}
# v3 with the embedding and readout untied (docs/ladders.md section 8: the suspect for SGD's miss)
LADDERS["v3-untied"] = LADDERS["v3"]
OVERRIDES["v3-untied"] = {**OVERRIDES["v3"], "tie_embeddings": False}
# v3 with twice the steps per run (1,536 at the same batch; 1.57M tokens, sweep and target alike):
# benchmarks/bend.py found the bend of lr* between width 96 and 192 to be a short-horizon effect
# (docs/ladders.md section 9); this ladder asks whether the law then transfers (section 10: for AdamW and
# Lion it does, at about twice v3's cost). v3-long-untied unties the embedding and readout as well, the
# change that made SGD's law transfer on v3 (section 8).
LADDERS["v3-long"] = LADDERS["v3"]
OVERRIDES["v3-long"] = {**OVERRIDES["v3"], "tokens": 2 * 786432}
LADDERS["v3-long-untied"] = LADDERS["v3"]
OVERRIDES["v3-long-untied"] = {**OVERRIDES["v3-long"], "tie_embeddings": False}
OVERRIDES["v4"] = {
    **OVERRIDES["v3"],
    "min_ratio": 3.5,
}  # N ratio 3.996x; the harness refuses < 8x unless told
# The H200 ladder of issue 11: widths 64/96/128/192, depth 4, seq 256, batch 32 sequences, 16.8M tokens per
# run, cosine with 5% warmup, 9-point lr grids, target width 576 (9.0x N).
GPU = {
    "name": "extrapolation-gpu",
    "sweep": {
        "name": "extrapolation-gpu-ladder",
        "ladder": {"widths": [64, 96, 128, 192], "depth": 4},
        "shape_defaults": {"seq_len": 256},
        "optimizers": {
            "adamw": {"lr": {"log_range": [2.5e-4, 4e-2], "num": 9}},
            "sgd": {"lr": {"log_range": [1e-2, 1.6], "num": 9}, "momentum": 0.9},
            "lion": {"lr": {"log_range": [2.5e-5, 4e-3], "num": 9}},
        },
        "batch_seqs": 32,
        "tokens": 16777216,
        "schedule": {"name": "cosine", "warmup_frac": 0.05},
        "run": {"eval_interval": 256, "eval_tokens": 262144, "device": "cuda"},
    },
    "target": {"width": 576},
    "seeds": [0, 1, 2],
    "oracle_num": 9,
    "baselines": ["naive", "defaults", "mup", "step-law", "random:8", "tpe:8"],
}


def spec_for(ladder: str, optimizers: list[str] | None = None) -> dict:
    """The validation spec of ``ladder`` ("gpu" or a CPU ladder of :data:`LADDERS`), restricted to
    ``optimizers`` when given."""
    if ladder == "gpu":
        spec = {**GPU, "sweep": dict(GPU["sweep"])}
    else:
        widths, num, opts, seeds, eval_tokens = LADDERS[ladder]
        sweep = {**SPEC["sweep"], "ladder": {"widths": widths, "depth": 2}}
        sweep["optimizers"] = {
            o: {**g, "lr": {**g["lr"], "num": num}}
            for o, g in SPEC["sweep"]["optimizers"].items()
            if o in opts
        }
        sweep["run"] = {**sweep["run"], "eval_tokens": eval_tokens}
        spec = {**SPEC, "sweep": sweep, "seeds": seeds}
        over = OVERRIDES.get(ladder, {})
        if "tokens" in over:
            sweep["tokens"] = over["tokens"]
        if "tie_embeddings" in over:
            sweep["shape_defaults"] = {**sweep["shape_defaults"], "tie_embeddings": over["tie_embeddings"]}
        if "sweep_seeds" in over:
            sweep["seeds"] = over["sweep_seeds"]
        spec.update({k: over[k] for k in ("target", "baselines", "min_ratio") if k in over})
    if optimizers:
        spec["sweep"]["optimizers"] = {
            o: g for o, g in spec["sweep"]["optimizers"].items() if o in optimizers
        }
    return spec


def ladder_line(ladder: str, data: dict) -> str:
    """One line saying what was measured, read from the spec that ran (so it cannot drift from it)."""
    sw = data["sweep"]
    grids = ", ".join(
        f"{o} {g['lr']['num']} lrs {g['lr']['log_range'][0]:g}-{g['lr']['log_range'][1]:g}"
        for o, g in sw["optimizers"].items()
    )
    return (
        f"Ladder `{ladder}`: widths {'/'.join(map(str, sw['ladder']['widths']))}, depth "
        f"{sw['ladder']['depth']}, seq {sw['shape_defaults']['seq_len']}, batch {sw['batch_seqs']} sequences, "
        f"{sw['tokens']:,} tokens per run, sweep seeds {list(sw.get('seeds', [0]))}; grids: {grids}; target "
        f"{data['target']}; evaluation seeds {list(data['seeds'])}; baselines {', '.join(data['baselines'])}"
        + (f"; corpus {', '.join(sw['corpus']['paths'])}" if "corpus" in sw else "; the default corpus")
        + "."
    )


def selection_lines(fit) -> list[str]:
    """How the law's form was chosen: each candidate's held-out error under forward chaining (the
    default, what was validated) and under leave-one-group-out, on the same located optima."""
    from oasl.laws import select_law
    from oasl.laws.pipeline import law_table

    lines = []
    for cv in ("forward", "loo"):
        best, sel = select_law(
            law_table(fit.optima["lr"], "lr"), "lr", fit.laws["lr"].features, weights="weight", cv=cv
        )
        cands = "; ".join(
            f"{r.form}/{r.sharing} {r.loo_mape:.2f}"
            + (f" +- {r.loo_mape_se:.2f}" if math.isfinite(r.loo_mape_se) else "")
            for r in sel.itertuples()
        )
        lines.append(f"Selection by {cv} held-out MAPE: {cands} -> `{best.formula()}`.")
    return lines


def clipping_line(c: dict) -> str:
    """The optimizer's gradient-clipping regime: ladder optima, the extrapolated and the measured target."""
    sizes = ", ".join(
        f"N={s['n_params']:,.0f}: lr {s['lr']:.3g}, |g| {s['median_grad_norm']:.2f}, clipped {s['clip_frac']:.0%}"
        for s in c["sizes"]
    )
    text = (
        f"Clipping (grad_clip {c['grad_clip']:g}; median pre-clip gradient norm at each size's best lr): {sizes}; "
        f"|g| ~ N^{c['slope']:.2f}, predicted at the target {c['predicted_norm']:.2f}, measured at oasl's lr "
        f"{c['measured_norm']:.2f} (clipped on {c['measured_clip_frac']:.0%} of steps)."
    )
    return text + (f" **Warning:** {c['warning']}." if c.get("warning") else "")


def markdown(result) -> str:
    """The RESULTS.md table: regret with its paired-bootstrap 90% interval, the noise floor, the verdict
    against oasl and the tuning compute; then each optimizer's law with its exponent's interval."""
    lines = [
        f"Validated law: `{result.law_formula}`; seeds {result.seeds}.\n",
        "| optimizer | method | lr | regret (mean, 90% CI) | noise floor | verdict vs oasl | tuning compute (target runs) |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, r in result.table().iterrows():
        if math.isfinite(r["regret_mean"]):
            reg = f"{r['regret_mean']:+.2%} [{r['regret_lo']:+.2%}, {r['regret_hi']:+.2%}]"
        else:
            reg = "diverged"
        lines.append(
            f"| {r['optimizer']} | {r['method']} | {r['lr']:.3g} | {reg} | {r['noise_floor']:.2%} | "
            f"{r['verdict'] or '-'} | {r['tuning_runs']:.2f} |"
        )
    for ov in result.optimizers:
        iv = ", ".join(f"{k} [{a:+.3f}, {b:+.3f}]" for k, (a, b) in ov.law_exponent_interval.items())
        gains = {k: v for k, v in ov.efficiency.items() if "gain" in k or "runs_to_match" in k}
        lines.append(
            f"\n{ov.optimizer}: law `{ov.law_formula}` (exponent 90% interval {iv or 'n/a'}); target "
            f"N={ov.target_n_params:,} ({ov.extrapolation_ratio:.1f}x); oracle lr {ov.oracle_lr:.3g} "
            f"{('(' + ov.oracle_note + ')') if ov.oracle_note else ''}; {gains}"
        )
        if ov.clipping:
            lines.append(clipping_line(ov.clipping))
        if ov.interval_regret:
            lines.append(interval_regret_text(ov.interval_regret) + ".")
        for m in ov.methods:
            if m.expected:
                lines.append(
                    f"Random search in expectation (read off the target's runs: each draw picks by the "
                    f"seed-0 curve and is scored by the seed-mean regret; the table's {m.method} row is the "
                    f"one draw trained): {expected_search_text(m.method, m.expected)}."
                )
    return "\n".join(lines)


#: issue 25's aims for oasl-refine:2's expected regret, per optimizer (others: AdamW's)
REFINE_AIM = {"adamw": 0.005, "lion": 0.005, "sgd": 0.01}
SEARCHES = ("random", "tpe", "gp")


def acceptance(result) -> dict:
    """Issue 25's acceptance figures per optimizer, from the cost-to-regret curves: oasl-refine:2's expected
    regret against its aim (:data:`REFINE_AIM`), whether at each k = 1..4 the refinement's 90% interval
    lies below each search's expected regret at the same k, and the compute saving (target-run
    equivalents, ladder included, at which the best search first matches oasl-refine:2, over
    oasl-refine:2's own)."""
    out = {}
    for ov in result.optimizers:
        c, s = ov.curves, ov.cost_to_regret
        ref = {p["k"]: p for p in c.get("oasl-refine", [])}
        row: dict = {"aim": REFINE_AIM.get(ov.optimizer, 0.005)}
        if 2 in ref:
            row["refine2"] = {k: ref[2].get(k) for k in ("mean", "lo", "hi", "source")}
            row["refine2_meets_aim"] = bool(ref[2]["mean"] <= row["aim"])
        below = s.get("below", {})
        row["below_every_search"] = {
            k: bool(v) and all(v.values()) and set(v) == {x for x in SEARCHES if c.get(x)}
            for k, v in below.items()
        }
        row["runs_to_match"] = s.get("runs_to_match", {})
        row["saving_ratio"] = s.get("saving_ratio")
        row["ladder_runs"] = s.get("ladder_runs")
        out[ov.optimizer] = row
    return out


def prior_markdown(effect: dict) -> str:
    """The exponent prior's effect as a table (read off the target's runs, :func:`prior_effect`)."""
    lines = [
        "The exponent prior (oasl.laws.prior; docs/extrapolation.md): the law's lr at the target without and "
        "with it, each read off the target's runs (seed mean over the evaluation seeds, linear in log lr):",
        "",
        "| optimizer | lr without | regret without | lr with | regret with |",
        "|---|---|---|---|---|",
    ]
    for opt, r in effect.items():
        a, b = r["without_prior"], r["with_prior"]
        lines.append(
            f"| {opt} | {a['lr']:.3g} | {a['regret_pct']:+.2f}% | {b['lr']:.3g} | {b['regret_pct']:+.2f}% |"
        )
    if effect:
        f = next(iter(effect.values()))["formula"]
        lines += ["", f"Without: `{f['without_prior']}`; with: `{f['with_prior']}`."]
    return "\n".join(lines)


def _cell(p: dict) -> str:
    mean, lo, hi = p.get("mean"), p.get("lo"), p.get("hi")
    if mean is None or not math.isfinite(mean):
        return "diverged"
    iv = f" [{lo:+.2%}, {hi:+.2%}]" if lo is not None and hi is not None and math.isfinite(hi) else ""
    return f"{mean:+.2%}{iv}{'' if p.get('source') == 'replayed' else ' (t)'}"


def curves_markdown(result, acc: dict) -> str:
    """Per optimizer: the cost-to-regret table (expected regret after k target runs, 90% interval over the
    evaluation seeds; '(t)' where trained, otherwise read off the target's runs), the card's line and
    the acceptance figures."""
    lines = []
    for ov in result.optimizers:
        if not ov.curves:
            continue
        ks = sorted({p["k"] for pts in ov.curves.values() for p in pts})
        lines += [
            f"\n{ov.optimizer}: expected regret after k target runs (read off the target's runs unless "
            "'(t)': trained on every seed)\n",
            "| method | " + " | ".join(f"k={k}" for k in ks) + " |",
            "|---|" + "---|" * len(ks),
        ]
        for name, pts in ov.curves.items():
            by = {p["k"]: p for p in pts}
            lines.append(f"| {name} | " + " | ".join(_cell(by[k]) if k in by else "" for k in ks) + " |")
        line = card_line(ov.cost_to_regret)
        if line:
            lines.append(f"\n{line}")
        a = acc.get(ov.optimizer, {})
        if "refine2" in a:
            ratio = a["saving_ratio"]
            ratio = f"{ratio:.2f}x" if isinstance(ratio, float) else (ratio or "-")
            wins = [k for k, v in a["below_every_search"].items() if v]
            lines.append(
                f"Acceptance ({ov.optimizer}): oasl-refine:2 {a['refine2']['mean']:+.2%} against the aim "
                f"{a['aim']:.1%}: {'met' if a['refine2_meets_aim'] else 'NOT met'}; its interval lies below "
                f"every search's expected regret at k = {', '.join(wins) or 'none'} of 1-4; runs each search "
                f"needs to match it: {a['runs_to_match']}; compute saving (best search's target-run "
                f"equivalents over oasl-refine:2's, ladder of {a['ladder_runs']:.2f} included): {ratio}."
            )
    return "\n".join(lines)


def sweep_law(spec, store: str, workers: int) -> None:
    """Train ``spec``'s ladder into ``store``, fit lr on those runs with the harness's own
    :func:`oasl.validate.fit_validated_law` (the law it would validate) and print it with its lr and 90%
    interval at the target's N."""
    import pandas as pd

    from oasl.models import count_params
    from oasl.store import open_store
    from oasl.sweep import expand, run_sweep
    from oasl.validate import fit_validated_law

    runs = expand(spec.sweep)
    summary = run_sweep(runs, store, workers=workers)
    print(f"ladder: {summary.done} trained, {summary.skipped} already in the store", flush=True)
    df = open_store(store).to_dataframe(finished_only=True)
    df = df[df["key"].isin({r.key() for r in runs})]
    law = fit_validated_law(df, spec.law_features).laws["lr"]
    n = count_params(spec.target_shape()).n_params
    print(f"law: {law.formula()}")
    for opt in sorted(spec.sweep.optimizers):
        q = pd.DataFrame({"N": [float(n)], "optimizer": [opt]})
        lo, hi = (float(v[0]) for v in law.predict_interval(q, 0.9))
        pred = float(law.predict(q)[0])
        print(f"{opt}: at the target (N={n:,}) lr {pred:.3g} (90% {lo:.3g}-{hi:.3g})")


def prior_effect(store: str, spec, result) -> dict:
    """The exponent prior's effect (issue 25, item 5; :mod:`oasl.laws.prior`): per optimizer, the law's lr
    at the target with and without the prior, each read off the target's runs (the seed-mean loss over
    the evaluation seeds at every lr trained on all of them, linear in log lr between them:
    :func:`oasl.validate.riskcheck.read_off`), in % of the best such loss."""
    import pandas as pd

    from oasl.laws.pipeline import fit_laws
    from oasl.store import open_store
    from oasl.sweep import expand
    from oasl.validate.riskcheck import read_off

    df = open_store(store).to_dataframe(finished_only=True)
    sweep = df[df["key"].isin({r.key() for r in expand(spec.sweep)})]
    laws = {p: fit_laws(sweep, hps=["lr"], exponent_prior=p).laws["lr"] for p in (False, True)}
    out = {}
    for ov in result.optimizers:
        tgt = df[(df["role"] == "target") & (df["optimizer"] == ov.optimizer)]
        tgt = tgt[tgt["n_params"] == ov.target_n_params]
        tgt = tgt[tgt["seed"].isin(result.seeds)]
        full = tgt.groupby("lr")["seed"].nunique()
        tgt = tgt[tgt["lr"].isin(full[full == len(result.seeds)].index)]
        n, d = float(ov.target_n_params), float(ov.target_tokens)
        q = pd.DataFrame({"N": [n], "D": [d], "C": [6.0 * n * d], "optimizer": [ov.optimizer]})
        row = {}
        for p, law in laws.items():
            lr = float(law.predict(q)[0])
            row["with_prior" if p else "without_prior"] = {"lr": lr, **read_off(tgt, lr)}
        row["formula"] = {"without_prior": laws[False].formula(), "with_prior": laws[True].formula()}
        out[ov.optimizer] = row
    return out


def store_wall(store: str, spec) -> float:
    """Seconds the store's runs of this benchmark took to train, from their timestamps: the span from the
    first run's start to the last one's end, less any gap of 10 minutes or more with no run in flight
    (the benchmark stopped and restarted)."""
    import sqlite3

    from oasl.sweep import expand

    keys = {r.key() for r in expand(spec.sweep)}
    rows = sqlite3.connect(store).execute("select key, role, created_at, updated_at from runs").fetchall()
    spans = sorted((c, u) for k, role, c, u in rows if k in keys or role != "sweep")
    total, start, end = 0.0, None, None
    for c, u in spans:
        if start is None:
            start, end = c, u
        elif c - end >= 600:
            total, start, end = total + end - start, c, u
        else:
            end = max(end, u)
    return total + (end - start if start is not None else 0.0)


def main() -> None:
    from oasl.config import build
    from oasl.validate import ValidateSpec, validate

    ap = argparse.ArgumentParser()
    ap.add_argument("--store", default=None, help="default benchmarks/results/extrapolation[_gpu].db")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--ladder", choices=[*sorted(LADDERS), "gpu"], default="v3")
    ap.add_argument("--optimizers", nargs="+", default=None, help="only these optimizers")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="override the evaluation seeds")
    ap.add_argument("--baselines", nargs="+", default=None, help="override the baselines")
    ap.add_argument("--name", default=None, help="result name (default from the ladder)")
    ap.add_argument(
        "--corpus",
        nargs="+",
        default=None,
        help="train on these files, folders or globs instead of the default corpus (issue 25's second-corpus "
        "check: '/usr/share/info/*.info*.gz', the GNU manuals; .gz/.bz2/.xz files are read decompressed)",
    )
    ap.add_argument(
        "--corpus-text-field",
        default=None,
        help="the field holding the text in --corpus's .jsonl records or parquet columns (default: text)",
    )
    ap.add_argument(
        "--corpus-max-bytes",
        type=int,
        default=None,
        help="read at most this many bytes of --corpus (the whole corpus is tokenized in memory once; a "
        "ladder run sees 0.8M tokens, so 100 MB is plenty); unset: all of it",
    )
    ap.add_argument(
        "--sweep-only",
        action="store_true",
        help="train the ladder only and print the law oasl fit would validate and its lr at the target "
        "(no target runs, nothing written)",
    )
    args = ap.parse_args()
    t0 = time.time()
    data = spec_for(args.ladder, args.optimizers)
    if args.seeds:
        data["seeds"] = args.seeds
    if args.baselines:
        data["baselines"] = args.baselines
    if args.corpus:
        data["sweep"]["corpus"] = {"source": "files", "paths": list(args.corpus)}
        if args.corpus_max_bytes:
            data["sweep"]["corpus"]["max_bytes"] = args.corpus_max_bytes
        if args.corpus_text_field:
            data["sweep"]["corpus"]["text_field"] = args.corpus_text_field
    gpu = args.ladder == "gpu"
    store = args.store or f"benchmarks/results/extrapolation{'_gpu' if gpu else ''}.db"
    spec = build(ValidateSpec, data)
    if args.sweep_only:
        sweep_law(spec, store, args.workers)
        return
    result = validate(spec, store, workers=args.workers, log=lambda m: print(m, flush=True))
    wall_s = time.time() - t0
    name = args.name or {"v3": "extrapolation", "gpu": "extrapolation_gpu"}.get(
        args.ladder, f"extrapolation_{args.ladder}"
    )
    payload = {
        "spec": data,
        "law": result.law,
        "law_formula": result.law_formula,
        "noise_floor": result.noise_floor,
        "table": result.table().to_dict(orient="records"),
        "wall_s": wall_s,
        "efficiency": {ov.optimizer: ov.efficiency for ov in result.optimizers},
        "search_over_draws": {
            ov.optimizer: {m.method: m.expected for m in ov.methods if m.expected} for ov in result.optimizers
        },
    }
    payload["store_wall_s"] = store_wall(store, spec)
    payload["prior_effect"] = prior_effect(store, spec, result)
    payload["curves"] = {ov.optimizer: ov.curves for ov in result.optimizers}
    payload["cost_to_regret"] = {ov.optimizer: ov.cost_to_regret for ov in result.optimizers}
    acc = payload["acceptance"] = acceptance(result)
    selection = selection_lines(result.fit)
    payload["selection"] = selection
    text = markdown(result) + "\n" + curves_markdown(result, acc)
    text = ladder_line(args.ladder, data) + "\n\n" + text + "\n\n" + "\n".join(selection)
    text += "\n\n" + prior_markdown(payload["prior_effect"])
    text += (
        f"\n\nWall time of this command {payload['wall_s'] / 60:.0f} min; the store's runs took "
        f"{payload['store_wall_s'] / 60:.0f} min to train from an empty store (timestamps, restarts "
        f"excluded; store {store})."
    )
    write_result(name, payload, text)
    print(text)


if __name__ == "__main__":
    main()
