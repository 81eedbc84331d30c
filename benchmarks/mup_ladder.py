"""muP vs SP on a CPU ladder (issue 11, item 5): does muP transfer lr* across width and, at its best lr,
train at least as well as SP at its best lr?

AdamW, depth 2, seq 64, batch 16 sequences, 256k tokens, cosine with 5% warmup, 7-point lr grid x2 apart,
paired seeds (each lr's loss is averaged over the seeds, then the optimum located). The muP base width is
the smallest width. Variants: SP; muP as oasl defines it (output multiplier a_out = MUP_OUTPUT_MULT);
``mup-a1``, muP with mup's default a_out = 1 (oasl's muP before issue 11, equal to SP at the base width);
``mup-untied`` (zero-initialised untied readout) and ``mup-wd0`` (no weight decay). Prints per variant and
width the grid optimum, the optimum interpolated by a parabola in log lr through the best point and its
neighbours, the best loss, and the slope of log lr* against log width (muP should be near 0).

`--diagnose` (seconds, no training) measures instead where the tied embedding's gradient comes from at
initialisation: the norm of its readout-path gradient over its input-path gradient, and the fraction of
its entries whose Adam step (sign of the total gradient, Adam's first steps) has the sign the readout
alone asks for, per width under SP and muP.

Run: `.venv/bin/python benchmarks/mup_ladder.py [--widths 16 32 64] [--seeds 0 1] [--variants sp mup mup-a1]`
(resumable store); `.venv/bin/python benchmarks/mup_ladder.py --diagnose [--widths 16 64 256]`.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import write_result  # noqa: E402

LRS = [1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2, 6.4e-2]
# variant -> (parametrization, tie_embeddings, weight_decay, output_mult); output_mult None = oasl's default
VARIANTS = {
    "sp": ("sp", True, 0.1, None),
    "mup": ("mup", True, 0.1, None),
    "mup-a1": ("mup", True, 0.1, 1.0),
    "mup-untied": ("mup", False, 0.1, None),
    "mup-wd0": ("mup", True, 0.0, None),
}


def specs(widths, tokens, base_width, variants, seeds=(0,), lrs=LRS):
    """(variant, width, seed, RunSpec) for every point of the ladder."""
    from oasl.config import RunSpec, build

    out = []
    for name in variants:
        par, tie, wd, alpha = VARIANTS[name]
        for w in widths:
            for seed in seeds:
                for lr in lrs:
                    spec = {
                        "shape": {"width": w, "depth": 2, "seq_len": 64, "tie_embeddings": tie},
                        "parametrization": par,
                        "base_width": base_width,
                        "output_mult": alpha,
                        "optimizer": "adamw",
                        "lr": lr,
                        "hps": {"weight_decay": wd},
                        "batch_seqs": 16,
                        "tokens": tokens,
                        "schedule": {"name": "cosine", "warmup_frac": 0.05},
                        "seed": seed,
                        "eval_interval": 1000000,
                        "eval_tokens": 65536,
                        "device": "cpu",
                    }
                    out.append((name, w, seed, build(RunSpec, spec)))
    return out


def interpolated_optimum(grid: list[tuple[float, float]]) -> float:
    """lr at the vertex of the parabola in log lr through the best grid point and its two neighbours
    (the grid optimum itself when it lies on the grid's edge); ``grid`` holds (lr, loss) sorted by lr."""
    i = min(range(len(grid)), key=lambda j: grid[j][1])
    if i == 0 or i == len(grid) - 1:
        return grid[i][0]
    (x0, y0), (x1, y1), (x2, y2) = ((math.log(lr), v) for lr, v in grid[i - 1 : i + 2])
    den = (x0 - x1) * (x0 - x2) * (x1 - x2)
    a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / den
    b = (x2 * x2 * (y0 - y1) + x1 * x1 * (y2 - y0) + x0 * x0 * (y1 - y2)) / den
    return math.exp(min(max(-b / (2 * a), x0), x2)) if a > 0 else grid[i][0]


def diagnose(widths: list[int], base_width: int, batches: int = 4) -> list[dict]:
    """Readout-path vs input-path gradient of the tied embedding at init, per width and parametrization.

    The forward pass is GPT's, with the readout reading a copy of ``wte.weight`` so the two paths'
    gradients separate; returns rows (parametrization, width, width_mult, grad_ratio, readout_sign_share)."""
    import torch
    import torch.nn.functional as F

    from oasl.config import RunSpec, build
    from oasl.models import GPT, Parametrization
    from oasl.train.run import get_dataset

    rows = []
    for par in ("sp", "mup"):
        for w in widths:
            spec = build(
                RunSpec,
                {
                    "shape": {"width": w, "depth": 2, "seq_len": 64},
                    "lr": 1e-3,
                    "tokens": 65536,
                    "device": "cpu",
                },
            )
            data = get_dataset(spec)
            torch.manual_seed(0)
            model = GPT(spec.shape, Parametrization(par, base_width))
            rng = __import__("numpy").random.default_rng(0)
            g_in = g_out = 0
            for _ in range(batches):
                x, y = data.batch(rng, 16, 64)
                readout = model.wte.weight.detach().clone().requires_grad_(True)
                h = model.wte(x) + model.wpe(torch.arange(x.shape[1]))
                for block in model.blocks:
                    h = block(h)
                logits = F.linear(model.ln_f(h), readout) * model.readout_mult
                loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
                model.zero_grad()
                loss.backward()
                g_in = g_in + model.wte.weight.grad.detach()
                g_out = g_out + readout.grad.detach()
            total = g_in + g_out
            used = total.abs() > 0
            share = float((torch.sign(total) == torch.sign(g_out))[used].float().mean())
            rows.append(
                {
                    "parametrization": par,
                    "width": w,
                    "width_mult": model.width_mult,
                    "grad_ratio": float(g_out.norm() / g_in.norm()),
                    "readout_sign_share": share,
                }
            )
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    import numpy as np
    import torch

    from oasl.store import open_store
    from oasl.sweep import run_sweep

    torch.set_num_threads(1)
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", default="benchmarks/results/mup_ladder.db")
    ap.add_argument("--tokens", type=int, default=262144)
    ap.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument(
        "--base-width", type=int, default=None, help="muP base width (default: the smallest width)"
    )
    ap.add_argument("--variants", nargs="+", default=["sp", "mup", "mup-a1"], choices=list(VARIANTS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--lrs", type=float, nargs="+", default=LRS)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument(
        "--name", default="mup_ladder", help="result name (results/NAME.json, RESULTS.md section)"
    )
    ap.add_argument("--diagnose", action="store_true", help="gradient paths of the tied embedding only")
    args = ap.parse_args()
    t0 = time.time()
    if args.diagnose:
        rows = diagnose(args.widths, min(args.widths))
        lines = [
            "| parametrization | width | width mult | readout/input grad norm | Adam steps with the readout's sign |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['parametrization']} | {r['width']} | {r['width_mult']:g} | {r['grad_ratio']:.3f} | "
            f"{r['readout_sign_share']:.1%} |"
            for r in rows
        ]
        write_result("mup_readout", {"rows": rows, "wall_s": time.time() - t0}, "\n".join(lines))
        print("\n".join(lines))
        return
    base = args.base_width or min(args.widths)
    lrs = sorted(args.lrs)
    todo = specs(args.widths, args.tokens, base, args.variants, args.seeds, lrs)
    run_sweep([s for *_, s in todo], args.store, workers=args.workers)
    st = open_store(args.store)
    rows = []
    for name, w, seed, s in todo:
        r = st.get(s.key())
        loss = (r.get("result") or {}).get("final_val_loss") if r else None
        rows.append(
            {
                "variant": name,
                "width": w,
                "seed": seed,
                "lr": s.lr,
                "loss": math.nan if loss is None else loss,
            }
        )
    lines = [
        f"| variant | width | grid lr* | interp. lr* | best loss (mean of {len(args.seeds)} seeds) | "
        f"best loss per seed | mean losses over lr grid {lrs} |",
        "|---|---|---|---|---|---|---|",
    ]
    summary = {}
    for name in args.variants:
        pts = {}
        for w in args.widths:
            mine = [r for r in rows if r["variant"] == name and r["width"] == w]
            # paired seeds: average each lr's loss over seeds, then locate the optimum of the mean curve
            grid = [(lr, float(np.mean([r["loss"] for r in mine if r["lr"] == lr]))) for lr in lrs]
            finite = [(lr, v) for lr, v in grid if math.isfinite(v)]
            if not finite:
                continue
            lr_grid, loss_best = min(finite, key=lambda t: t[1])
            lr_interp = interpolated_optimum(finite)
            per_seed = [min(r["loss"] for r in mine if r["seed"] == sd) for sd in args.seeds]
            pts[w] = {"lr_grid": lr_grid, "lr_interp": lr_interp, "loss": loss_best, "per_seed": per_seed}
            lines.append(
                f"| {name} | {w} | {lr_grid:.3g} | {lr_interp:.3g} | {loss_best:.4f} | "
                + ", ".join(f"{v:.4f}" for v in per_seed)
                + " | "
                + ", ".join(f"{v:.3f}" for _, v in grid)
                + " |"
            )
        if len(pts) >= 2:
            ws = sorted(pts)
            slope = float(np.polyfit(np.log(ws), np.log([pts[w]["lr_interp"] for w in ws]), 1)[0])
            slope_grid = float(np.polyfit(np.log(ws), np.log([pts[w]["lr_grid"] for w in ws]), 1)[0])
            summary[name] = {"lr_star_slope_vs_width": slope, "grid_lr_star_slope": slope_grid, "best": pts}
            lines.append(
                f"| {name} | slope of log lr* vs log width {ws[0]}-{ws[-1]} | {slope_grid:+.2f} | {slope:+.2f} | | | |"
            )
    write_result(
        args.name,
        {"rows": rows, "summary": summary, "base_width": base, "wall_s": time.time() - t0},
        "\n".join(lines),
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
