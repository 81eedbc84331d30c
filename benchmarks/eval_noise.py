"""Evaluation noise vs seed noise (issue 11, item 1): how many eval tokens make the eval set's own sampling
error small beside the seed-to-seed spread that the validation harness compares methods against?

Trains one shape at one lr on several seeds (the harness's pairing: seed fixes init and data order),
then scores each trained model on K independent eval sets of ``eval_tokens`` tokens, each drawn as the
harness draws its one (sequences at random positions of the validation split). (Contiguous slices
would measure the corpus's heterogeneity between files instead: 5% per model on the default corpus.) Reported, as fractions of the mean loss:
* ``eval_sd``: sd over eval sets of one model's loss (the sampling error of an eval set of that size);
* ``eval_sd_diff``: sd over eval sets of the loss difference between two seeds' models (what a paired
  comparison of two models actually sees: a shared eval set cancels much of its own error);
* ``seed_sd``: sd over seeds of the loss on the same eval set (the noise floor the harness prints).
An eval set is large enough when ``eval_sd_diff`` is well under ``seed_sd``; the harness's default
follows from the ratio (error falls as 1/sqrt(tokens)).

Run: `.venv/bin/python benchmarks/eval_noise.py [--width 48 --tokens 196608 --seeds 0 1 2]`.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import write_result  # noqa: E402


def trained_model(spec):
    """Train ``spec`` with oasl's own loop and return (result, model): the model is taken from the loop's
    last evaluation call, so training is exactly what a sweep does."""
    import oasl.train.run as run

    captured = {}
    original = run.evaluate

    def capture(model, batches, device, autocast):
        captured["model"] = model
        return original(model, batches, device, autocast)

    run.evaluate = capture
    try:
        result = run.train(spec)
    finally:
        run.evaluate = original
    return result, captured["model"]


def sample_losses(model, data, seq_len: int, eval_tokens: int, k: int) -> list[float]:
    """Loss of ``model`` on ``k`` independent eval sets of ``eval_tokens`` tokens, each drawn as the harness
    draws its one eval set (sequences at random positions of the validation split), from seeds 1000+i."""
    import numpy as np
    import torch

    out = []
    per = max(1, eval_tokens // (8 * seq_len))
    model.eval()
    with torch.no_grad():
        for i in range(k):
            rng = np.random.default_rng(1000 + i)
            total = 0.0
            for _ in range(per):
                x, y = data.batch(rng, 8, seq_len, split="val")
                total += float(model(x, y)[1])
            out.append(total / per)
    return out


def main() -> None:
    import numpy as np

    from oasl.config import RunSpec, build
    from oasl.train.run import get_dataset

    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=48)
    ap.add_argument("--tokens", type=int, default=196608)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--eval-tokens", type=int, nargs="+", default=[16384, 65536])
    ap.add_argument("--slices", type=int, default=8)
    args = ap.parse_args()
    t0 = time.time()
    seq = 64
    models = []
    for s in args.seeds:
        spec = build(
            RunSpec,
            {
                "shape": {"width": args.width, "depth": 2, "seq_len": seq},
                "optimizer": "adamw",
                "lr": args.lr,
                "batch_seqs": 16,
                "tokens": args.tokens,
                "schedule": {"name": "cosine", "warmup_frac": 0.05},
                "seed": s,
                "eval_interval": 10**9,
                "device": "cpu",
            },
        )
        result, model = trained_model(spec)
        models.append(model)
        print(f"seed {s}: final loss {result.final_val_loss:.4f} ({time.time() - t0:.0f} s)", flush=True)
    data = get_dataset(spec)
    rows, lines = (
        [],
        [
            "| eval tokens | eval sd (one model) | eval sd of a paired difference | seed sd | seed sd / paired eval sd |",
            "|---|---|---|---|---|",
        ],
    )
    for et in args.eval_tokens:
        k = args.slices
        L = np.array([sample_losses(m, data, seq, et, k) for m in models])  # seeds x eval sets
        mean = float(L.mean())
        eval_sd = float(L.std(axis=1, ddof=1).mean() / mean)
        diffs = [L[i] - L[j] for i in range(len(models)) for j in range(i + 1, len(models))]
        eval_sd_diff = float(np.mean([d.std(ddof=1) for d in diffs]) / mean)
        seed_sd = float(L.std(axis=0, ddof=1).mean() / mean)
        rows.append(
            {
                "eval_tokens": et,
                "sets": k,
                "eval_sd": eval_sd,
                "eval_sd_diff": eval_sd_diff,
                "seed_sd": seed_sd,
                "mean_loss": mean,
            }
        )
        ratio = seed_sd / eval_sd_diff if eval_sd_diff > 0 else math.inf
        lines.append(
            f"| {et} ({k} sets) | {eval_sd:.3%} | {eval_sd_diff:.3%} | {seed_sd:.3%} | {ratio:.1f} |"
        )
    lines.append(
        f"\nwidth {args.width}, depth 2, seq {seq}, {args.tokens} training tokens, AdamW lr {args.lr}, seeds {args.seeds}"
    )
    write_result(
        "eval_noise", {"rows": rows, "wall_s": time.time() - t0, "args": vars(args)}, "\n".join(lines)
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
