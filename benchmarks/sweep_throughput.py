"""Sweep throughput: configurations per hour of a 9-point AdamW lr grid, one run per process vs batched.

For each shape (the demo's ladder, widths 24/32/48/64 at depth 2, and width 128 at depth 4; seq 64,
batch 16, cosine schedule, demo's evaluation settings), the same 9 runs (lr log-spaced over
[1e-3, 1.6e-2], seed 0) go to a fresh store three ways, each timed end to end by ``run_sweep``
(process start-up, data, evaluations, store writes included):

- ``local``: one run per process, 2 worker processes (1 torch thread each), as before batching;
- ``batched``: the batched executor with 2 workers (the demo's setting: the grid split 5 + 4 members);
- ``batched1`` (only with ``--modes local,batched,batched1``): the batched executor with 1 worker (all 9
  members in one process, 2 threads). Left out by default: on 2 busy cores two torch threads in one
  process were 5.8x slower than two processes of one thread (w24: 290.6 s vs 50.4 s), far over budget.

Configurations per hour = 9 / wall seconds * 3600. Equivalence is checked in the same run: each lr's final
validation loss from the batched stores against the local one (max absolute difference).

The machine has 2 CPU cores shared with other work: the 1-minute load average before and after each
shape is recorded, and figures taken under load are lower than on an idle machine. No GPU here.

    .venv/bin/python benchmarks/sweep_throughput.py            # about 10-20 minutes on 2 busy cores
    .venv/bin/python benchmarks/sweep_throughput.py --quick    # 30 steps per run, a smoke test
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

from _common import write_result

from oasl.config import build
from oasl.store import SQLiteStore
from oasl.sweep import SweepSpec, expand, plan, run_sweep

SHAPES = ((24, 2), (32, 2), (48, 2), (64, 2), (128, 4))
MODES = {"local": ("local", 2), "batched": ("batched", 2), "batched1": ("batched", 1)}


def grid(width: int, depth: int, steps: int) -> list:
    """The 9 runs of the lr grid at one shape, ``steps`` optimizer steps each."""
    spec = build(
        SweepSpec,
        {
            "name": f"bench-w{width}d{depth}",
            "shapes": [{"width": width, "depth": depth}],
            "shape_defaults": {"seq_len": 64},
            "optimizers": {"adamw": {"lr": {"log_range": [1e-3, 1.6e-2], "num": 9}}},
            "batch_seqs": 16,
            "tokens": 16 * 64 * steps,
            "schedule": {"name": "cosine", "warmup_frac": 0.05},
            "run": {"eval_interval": 64, "eval_tokens": 16384, "device": "cpu"},
        },
    )
    return expand(spec)


def measure(runs: list, mode: str, folder: Path) -> dict:
    """Run ``runs`` into a fresh store with ``mode``; wall seconds, configurations/hour, final losses."""
    executor, workers = MODES[mode]
    db = folder / f"{mode}.db"
    est = plan(runs, workers=workers, executor=executor).est_seconds  # `oasl sweep plan`'s estimate
    t0 = time.perf_counter()
    s = run_sweep(runs, db, executor=executor, workers=workers)
    wall = time.perf_counter() - t0
    df = SQLiteStore(db).to_dataframe().set_index("lr").sort_index()
    return {
        "executor": s.executor,
        "workers": workers,
        "wall_s": round(wall, 2),
        "plan_est_s": round(est, 2),
        "plan_est_over_wall": round(est / wall, 2),
        "configs_per_hour": round(len(runs) / wall * 3600, 1),
        "statuses": sorted(df["status"].tolist()),
        "final_val_loss": {
            f"{lr:.3g}": (None if math.isnan(v) else round(float(v), 6))
            for lr, v in df["final_val_loss"].items()
        },
    }


def max_diff(a: dict, b: dict) -> float | None:
    """Largest |a - b| over the lrs both finished (None when none did)."""
    d = [abs(a[k] - b[k]) for k in a if a[k] is not None and b.get(k) is not None]
    return max(d) if d else None


def agreeing(a: dict, b: dict, tol: float = 1e-3) -> str:
    """How many lrs' final losses agree within ``tol``, and up to which lr all do (e.g. "5/9, all up to lr 0.004")."""
    lrs = sorted(a, key=float)
    ok = [a[k] is not None and b.get(k) is not None and abs(a[k] - b[k]) <= tol for k in lrs]
    upto = next((i for i, good in enumerate(ok) if not good), len(ok))
    below = f", all up to lr {lrs[upto - 1]}" if upto else ""
    return f"{sum(ok)}/{len(ok)}{below}"


