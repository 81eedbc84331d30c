"""Overhead of oasl's ``command`` trainer against running the same script by hand.

Two figures:

1. **Per run at the demo's shapes.** ``examples/torch_script/train.py`` at the demo's largest shape
   (width 64, depth 2, seq_len 64, batch 16, 393,216 tokens = 384 steps, an evaluation every 64 steps) is
   run ``--pairs`` times by hand (a subprocess, timed from start to exit) and as a one-run sweep through
   the command trainer (``run_sweep`` timed whole: store, claim, template, report-file polling, result),
   alternating, so both see the same machine load. Overhead = oasl's wall - by hand, relative to by hand.
2. **Fixed per run.** A script that only writes its final report, run ``--trivial`` times by hand and as
   a sweep of that many runs: (sweep wall - sum of by-hand walls) / runs is the fixed cost per run.

The law comparison (the demo's ladder through the script vs the built-in trainer) is not measured here:
the script builds the same model (same architecture and parameter count: tests/examples asserts N equal to
oasl's count at every rung) but draws its own batches from its own slice of the corpus, so its laws
would agree only within noise, and that run takes longer than this benchmark's budget.

    .venv/bin/python benchmarks/trainer_overhead.py [--pairs 2] [--trivial 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_result  # noqa: E402

from oasl.config import build  # noqa: E402
from oasl.sweep import SweepSpec, expand, run_sweep  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "torch_script" / "train.py"
FLAGS = (
    "--lr {lr} --batch-size {batch_seqs} --width {width} --depth {depth} --steps {steps} --seq-len {seq_len}"
)
FLAGS += " --seed {seed} --eval-every 64 --threads 2 --max-bytes 1000000"
TRIVIAL = "import json, os; open(os.environ['OASL_REPORT_FILE'], 'a').write(json.dumps({'final': True, 'loss': 1.0, 'n_params': 10}) + '\\n')"


def _spec(command: str, n_runs: int = 1) -> SweepSpec:
    lrs = [3e-3 * (1 + 0.01 * i) for i in range(n_runs)]
    return build(
        SweepSpec,
        {
            "name": "overhead",
            "trainer": {"command": command, "version": "bench"},
            "ladder": [{"name": "demo-m", "width": 64, "depth": 2}],
            "shape_defaults": {"seq_len": 64},
            "optimizers": {"adamw": {"lr": lrs}},
            "batch_seqs": 16,
            "tokens": 393216,
            "run": {"device": "cpu"},
        },
    )


def _by_hand(command: str, env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        command, shell=True, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - t0


def _through_oasl(spec: SweepSpec, store: Path) -> float:
    runs = expand(spec)
    t0 = time.perf_counter()
    s = run_sweep(runs, store, workers=1, executor="local")
    wall = time.perf_counter() - t0
    if s.done != len(runs):
        raise SystemExit(f"oasl trained {s.done} of {len(runs)} runs: {s.errors[:1]}")
    return wall


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--trivial", type=int, default=10)
    args = ap.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    os.environ["PYTHONPATH"] = env["PYTHONPATH"]
    work = Path(tempfile.mkdtemp(prefix="oasl-overhead-"))

    # 1. per run at the demo's shapes
    template = f"{sys.executable} {SCRIPT} {FLAGS}"
    spec = _spec(template)
    run = expand(spec)[0]
    from oasl.trainers import run_params

    by_hand_cmd = template.format_map(run_params(run))
    pairs = []
    for i in range(args.pairs):
        hand = _by_hand(by_hand_cmd, env)
        oasl = _through_oasl(spec, work / f"demo{i}.db")  # a fresh store each time: the run trains
        pairs.append(
            {"by_hand_s": hand, "oasl_s": oasl, "overhead_s": oasl - hand, "overhead_frac": oasl / hand - 1}
        )
        print(json.dumps(pairs[-1]))

    # 2. fixed cost per run
    trivial_cmd = f'{sys.executable} -S -c "{TRIVIAL}"'
    hand_env = {**env, "OASL_REPORT_FILE": str(work / "hand.jsonl")}
    hand_walls = [_by_hand(trivial_cmd, hand_env) for _ in range(args.trivial)]
    sweep_wall = _through_oasl(
        _spec(trivial_cmd.replace("{", "{{").replace("}", "}}"), args.trivial), work / "t.db"
    )
    fixed = (sweep_wall - sum(hand_walls)) / args.trivial

    med_frac = statistics.median(p["overhead_frac"] for p in pairs)
    med_s = statistics.median(p["overhead_s"] for p in pairs)
    payload = {
        "demo_shape": {"width": 64, "depth": 2, "seq_len": 64, "batch_seqs": 16, "steps": run.steps},
        "pairs": pairs,
        "overhead_frac_median": med_frac,
        "overhead_s_median": med_s,
        "trivial_runs": args.trivial,
        "trivial_by_hand_s": hand_walls,
        "trivial_sweep_s": sweep_wall,
        "fixed_overhead_s_per_run": fixed,
        "law_comparison": "not measured (see the module docstring)",
    }
    rows = "\n".join(
        f"| {i} | {p['by_hand_s']:.2f} | {p['oasl_s']:.2f} | {p['overhead_s']:+.2f} | {p['overhead_frac']:+.1%} |"
        for i, p in enumerate(pairs)
    )
    md = f"""Overhead of the `command` trainer (`examples/torch_script/train.py` at the demo's largest shape: width 64,
depth 2, seq_len 64, batch 16, {run.steps} steps) against the same command run by hand, alternating pairs on the same
machine. Target: at most 2% of a run's wall and 0.5 s fixed per run.

| pair | by hand (s) | through oasl (s) | overhead (s) | overhead |
| --- | --- | --- | --- | --- |
{rows}

Median overhead: {med_s:+.2f} s ({med_frac:+.1%}) per run. Fixed cost per run (a script that only writes its final
report, {args.trivial} runs as one sweep vs by hand): **{fixed:.3f} s**. On a shared machine the pairs' spread is the
machine's noise, not oasl's cost; the fixed figure is the cost oasl adds (store, claim, config file, watchdog,
report polling every 50 ms). The law comparison against the built-in trainer is not measured (the script builds the
same model, N equal to oasl's count at every rung, but draws its own batches).
"""
    path = write_result("trainer_overhead", payload, md)
    print(md)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
