"""The run store: every run's spec, status, metrics and curve, keyed by the hash of its spec.

The store is the source of truth for runs (DESIGN.md). :class:`Store` is a small interface; the
default implementation :class:`SQLiteStore` keeps one SQLite file in WAL mode so several worker
processes can write while readers read. Writing a result is one transaction (the run row and its
curve together), so a process killed at any moment leaves either the whole result or none of it.
As with Optuna's storages, callers only see :func:`open_store` and the interface; a server database
would be another subclass behind the same methods.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from oasl import __version__
from oasl.errors import StoreError

if TYPE_CHECKING:
    from oasl.config import RunSpec
    from oasl.train import RunResult

SCHEMA_VERSION = 1
FINISHED = ("done", "diverged", "stopped")  # statuses a sweep does not run again
STATUSES = (*FINISHED, "running", "failed")
ROLES = ("sweep", "target", "baseline")  # what a run was for: laws are fitted on sweep runs

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT 'oasl',
    spec_json TEXT NOT NULL,
    result_json TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    corpus_hash TEXT,
    oasl_version TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS curves (
    key TEXT NOT NULL REFERENCES runs(key) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    tokens INTEGER,
    lr REAL,
    train_loss REAL,
    val_loss REAL,
    grad_norm REAL,
    extra_json TEXT,
    PRIMARY KEY (key, step)
);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
"""
# Claims of runs in progress (see Store.claim); no foreign key: a run is claimed before its row exists.
_CLAIMS_SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL,
    claimed_at REAL NOT NULL
);
"""

CURVE_COLUMNS = ("step", "tokens", "lr", "train_loss", "val_loss", "grad_norm")


class Store(ABC):
    """Interface of a run store. Keys are :meth:`RunSpec.key` hashes."""

    @abstractmethod
    def status(self, key: str) -> str | None:
        """Status of run ``key`` ("done", "diverged", "stopped", "running", "failed") or None."""

    @abstractmethod
    def statuses(self) -> dict[str, str]:
        """Status of every run, by key."""

    @abstractmethod
    def mark_running(self, spec: RunSpec) -> None:
        """Record that ``spec`` started (counts an attempt); a finished run is left untouched."""

    @abstractmethod
    def mark_failed(self, spec: RunSpec, error: str) -> None:
        """Record that ``spec`` raised ``error`` (it is retried on the next sweep start)."""

    @abstractmethod
    def put(self, result: RunResult) -> None:
        """Write a finished run's result and curve in one transaction."""

    @abstractmethod
    def get(self, key: str) -> dict[str, Any]:
        """The stored row of ``key`` as a dict (spec, result, status, ...); StoreError if absent."""

    @abstractmethod
    def curve(self, key: str) -> pd.DataFrame:
        """The curve of run ``key``: step, tokens, lr, train_loss, val_loss, grad_norm (+ extras)."""

    @abstractmethod
    def rows(self) -> list[dict[str, Any]]:
        """Every run row as a dict with parsed ``spec`` and ``result``."""

    @abstractmethod
    def import_frame(self, df: pd.DataFrame, source: str = "import") -> int:
        """Store externally produced runs (one per row); returns how many were new."""

    def is_finished(self, key: str) -> bool:
        return self.status(key) in FINISHED

    # -- claims and group look-ups: what sweep executors and pruners ask of a store ---------------------
    # A claim says "owner is training this run until expires_at (a Unix time)"; runners renew it by a
    # heartbeat and release it with the result (as Optuna's heartbeat does for RUNNING trials), so two
    # sweeps on one store never train a run twice and a dead runner's runs are taken over.

    @abstractmethod
    def attempts(self, key: str) -> int:
        """How many times run ``key`` was started (0 if unknown)."""

    @abstractmethod
    def claim(
        self, keys: Iterable[str], owner: str, lease_s: float, dead: Callable[[str], bool] | None = None
    ) -> list[str]:
        """Claim the runs ``keys`` for ``owner`` until now + ``lease_s`` seconds, atomically; returns the keys
        claimed. A finished run and a run under another owner's live claim are left alone; an expired claim,
        or one whose owner ``dead(owner)`` says is dead, is taken over. The owner's own claims are renewed."""

    @abstractmethod
    def renew(self, keys: Iterable[str], owner: str, lease_s: float) -> list[str]:
        """Extend ``owner``'s claims on ``keys`` to now + ``lease_s``; returns the keys it still held."""

    @abstractmethod
    def release(self, keys: Iterable[str], owner: str) -> None:
        """Drop ``owner``'s claims on ``keys`` (others' claims are untouched)."""

    @abstractmethod
    def live_claims(self) -> dict[str, tuple[str, float]]:
        """Unexpired claims: key -> (owner, expires_at as Unix time)."""

    @abstractmethod
    def group_members(
        self, spec: RunSpec, group_of: Callable[[RunSpec], str], statuses: tuple[str, ...] = FINISHED
    ) -> list[str]:
        """Keys of the other runs of ``spec``'s group (``group_of`` maps a spec to its group's key) that
        have one of ``statuses``."""

    @abstractmethod
    def curve_values(self, keys: Iterable[str], column: str, after: float, upto: float) -> pd.DataFrame:
        """Non-null values of curve ``column`` (val_loss, train_loss, ...) of runs ``keys`` at steps in
        (``after``, ``upto``]: a frame with columns key, step, value."""

    def to_dataframe(self, finished_only: bool = False) -> pd.DataFrame:
        """One row per run with flat columns for analysis (see :func:`flatten_row`)."""
        records = [flatten_row(r) for r in self.rows() if not finished_only or r["status"] in FINISHED]
        return pd.DataFrame.from_records(records)


