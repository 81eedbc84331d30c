"""Training throughput (tokens/s) and model FLOP utilization (MFU) of oasl's GPT.

Three shapes (width 64/128/256, depth 4, seq_len 128, byte vocabulary 256, tied embeddings, SP) train on
random tokens with AdamW: forward, backward and optimizer step, a few warm-up steps, then timed steps.
MFU = tokens/s * flops_per_token(shape) / peak, where the peak is this machine's fp32 matmul throughput
measured in the same run (``oasl.models.measure_matmul_peak``: 2048 x 2048 products). The definition is
PaLM's (Chowdhery et al. 2022, App. B), with a measured rather than a datasheet peak.

    .venv/bin/python benchmarks/throughput.py              # CPU, all cores, about a minute
    .venv/bin/python benchmarks/throughput.py --device cuda
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from _common import write_result

from oasl.config import ModelShape
from oasl.models import GPT, count_params, flops_per_token, measure_matmul_peak

WIDTHS = (64, 128, 256)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(
    shape: ModelShape, batch_seqs: int, device: torch.device, warmup: int, min_steps: int, seconds: float
):
    """Time AdamW training steps of GPT(shape) on random tokens; returns a dict of figures."""
    torch.manual_seed(0)
    model = GPT(shape).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    gen = torch.Generator(device=device).manual_seed(0)

    def step() -> None:
        idx = torch.randint(
            0, shape.vocab_size, (batch_seqs, shape.seq_len + 1), device=device, generator=gen
        )
        _, loss = model(idx[:, :-1], idx[:, 1:])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    _sync(device)
    steps, t0 = 0, time.perf_counter()
    while steps < min_steps or time.perf_counter() - t0 < seconds:
        step()
        steps += 1
        _sync(device)
    elapsed = time.perf_counter() - t0
    tokens_per_s = steps * batch_seqs * shape.seq_len / elapsed
    counts = count_params(shape)
    fpt = flops_per_token(shape)
    return {
        "width": shape.width,
        "depth": shape.depth,
        "seq_len": shape.seq_len,
        "vocab_size": shape.vocab_size,
        "n_params": counts.n_params,
        "n_params_total": counts.n_params_total,
        "flops_per_token": fpt,
        "batch_tokens": batch_seqs * shape.seq_len,
        "timed_steps": steps,
        "seconds": elapsed,
        "tokens_per_s": tokens_per_s,
        "model_flops_per_s": tokens_per_s * fpt,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--batch-seqs", type=int, default=16, help="sequences of 128 tokens per step")
    ap.add_argument("--seconds", type=float, default=10.0, help="minimum timed seconds per shape")
    ap.add_argument("--min-steps", type=int, default=3, help="minimum timed steps per shape")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per shape")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    load_at_start = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    device = torch.device(args.device)
    peak_before = measure_matmul_peak(seconds=2.0, size=2048, device=args.device)
    rows = []
    for width in WIDTHS:
        shape = ModelShape(width=width, depth=4, seq_len=128, vocab_size=256)
        rows.append(measure(shape, args.batch_seqs, device, args.warmup, args.min_steps, args.seconds))
        print(f"width {width}: {rows[-1]['tokens_per_s']:,.0f} tokens/s", flush=True)
    # Measured again after the models: on a shared machine the load can change during the run; the
    # larger of the two is the better estimate of what the hardware can do.
    peak_after = measure_matmul_peak(seconds=2.0, size=2048, device=args.device)
    peak = max(peak_before, peak_after)
    for r in rows:
        r["mfu"] = r["model_flops_per_s"] / peak

    payload = {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "optimizer": "torch.optim.AdamW (lr 1e-3, weight_decay 0.1)",
        "parametrization": "sp",
        "matmul_peak_flops_per_s": peak,
        "matmul_peak_before_after": [peak_before, peak_after],
        "load_avg_1min_at_start": load_at_start,
        "shapes": rows,
    }
    lines = [
        f"Training steps (forward + backward + AdamW) of GPT, depth 4, seq_len 128, byte vocabulary, "
        f"{args.batch_seqs} x 128 tokens per step, on random tokens; device `{device}`, "
        f"{torch.get_num_threads()} torch threads. Peak: measured fp32 2048x2048 matmul, "
        f"{peak / 1e9:.1f} GFLOP/s (before/after the models: {peak_before / 1e9:.1f} / {peak_after / 1e9:.1f}). "
        "MFU = tokens/s x flops_per_token / peak (flops_per_token = 6 (N + V w) + 12 L T w).",
        "",
        "| width | n_params | FLOPs/token | tokens/s | model GFLOP/s | MFU |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['width']} | {r['n_params']:,} | {r['flops_per_token'] / 1e6:.2f} M | {r['tokens_per_s']:,.0f} "
            f"| {r['model_flops_per_s'] / 1e9:.1f} | {r['mfu']:.1%} |"
        )
    path = write_result("throughput", payload, "\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
