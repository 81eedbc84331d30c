"""``oasl runs`` (the runs of a store, 80 columns wide by default) and ``oasl runs drop``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from oasl.cli.common import STORE_HELP, console, resolve_store


def register(app: typer.Typer) -> None:
    """Add the ``runs`` command group to ``app``."""
    runs = typer.Typer(
        help="List the runs in a store (`oasl runs`), or remove bad ones (`oasl runs drop --where ...`).",
        invoke_without_command=True,
    )
    app.add_typer(runs, name="runs")

    @runs.callback()
    def runs_cmd(
        ctx: typer.Context,
        store: str = typer.Option(None, "--store", help=f"SQLite store to read {STORE_HELP}."),
        limit: int = typer.Option(
            50, "--limit", help="Show at most this many runs (most recent last); 0: all."
        ),
        show_all: bool = typer.Option(
            False, "--all", help="Every column, unabbreviated (wider than 80 columns)."
        ),
    ) -> None:
        """List the runs in a store: 80 columns wide by default (--all for every column)."""
        if ctx.invoked_subcommand is not None:
            return
        from oasl.errors import ConfigError

        if limit < 0:
            raise ConfigError(f"--limit must be >= 0 (0 shows every run), got {limit}")
        store = resolve_store(store)
        df = _read_store(store)
        if df.empty:
            console.print(f"store {store} holds no runs")
            return
        shown = df if limit == 0 else df.tail(limit)
        if show_all:
            typer.echo(shown.to_string(index=False))
        else:
            console.print(runs_table(shown))
        more = f" (--limit {len(df)} or --limit 0 for all)" if len(shown) < len(df) else ""
        console.print(
            f"showing {len(shown)} of {len(df)} runs in {store}{more}", highlight=False, soft_wrap=True
        )

    @runs.command("drop")
    def drop_cmd(
        where: list[str] = typer.Option(
            ...,
            "--where",
            help="column=value (repeatable, all must hold; a,b matches either; nan matches empty; "
            "key matches a prefix), e.g. --where status=failed or --where lr=nan.",
        ),
        store: str = typer.Option(None, "--store", help=f"SQLite store to remove runs from {STORE_HELP}."),
        yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    ) -> None:
        """Remove the runs matching --where from a store (after showing how many and asking)."""
        from oasl.store import open_store

        store = resolve_store(store)
        df = _read_store(store)
        hit = df[match_where(df, where)] if len(df) else df
        if hit.empty:
            console.print(
                f"no run in {store} matches {' and '.join(where)}: nothing dropped", highlight=False
            )
            return
        console.print(runs_table(hit.tail(20)))
        if not yes and not typer.confirm(f"drop these {len(hit)} of {len(df)} runs from {store}?"):
            console.print("nothing dropped")
            return
        n = open_store(store).delete(hit["key"])  # type: ignore[attr-defined]
        console.print(f"dropped {n} of {len(df)} runs from {store} ({len(df) - n} left)", highlight=False)


def _read_store(store: str):
    from oasl.errors import StoreError
    from oasl.store import open_store

    if not Path(store).exists():
        raise StoreError(f"store {store} does not exist: run `oasl train` or `oasl sweep run` first")
    return open_store(store).to_dataframe()


# (column, header) of `oasl runs` by default: chosen to fit 80 columns with the longest usual values
RUN_COLUMNS = (
    ("key", "key"),
    ("status", "status"),
    ("optimizer", "optimizer"),
    ("shape", "shape"),
    ("n_params", "N"),
    ("lr", "lr"),
    ("tokens", "tokens"),
    ("final_val_loss", "loss"),
)


def runs_table(df) -> Table:
    """The runs of ``df`` (a :meth:`Store.to_dataframe`) as a compact table: the first 8 hex digits of
    the key (enough for ``--where key=...``), shape as w64d2, numbers to 3-4 significant digits."""
    from rich import box

    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, collapse_padding=True)
    for _, head in RUN_COLUMNS:
        table.add_column(head, overflow="fold", no_wrap=False)
    for _, row in df.iterrows():
        w, d = row.get("width"), row.get("depth")
        cells = {
            "key": str(row["key"])[: 12 if str(row["key"]).startswith("imp-") else 8],
            "shape": f"w{int(w)}d{int(d)}" if _known(w) and _known(d) else "-",
            "n_params": _short(row.get("n_params")),
            "lr": _short(row.get("lr")),
            "tokens": _short(row.get("tokens")),
            "final_val_loss": _fmt(row.get("final_val_loss"), 4),
        }
        table.add_row(*[cells.get(c, _fmt(row.get(c))) for c, _ in RUN_COLUMNS])
    return table


def match_where(df, where: list[str]):
    """Boolean mask of the rows of ``df`` matching every ``column=value`` of ``where``: numbers compare
    as numbers, ``a,b`` matches either, ``nan``/``null`` matches a missing value, ``key`` a prefix."""
    import numpy as np
    import pandas as pd

    from oasl.errors import ConfigError

    keep = pd.Series(True, index=df.index)
    for item in where:
        col, sep, value = item.partition("=")
        col = col.strip()
        if not sep or not col:
            raise ConfigError(f"--where {item!r} is not of the form column=value (e.g. status=failed)")
        if col not in df.columns:
            raise ConfigError(
                f"--where {item!r}: the store's runs have no column {col!r} "
                f"(columns: {', '.join(sorted(map(str, df.columns))[:25])})"
            )
        any_of = pd.Series(False, index=df.index)
        for v in (v.strip() for v in value.split(",")):
            if v.lower() in ("nan", "null", "none", ""):
                any_of |= df[col].isna()
            elif col == "key":
                any_of |= df[col].astype(str).str.startswith(v)
            else:
                try:
                    num = pd.to_numeric(df[col], errors="coerce").astype(float)
                    any_of |= np.isclose(num, float(v), rtol=1e-9, atol=0)
                except ValueError:
                    any_of |= df[col].astype(str) == v
        keep &= any_of
    return keep.to_numpy()


def _short(v: Any) -> str:
    """3 significant digits in at most 7 characters: 0.00316, 1.23e9, 2.79e-4, 200000."""
    if not _known(v):
        return "-"
    text = f"{float(v):.3g}"
    return text.replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


def _known(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        return f"{v:.{digits}g}"
    return str(v)
