"""Why lr* flattens between v4's largest rung and its target (docs/ladders.md section 9): more steps, or
more tokens per parameter?

On ladder v3/v4 (depth 2, seq 64, batch 16 sequences, 786,432 tokens = 768 steps per run, cosine with
5% warmup) AdamW's located optimum falls 0.00306 -> 0.00198 from width 96 to width 192, a local exponent
of about -0.3 in N, where the ladder's law has -0.53. Two suspects differ between this ladder and the
H200 ladder of issue 11, whose law transferred: the steps per run (768 against 2,048; docs/ladders.md
section 1) and the tokens per parameter at the target (0.89 here). This benchmark moves them apart:

* ``base``: the ladder's runs (768 steps; D/N 3.5 at width 96, 0.89 at 192);
* ``steps2x``: the same tokens in batches of 8 sequences (1,536 steps; D/N unchanged);
* ``tokens2x``: twice the tokens in batches of 32 sequences (768 steps; D/N doubled);
* ``long``: twice the tokens in the ladder's batches of 16 (1,536 steps; D/N doubled): steps2x halves
  the batch and tokens2x doubles it, so this one moves the steps without touching the batch.

Each condition trains widths 96 and 192 over 5 lrs of the ladder's grid (x1.59 apart, 0.000994-0.00634)
on 2 seeds; the optimum is located per (condition, width) with its 90% bootstrap interval
(:func:`oasl.optima.locate_optima`), and the local exponent d log lr* / d log N between the two widths is
compared across conditions. The suspect whose condition moves the exponent toward the ladder's -0.53 is
the one that bends lr*; if neither does, neither is the cause at this resolution.

Run: ``.venv/bin/python benchmarks/bend.py [--store PATH] [--workers 2]`` (resumable; about 50 minutes on
2 idle cores; a copy of the extrapolation benchmark's store gives the base condition for free).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import write_result  # noqa: E402

# points 2-6 of the ladder's 10-point AdamW grid (x1.59 apart), expanded as the sweep expands it
GRID = {"log_range": [6.25e-4, 4e-2], "num": 10}
WIDTHS = [96, 192]
SEEDS = [0, 1]
TOKENS = 786432
# condition -> (batch sequences, tokens per run)
CONDITIONS = {
    "base": (16, TOKENS),
    "steps2x": (8, TOKENS),
    "tokens2x": (32, 2 * TOKENS),
    "long": (16, 2 * TOKENS),
}
LAW_EXPONENT = -0.529  # v4's fitted law (RESULTS.md section extrapolation_v4)


def runs_for(condition: str) -> list:
    """The RunSpecs of one condition, built as the extrapolation ladder builds its runs (same keys for
    ``base``)."""
    from oasl.config import RunSpec
    from oasl.sweep.spec import grid_values

    lrs = grid_values(GRID, "lr")[1:6]
    batch, tokens = CONDITIONS[condition]
    return [
        RunSpec(
            shape={"width": w, "depth": 2, "seq_len": 64},
            optimizer="adamw",
            lr=lr,
            batch_seqs=batch,
            tokens=tokens,
            schedule={"name": "cosine", "warmup_frac": 0.05},
            seed=seed,
            eval_interval=128,
            eval_tokens=16384,
            device="cpu",
        )
        for w in WIDTHS
        for lr in lrs
        for seed in SEEDS
    ]


def main() -> None:
    import pandas as pd

    from oasl.optima import locate_optima
    from oasl.store import open_store
    from oasl.sweep import run_sweep

    ap = argparse.ArgumentParser()
    ap.add_argument("--store", default="benchmarks/results/bend.db")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    t0 = time.time()
    frames = []
    for cond in CONDITIONS:
        runs = runs_for(cond)
        print(f"{cond}: {len(runs)} runs", flush=True)
        summary = run_sweep(runs, args.store, workers=args.workers)
        print(f"{cond}: {summary.done} trained, {summary.skipped} already in the store", flush=True)
        df = open_store(args.store).to_dataframe(finished_only=True)
        df = df[df["key"].isin({r.key() for r in runs})].copy()
        df["condition"] = cond
        frames.append(df)
    runs_df = pd.concat(frames, ignore_index=True)
    opt = locate_optima(runs_df, over="lr", group_by=["condition", "n_params"], n_boot=500)
    rows, lines = [], []
    lines.append(
        "| condition | batch (seqs) | tokens | steps | width | D/N | lr* (90% CI) | best loss | flags |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for cond, (batch, tokens) in CONDITIONS.items():
        sub = opt[opt["condition"] == cond].sort_values("n_params")
        for w, (_, r) in zip(WIDTHS, sub.iterrows(), strict=True):
            flags = ", ".join(f for f in ("at_edge", "too_few", "diverged_near") if bool(r[f]))
            rows.append(
                {
                    "condition": cond,
                    "width": w,
                    "n_params": int(r["n_params"]),
                    "batch_seqs": batch,
                    "tokens": tokens,
                    "steps": tokens // (batch * 64),
                    "lr_opt": float(r["opt"]),
                    "ci_low": float(r["ci_low"]),
                    "ci_high": float(r["ci_high"]),
                    "best_loss": float(r["best_loss"]),
                    "flags": flags,
                }
            )
            lines.append(
                f"| {cond} | {batch} | {tokens:,} | {tokens // (batch * 64)} | {w} | "
                f"{tokens / r['n_params']:.2f} | {r['opt']:.3g} ({r['ci_low']:.3g}-{r['ci_high']:.3g}) | "
                f"{r['best_loss']:.4f} | {flags or '-'} |"
            )
    exps = {}
    lines.append("")
    for cond in CONDITIONS:
        a, b = (x for x in rows if x["condition"] == cond)
        dlogn = math.log(b["n_params"] / a["n_params"])
        e = math.log(b["lr_opt"] / a["lr_opt"]) / dlogn
        # the interval's widest reading: the two optima's intervals at opposite ends
        lo = math.log(b["ci_low"] / a["ci_high"]) / dlogn
        hi = math.log(b["ci_high"] / a["ci_low"]) / dlogn
        exps[cond] = {"exponent": e, "low": lo, "high": hi}
        lines.append(
            f"- {cond}: local exponent of lr* from width 96 to 192 = {e:+.2f} (from the optima's 90% "
            f"intervals at opposite ends: {lo:+.2f} to {hi:+.2f}); the ladder's law: {LAW_EXPONENT:+.2f}."
        )
    lines.append(f"\nWall time {time.time() - t0:.0f} s.")
    text = __doc__.split("\n\n")[1].replace("\n", " ") + "\n\n" + "\n".join(lines)
    write_result(
        "bend",
        {"optima": rows, "exponents": exps, "law_exponent": LAW_EXPONENT, "wall_s": time.time() - t0},
        text,
    )
    print(text)


if __name__ == "__main__":
    main()
