"""Helpers shared by CLI command modules: console, key=value parsing, finite checks, progress display."""

from __future__ import annotations

import math
import os
import re
import threading
import time
from pathlib import Path
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
from oasl.store.csv_runs import csv_safe, write_csv  # noqa: F401 - the CLI's CSV exports

PLAIN_EVERY_S = 10.0  # without a terminal, a progress line at least this often
FILE_WIDTH = 200  # columns of tables written to a file or pipe (COLUMNS overrides)

# Control characters other than newline and tab: an ESC or OSC sequence in a run's name would drive the
# terminal (colours, titles, hyperlinks), so they are printed as escapes (\x1b) instead.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# rich markup tags the CLI's own messages use; any other [...] is text (a run or column name), so that
# `[/x]` cannot crash a table nor `[link=...]` print a live hyperlink
OWN_TAGS = ("yellow", "red", "green", "dim", "bold", "cyan")
_TAG = re.compile(r"(\\*)\[([^\[\]]*)\]")


def visible(text: str) -> str:
    """``text`` with control characters (except newline and tab) written as Python escapes (``\\x1b``)."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def one_line(text: str) -> str:
    """``text`` on one line: whitespace runs (newlines included) become one space, control characters
    are made visible."""
    return " ".join(visible(str(text)).split())


def _markup_text(text: str) -> str:
    """``text`` with every ``[...]`` that is not one of the CLI's own style tags (:data:`OWN_TAGS`)
    escaped, so that rich prints it literally."""

    def esc(m: re.Match) -> str:
        tag = m.group(2).strip().lstrip("/").strip()
        if tag in OWN_TAGS or len(m.group(1)) % 2:  # our own style, or already escaped
            return m.group(0)
        return m.group(1) + "\\[" + m.group(2) + "]"

    return _TAG.sub(esc, text)


class SafeConsole(Console):
    """A rich Console that treats user data as data: every string it renders (printed text and table
    cells alike) has its control characters made visible, and markup other than the CLI's own style
    tags printed literally; a string that still does not parse as markup is printed as it is."""

    def render_str(self, text: str, *args: Any, **kwargs: Any):
        from rich.errors import MarkupError

        text = visible(text)
        markup = kwargs.get("markup")
        if markup is None:
            markup = self._markup
        if markup:
            text = _markup_text(text)
        try:
            return super().render_str(text, *args, **kwargs)
        except MarkupError:
            kwargs["markup"] = False
            return super().render_str(text, *args, **kwargs)


# log_path=False: no "validate_cmd.py:115" source tags on logged lines
console = SafeConsole(log_path=False)
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
        TextColumn("{task.description}", style="bold", markup=False),  # a sweep's name is data
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}", markup=False),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
    )


def plot_formats() -> list[str]:
    """File extensions matplotlib can write (png, pdf, svg, ...), without the dot."""
    from matplotlib.backend_bases import FigureCanvasBase

    return sorted(FigureCanvasBase.get_supported_filetypes())


def check_out_path(value: str | os.PathLike | None, flag: str = "--out", kind: str = "file") -> Path | None:
    """The output path ``value`` of option ``flag``, checked before anything runs or is written; None
    passes through. ConfigError (one line) for an empty path, a folder where a file is meant (``kind``
    "file" or "plot"), a file where a folder is meant ("dir" or "report"), a missing parent folder
    (files), a place that is not writable, for "plot" a file extension matplotlib cannot write (without
    one it would write ``NAME.png`` while the command said ``NAME``), and for "report" a folder that
    holds other files but no report (``report --out /`` must not spill index.html into it)."""
    if value is None:
        return None
    raw = os.fspath(value)
    if not raw.strip():
        raise ConfigError(f"{flag} is empty: give a path")
    p = Path(raw)
    if kind in ("dir", "report"):
        if p.exists() and not p.is_dir():
            raise ConfigError(f"{flag} {p} is a file, not a folder: give a folder path")
        existing = next((a for a in (p, *p.parents) if a.exists()), Path("."))
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(f"{flag} {p}: {existing} is not writable: choose a writable place")
        if kind == "report" and p.is_dir() and any(p.iterdir()) and not (p / "index.html").is_file():
            raise ConfigError(
                f"{flag} {p} is a folder that holds other files and no report (index.html): give a new or "
                "empty folder, or a report folder to overwrite"
            )
        return p
    if raw.endswith(("/", os.sep)) or p.is_dir():
        example = p / ("out.png" if kind == "plot" else "out")
        raise ConfigError(f"{flag} {p} is a folder: give a file path such as {example}")
    parent = p.parent
    if not parent.is_dir():
        raise ConfigError(f"{flag} {p}: folder {parent} does not exist: create it first (mkdir -p {parent})")
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise ConfigError(f"{flag} {p} is not writable: choose a writable place")
    if kind == "plot":
        formats = plot_formats()
        ext = p.suffix.lower().lstrip(".")
        if ext not in formats:
            what = f"the extension .{ext}" if ext else "no file extension"
            raise ConfigError(f"{flag} {p} has {what}: use one of .{', .'.join(formats)} (e.g. {p.stem}.png)")
    return p
