"""Divergence early warning on the runs of the other benchmarks (issue: schedule-aware laws, item 3).

Reads the stores of ``benchmarks/extrapolation.py`` (lr sweeps of AdamW and SGD at widths 32-192, some
diverging) and ``benchmarks/schedules.py`` (8 schedules x 2 lrs x 3 widths): run those first. Labels:
diverged, or final validation loss more than 5% above the best of its group (same shape, optimizer,
budget, schedule). Held-out precision / recall / F1 from 5 folds over groups (a group's runs are never
both in training and test), for windows of 10% and 20% of the steps, on all runs and on the runs still
alive at the window's end (where a warning is a forecast, not a report). Also the divergence-only task.

Reference: Opt-Laws (Xie et al. 2024, arXiv 2409.04777) report divergence F1 = 0.92 on their setting.

Run: ``.venv/bin/python benchmarks/earlywarn.py`` (about 1 minute); writes
``benchmarks/results/earlywarn.json`` and the earlywarn section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, write_result  # noqa: E402

STORES = [RESULTS_DIR / "extrapolation.db", RESULTS_DIR / "schedules.db"]


def main() -> None:
    from oasl.train.earlywarn import cross_validate
    from oasl.workflows import training_table

    t0 = time.time()
    missing = [str(s) for s in STORES if not s.exists()]
    if missing:
        sys.exit(
            f"missing {', '.join(missing)}: run benchmarks/extrapolation.py and benchmarks/schedules.py first"
        )
    out, lines = {}, []
    for frac in (0.1, 0.2):
        parts = []
        for s in STORES:
            t = training_table(s, frac=frac, far=0.05)
            t["group"] = f"{s.stem}:" + t["group"]
            parts.append(t)
        table = pd.concat(parts, ignore_index=True)
        cv = cross_validate(table, folds=5, frac=frac, far=0.05)
        div = table.assign(label=(table["status"] == "diverged").astype(int))
        cv_div = cross_validate(div, folds=5, frac=frac) if div["label"].sum() >= 2 else None
        out[f"frac_{frac:g}"] = {
            "all": cv["all"],
            "alive": cv["alive"],
            "divergence_only": None if cv_div is None else cv_div["all"],
            "n_groups": int(table["group"].nunique()),
        }
        for name, sc in (
            ("diverged or >5% above best, all runs", cv["all"]),
            ("diverged or >5% above best, alive at window end", cv["alive"]),
            ("diverged only, all runs", None if cv_div is None else cv_div["all"]),
        ):
            if sc is None:
                continue
            lines.append(
                f"| {frac:.0%} | {name} | {sc['n']} | {sc['n_pos']} | {sc['precision']:.2f} | "
                f"{sc['recall']:.2f} | {sc['f1']:.2f} |"
            )
    md = [
        "| window | task | runs | positives | precision | recall | F1 |",
        "|---|---|---|---|---|---|---|",
        *lines,
        "",
        "Held out: 5 folds over groups (shape x optimizer x budget x schedule), predictions pooled. "
        "Opt-Laws (Xie et al. 2024) report divergence F1 = 0.92 on their own runs; the divergence-only "
        "row here rests on very few diverged runs.",
        f"Wall time {time.time() - t0:.0f} s.",
    ]
    write_result("earlywarn", out, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
