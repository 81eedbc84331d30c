"""Extrapolation benchmark (issue: validation against baselines): sweep widths 24/32/48/64 (depth 2) over
10-point lr grids (x1.59 apart) with AdamW and SGD+momentum on the default corpus, recommend lr for width 192 (9x the largest swept N), and
compare with the oracle grid, naive transfer, library defaults, muP transfer, Step Law, random search
and Optuna TPE (4 and 8 trials) at the target, over 2 seeds. Budget: about 1.5 h on 2 CPU cores.

`--ladder v1` runs the first version instead: widths 32/48/64 over 7-point grids (x2 apart) of the same
lr ranges, written as `extrapolation_v1`. Both share the store: the ranges are the same, so the oracle
grid and the random/TPE trials at the target are the same runs.

Run: `.venv/bin/python benchmarks/extrapolation.py [--ladder v1|v2] [--store PATH]` (resumable: the store
keeps runs).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import write_result  # noqa: E402

SPEC = {
    "name": "extrapolation",
    "sweep": {
        "name": "extrapolation-ladder",
        "ladder": {"widths": [24, 32, 48, 64], "depth": 2},
        "shape_defaults": {"seq_len": 64},
        "optimizers": {
            "adamw": {"lr": {"log_range": [6.25e-4, 4e-2], "num": 10}},
            "sgd": {"lr": {"log_range": [2.5e-2, 1.6], "num": 10}, "momentum": 0.9},
        },
        "batch_seqs": 16,
        "tokens": 393216,
        "schedule": {"name": "cosine", "warmup_frac": 0.05},
        "run": {"eval_interval": 128, "eval_tokens": 16384, "device": "cpu"},
    },
    "target": {"width": 192},
    "seeds": [0, 1],
    "oracle_num": 7,
    "baselines": ["naive", "defaults", "mup", "step-law", "random:4", "random:8", "tpe:4", "tpe:8"],
}
LADDERS = {"v2": ([24, 32, 48, 64], 10), "v1": ([32, 48, 64], 7)}  # widths, points per lr grid


def spec_for(ladder: str) -> dict:
    """SPEC with the widths and grid density of ``ladder``."""
    widths, num = LADDERS[ladder]
    sweep = {**SPEC["sweep"], "ladder": {"widths": widths, "depth": 2}}
    sweep["optimizers"] = {
        o: {**g, "lr": {**g["lr"], "num": num}} for o, g in SPEC["sweep"]["optimizers"].items()
    }
    return {**SPEC, "sweep": sweep}


def main() -> None:
    from oasl.config import build
    from oasl.validate import ValidateSpec, validate

    ap = argparse.ArgumentParser()
    ap.add_argument("--store", default="benchmarks/results/extrapolation.db")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--ladder", choices=sorted(LADDERS), default="v2")
    args = ap.parse_args()
    t0 = time.time()
    result = validate(build(ValidateSpec, spec_for(args.ladder)), args.store, workers=args.workers, log=print)
    table = result.table()
    lines = [
        "| optimizer | method | lr | regret (mean +- sd over seeds) | tuning compute (target runs) |",
        "|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        reg = (
            f"{r['regret_mean']:+.2%} +- {r['regret_std']:.2%}"
            if math.isfinite(r["regret_mean"])
            else "diverged"
        )
        lines.append(f"| {r['optimizer']} | {r['method']} | {r['lr']:.3g} | {reg} | {r['tuning_runs']:.2f} |")
    for ov in result.optimizers:
        gains = {k: v for k, v in ov.efficiency.items() if "gain" in k or "runs_to_match" in k}
        lines.append(
            f"\n{ov.optimizer}: target N={ov.target_n_params:,} ({ov.extrapolation_ratio:.1f}x); {gains}"
        )
    payload = {
        "table": table.to_dict(orient="records"),
        "wall_s": time.time() - t0,
        "efficiency": {ov.optimizer: ov.efficiency for ov in result.optimizers},
    }
    write_result("extrapolation" if args.ladder == "v2" else "extrapolation_v1", payload, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
