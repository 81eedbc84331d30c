"""The demo's AdamW ladder trained twice: by oasl's built-in trainer and through the ``command`` trainer
running ``examples/torch_script/train.py`` (issue 23, "the same law as the built-in trainer, within the
law's intervals").

Both sweeps use the demo's ladder (widths 24/32/48/64, depth 2, seq_len 64, batch 16 sequences, 393,216
tokens = 384 steps, cosine with 5% warmup, the demo's 7-point AdamW lr grid, seed 0) and oasl's AdamW
defaults (the script is given the run's own beta1, beta2, weight decay, warmup and floor through the
template). The script builds the same model (its reported non-embedding N equals oasl's count on every
rung: checked here), but it reads the corpus as raw bytes and draws its own batches, so its losses are on
another scale and its optima agree only within noise. Each ladder's lr law is fitted with
:func:`oasl.fit` (the selection ``oasl fit`` uses) and predicted at the demo's target (width 192, depth
2); the comparison asks whether each law's prediction lies inside the other's 90% interval.

    .venv/bin/python benchmarks/trainer_law.py [--store /tmp/trainer_law.db] [--workers 2]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_result  # noqa: E402

import oasl  # noqa: E402
from oasl.config import ModelShape  # noqa: E402
from oasl.models import count_params  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "torch_script" / "train.py"
WIDTHS = [24, 32, 48, 64]
COMMON = {
    "shape_defaults": {"seq_len": 64},
    "optimizers": {"adamw": {"lr": {"log_range": [1e-3, 1.6e-2], "num": 7}}},
    "batch_seqs": 16,
    "tokens": 393216,
    "schedule": {"name": "cosine", "warmup_frac": 0.05},
    "run": {"eval_interval": 64, "eval_tokens": 16384, "device": "cpu"},
}
TARGET = ModelShape(width=192, depth=2, seq_len=64)


def specs() -> tuple[dict, dict]:
    """The built-in sweep and the command sweep of the same ladder."""
    builtin = {"name": "trainer-law-builtin", "ladder": {"widths": WIDTHS, "depth": 2}, **COMMON}
    command = " ".join(
        [
            shlex.quote(sys.executable),
            shlex.quote(str(SCRIPT)),
            "--lr {lr} --batch-size {batch_seqs} --d-model {d_model} --n-layers {n_layers} --steps {steps}",
            "--seq-len {seq_len} --seed {seed} --warmup-frac {warmup_frac} --final-frac {final_frac}",
            "--beta1 {beta1} --beta2 {beta2} --weight-decay {weight_decay} --eval-every 64 --threads 1",
        ]
    )
    script = {
        "name": "trainer-law-script",
        "trainer": {"command": command, "version": "bench-v1", "timeout_s": 1800},
        "ladder": [{"name": f"w{w}", "d_model": w, "n_layers": 2} for w in WIDTHS],
        **COMMON,
    }
    return builtin, script


def law_summary(res, n_target: float, tokens: float) -> dict:
    """The lr law of a :class:`oasl.workflows.FitResult`, its optima and its prediction at the target."""
    import pandas as pd

    law = res.laws["lr"]
    q = pd.DataFrame({"N": [n_target], "D": [tokens], "C": [6.0 * n_target * tokens], "optimizer": ["adamw"]})
    lo, hi = law.predict_interval(q, level=0.9)
    rows = []
    try:  # each rung's located optimum with its interval, as the fit saw it
        for _, r in res.report.optima["lr"].iterrows():
            rows.append({k: float(r[k]) for k in ("n_params", "opt", "lo", "hi") if k in r and r[k] == r[k]})
    except (AttributeError, KeyError, TypeError):
        rows = []
    return {
        "formula": law.formula(),
        "pred_target": float(law.predict(q)[0]),
        "interval_target": [float(lo[0]), float(hi[0])],
        "optima": rows,
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", default="/tmp/trainer_law", help="prefix: PREFIX_builtin.db, PREFIX_script.db")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)

    builtin, script = specs()
    out = {}
    for name, spec in (("builtin", builtin), ("script", script)):
        t0 = time.perf_counter()
        summary = oasl.sweep(spec, store=f"{args.store}_{name}.db", workers=args.workers)
        out[name] = {
            "wall_s": round(time.perf_counter() - t0, 1),
            "done": summary.done,
            "failed": summary.failed,
        }
        print(f"{name}: {summary.done} trained, {summary.failed} failed, {out[name]['wall_s']} s", flush=True)

    from oasl.store import open_store

    n_target = count_params(TARGET).n_params
    for name in ("builtin", "script"):
        sub = open_store(f"{args.store}_{name}.db").to_dataframe(finished_only=True)
        res = oasl.fit(sub, hps=["lr"])
        out[name].update(law_summary(res, n_target, COMMON["tokens"]))
        out[name]["n_params"] = sorted({int(v) for v in sub["n_params"]})
    ours = sorted(count_params(ModelShape(width=w, depth=2, seq_len=64)).n_params for w in WIDTHS)
    out["n_params_equal"] = out["script"]["n_params"] == ours
    b, s = out["builtin"], out["script"]
    out["script_pred_in_builtin_interval"] = (
        b["interval_target"][0] <= s["pred_target"] <= b["interval_target"][1]
    )
    out["builtin_pred_in_script_interval"] = (
        s["interval_target"][0] <= b["pred_target"] <= s["interval_target"][1]
    )
    out["ratio_script_over_builtin"] = s["pred_target"] / b["pred_target"]
    out["target_n_params"] = n_target

    md = [
        "The demo's AdamW ladder (widths 24/32/48/64, depth 2, 384 steps, 7 lrs, seed 0) trained by the built-in "
        "trainer and through `examples/torch_script/train.py` with the `command` trainer; lr laws fitted with "
        "`oasl.fit`, predicted at width 192 (the demo's target).",
        "",
        "| trainer | law | lr at width 192 | 90% interval | sweep wall |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in ("builtin", "script"):
        r = out[name]
        iv = r["interval_target"]
        md.append(
            f"| {name} | {r['formula']} | {r['pred_target']:.3g} | [{iv[0]:.3g}, {iv[1]:.3g}] | {r['wall_s']} s |"
        )
    md += [
        "",
        f"- The script's reported non-embedding N equals oasl's count on every rung: {out['n_params_equal']}.",
        f"- Script's prediction inside the built-in law's 90% interval: {out['script_pred_in_builtin_interval']}; "
        f"built-in's inside the script's: {out['builtin_pred_in_script_interval']} "
        f"(ratio script/built-in {out['ratio_script_over_builtin']:.2f}).",
        "- The script reads the corpus as raw bytes and draws its own batches: its losses are on another scale, "
        "and its optima agree with the built-in trainer's only within noise.",
    ]
    write_result("trainer_law", out, "\n".join(md))
    print("\n".join(md))
    return out


if __name__ == "__main__":
    main()
