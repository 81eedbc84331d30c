"""Gradient clipping across the extrapolation ladder (issue 11; docs/ladders.md section 8).

Reads the store of ``benchmarks/extrapolation.py`` (ladder v3 by default: widths 32/48/64 -> target 192,
``grad_clip`` 1.0) and, per optimizer, prints :func:`oasl.optima.clipping.clip_regime`: the median
pre-clip gradient norm and the share of clipped steps at each swept size's best lr, the norm's power law
in N extrapolated to the target, and the norm measured at the target's best lr. Then it trains SGD
without clipping (seed 0) at width 64 and at the target width, on the lrs where clipped SGD is best, to
show what clipping does for SGD on this ladder. Then two ways of matching the regimes, for SGD:
(a) the target's threshold raised by the norm's growth, c = (N_target / N_largest)^slope, so that it clips
only the spikes as the ladder did (seed 0, on a grid around the law's lr); (b) the ladder's thresholds
lowered to the target's regime, c(N) = (N / N_target)^slope, the law fitted on that ladder as `oasl fit`
does, and the target (grad_clip 1.0) trained at its lr on 3 seeds. (c) The same SGD ladder with the
embedding and the readout untied, its law, and the untied target on a grid around it (seed 0). These runs
go to their own store.

Run after the extrapolation benchmark, from the repository root:
``.venv/bin/python benchmarks/clipping.py [--store /work/bench/extrap_v3.db] [--noclip-store PATH]``
(about 45 min on 2 idle cores for its 143 runs; resumable).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_result  # noqa: E402

# (width, lr) of the unclipped SGD runs: width 64's best clipped lrs and a grid at the target
NOCLIP = [(64, lr) for lr in (0.1, 0.159, 0.252)] + [
    (192, lr) for lr in (0.008, 0.0125, 0.016, 0.025, 0.046, 0.08, 0.126)
]


def main() -> None:
    import numpy as np
    import pandas as pd

    from oasl.config import RunSpec, build
    from oasl.optima.clipping import clip_regime
    from oasl.store import open_store
    from oasl.sweep import run_sweep

    ap = argparse.ArgumentParser()
    ap.add_argument("--store", default="benchmarks/results/extrapolation.db")
    ap.add_argument("--noclip-store", default="benchmarks/results/clipping.db")
    ap.add_argument("--target-width", type=int, default=192)
    ap.add_argument("--widths", type=int, nargs="+", default=[32, 48, 64], help="the ladder's widths")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    t0 = time.time()
    store = open_store(args.store)
    df = store.to_dataframe(finished_only=True)
    roles = store.roles()
    df["role"] = df["key"].map(roles)
    sweep = df[(df["role"] == "sweep") & df["width"].isin(args.widths)]
    target = df[df["width"] == args.target_width]
    if sweep.empty or target.empty:
        sys.exit(
            f"{args.store}: no sweep runs or no runs at width {args.target_width}: run extrapolation.py first"
        )
    n_target = float(target["n_params"].iloc[0])

    regimes, lines = {}, []
    for opt in sorted(sweep["optimizer"].unique()):
        t = target[target["optimizer"] == opt]
        means = t.groupby("lr")["final_val_loss"].mean()
        best = float(means.idxmin()) if len(means) else math.nan
        r = clip_regime(
            sweep[sweep["optimizer"] == opt], store.curve, n_target, t.loc[t["lr"] == best, "key"]
        )
        regimes[opt] = {**r.to_dict(), "target_best_lr": best}
        sizes = "; ".join(
            f"{s['n_params']:,.0f}: lr {s['lr']:.3g}, |g| {s['median_grad_norm']:.2f}, {s['clip_frac']:.0%}"
            for s in r.sizes
        )
        lines.append(
            f"| {opt} | {sizes} | {r.slope:+.2f} | {r.predicted_norm:.2f} | {best:.3g}: |g| {r.measured_norm:.2f}, "
            f"{r.measured_clip_frac:.0%} | {'yes' if r.warning else 'no'} |"
        )

    # SGD without clipping: the template is the store's seed-0 SGD run at the target, grad_clip unset
    tmpl_key = target[(target["optimizer"] == "sgd") & (target["seed"] == 0)]["key"].iloc[0]
    tmpl = store.get(tmpl_key)["spec"]
    specs = []
    for width, lr in NOCLIP:
        d = json.loads(json.dumps(tmpl))
        d["shape"]["width"], d["lr"], d["grad_clip"] = width, lr, None
        specs.append(build(RunSpec, d))
    run_sweep(specs, args.noclip_store, workers=args.workers)
    nc = open_store(args.noclip_store)
    clipped = df[(df["optimizer"] == "sgd") & (df["seed"] == 0)]
    rows = []
    for s in specs:
        row = nc.get(s.key())
        loss = (row["result"] or {}).get("final_val_loss") if row else None
        c = clipped[(clipped["width"] == s.shape.width) & (abs(clipped["lr"] / s.lr - 1) < 0.02)]
        rows.append(
            {
                "width": s.shape.width,
                "lr": s.lr,
                "unclipped": loss if loss is not None else math.nan,
                "status": row["status"] if row else "missing",
                "clipped": float(c["final_val_loss"].iloc[0]) if len(c) else math.nan,
            }
        )
    tab = pd.DataFrame(rows)
    # (a) the target clips only spikes: threshold raised by the norm's growth from the largest swept size
    slope = round(regimes["sgd"]["slope"], 2)
    n_max = max(s["n_params"] for s in regimes["sgd"]["sizes"])
    c_up = round((n_target / n_max) ** slope, 2)
    up = []
    for lr in (0.025, 0.044, 0.07, 0.126):
        d = json.loads(json.dumps(tmpl))
        d["lr"], d["grad_clip"] = lr, c_up
        up.append(build(RunSpec, d))
    # (b) the ladder clips like the target: thresholds lowered by the same power law
    import extrapolation as E

    from oasl.models import count_params
    from oasl.sweep import expand
    from oasl.validate import ValidateSpec
    from oasl.validate.harness import fit_validated_law

    vspec = build(ValidateSpec, E.spec_for("v3", ["sgd"]))
    low = [
        r.model_copy(update={"grad_clip": round((count_params(r.shape).n_params / n_target) ** slope, 4)})
        for r in expand(vspec.sweep)
    ]
    run_sweep(up + low, args.noclip_store, workers=args.workers)
    ldf = nc.to_dataframe(finished_only=True)
    ldf = ldf[ldf["key"].isin({r.key() for r in low})]
    law = fit_validated_law(ldf, None).laws["lr"]
    q = pd.DataFrame({"N": [n_target], "D": [tmpl["tokens"]], "C": [6.0 * n_target * tmpl["tokens"]]})
    lr_low = float(law.predict(q.assign(optimizer="sgd"))[0])
    at_law = []
    for seed in (0, 1, 2):
        d = json.loads(json.dumps(tmpl))
        d["lr"], d["seed"] = lr_low, seed
        at_law.append(build(RunSpec, d))
    run_sweep(at_law, args.noclip_store, workers=args.workers)
    # (c) the tied embedding as the suspect: the same SGD ladder and target with it untied
    untied = [
        build(
            RunSpec,
            r.model_copy(update={"shape": r.shape.model_copy(update={"tie_embeddings": False})}).model_dump(),
        )
        for r in expand(vspec.sweep)
    ]
    run_sweep(untied, args.noclip_store, workers=args.workers)
    udf = nc.to_dataframe(finished_only=True)
    ulaw = fit_validated_law(udf[udf["key"].isin({r.key() for r in untied})], None).laws["lr"]
    lr_untied = float(ulaw.predict(q.assign(optimizer="sgd"))[0])
    utmpl = untied[0].model_dump()
    utmpl["shape"]["width"] = args.target_width
    utarget = []
    for lr in sorted({0.03, 0.05, 0.08, 0.126, 0.2, round(lr_untied, 4)}):
        d = json.loads(json.dumps(utmpl))
        d["lr"], d["seed"] = lr, 0
        utarget.append(build(RunSpec, d))
    run_sweep(utarget, args.noclip_store, workers=args.workers)
    loss_untied = {s.lr: (nc.get(s.key())["result"] or {}).get("final_val_loss", math.nan) for s in utarget}
    ubest = min(loss_untied, key=loss_untied.get)
    # the law's lr against the grid's best on seeds 0-2 (paired)
    paired = {lr: [s for s in utarget if s.lr == lr][0] for lr in (ubest, round(lr_untied, 4))}
    seeds3 = {lr: [t.model_copy(update={"seed": k}) for k in (0, 1, 2)] for lr, t in paired.items()}
    seeds3 = {lr: [build(RunSpec, t.model_dump()) for t in ts] for lr, ts in seeds3.items()}
    run_sweep([t for ts in seeds3.values() for t in ts], args.noclip_store, workers=args.workers)
    loss3 = {lr: [nc.get(t.key())["result"]["final_val_loss"] for t in ts] for lr, ts in seeds3.items()}
    gap3 = [a / b - 1 for a, b in zip(loss3[round(lr_untied, 4)], loss3[ubest], strict=True)]

    loss_up = {s.lr: (nc.get(s.key())["result"] or {}).get("final_val_loss", math.nan) for s in up}
    law_losses = [(nc.get(s.key())["result"] or {}).get("final_val_loss", math.nan) for s in at_law]

    every_seed = df[df["optimizer"] == "sgd"]
    best_clipped = {
        int(w): float(every_seed[every_seed["width"] == w].groupby("lr")["final_val_loss"].mean().min())
        for w in sorted(tab["width"].unique())
    }

    md = [
        "Per optimizer, at each swept size's best lr (mean over sweep seeds): median pre-clip gradient norm "
        "|g| and share of steps clipped (grad_clip 1.0); |g|'s log-log slope over N; its extrapolation to "
        f"the target (N = {n_target:,.0f}); the target's best lr with its measured |g| and clipped share; "
        "whether `oasl` warns (SGD only: its step is lr x c/|g| once clipped).",
        "",
        "| optimizer | ladder (N: best lr, |g|, clipped) | slope | predicted |g| at target | target best lr: |g|, clipped | warns |",
        "|---|---|---|---|---|---|---|",
        *lines,
        "",
        "SGD (momentum 0.9) without clipping, seed 0, against the same run with grad_clip 1.0 where the "
        "ladder or the oracle grid trained it:",
        "",
        "| width | lr | unclipped loss | clipped loss (seed 0) |",
        "|---|---|---|---|",
        *[
            f"| {r.width} | {r.lr:.3g} | {r.unclipped:.3f}{'' if r.status == 'done' else ' (' + r.status + ')'} | "
            + (f"{r.clipped:.3f}" if math.isfinite(r.clipped) else "-")
            + " |"
            for r in tab.itertuples()
        ],
        "",
        "Best clipped loss per width (mean over seeds): "
        + ", ".join(f"width {w}: {v:.3f}" for w, v in best_clipped.items())
        + f". Wall time {time.time() - t0:.0f} s (cached runs are not retrained).",
    ]
    oracle = best_clipped[args.target_width]
    md += [
        "",
        f"(a) SGD at the target with the threshold raised to {c_up:g} = (N_target / N_largest)^{slope:g}, seed 0: "
        + ", ".join(f"lr {lr:g}: {v:.3f}" for lr, v in loss_up.items())
        + f" (grad_clip 1.0: best {oracle:.3f}).",
        f"(b) SGD ladder with thresholds (N / N_target)^{slope:g} "
        f"({', '.join(sorted({f'{r.grad_clip:g}' for r in low}))}): law `{law.formula()}`, lr {lr_low:.3g} at "
        f"the target; trained there with grad_clip 1.0 on seeds 0-2: {np.mean(law_losses):.3f} "
        f"({np.mean(law_losses) / oracle - 1:+.2%} against the oracle's {oracle:.3f}).",
    ]
    md.append(
        f"(c) SGD ladder with the embedding and readout untied: law `{ulaw.formula()}`, lr {lr_untied:.3g} at the "
        "target; the untied target, seed 0: "
        + ", ".join(f"lr {lr:g}: {v:.3f}" for lr, v in loss_untied.items())
        + f" (best {ubest:g}: {loss_untied[ubest]:.3f}; the law's lr "
        f"{loss_untied[round(lr_untied, 4)] / loss_untied[ubest] - 1:+.2%} against it, one seed). On seeds 0-2: "
        f"lr {ubest:g} {np.mean(loss3[ubest]):.3f}, the law's lr {np.mean(loss3[round(lr_untied, 4)]):.3f}; "
        f"paired gap per seed {', '.join(f'{g:+.2%}' for g in gap3)} (mean {np.mean(gap3):+.2%}; tied SGD's "
        f"best over seeds 0-2 is {oracle:.3f})."
    )
    text = "\n".join(md)
    payload = {
        "untied": {
            "law": ulaw.formula(),
            "lr": lr_untied,
            "losses": {str(k): v for k, v in loss_untied.items()},
        },
        "store": args.store,
        "regimes": regimes,
        "noclip": rows,
        "best_clipped": best_clipped,
        "raised_threshold": {"grad_clip": c_up, "losses": {str(k): v for k, v in loss_up.items()}},
        "matched_ladder": {"law": law.formula(), "lr": lr_low, "losses": law_losses, "oracle": oracle},
    }
    write_result("clipping", payload, text)
    print(text)


if __name__ == "__main__":
    main()
