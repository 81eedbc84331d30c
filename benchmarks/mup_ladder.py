"""muP vs SP on a CPU ladder (issue 11, item 5): why does muP at its best lr train worse than SP at its?

AdamW, depth 2, seq 64, batch 16 sequences, cosine with 5% warmup, 6-point lr grid x2 apart, one seed.
The smallest width is the base width (muP == SP there); at 4x the base width the variants are SP, muP as implemented
(tied embedding as readout with the 1/m output multiplier), muP with an untied zero-initialised readout,
and SP/muP without weight decay (muP keeps lr x wd width-independent, so its hidden weights decay at the
base width's rate). Prints, per variant and width, the best lr, the best loss, and the slope of lr* in
log-log over width (muP should be near 0).

`--diagnose` (seconds, no training) measures instead where the tied embedding's gradient comes from at
initialisation: the norm of its readout-path gradient over its input-path gradient, and the fraction of
its entries whose Adam step (sign of the total gradient, Adam's first steps) has the sign the readout
alone asks for, per width under SP and muP.

Run: `.venv/bin/python benchmarks/mup_ladder.py [--tokens 262144] [--widths 16 64]` (resumable store);
`.venv/bin/python benchmarks/mup_ladder.py --diagnose [--widths 16 64 256]`.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import write_result  # noqa: E402

LRS = [1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2]
# variant -> (parametrization, tie_embeddings, weight_decay)
VARIANTS = {
    "sp": ("sp", True, 0.1),
    "mup": ("mup", True, 0.1),
    "mup-untied": ("mup", False, 0.1),
    "sp-wd0": ("sp", True, 0.0),
    "mup-wd0": ("mup", True, 0.0),
}


def specs(widths, tokens, base_width, variants, seed=0):
    from oasl.config import RunSpec, build

    out = []
    for name in variants:
        par, tie, wd = VARIANTS[name]
        for w in widths:
            if w == base_width and name.startswith("mup") and tie:
                continue  # muP == SP at the base width (same model, same lrs)
            for lr in LRS:
                spec = {
                    "shape": {"width": w, "depth": 2, "seq_len": 64, "tie_embeddings": tie},
                    "parametrization": par,
                    "base_width": base_width,
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
                out.append((name, w, build(RunSpec, spec)))
    return out


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
                logits = F.linear(model.ln_f(h), readout) / model.width_mult
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

    from oasl.store import open_store
    from oasl.sweep import run_sweep

    ap = argparse.ArgumentParser()
    ap.add_argument("--store", default="benchmarks/results/mup_ladder.db")
    ap.add_argument("--tokens", type=int, default=262144)
    ap.add_argument("--widths", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--workers", type=int, default=1)
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
    base = min(args.widths)
    todo = specs(args.widths, args.tokens, base, args.variants)
    # the base width of a tied muP variant is SP's run
    for name in args.variants:
        if VARIANTS[name][0] == "mup" and VARIANTS[name][1]:
            sp_like = "sp" if VARIANTS[name][2] == 0.1 else "sp-wd0"
            if sp_like not in args.variants:
                todo += [t for t in specs([base], args.tokens, base, [sp_like])]
    run_sweep([s for _, _, s in todo], args.store, workers=args.workers)
    st = open_store(args.store)
    rows = []
    for name, w, s in todo:
        r = st.get(s.key())
        loss = (r.get("result") or {}).get("final_val_loss")
        rows.append({"variant": name, "width": w, "lr": s.lr, "loss": loss if loss is not None else math.nan})
    by = {}
    for r in rows:
        by.setdefault((r["variant"], r["width"]), []).append((r["lr"], r["loss"]))
    lines = [
        "| variant | width | best lr | best loss | losses over lr grid " + str(LRS) + " |",
        "|---|---|---|---|---|",
    ]
    summary = {}
    for name in args.variants:
        pts = {}
        for w in args.widths:
            grid = by.get((name, w))
            if grid is None and w == base and VARIANTS[name][0] == "mup":
                grid = by.get(("sp" if VARIANTS[name][2] == 0.1 else "sp-wd0", w))
            if not grid:
                continue
            grid = sorted(grid)
            finite = [(lr, v) for lr, v in grid if math.isfinite(v)]
            lr_best, loss_best = min(finite, key=lambda t: t[1]) if finite else (math.nan, math.nan)
            pts[w] = (lr_best, loss_best)
            lines.append(
                f"| {name} | {w} | {lr_best:.3g} | {loss_best:.4f} | "
                + ", ".join(f"{v:.3f}" for _, v in grid)
                + " |"
            )
        if len(pts) >= 2:
            ws = sorted(pts)
            slope = float(np.polyfit(np.log(ws), np.log([pts[w][0] for w in ws]), 1)[0])
            summary[name] = {"lr_star_slope_vs_width": slope, "best": {str(w): pts[w] for w in ws}}
            lines.append(f"| {name} | slope of log lr* vs log width | {slope:+.2f} | | |")
    write_result(
        "mup_ladder", {"rows": rows, "summary": summary, "wall_s": time.time() - t0}, "\n".join(lines)
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
