"""Input checks and small pieces shared by the one-HP and the joint optimum: which runs count, grids in log space."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd

from oasl.errors import FitError

LOSS = "final_val_loss"

# Runs that never reached the end of their budget say nothing about the final loss at their h:
# pruned on purpose ("stopped"), crashed ("failed") or still going ("running"). They are left out
# entirely; a diverged run is a result (the loss landscape ends there) and is counted.
UNFINISHED = ("stopped", "failed", "running", "pending")

# Two h values closer than this in log space are one grid point (e.g. Step Law's lr 3.45e-4 and
# 3.453e-4, written with different rounding in different runs).
GRID_TOL = 0.02


def check_frame(df: pd.DataFrame, cols: Sequence[str], what: str = "locate optima") -> None:
    """Raise FitError when ``df`` is empty or lacks any of ``cols`` (naming them and what exists)."""
    if df is None or not isinstance(df, pd.DataFrame):
        raise FitError(f"cannot {what}: expected a pandas DataFrame of runs, got {type(df).__name__}")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        have = ", ".join(map(str, df.columns)) or "none"
        raise FitError(
            f"cannot {what}: the runs table has no column {', '.join(map(repr, missing))} "
            f"(columns: {have}); rename yours or pass over=/loss=/group_by="
        )
    if len(df) == 0:
        raise FitError(f"cannot {what}: the runs table is empty")


def positive_values(df: pd.DataFrame, col: str) -> np.ndarray:
    """Column ``col`` as floats, all finite and > 0 (they are taken in log space), else FitError."""
    x = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(x) | (x <= 0)
    if bad.any():
        first = np.flatnonzero(bad)[0]
        example = df[col].to_numpy()[first]
        example = example.item() if hasattr(example, "item") else example  # 0.0, not np.float64(0.0)
        run = f" (run {df['key'].iloc[first]})" if "key" in df else ""
        raise FitError(
            f"{col} must be positive and finite in every run (optima are located in log({col})); "
            f"found {example!r}{run} in {int(bad.sum())} run(s): drop or fix those rows"
        )
    return x


def run_masks(df: pd.DataFrame, loss: str) -> tuple[np.ndarray, np.ndarray]:
    """``(finished, diverged)`` boolean masks over the rows of ``df``.

    ``finished``: the run counts (status not in :data:`UNFINISHED`). ``diverged``: a finished run
    with a non-finite loss, ``diverged`` True or status "diverged"; it is excluded from fitting and counted.
    """
    n = len(df)
    finished = np.ones(n, bool)
    diverged = ~np.isfinite(pd.to_numeric(df[loss], errors="coerce").to_numpy(dtype=float))
    if "status" in df.columns:
        status = df["status"].astype("string").fillna("done").to_numpy()
        finished &= ~np.isin(status, UNFINISHED)
        diverged |= status == "diverged"
    if "diverged" in df.columns:
        flag = df["diverged"]
        if flag.dtype == object:  # CSV strings "True"/"False", None
            flag = flag.map(lambda v: str(v).strip().lower() in ("true", "1", "yes"))
        diverged |= flag.fillna(False).astype(bool).to_numpy()
    return finished, diverged & finished


def mark_excess(loss: np.ndarray, diverged: np.ndarray, above: float | None) -> np.ndarray:
    """Also count as diverged the runs whose loss exceeds the group's best by more than ``above``
    (relative), for data without a divergence flag (Step Law's blown-up runs end near loss 7)."""
    if above is None:
        return diverged
    ok = ~diverged
    if not ok.any():
        return diverged
    best = np.min(loss[ok])
    return diverged | (ok & (loss > best * (1 + above)))


def snap_grid(logh: np.ndarray, tol: float = GRID_TOL) -> tuple[np.ndarray, np.ndarray]:
    """Cluster log values closer than ``tol`` into grid points.

    Returns ``(grid, index)``: the sorted grid (mean log value of each cluster) and, for each input,
    the index of its grid point.
    """
    order = np.argsort(logh, kind="stable")
    s = logh[order]
    new = np.concatenate([[True], np.diff(s) > tol]) if len(s) else np.zeros(0, bool)
    cluster = np.cumsum(new) - 1
    grid = (
        np.array([s[cluster == k].mean() for k in range(int(cluster.max()) + 1)]) if len(s) else np.zeros(0)
    )
    index = np.empty(len(logh), int)
    index[order] = cluster
    return grid, index


def iter_groups(df: pd.DataFrame, group_by: Sequence[str]) -> Iterator[tuple[dict, pd.DataFrame]]:
    """``(group values as a dict, rows)`` for each group, NaN keys kept, sorted by key."""
    group_by = list(group_by)
    if not group_by:
        yield {}, df
        return
    for key, g in df.groupby(group_by, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        yield dict(zip(group_by, key, strict=True)), g


def fmt(x: float) -> str:
    """A number for a message: 3 significant digits."""
    return f"{x:.3g}"
