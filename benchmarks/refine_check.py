"""The ladder's own held-out-rung check of the law-guided refinement (oasl.validate.riskcheck), on the stores
of finished ladders, with and without the valley's measured asymmetry in the refinement's likelihood.

For each store: the sweep runs (role "sweep"), the largest rung held out, the lr law fitted on the others as
`oasl fit` does, and k = 2, 3, 4 target runs replayed on the held-out rung's valley of each sweep seed; the
answer (posterior mean, and risk-adjusted) read off its seed-mean valley, in % of the loss, averaged over
the seeds (:func:`risk_check`).
Run twice: as the library does it (asymmetric likelihood, `with_asymmetry`) and with the asymmetry switched
off (a symmetric parabola, the rule before 2026-12-05). These are the figures docs/refine.md quotes for
keeping the asymmetric likelihood (pooled mean over every store, optimizer and k) and for the posterior
mean over the risk-adjusted answer (``refine_prefer``, per store). Training-only: no target run is read.

Run from the repository root, on the stores of `benchmarks/extrapolation.py` (v3 and the GNU-manuals
ladder, issue 25):

    .venv/bin/python benchmarks/refine_check.py --store V3.db --store INFO.db

(about a minute; without ``--store``, the stores `make bench` leaves: benchmarks/results/extrapolation.db and
extrapolation_info.db, run after benchmarks/extrapolation.py). Writes benchmarks/results/refine_check.json and its RESULTS.md section.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

DEFAULT_STORES = ("benchmarks/results/extrapolation.db", "benchmarks/results/extrapolation_info.db")


def sweep_runs(store: str):
    """The finished sweep runs of ``store`` (target runs left out)."""
    from oasl.store import SQLiteStore

    df = SQLiteStore(store).to_dataframe(finished_only=True)
    return df[df["role"].fillna("sweep") == "sweep"] if "role" in df else df


def check(df, asymmetric: bool) -> dict:
    """:func:`oasl.validate.riskcheck.risk_check`, with the likelihood's asymmetry on or off."""
    from oasl.validate.riskcheck import risk_check

    if asymmetric:
        return risk_check(df)
    with mock.patch("oasl.validate.refine.with_asymmetry", lambda valley, risk: valley):
        return risk_check(df)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--store",
        action="append",
        default=None,
        help="a finished ladder's store (repeatable; default: the stores `make bench` gives "
        "benchmarks/extrapolation.py, those that exist)",
    )
    args = ap.parse_args()
    stores = args.store or [s for s in DEFAULT_STORES if Path(s).exists()]
    if not stores:
        sys.exit(f"no store: run benchmarks/extrapolation.py first (looked for {', '.join(DEFAULT_STORES)})")
    out: dict = {"stores": {}}
    pooled: dict[str, list[float]] = {"symmetric": [], "asymmetric": []}
    lines = [
        "The refinement's answer on each ladder's held-out largest rung (training-only; `risk_check`), with "
        "the likelihood symmetric (before 2026-12-05) and asymmetric (the valley's measured curvature above "
        "and below, `with_asymmetry`). Regret in % of the loss of the posterior-mean answer (risk-adjusted "
        "in brackets) after k replayed runs, averaged over the replays on each sweep seed's valley.",
        "",
        "| store | optimizer | likelihood (curvature above / below) | k=2 runs at | k=2 | k=3 | k=4 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for store in stores:
        df = sweep_runs(store)
        per = {}
        for name, asym in (("symmetric", False), ("asymmetric", True)):
            c = check(df, asym)
            per[name] = c
            for opt, row in c.get("optimizers", {}).items():
                ref = row.get("refine") or {}
                pooled[name] += [v["mean"] for v in ref.values()]
                cells = " | ".join(f"{ref[k]['mean']:.2f}% ({ref[k]['risk']:.2f}%)" for k in sorted(ref))
                # where the two first runs went, as a factor of the centre (the cap is x/÷ 3.3)
                first = next(iter(ref["2"]["lrs"].values()), []) if "2" in ref else []
                step = f"x/÷ {max(v / row['centre'] for v in first):.2f}" if len(first) == 2 else "-"
                lines.append(
                    f"| {Path(store).name} | {opt} | {name} ({row['asym']:.2f}) | {step} | {cells} |"
                )
        out["stores"][store] = per
    means = {k: float(np.mean(v)) if v else float("nan") for k, v in pooled.items()}
    out["pooled_mean_regret_pct"] = means
    out["cases"] = len(pooled["asymmetric"])
    lines += [
        "",
        f"Pooled mean over {out['cases']} cases (stores x optimizers x k), posterior-mean answer: "
        f"**{means['asymmetric']:.2f}% asymmetric vs {means['symmetric']:.2f}% symmetric**.",
        "",
        "Per store, the check's verdict on the refinement's answer (posterior mean vs risk-adjusted, mean over "
        "optimizers and k; risk-adjusted only if lower by more than 0.01% of the loss):",
        "",
        *(
            f"- {Path(s).name}: symmetric {c['symmetric'].get('refine_mean_regret_pct', float('nan')):.2f}% vs "
            f"{c['symmetric'].get('refine_risk_regret_pct', float('nan')):.2f}% -> "
            f"{c['symmetric'].get('refine_prefer')}; asymmetric "
            f"{c['asymmetric'].get('refine_mean_regret_pct', float('nan')):.2f}% vs "
            f"{c['asymmetric'].get('refine_risk_regret_pct', float('nan')):.2f}% -> "
            f"{c['asymmetric'].get('refine_prefer')}"
            for s, c in out["stores"].items()
        ),
    ]
    text = "\n".join(lines)
    write_result("refine_check", out, text)
    print(text)


if __name__ == "__main__":
    main()
