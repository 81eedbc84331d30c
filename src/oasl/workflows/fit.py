"""Fit workflows: laws of the optimal HPs (and of the loss) from runs, and the laws file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class FitResult:
    """What :func:`fit` did: the :class:`~oasl.laws.pipeline.FitReport` (laws by HP, optima, selection
    tables, loss law, skipped HPs), the laws as the laws file holds them (target -> law, with ``"loss"``
    for the loss law), the file's ``meta`` (source, features, n_runs) and the file written (or None).
    On coordinate-descent sweeps (Marin's, docs/marin.md) ``report`` is None and ``coordinate`` holds the
    :class:`~oasl.laws.coordinate.CoordinateLawSet` instead."""

    report: Any
    laws: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    coordinate: Any = None

    def table(self):
        """One row per (target, optimizer): formula, R^2, RMSE (log), held-out MAPE, n, fitted range."""
        return self.report.table()


def laws_payload(
    report, source: str, n_runs: int, fixed: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (laws, meta) that ``oasl fit`` writes to a laws file for a :class:`FitReport` fitted on
    ``n_runs`` runs of ``source``: the HP laws plus ``"loss"`` when a loss law was fitted; ``fixed``: the
    settings the sweep held fixed (:func:`oasl.recommend.sweep_settings`), which a recommendation keeps
    where no law says otherwise."""
    laws = dict(report.laws)
    if report.loss_law is not None:
        laws["loss"] = report.loss_law
    meta = {"source": source, "features": list(report.features), "n_runs": n_runs, "fixed": fixed or {}}
    if getattr(report, "priors", None):
        meta["priors"] = report.priors
    return laws, meta


def read_laws_file(path: str | Path) -> tuple[dict[str, Any], Any, str, dict[str, Any]]:
    """A laws file from :func:`fit` as (HP laws by target, the loss law or None, a line naming the
    source for a recommendation, the settings the sweep held fixed)."""
    from oasl.laws import load_laws

    fitted, meta = load_laws(path)
    loss_law = fitted.pop("loss", None)
    return fitted, loss_law, f"fitted laws {path} (on {meta.get('source', '?')})", meta.get("fixed") or {}


def fit(
    runs: Any = None,
    *,
    csv: str | Path | None = None,
    hps: list[str] | None = None,
    role: str = "sweep",
    out: str | Path | None = None,
) -> FitResult:
    """Locate the optima of the runs and fit a law for each swept HP (and a loss law L(N, D) where the
    runs span several N and D). ``runs``: a store path, or a DataFrame of runs (one row per run: the
    columns of :meth:`oasl.store.Store.to_dataframe`); or give ``csv`` (a CSV of runs). Only finished runs
    of ``role`` (sweep by default; validation's target and baseline runs are not sweep optima) are
    fitted. ``hps``: the HPs to fit (default every swept one). ``out``: write the laws file there.
    Returns a :class:`FitResult`."""
    import pandas as pd

    from oasl.laws import save_laws
    from oasl.laws.pipeline import fit_laws
    from oasl.recommend import sweep_settings
    from oasl.store import load_runs

    if isinstance(runs, pd.DataFrame):
        df, source = runs, "a DataFrame of runs"
    else:
        store = None if runs is None else str(runs)
        df = load_runs(store, csv, finished_only=True, role=role)
        source = store or str(csv)
    if {"sweep", "ablated"} <= set(df.columns):  # coordinate-descent sweeps (Marin's): docs/marin.md
        from oasl.laws.coordinate_fit import fit_coordinate_laws

        every = runs if isinstance(runs, pd.DataFrame) else load_runs(store, csv, role=role)
        lawset = fit_coordinate_laws(every, hps=hps or None, meta={"source": source})
        path = lawset.save(out) if out is not None else None
        return FitResult(None, dict(lawset.laws), dict(lawset.meta), path, lawset)
    report = fit_laws(df, hps=hps or None)
    laws, meta = laws_payload(report, source, len(df), sweep_settings(df))
    path = save_laws(out, laws, meta) if out is not None else None
    return FitResult(report, laws, meta, path)