def markdown(rows: list[dict], modes: list[str]) -> str:
    """The RESULTS.md section (without heading and footer) for ``rows`` measured with ``modes``."""
    others = modes[1:]
    lines = [
        "Configurations per hour of a 9-point AdamW lr grid (lr 1e-3..1.6e-2, seed 0), seq 64, batch 16, eval "
        "every 64 steps on 16384 tokens (the demo's settings), on 2 CPU cores (the 1-minute load "
        "average before/after each shape is in the table: other work on the machine lowers the figures). `local`: one run per process, 2 worker "
        "processes; `batched`: the batched executor, 2 workers (members split 5 + 4)"
        + ("; `batched1`: 1 worker, 9 members, 2 threads" if "batched1" in modes else "")
        + ". Wall time is the whole `run_sweep` call (process start-up, evaluations, store writes). Loss "
        "diff: the largest |final val loss| difference between a batched store and the local one over the 9 "
        "lrs (the same runs: same keys); agree: lrs whose final losses agree within 1e-3. Stable (small) lrs "
        "agree to float rounding; at the large lrs, where these landscapes are jagged (loss spikes), rounding "
        "differences between the stacked and the single model grow into different trajectories. No GPU on "
        "this machine: no GPU rows. Plan est / wall: `oasl sweep plan`'s estimate (a few timed steps per "
        "shape) over the measured wall time, per mode (aim: within 2x).",
        "",
        "| shape | steps | "
        + " | ".join(f"{m} configs/h" for m in modes)
        + " | speed-up | loss diff | agree | plan est / wall | load avg |",
        "| --- | ---: | " + " | ".join("---:" for _ in modes) + " | ---: | ---: | --- | ---: | ---: |",
    ]
    for r in rows:
        speed = ", ".join(f"{r[f'speedup_{m}']:.2f}x" for m in others)
        diffs = ", ".join(
            "n/a" if r[f"max_loss_diff_{m}"] is None else f"{r[f'max_loss_diff_{m}']:.1e}" for m in others
        )
        agree = "; ".join(agreeing(r["local"]["final_val_loss"], r[m]["final_val_loss"]) for m in others)
        lines.append(
            f"| w{r['width']} d{r['depth']} | {r['steps']} | "
            + " | ".join(f"{r[m]['configs_per_hour']:.0f}" for m in modes)
            + f" | {speed} | {diffs} | {agree} | "
            + ", ".join(f"{r[m].get('plan_est_over_wall', float('nan')):.2f}" for m in modes)
            + f" | {r['load_avg_1min'][0]:.1f} / {r['load_avg_1min'][1]:.1f} |"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--steps", type=int, default=96, help="steps per run at the demo shapes (16x64 tokens each)"
    )
    ap.add_argument("--steps-large", type=int, default=48, help="steps per run at width 128 / depth 4")
    ap.add_argument("--quick", action="store_true", help="30 steps per run: a smoke test, not a result")
    ap.add_argument("--modes", default="local,batched", help=f"comma-separated, of {', '.join(MODES)}")
    args = ap.parse_args()
    modes = args.modes.split(",")
    if "local" not in modes or not set(modes) <= set(MODES):
        ap.error(f"--modes must include local and name only {', '.join(MODES)}")
    if args.quick:
        args.steps = args.steps_large = 30
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for width, depth in SHAPES:
            steps = args.steps if depth == 2 else args.steps_large
            runs = grid(width, depth, steps)
            load_before = os.getloadavg()[0]
            row = {"width": width, "depth": depth, "steps": steps, "tokens_per_run": runs[0].tokens}
            for mode in modes:
                folder = Path(tmp) / f"w{width}d{depth}"
                folder.mkdir(exist_ok=True)
                row[mode] = measure(runs, mode, folder)
                print(
                    f"w{width}d{depth} {mode}: {row[mode]['wall_s']} s, "
                    f"{row[mode]['configs_per_hour']} configs/h",
                    flush=True,
                )
            row["load_avg_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
            for mode in modes[1:]:
                row[f"speedup_{mode}"] = round(row["local"]["wall_s"] / row[mode]["wall_s"], 2)
                row[f"max_loss_diff_{mode}"] = max_diff(
                    row["local"]["final_val_loss"], row[mode]["final_val_loss"]
                )
            rows.append(row)
    write_result(
        "sweep_throughput", {"quick": args.quick, "modes": modes, "rows": rows}, markdown(rows, modes)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
