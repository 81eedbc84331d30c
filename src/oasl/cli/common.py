"""Helpers shared by CLI command modules: console, key=value parsing, progress bars."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from oasl.errors import ConfigError

console = Console()


def parse_kv(items: list[str] | None, what: str = "--hp") -> dict[str, float]:
    """Parse ``["beta1=0.9", "weight_decay=0.1"]`` into floats; ConfigError on malformed items."""
    out: dict[str, float] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"{what} {item!r} is not of the form name=value")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"{what} {item!r}: {value!r} is not a number") from None
    return out


def progress_bar(transient: bool = False) -> Progress:
    """A rich progress bar with count, elapsed time, ETA and a free-text status field."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
    )
