"""Helpers shared by CLI command modules: console, key=value parsing, finite checks, progress display."""

from __future__ import annotations

import math
import os
import threading
import time
from typing import Any

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

PLAIN_EVERY_S = 10.0  # without a terminal, a progress line at least this often
FILE_WIDTH = 200  # columns of tables written to a file or pipe (COLUMNS overrides)

# log_path=False: no "validate_cmd.py:115" source tags on logged lines
console = Console(log_path=False)
if not console.is_terminal and "COLUMNS" not in os.environ:
    # a file, a pipe or CI has no width to fit: rich's default of 80 would cut table cells to "…"
    console.width = FILE_WIDTH


def parse_kv(items: list[str] | None, what: str = "--hp") -> dict[str, float]:
    """Parse ``["beta1=0.9", "weight_decay=0.1"]`` into finite floats; ConfigError on malformed items."""
    out: dict[str, float] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"{what} {item!r} is not of the form name=value")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"{what} {item!r}: {value!r} is not a number") from None
        if not math.isfinite(out[name.strip()]):
            raise ConfigError(f"{what} {item!r}: {value.strip()} is not a finite number")
    return out


DEFAULT_STORE = "runs.db"  # every command's default store
LEGACY_STORE = "oasl.db"  # `oasl train` and `oasl runs` defaulted to this before one default
STORE_HELP = "(default runs.db; where it is absent and an oasl.db from an older oasl is, that one)"


def resolve_store(store: str | None) -> str:
    """``store``, or the default: ``runs.db``, else an existing ``oasl.db`` (an older default, said on
    stderr) so that runs written before the defaults agreed stay in reach."""
    if store is not None:
        return store
    if not os.path.exists(DEFAULT_STORE) and os.path.exists(LEGACY_STORE):
        import typer

        typer.secho(
            f"note: using {LEGACY_STORE} (the old default store); rename it to {DEFAULT_STORE} or pass --store",
            err=True,
        )
        return LEGACY_STORE
    return DEFAULT_STORE


def require_positive(value: float | None, flag: str) -> None:
    """ConfigError unless ``value`` (of option ``flag``) is None or a finite number > 0."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{flag} must be positive (a finite number > 0), got {value:g}")


def fmt_duration(seconds: float) -> str:
    """``75`` -> ``1m15s``, ``4000`` -> ``1h06m``; ``?`` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class _RichProgress(Progress):
    def log(self, message: str) -> None:
        """A timestamped line above the live bars."""
        self.console.log(message, markup=False, highlight=False)


class PlainProgress:
    """Progress for a file, a pipe or CI: plain lines, never redrawn, never cut, with count, elapsed time
    and an estimate, on every change (at most one a second per task) and at least every ``every_s``.

    The same calls as rich's :class:`~rich.progress.Progress` that the commands use: ``add_task``,
    ``update``, ``log``, and use as a context manager.
    """

    def __init__(
        self, out: Console | None = None, every_s: float = PLAIN_EVERY_S, min_gap_s: float | None = None
    ):
        self.console = out or console
        self.every_s = every_s
        self.min_gap_s = max(1.0, every_s / 2) if min_gap_s is None else min_gap_s
        self._tasks: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()

    def __enter__(self) -> PlainProgress:
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for tid, t in self._tasks.items():
            if t["printed"] != t["completed"]:
                self._emit(tid)

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        with self._lock:
            tid = len(self._tasks)
            self._tasks[tid] = {
                "description": description,
                "total": total,
                "completed": 0,
                "status": str(fields.get("status", "")),
                "start": time.monotonic(),
                "last": 0.0,
                "printed": None,
            }
        self._emit(tid)
        return tid

    def update(self, task_id: int, completed: float | None = None, **fields: Any) -> None:
        t = self._tasks[task_id]
        with self._lock:
            if completed is not None:
                t["completed"] = completed
            if "status" in fields:
                t["status"] = str(fields["status"])
            if "total" in fields and fields["total"] is not None:
                t["total"] = fields["total"]
            due = t["completed"] != t["printed"] and (
                time.monotonic() - t["last"] >= self.min_gap_s or t["completed"] == t["total"]
            )
        if due:
            self._emit(task_id)

    def log(self, message: str) -> None:
        """One line, prefixed with the time since start."""
        self._print(f"[{fmt_duration(time.monotonic() - self._t0):>6}] {message}")

    def line(self, task_id: int) -> str:
        """The progress line of a task: description, done/total, elapsed, estimate, status."""
        t = self._tasks[task_id]
        done, total = t["completed"], t["total"]
        elapsed = time.monotonic() - t["start"]
        count = f"{done:g}/{total:g}" if total is not None else f"{done:g}"
        if total is not None and done >= total:
            eta = "done"
        elif total and done > 0:
            eta = "ETA " + fmt_duration(elapsed * (total - done) / done)
        else:
            eta = "ETA ?"
        status = f"  {t['status']}" if t["status"] else ""
        return f"{t['description']}: {count}, elapsed {fmt_duration(elapsed)}, {eta}{status}"

    def _emit(self, task_id: int) -> None:
        t = self._tasks[task_id]
        with self._lock:
            t["last"], t["printed"] = time.monotonic(), t["completed"]
        self._print(self.line(task_id))

    def _print(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.every_s / 4):
            now = time.monotonic()
            for tid, t in list(self._tasks.items()):
                finished = t["total"] is not None and t["completed"] >= t["total"]
                if not finished and now - t["last"] >= self.every_s:
                    self._emit(tid)


def progress_bar(transient: bool = False, every_s: float | None = None) -> _RichProgress | PlainProgress:
    """A live rich progress bar (count, status, elapsed, ETA) on a terminal; elsewhere (a file, a pipe,
    CI) a :class:`PlainProgress` printing plain lines at least every ``every_s`` seconds (default 10,
    or ``$OASL_PROGRESS_EVERY``)."""
    if not console.is_terminal:
        every = every_s or float(os.environ.get("OASL_PROGRESS_EVERY", PLAIN_EVERY_S))
        return PlainProgress(console, every_s=every)
    return _RichProgress(
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
