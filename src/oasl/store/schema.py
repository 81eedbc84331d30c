"""Checks that a SQLite file is an oasl store, and that each run row has the shape oasl reads.

A store is the source of truth for runs, so a file that is not one (another program's SQLite database,
a store of a newer oasl, a store whose rows were edited by hand) is reported with one
:class:`~oasl.errors.StoreError` line naming the file or the run key and the fix, before anything is
written to it; never a ``KeyError`` half-way through a table.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

from oasl.errors import StoreError

SCHEMA_VERSION = 1  # of the store's tables; a store with a newer one is refused (upgrade oasl)

# Columns of the runs table that oasl reads (``role`` is added by a migration when absent).
RUN_COLUMNS = (
    "key", "status", "source", "spec_json", "result_json", "error", "attempts", "corpus_hash",
    "oasl_version", "created_at", "updated_at",
)  # fmt: skip
CURVE_TABLE_COLUMNS = ("key", "step", "tokens", "lr", "train_loss", "val_loss", "grad_norm", "extra_json")
# What flatten_row reads of a run trained by oasl: spec keys, and the keys of its shape and schedule.
SPEC_KEYS = (
    "shape", "schedule", "optimizer", "parametrization", "base_width", "lr", "batch_seqs", "tokens", "seed",
    "grad_clip",
)  # fmt: skip
SHAPE_KEYS = ("width", "depth")
SCHEDULE_KEYS = ("name", "warmup_frac", "final_frac", "decay_frac")
NUMERIC_SPEC = ("lr", "batch_seqs", "tokens", "seed")


def check_schema(con: sqlite3.Connection, path: Path, readonly: bool = False) -> None:
    """StoreError unless the database behind ``con`` is an oasl store this oasl can read: it has the
    ``runs`` table with every column oasl reads and a numeric schema version no newer than this oasl's.

    A SQLite file without tables passes when opened to write (it becomes a new store), not when opened
    ``readonly``; one with other programs' tables never does, so that oasl never adds its tables to, or changes the journal mode of, a foreign database."""
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables and readonly:
        raise StoreError(
            f"store {path} is an empty database with no runs: run `oasl sweep run` or `oasl import` first"
        )
    if not tables:
        return
    if "runs" not in tables or "meta" not in tables:
        shown = ", ".join(sorted(tables)[:6]) + (", ..." if len(tables) > 6 else "")
        raise StoreError(
            f"{path} is a SQLite database but not an oasl store (its tables: {shown}): pass an oasl store, "
            "or a new path to create one; nothing was changed"
        )
    cols = {r[1] for r in con.execute("PRAGMA table_info(runs)")}
    missing = [c for c in RUN_COLUMNS if c not in cols]
    if missing:
        raise StoreError(
            f"store {path} is damaged: its runs table has no column {', '.join(missing)}; restore it from a "
            "copy, or import its runs into a new store; nothing was changed"
        )
    if "curves" in tables:
        ccols = {r[1] for r in con.execute("PRAGMA table_info(curves)")}
        cmissing = [c for c in CURVE_TABLE_COLUMNS if c not in ccols]
        if cmissing:
            raise StoreError(
                f"store {path} is damaged: its curves table has no column {', '.join(cmissing)}; restore it "
                "from a copy; nothing was changed"
            )
    found = con.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()
    if found is None:
        return
    try:
        version = int(str(found[0]).strip())
    except ValueError:
        raise StoreError(
            f"store {path} has schema version {str(found[0])[:40]!r}, not a number: the store is damaged; "
            f"set it back with sqlite3 (UPDATE meta SET value='{SCHEMA_VERSION}' WHERE "
            "name='schema_version') or restore a copy; nothing was changed"
        ) from None
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"store {path} has schema version {version}, newer than this oasl's "
            f"({SCHEMA_VERSION}): upgrade oasl (`pip install -U oasl`) to read it; nothing was changed"
        )


def _bad(key: Any, what: str) -> StoreError:
    return StoreError(
        f"run {key} in the store is corrupt ({what}): remove it with `oasl runs drop --where key={key}` "
        "or restore the store from a copy"
    )


def check_row(d: dict[str, Any]) -> None:
    """StoreError naming the run's key unless the parsed row ``d`` (spec and result decoded) holds what
    :func:`~oasl.store.base.flatten_row` reads: a dict spec and result; for a run trained by oasl, a
    spec with a shape (width, depth), a schedule and numeric lr, batch size, tokens and seed."""
    key = d.get("key")
    spec, result = d.get("spec"), d.get("result")
    if not isinstance(spec, dict):
        raise _bad(key, f"its spec is a {type(spec).__name__}, not a mapping")
    if result is not None and not isinstance(result, dict):
        raise _bad(key, f"its result is a {type(result).__name__}, not a mapping")
    if d.get("source") != "oasl":
        return
    missing = [k for k in SPEC_KEYS if k not in spec]
    if missing:
        raise _bad(key, f"its spec has no {', '.join(missing)}")
    for name, keys in (("shape", SHAPE_KEYS), ("schedule", SCHEDULE_KEYS)):
        part = spec[name]
        if not isinstance(part, dict):
            raise _bad(key, f"its spec's {name} is not a mapping")
        absent = [k for k in keys if k not in part]
        if absent:
            raise _bad(key, f"its spec's {name} has no {', '.join(absent)}")
    for k in (*NUMERIC_SPEC, "shape.width", "shape.depth"):
        v = spec["shape"][k[6:]] if k.startswith("shape.") else spec[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise _bad(key, f"its spec's {k} is {str(v)[:30]!r}, not a finite number")
    seq_len = spec["shape"].get("seq_len", 128)
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, float)) or not seq_len > 0:
        raise _bad(key, f"its spec's shape.seq_len is {str(seq_len)[:30]!r}, not a positive number")
    if not spec["batch_seqs"] > 0:
        raise _bad(key, "its spec's batch_seqs is not positive")


def disk_full(path: Path, exc: BaseException) -> str:
    """The one-line message of a write that found the disk (or the store's size limit) full."""
    return (
        f"the disk holding store {path} is full ({exc}): free some space and run the command again; "
        "results stored before are intact and this command's partial write was rolled back"
    )
