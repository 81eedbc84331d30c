"""Quick CPU measurement of train_batched alone (not run by run_all.py): configurations per hour for a
9-point AdamW lr grid, one run per process (2 worker processes, 1 thread each) vs ``train_batched``: K=9 in one process with 2 threads, and
batches of ``--members`` K in 2 worker processes of 1 thread each.

    .venv/bin/python benchmarks/_batched_step.py [--steps 100] [--shapes 32x2,128x4] [--members 3]

Prints one line per shape and mode: wall seconds, configurations/hour, ratio to one run per process, the
machine's load average, and the largest relative difference between a batched member's final loss and
the same run alone.
The real benchmark (with the executors) is benchmarks/sweep_throughput.py.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor


def grid(width: int, depth: int, steps: int):
    from oasl.testing import tiny_run

    lrs = [1e-3 * 2 ** (i / 2) for i in range(9)]  # 1e-3 .. 1.6e-2, half-octave steps
    return [
        tiny_run(
            shape={"width": width, "depth": depth, "seq_len": 64},
            batch_seqs=16,
            tokens=16 * 64 * steps,
            lr=lr,
            seed=i,
            data_seed=0,
            eval_interval=50,
            eval_tokens=16384,
        )
        for i, lr in enumerate(lrs)
    ]


def _init_worker():
    import torch

    torch.set_num_threads(1)


def _train_one(spec):
    from oasl.train import train

    r = train(spec)
    return r.final_val_loss


def _train_batch(specs):
    from oasl.train import train_batched

    return [(r.status, r.final_val_loss) for r in train_batched(specs)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--shapes", default="32x2,128x4")
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--no-threads", action="store_true", help="skip K=9 in one process with 2 threads")
    args = ap.parse_args()
    import torch

    from oasl.train import get_dataset, train_batched

    for shape in args.shapes.split(","):
        width, depth = (int(v) for v in shape.split("x"))
        specs = grid(width, depth, args.steps)
        get_dataset(specs[0])  # tokenized once, outside both timings
        t0 = time.perf_counter()
        with ProcessPoolExecutor(max_workers=2, initializer=_init_worker) as pool:
            alone = list(pool.map(_train_one, specs))
        t_proc = time.perf_counter() - t0
        k = len(specs)
        t0 = time.perf_counter()
        with ProcessPoolExecutor(max_workers=2, initializer=_init_worker) as pool:
            chunks = [specs[i : i + args.members] for i in range(0, k, args.members)]
            pooled = [r for rs in pool.map(_train_batch, chunks) for r in rs]
        t_pool = time.perf_counter() - t0
        one, t_one = None, 0.0
        if not args.no_threads:
            torch.set_num_threads(2)
            t0 = time.perf_counter()
            one = [(r.status, r.final_val_loss) for r in train_batched(specs)]
            t_one = time.perf_counter() - t0
        head = f"width {width} depth {depth} seq 64 batch 16, {args.steps} steps, 9 lrs:"
        print(
            f"{head} one run per process (2 x 1 thread) {t_proc:.1f}s = {3600 * k / t_proc:.0f} configs/h",
            flush=True,
        )
        for name, t, res in (
            (f"batched K={args.members} in 2 processes x 1 thread", t_pool, pooled),
            ("batched K=9 in 1 process x 2 threads", t_one, one),
        ):
            if res is None:
                continue
            diff = max(abs(f - a) / abs(a) for (st, f), a in zip(res, alone, strict=True) if st == "done")
            print(
                f"{head} {name} {t:.1f}s = {3600 * k / t:.0f} configs/h, {t_proc / t:.2f}x; "
                f"statuses {sorted({st for st, _ in res})}; max rel. final-loss diff {diff:.1e}; "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
