"""Optima and import workflows: the optimum of swept HPs per group, and runs from other training code."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class OptimaResult:
    """What :func:`optima` found: ``table`` (one row per group: optimum, CI, band, flags, note), the
    swept HPs ``over``, the ``groups`` columns, the ``runs`` it read, and ``mixed``: known HP columns that
    vary within a group (the optimum mixes their settings). ``coordinate``: the runs are coordinate-descent
    sweeps (Marin's, docs/marin.md) and ``table`` holds the optimum on each sweep's 1-D valley
    (:func:`oasl.optima.coordinate.coordinate_optima`)."""

    table: Any
    over: list[str]
    groups: list[str]
    runs: Any
    mixed: list[str] = field(default_factory=list)
    path: Path | None = None
    coordinate: bool = False


def mixed_columns(df, over: list[str], groups: list[str]) -> list[str]:
    """Known HP columns (not swept here, not grouped on) that take several values within a group."""
    from oasl.store import HP_COLUMNS

    cols = [c for c in HP_COLUMNS if c in df.columns and c not in over and c not in groups]
    if not cols or any(g not in df.columns for g in groups):
        return []
    if groups:
        counts = df.groupby(groups, dropna=False)[cols].nunique().max()
    else:
        counts = df[cols].nunique()
    return [c for c in cols if counts[c] > 1]


def optima(
    runs: Any = None,
    *,
    csv: str | Path | None = None,
    over: str | list[str] = "lr",
    group_by: str | list[str] = ("optimizer", "n_params", "tokens"),
    loss: str = "final_val_loss",
    eps: float = 0.0025,
    level: float = 0.9,
    n_boot: int = 200,
    seed: int = 0,
    out: str | Path | None = None,
) -> OptimaResult:
    """The optimum of one swept HP (or the joint optimum of two) per group of runs, with its bootstrap
    interval at ``level``, the near-optimal band (loss within ``eps``, relative, of the best) and flags.
    ``runs``: a store path or a DataFrame of runs; or give ``csv``. ``over`` and ``group_by`` take lists
    or comma-separated text. ``out``: write the table as CSV there. Returns an :class:`OptimaResult`."""
    import pandas as pd

    from oasl.errors import ConfigError
    from oasl.optima import locate_joint_optima, locate_optima
    from oasl.store import load_runs

    hps = _split(over)
    if len(hps) not in (1, 2):
        raise ConfigError(f"--over takes one HP or two comma-separated HPs, got {over!r}")
    if len(set(hps)) != len(hps):
        raise ConfigError(f"--over names {hps[0]} twice: give two different HPs for a joint optimum")
    if not 0 <= eps < 1:
        raise ConfigError(f"--eps is a relative loss gap in [0, 1), e.g. 0.0025 for 0.25%; got {eps:g}")
    if n_boot < 0 or seed < 0:
        raise ConfigError(
            f"--n-boot and --seed must be >= 0 (--n-boot 0 skips the bootstrap), got {n_boot}, {seed}"
        )
    groups = _split(group_by)
    df = runs if isinstance(runs, pd.DataFrame) else load_runs(None if runs is None else str(runs), csv)
    absent = [c for c in [*hps, *groups, loss] if c not in df.columns]
    if absent:  # before any warning about the columns that are there
        raise ConfigError(
            f"the runs have no column {', '.join(map(repr, absent))} (columns: "
            f"{', '.join(map(str, df.columns[:25]))}): check --over, --group-by and --loss"
        )
    if {"sweep", "ablated"} <= set(df.columns) and len(hps) == 1:
        from oasl.optima.coordinate import COLUMN, coordinate_optima

        col = COLUMN.get(hps[0], hps[0])
        opt = coordinate_optima(df, [col], loss)
        opt = opt[opt["hp"] == col]
        return OptimaResult(opt, [col], groups, df, [], _write(opt, out), coordinate=True)
    mixed = mixed_columns(df, hps, groups)
    if len(hps) == 1:
        opt = locate_optima(
            df, over=hps[0], group_by=groups, loss=loss, eps=eps, n_boot=n_boot, seed=seed, level=level
        )
    else:
        opt = locate_joint_optima(
            df, over=tuple(hps), group_by=groups, loss=loss, eps=eps, n_boot=n_boot, seed=seed, level=level
        )
    return OptimaResult(opt, hps, groups, df, mixed, _write(opt, out))


def _write(opt, out: str | Path | None) -> Path | None:
    if out is None:
        return None
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    opt.to_csv(path, index=False)
    return path


def import_runs(
    csv: str | Path,
    store: str | Path = "runs.db",
    *,
    loss_column: str | None = None,
    column_map: dict[str, str] | None = None,
    constants: dict[str, Any] | None = None,
    fmt: str = "auto",
    replace: bool = False,
):
    """Import a CSV of runs from other training code (one row per run; NaN/inf loss = diverged), or a
    folder of Marin optimizer-sweep results (``fmt`` "marin", or "auto" for a folder; docs/marin.md),
    into ``store`` (created if absent). Returns an :class:`~oasl.store.ImportResult` (rows read, new
    runs, warnings). ``replace``: rows of an earlier import of a file of the same name are replaced by
    this file's (a CSV only)."""
    from oasl.errors import ConfigError
    from oasl.store import import_runs_csv
    from oasl.store.marin import import_marin, is_marin_tree

    if fmt not in ("auto", "csv", "marin"):
        raise ConfigError(f"unknown --format {fmt!r}: use auto, csv or marin")
    # a folder is read as Marin results (its error names the layout expected when it is not one)
    if fmt == "marin" or (fmt == "auto" and (is_marin_tree(csv) or Path(csv).is_dir())):
        return import_marin(csv, store)
    return import_runs_csv(
        csv, store, loss_column=loss_column, column_map=column_map, constants=constants, replace=replace
    )


def _split(text: str | list[str] | tuple[str, ...]) -> list[str]:
    if not isinstance(text, str):
        return [str(t).strip() for t in text if str(t).strip()]
    return [t.strip() for t in text.split(",") if t.strip()]
