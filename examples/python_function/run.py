"""Drive the 3-size ladder of ../torch_script/sweep.yaml through a Python function, fit the law of the
optimal lr and recommend for a larger model:

    python examples/python_function/run.py [--store runs.db] [--target-params 1e6]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from my_trainer import my_train  # noqa: E402

import oasl  # noqa: E402
from oasl.laws.pipeline import fit_laws  # noqa: E402
from oasl.recommend import recommend  # noqa: E402
from oasl.store import open_store  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", default="runs.db")
    ap.add_argument("--target-params", type=float, default=1e6)
    ap.add_argument("--target-tokens", type=float, default=2e7)
    args = ap.parse_args(argv)

    # the same ladder and grid as the command example; the function trains it (its qualified name and
    # version go into each run's store key, so these runs are not those of the command)
    summary = oasl.sweep(
        HERE.parent / "torch_script" / "sweep.yaml", store=args.store, trainer=my_train, trainer_version="v1"
    )
    print(f"runs: {summary.done} trained, {summary.skipped} already in the store, {summary.failed} failed")
    df = open_store(args.store).to_dataframe(finished_only=True)
    report = fit_laws(df, hps=["lr"])
    law = report.laws["lr"]
    rec = recommend("adamw", args.target_params, args.target_tokens, laws=report.laws)
    lr = rec.items["lr"]
    print(f"law: {law}")
    print(
        f"recommended lr at N={args.target_params:.3g}: {lr.value:.3g} (interval {lr.low:.3g}-{lr.high:.3g})"
    )
    return {"summary": summary, "laws": report.laws, "recommendation": rec}


if __name__ == "__main__":
    main()