def flatten_row(row: dict[str, Any]) -> dict[str, Any]:
    """Flatten a stored run into analysis columns.

    Columns: key, status, source, role, optimizer, parametrization, width, depth, n_heads, seq_len,
    vocab_size, lr, each optimizer HP (beta1, momentum, weight_decay, ...), batch_seqs, batch_tokens,
    tokens, steps, schedule, warmup_frac, final_frac, decay_frac, seed, n_params, n_params_total,
    flops, final_val_loss, diverged, diverge_reason, tokens_per_s, wall_s, corpus_hash. Imported rows
    keep their own columns.
    """
    spec, result = row["spec"], row.get("result") or {}
    out: dict[str, Any] = {"key": row["key"], "status": row["status"], "source": row["source"]}
    out["role"] = row.get("role") or "sweep"
    if row["source"] != "oasl":
        out.update(spec)
        out.update(result)
        if "final_val_loss" not in out and "loss" in out:
            out["final_val_loss"] = out["loss"]
        out.setdefault("diverged", row["status"] == "diverged")
        return out
    shape, sched = spec["shape"], spec["schedule"]
    seq_len = shape.get("seq_len", 128)
    out.update(
        optimizer=spec["optimizer"],
        parametrization=spec["parametrization"],
        base_width=spec["base_width"],
        width=shape["width"],
        depth=shape["depth"],
        n_heads=shape.get("n_heads"),
        seq_len=seq_len,
        vocab_size=shape.get("vocab_size"),
        lr=spec["lr"],
        **spec.get("hps", {}),
        batch_seqs=spec["batch_seqs"],
        batch_tokens=spec["batch_seqs"] * seq_len,
        tokens=spec["tokens"],
        steps=spec["tokens"] // (spec["batch_seqs"] * seq_len),
        schedule=sched["name"],
        warmup_frac=sched["warmup_frac"],
        final_frac=sched["final_frac"],
        decay_frac=sched["decay_frac"],
        seed=spec["seed"],
        grad_clip=spec["grad_clip"],
        corpus_hash=row.get("corpus_hash"),
    )
    out.update({k: v for k, v in result.items() if not isinstance(v, (list, dict))})
    out.setdefault("final_val_loss", math.nan)
    out.setdefault("diverged", row["status"] == "diverged")
    out["error"] = row.get("error")
    return out


