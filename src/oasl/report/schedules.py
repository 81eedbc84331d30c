"""The report's schedule section: observed vs predicted curves of the runs a schedule law was fitted on,
and the ranking of candidate schedules for the fitted run length, with intervals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

DEFAULT_CANDIDATES = ("constant", "cosine", "cosine:0", "linear", "wsd:0.1", "wsd:0.2", "wsd:0.4")


def schedule_section(
    law_file: str | Path,
    out: str | Path,
    store: str | Path | None = None,
    candidates: tuple[str, ...] = DEFAULT_CANDIDATES,
    level: float = 0.9,
) -> dict[str, Any]:
    """Figures and tables for a fitted schedule-law file (from ``oasl schedules fit``).

    Reads the curves the law was fitted on from ``store`` (default: the store named in the file) and
    writes ``out/schedule_fit.png`` (observed dots, predicted lines) and ``out/schedule_rank.png``
    (predicted curves of ``candidates`` at the fitted run length and peak lr). Returns a dict with
    ``law`` (a one-line description), ``errors`` (DataFrame: per-curve mean / worst / final relative
    error), ``table`` (the ranking DataFrame), ``fit_figure`` and ``figure`` (PNG paths)."""
    from oasl.curves import ScaledScheduleLaw
    from oasl.curves.io import load_schedule_law
    from oasl.curves.ranking import rank_candidates
    from oasl.curves.runs import store_curves
    from oasl.report.plots import plot_curves

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    law, ctx = load_schedule_law(law_file)
    scaled = isinstance(law, ScaledScheduleLaw)
    n_params = float(ctx.get("n_params", 0) or 0)
    kw = {"n_params": n_params} if scaled else {}
    section: dict[str, Any] = {"law": repr(law) if not scaled else f"ScaledScheduleLaw(slopes={law.slopes_})"}

    src = store if store is not None else ctx.get("store")
    rows, observed, predicted = [], {}, {}
    if src is not None and Path(src).exists():
        rcs = store_curves(src, ctx.get("where") or {}, source=ctx.get("source", "auto"))
        for rc in rcs:
            c = rc.curve
            pred = law.predict(c.lrs, c.steps, **({"n_params": rc.n_params} if scaled else {}))
            rel = np.abs(pred - c.loss) / c.loss
            rows.append(
                {
                    "curve": c.name,
                    "points": len(c),
                    "mean rel. error": float(rel.mean()),
                    "worst rel. error": float(rel.max()),
                    "final rel. error": float(rel[-1]),
                }
            )
            if not scaled or rc.n_params == n_params:
                observed[c.name], predicted[c.name] = (c.steps, c.loss), (c.steps, pred)
        if predicted:
            section["fit_figure"] = plot_curves(
                dict(list(predicted.items())[:10]),
                out / "schedule_fit.png",
                title="observed (dots) vs schedule law (lines)",
                observed=observed,
                zoom_from=0.2 * int(ctx["steps"]),
            )
    section["errors"] = pd.DataFrame(rows)

    steps, lr, warm = int(ctx["steps"]), float(ctx["lr"]), int(ctx.get("warmup_steps", 0))
    table = rank_candidates(
        law,
        list(candidates),
        steps,
        lr,
        warmup_steps=warm,
        tune=True,
        level=level if has_intervals(law) else None,
        **kw,
    )
    section["table"] = table
    section["figure"] = plot_schedules(
        law, list(table["schedule"]), steps, lr, warm, out / "schedule_rank.png", **kw
    )
    return section


def has_intervals(law) -> bool:
    """Whether ``law`` can give intervals: bootstrap draws saved with it, or its training curves."""
    return getattr(law, "boot_thetas_", None) is not None or getattr(law, "_train", None) is not None


def plot_schedules(
    law, names, steps: int, peak_lr: float, warmup_steps: int, path, level: float = 0.9, **predict_kwargs
) -> Path:
    """Predicted loss curves of the schedules ``names`` for a run of ``steps`` steps at ``peak_lr``,
    framed on the part of the run where they differ, each with its ``level`` interval band where the
    law can give intervals (:func:`has_intervals`); writes the PNG at ``path`` and returns it."""
    from oasl.curves.ranking import candidate_schedules
    from oasl.report.plots import plot_curves

    xs = np.unique(np.linspace(0, steps - 1, 200).astype(int))
    scheds = candidate_schedules(list(names), steps, peak_lr, warmup_steps=warmup_steps)
    title = f"predicted loss per schedule, {steps} steps, peak lr {peak_lr:.3g}"
    curves = {n: (xs, law.predict(v, xs, **predict_kwargs)) for n, v in scheds.items()}
    bands = None
    if has_intervals(law):  # the interval the table states, drawn around each curve
        bands = {n: law.predict_interval(v, xs, level=level, **predict_kwargs) for n, v in scheds.items()}
    return plot_curves(curves, path, title=title, zoom_from=0.2 * steps, bands=bands, level=level)
