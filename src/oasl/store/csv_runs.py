"""Runs from other training code as a CSV: parse, validate and convert to the columns oasl reads.

``oasl import`` and ``oasl fit/optima --csv`` call these; the SQL that stores the rows is in
:mod:`oasl.store.sqlite` (:meth:`~oasl.store.Store.import_frame`).

Conversion, in this order: ``column_map`` renames columns (``{"N": "n_params", "D": "tokens"}``);
``loss_column`` names the loss to use (renamed to ``final_val_loss``; without it a ``loss`` column is
used when there is no ``final_val_loss``); ``constants`` add columns the CSV lacks
(``{"optimizer": "adamw", "seq_len": 2048}``); ``batch_tokens`` is derived as ``batch_seqs x seq_len``
when both are given and it is absent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from oasl.errors import ConfigError, DataError, StoreError

# Columns that, when present, must be numbers; the first group is taken in log space, so also > 0.
POSITIVE_COLUMNS = (
    "lr",
    "batch_seqs",
    "batch_tokens",
    "batch_size",
    "n_params",
    "n_params_total",
    "tokens",
    "width",
    "depth",
    "seq_len",
    "flops",
)
NUMERIC_COLUMNS = (
    "final_val_loss",
    "loss",
    "seed",
    "beta1",
    "beta2",
    "momentum",
    "weight_decay",
    "eps",
    "warmup_frac",
    "grad_clip",
)
HP_COLUMNS = (
    "lr",
    "batch_seqs",
    "batch_tokens",
    "batch_size",
    "beta1",
    "beta2",
    "momentum",
    "weight_decay",
    "warmup_frac",
)


def parse_pairs(text: str | None, what: str) -> dict[str, str]:
    """``"a=b,c=d"`` -> ``{"a": "b", "c": "d"}`` (names may hold spaces: ``"smooth loss=loss"``).
    ``what`` names the option in messages. ConfigError on a malformed pair."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"{what} takes NAME=VALUE pairs separated by commas, got {part.strip()!r}")
        out[key.strip()] = value.strip()
    return out


def _constant(v: str) -> Any:
    """A constant column's value: a number when it reads as one, else the text."""
    try:
        x = float(v)
    except ValueError:
        return v
    if not math.isfinite(x):
        raise ConfigError(f"constant column value {v!r} is not a finite number")
    return int(x) if x.is_integer() and "." not in v and "e" not in v.lower() else x


def _shown(v: Any) -> str:
    """A cell as a user wrote it: numpy scalars as plain numbers (not ``np.int64(-5)``), text quoted."""
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    return repr(v) if isinstance(v, str) else str(v)


def convert_runs(
    df: pd.DataFrame,
    loss_column: str | None = None,
    column_map: dict[str, str] | None = None,
    constants: dict[str, Any] | None = None,
    name: str = "the CSV",
) -> pd.DataFrame:
    """Rename, choose the loss column and add constant columns (module docstring); returns a new frame.
    DataError naming the columns that exist when a named column is missing."""
    df = df.copy()
    cols = ", ".join(map(str, df.columns))
    for old in column_map or {}:
        if old not in df.columns:
            raise DataError(f"--column-map names {old!r}, which {name} lacks (columns: {cols})")
    df = df.rename(columns=column_map or {})
    if loss_column is not None:
        if loss_column not in df.columns:
            raise DataError(f"--loss-column {loss_column!r} is not a column of {name} (columns: {cols})")
        if loss_column != "final_val_loss":
            # the chosen loss replaces any other final_val_loss; keep the rest under its own name
            df = df.drop(columns=[c for c in ("final_val_loss",) if c in df.columns])
            df = df.rename(columns={loss_column: "final_val_loss"})
    elif "final_val_loss" not in df.columns and "loss" in df.columns:
        df = df.rename(columns={"loss": "final_val_loss"})
    for col, value in (constants or {}).items():
        if col in df.columns:
            raise DataError(f"--set {col}=... but {name} already has a column {col}: drop one of them")
        df[col] = _constant(str(value)) if isinstance(value, str) else value
    if "batch_tokens" not in df.columns and {"batch_seqs", "seq_len"} <= set(df.columns):
        bs = pd.to_numeric(df["batch_seqs"], errors="coerce")
        df["batch_tokens"] = bs * pd.to_numeric(df["seq_len"], errors="coerce")
    return df