class SQLiteStore(Store):
    """A SQLite file in WAL mode; safe for several processes writing at once."""

    def __init__(self, path: str | Path, timeout_s: float = 60.0):
        self.path = Path(path)
        self.timeout_s = timeout_s
        if self.path.exists() and self.path.is_dir():
            raise StoreError(
                f"store path {self.path} is a directory: pass a file such as {self.path}/runs.db"
            )
        if not self.path.parent.exists():
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder of store {self.path}: {exc.strerror}") from None
        try:
            with self._connect() as con:
                con.executescript(_SCHEMA)
                self._ensure_role_column(con)
                con.executescript(_CLAIMS_SCHEMA)
                found = con.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()
                if found is None:
                    con.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                elif int(found[0]) > SCHEMA_VERSION:
                    raise StoreError(
                        f"store {self.path} has schema version {found[0]}, newer than this oasl's "
                        f"({SCHEMA_VERSION}): upgrade oasl (`pip install -U oasl`) to read it; nothing was changed"
                    )
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"store {self.path} is not a readable oasl store ({exc}); nothing was changed"
            ) from None
        except OSError as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            con = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        except sqlite3.OperationalError as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}; check the path is writable") from None
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA foreign_keys=ON")
            con.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
            yield con
        except sqlite3.OperationalError as exc:
            if "readonly" in str(exc) or "unable to open" in str(exc):
                raise StoreError(
                    f"store {self.path} is not writable ({exc}): choose another --store"
                ) from None
            raise
        finally:
            con.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def status(self, key: str) -> str | None:
        with self._connect() as con:
            row = con.execute("SELECT status FROM runs WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def statuses(self) -> dict[str, str]:
        with self._connect() as con:
            return dict(con.execute("SELECT key, status FROM runs").fetchall())

    def _upsert_status(self, spec: RunSpec, status: str, error: str | None, bump: int) -> None:
        now = time.time()
        with self._transaction() as con:
            row = con.execute("SELECT status FROM runs WHERE key=?", (spec.key(),)).fetchone()
            if row and row[0] in FINISHED:
                return
            con.execute(
                """INSERT INTO runs (key, status, source, spec_json, error, attempts, oasl_version, created_at, updated_at)
                   VALUES (?, ?, 'oasl', ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(key) DO UPDATE SET status=excluded.status, error=excluded.error,
                   attempts=runs.attempts + ?, updated_at=excluded.updated_at""",
                (spec.key(), status, spec.model_dump_json(), error, bump, __version__, now, now, bump),
            )

    def mark_running(self, spec: RunSpec) -> None:
        self._upsert_status(spec, "running", None, 1)

    def mark_failed(self, spec: RunSpec, error: str) -> None:
        self._upsert_status(spec, "failed", error, 0)

    def attempts(self, key: str) -> int:
        with self._connect() as con:
            row = con.execute("SELECT attempts FROM runs WHERE key=?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def put(self, result: RunResult) -> None:
        spec = result.spec
        key = spec.key()
        now = time.time()
        curve = result.curve
        with self._transaction() as con:
            con.execute(
                """INSERT INTO runs (key, status, source, spec_json, result_json, error, attempts, corpus_hash,
                                     oasl_version, created_at, updated_at)
                   VALUES (?, ?, 'oasl', ?, ?, NULL, 1, ?, ?, ?, ?)
                   ON CONFLICT(key) DO UPDATE SET status=excluded.status, result_json=excluded.result_json,
                   error=NULL, corpus_hash=excluded.corpus_hash, oasl_version=excluded.oasl_version,
                   updated_at=excluded.updated_at""",
                (
                    key,
                    result.status,
                    spec.model_dump_json(),
                    json.dumps(result.metrics()),
                    result.corpus_hash,
                    __version__,
                    now,
                    now,
                ),
            )
            con.execute("DELETE FROM curves WHERE key=?", (key,))
            con.executemany(
                "INSERT INTO curves VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        key,
                        *(_sql(p.get(c)) for c in CURVE_COLUMNS),
                        json.dumps({k: _sql(v) for k, v in p.items() if k not in CURVE_COLUMNS}) or None,
                    )
                    for p in curve
                ],
            )

    def get(self, key: str) -> dict[str, Any]:
        with self._connect() as con:
            con.row_factory = sqlite3.Row
            row = con.execute("SELECT * FROM runs WHERE key=?", (key,)).fetchone()
        if row is None:
            raise StoreError(f"no run with key {key} in {self.path}")
        return _parse(row)

    def rows(self) -> list[dict[str, Any]]:
        with self._connect() as con:
            con.row_factory = sqlite3.Row
            return [_parse(r) for r in con.execute("SELECT * FROM runs ORDER BY created_at, key")]

    def curve(self, key: str) -> pd.DataFrame:
        with self._connect() as con:
            df = pd.read_sql_query("SELECT * FROM curves WHERE key=? ORDER BY step", con, params=(key,))
        if df.empty:
            return pd.DataFrame(columns=list(CURVE_COLUMNS))
        extras = pd.DataFrame([json.loads(e) if e else {} for e in df.pop("extra_json")], index=df.index)
        return pd.concat([df.drop(columns="key"), extras], axis=1)

    def curves(self, keys: Iterable[str] | None = None) -> pd.DataFrame:
        """Curves of several runs (all by default) in one long frame with a ``key`` column."""
        with self._connect() as con:
            df = pd.read_sql_query("SELECT * FROM curves ORDER BY key, step", con)
        if keys is not None:
            df = df[df["key"].isin(set(keys))]
        return df.drop(columns="extra_json")

    # -- removing runs (`oasl runs drop`) ----------------------------------------------------------
    def delete(self, keys: Iterable[str]) -> int:
        """Remove the runs ``keys`` (and their curves) in one transaction; returns how many were removed.

        For rows a user judges bad (a run stored with lr NULL, a failed run that will never succeed);
        a removed oasl run is trained again by the next sweep that plans it.
        """
        keys = list(dict.fromkeys(keys))
        removed = 0
        with self._transaction() as con:
            for i in range(0, len(keys), 500):  # SQLite caps the parameters of one statement
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                con.execute(f"DELETE FROM curves WHERE key IN ({marks})", chunk)
                removed += con.execute(f"DELETE FROM runs WHERE key IN ({marks})", chunk).rowcount
        return removed

    def import_frame(self, df: pd.DataFrame, source: str = "import") -> int:
        import hashlib

        now = time.time()
        new = 0
        with self._transaction() as con:
            for record in df.to_dict(orient="records"):
                clean = {str(k): _sql(v) for k, v in record.items()}
                text = json.dumps(clean, sort_keys=True)
                key = "imp-" + hashlib.sha256(text.encode()).hexdigest()[:12]
                loss = clean.get("final_val_loss", clean.get("loss"))
                diverged = bool(clean.get("diverged")) or loss is None or not math.isfinite(float(loss))
                cur = con.execute(
                    """INSERT OR IGNORE INTO runs (key, status, source, spec_json, result_json, attempts,
                       oasl_version, created_at, updated_at) VALUES (?, ?, ?, ?, '{}', 1, ?, ?, ?)""",
                    (key, "diverged" if diverged else "done", source, text, __version__, now, now),
                )
                new += cur.rowcount
        return new

    # -- run roles (sweep, target, baseline): which runs a law is fitted on ------------------------
    @staticmethod
    def _ensure_role_column(con: sqlite3.Connection) -> None:
        """Add the ``role`` column to a store written before roles existed (idempotent): every old run
        reads as a sweep run until a harness marks it."""
        cols = {r[1] for r in con.execute("PRAGMA table_info(runs)")}
        if "role" not in cols:
            try:
                con.execute("ALTER TABLE runs ADD COLUMN role TEXT NOT NULL DEFAULT 'sweep'")
            except sqlite3.OperationalError as exc:  # another process added it first
                if "duplicate column" not in str(exc):
                    raise

    def set_role(self, keys: Iterable[str], role: str) -> int:
        """Mark the runs ``keys`` with ``role`` ("sweep", "target" or "baseline"); a run already marked
        "target" or "baseline" is not turned back into a sweep run (marking "sweep", the default, changes
        nothing). Returns how many rows changed."""
        if role not in ROLES:
            raise StoreError(f"unknown run role {role!r}: use one of {', '.join(ROLES)}")
        keys = list(keys)
        guard = " AND role = 'sweep'" if role != "sweep" else " AND 0"
        with self._transaction() as con:
            cur = con.executemany(f"UPDATE runs SET role=? WHERE key=?{guard}", [(role, k) for k in keys])
            return cur.rowcount

    def roles(self) -> dict[str, str]:
        """Role of every run, by key."""
        with self._connect() as con:
            return dict(con.execute("SELECT key, role FROM runs").fetchall())

    # -- claims and group look-ups (see the Store interface) ----------------------------------------------

    def claim(
        self, keys: Iterable[str], owner: str, lease_s: float, dead: Callable[[str], bool] | None = None
    ) -> list[str]:
        keys = list(keys)
        if not keys:
            return []
        now = time.time()
        got = []
        with self._transaction() as con:
            for key in keys:
                run = con.execute("SELECT status FROM runs WHERE key=?", (key,)).fetchone()
                if run and run[0] in FINISHED:
                    continue
                held = con.execute("SELECT owner, expires_at FROM claims WHERE key=?", (key,)).fetchone()
                if held and held[0] != owner and held[1] > now and not (dead is not None and dead(held[0])):
                    continue
                con.execute(
                    """INSERT INTO claims VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET
                       owner=excluded.owner, expires_at=excluded.expires_at, claimed_at=excluded.claimed_at""",
                    (key, owner, now + lease_s, now),
                )
                got.append(key)
        return got

    def renew(self, keys: Iterable[str], owner: str, lease_s: float) -> list[str]:
        keys = list(keys)
        held = []
        with self._transaction() as con:
            for key in keys:
                cur = con.execute(
                    "UPDATE claims SET expires_at=? WHERE key=? AND owner=?",
                    (time.time() + lease_s, key, owner),
                )
                if cur.rowcount:
                    held.append(key)
        return held

    def release(self, keys: Iterable[str], owner: str) -> None:
        with self._transaction() as con:
            con.executemany("DELETE FROM claims WHERE key=? AND owner=?", [(k, owner) for k in keys])

    def live_claims(self) -> dict[str, tuple[str, float]]:
        with self._connect() as con:
            rows = con.execute(
                "SELECT key, owner, expires_at FROM claims WHERE expires_at > ?", (time.time(),)
            ).fetchall()
        return {k: (o, e) for k, o, e in rows}

    def group_members(
        self, spec: RunSpec, group_of: Callable[[RunSpec], str], statuses: tuple[str, ...] = FINISHED
    ) -> list[str]:
        from oasl.config import RunSpec

        gk, own = group_of(spec), spec.key()
        marks = ",".join("?" * len(statuses))
        with self._connect() as con:
            rows = con.execute(
                f"SELECT key, spec_json FROM runs WHERE status IN ({marks}) AND source='oasl'", statuses
            ).fetchall()
        return [k for k, s in rows if k != own and group_of(RunSpec.model_validate_json(s)) == gk]

    def curve_values(self, keys: Iterable[str], column: str, after: float, upto: float) -> pd.DataFrame:
        if column not in CURVE_COLUMNS:
            raise StoreError(f"unknown curve column {column!r}: use one of {', '.join(CURVE_COLUMNS)}")
        keys = list(keys)
        if not keys:
            return pd.DataFrame(columns=["key", "step", "value"])
        marks = ",".join("?" * len(keys))
        with self._connect() as con:
            rows = con.execute(
                f"SELECT key, step, {column} FROM curves WHERE key IN ({marks}) AND step > ? AND step <= ?"
                f" AND {column} IS NOT NULL ORDER BY key, step",
                (*keys, after, upto),
            ).fetchall()
        return pd.DataFrame(rows, columns=["key", "step", "value"])


def _sql(v: Any) -> Any:
    """A value SQLite and JSON can hold (NaN and inf become NULL, numpy scalars become Python)."""
    if v is None:
        return None
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _parse(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    try:
        d["spec"] = json.loads(d.pop("spec_json"))
        d["result"] = json.loads(d.pop("result_json") or "{}")
    except json.JSONDecodeError as exc:
        raise StoreError(
            f"run {d['key']} holds malformed JSON ({exc.msg}); the store may be corrupt"
        ) from None
    return d


def open_store(url: str | Path | Store) -> Store:
    """Open a store by path or URL (``runs.db`` or ``sqlite:///runs.db``); a Store is returned as is."""
    if isinstance(url, Store):
        return url
    text = str(url)
    if text.startswith("sqlite:///"):
        text = text.removeprefix("sqlite:///")
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise StoreError(
            f"store URL scheme {scheme!r} is not supported yet: use a SQLite path such as runs.db"
        )
    return SQLiteStore(text)