def read_runs_csv(
    path: str | Path,
    loss_column: str | None = None,
    column_map: dict[str, str] | None = None,
    constants: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """A runs CSV as a DataFrame converted by :func:`convert_runs`; DataError when unreadable."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"CSV file {path} does not exist")
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty: it needs a header row and one row per run") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(
            f"cannot parse {path} as CSV ({str(exc).splitlines()[0]}): save it as UTF-8 CSV"
        ) from None
    return convert_runs(df, loss_column, column_map, constants, name=str(path))


def validate_runs(df: pd.DataFrame, name: str = "the CSV") -> list[str]:
    """Check a runs table before import; raises DataError on a fault, returns warnings (strings)."""
    if len(df) == 0:
        raise DataError(f"{name} has a header but no rows: nothing to import")
    dup = [c for c in df.columns if str(c).endswith(".1") and str(c)[:-2] in df.columns]
    if dup:
        raise DataError(f"{name} repeats column(s) {', '.join(str(c)[:-2] for c in dup)}: keep one of each")
    if "final_val_loss" not in df.columns:
        raise DataError(
            f"{name} has no loss column: name the final validation loss final_val_loss (or loss), "
            "or pass --loss-column NAME"
        )
    for col in (*POSITIVE_COLUMNS, *NUMERIC_COLUMNS):
        if col not in df.columns:
            continue
        raw = df[col]
        num = pd.to_numeric(raw, errors="coerce")
        bad = num.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
        if col == "final_val_loss":  # "nan"/"inf" mean a diverged run, which is a result
            bad &= ~raw.astype(str).str.strip().str.lower().isin(["nan", "inf", "-inf", "infinity"])
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise DataError(
                f"column {col} of {name} holds {int(bad.sum())} non-number(s), e.g. {_shown(raw.iloc[i])} "
                f"on data row {i + 1}: fix or drop those rows"
            )
        nonpos = ((num <= 0) | (num.abs() == math.inf)).to_numpy().nonzero()[0]
        if col in POSITIVE_COLUMNS and len(nonpos):
            i = int(nonpos[0])
            raise DataError(
                f"column {col} of {name} must be positive and finite (it is used in log space); "
                f"data row {i + 1} has {_shown(raw.iloc[i])}"
            )
    if "diverged" in df.columns:
        ok = df["diverged"].isna() | df["diverged"].astype(str).str.strip().str.lower().isin(
            ["true", "false", "1", "0", "yes", "no", "1.0", "0.0"]
        )
        if not ok.all():
            i = int((~ok).to_numpy().nonzero()[0][0])
            raise DataError(
                f"column diverged of {name} must be true/false; data row {i + 1} has "
                f"{_shown(df['diverged'].iloc[i])}"
            )
    warnings = []
    if not any(c in df.columns for c in HP_COLUMNS):
        warnings.append(
            f"no known hyperparameter column ({', '.join(HP_COLUMNS[:4])}, ...): `oasl optima "
            "--over NAME` will need the name of yours (or rename it with --column-map)"
        )
    for col in ("optimizer", "n_params", "tokens"):
        if col in df.columns and df[col].isna().any():
            warnings.append(
                f"{int(df[col].isna().sum())} of {len(df)} row(s) have no {col}: `oasl fit` cannot use them; fill "
                f"the column (or --set {col}=VALUE) and re-import with --replace"
            )
        if col not in df.columns:
            warnings.append(
                f"no {col} column: rename yours with --column-map OLD={col}, add a constant with "
                f"--set {col}=VALUE, or pass --group-by with your own grouping columns to `oasl optima`"
            )
    return warnings


def load_runs(
    store: str | None,
    csv: str | Path | None,
    finished_only: bool = False,
    loss_column: str | None = None,
    column_map: dict[str, str] | None = None,
    constants: dict[str, Any] | None = None,
    role: str = "all",
) -> pd.DataFrame:
    """Runs from exactly one of a store (``Store.to_dataframe()``) or a CSV (:func:`read_runs_csv`).

    ``role`` keeps the runs of one role (sweep, target, baseline; runs without one count as sweep runs)
    or "all": a validated store also holds the target's and the baselines' runs, which are not rungs of
    the ladder. ConfigError (one line) for an unknown role or when no run has it."""
    from oasl.store.base import ROLES

    if role != "all" and role not in ROLES:
        raise ConfigError(f"unknown --role {role!r}: use {', '.join(ROLES)} or all")
    if (store is None) == (csv is None):
        raise ConfigError("give exactly one of --store PATH or --csv PATH")
    if csv is not None:
        df = read_runs_csv(csv, loss_column, column_map, constants)
    elif not Path(store).exists():
        raise StoreError(
            f"store {store} does not exist: run `oasl sweep run` or `oasl import RUNS.csv --store {store}`"
        )
    else:
        from oasl.store.sqlite import open_store

        df = open_store(store).to_dataframe(finished_only=finished_only)
    if role != "all" and "role" in df:
        df = df[df["role"].fillna("sweep") == role]
        if df.empty:
            raise ConfigError(f"no finished runs with role {role!r}: pass --role all to use every run")
    return df


@dataclass
class ImportResult:
    """What :func:`import_runs_csv` did: ``n_rows`` read, ``n_new`` stored (the rest were there), warnings."""

    n_rows: int
    n_new: int
    warnings: list[str] = field(default_factory=list)
    n_replaced: int = 0  # runs of an earlier import of the same file removed (``replace=True``)


def import_runs_csv(
    path: str | Path,
    store,
    loss_column: str | None = None,
    column_map: dict[str, str] | None = None,
    constants: dict[str, Any] | None = None,
    replace: bool = False,
) -> ImportResult:
    """Read, convert and validate the runs CSV at ``path`` and add its rows to ``store`` (a Store or a
    path, created if absent). Returns an :class:`ImportResult`; DataError/ConfigError on a fault.

    Runs an earlier import of a file of the same name left in the store are replaced by this file's rows
    with ``replace`` (``n_replaced`` says how many went); without it, a warning says they are there, how
    many of them lack optimizer or n_params (so `oasl fit` cannot use them), and how to drop them."""
    from oasl.store.sqlite import open_store

    path = Path(path)
    df = read_runs_csv(path, loss_column, column_map, constants)
    warnings = validate_runs(df, str(path))
    st = open_store(store)
    source = f"import:{path.name}"
    before = st.to_dataframe()
    earlier = before[before["source"] == source] if len(before) and "source" in before else before.iloc[0:0]
    n_replaced = 0
    if replace and len(earlier):
        n_replaced = st.delete(earlier["key"])  # type: ignore[attr-defined]
    n = st.import_frame(df, source=source)
    if not replace and len(earlier):
        unusable = sum(
            (earlier[c].isna() if c in earlier else pd.Series(True, index=earlier.index))
            for c in ("optimizer", "n_params")
        )
        n_bad = int((unusable > 0).sum())
        bad = (
            f" ({n_bad} of them without optimizer or n_params, which `oasl fit` cannot use)" if n_bad else ""
        )
        if n:  # a changed file: its rows now sit beside the earlier ones
            warnings.append(
                f"the store already held {len(earlier)} run(s) from an earlier import of {path.name}{bad}: "
                "pass --replace to swap them for this file's rows, or drop them with "
                f"`oasl runs drop --where source={source}`"
            )
    return ImportResult(len(df), n, warnings, n_replaced)
