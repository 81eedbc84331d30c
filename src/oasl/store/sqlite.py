"""The SQLite store: schema, migrations of older stores, and run records (status, results, curves, imports).

:class:`SQLiteStore` keeps one SQLite file in WAL mode so several worker processes can write while
readers read. Writing a result is one transaction (the run row and its curve together), so a process
killed at any moment leaves either the whole result or none of it. Claims live in
:mod:`oasl.store.claims`, roles and removal in :mod:`oasl.store.roles`; both are mixed in here.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from oasl._version import __version__
from oasl.errors import StoreError
from oasl.store.base import CURVE_COLUMNS, FINISHED, Store
from oasl.store.claims import CLAIMS_SCHEMA, ClaimsMixin
from oasl.store.roles import RolesMixin, ensure_role_column

if TYPE_CHECKING:
    from oasl.config import RunSpec
    from oasl.train import RunResult

SCHEMA_VERSION = 1

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


class SQLiteStore(ClaimsMixin, RolesMixin, Store):
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
                ensure_role_column(con)
                con.executescript(CLAIMS_SCHEMA)
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

    def import_frame(
        self,
        df: pd.DataFrame,
        source: str = "import",
        keys: list[str] | None = None,
        statuses: list[str] | None = None,
    ) -> int:
        """Add the rows of ``df`` as imported runs (a row already there is left alone); returns how many
        were new. ``keys``: one stable key per row (default: a hash of the row's content);
        ``statuses``: one status per row (default: "diverged" for a flagged or non-finite loss, else "done")."""
        import hashlib

        now = time.time()
        new = 0
        with self._transaction() as con:
            for i, record in enumerate(df.to_dict(orient="records")):
                clean = {str(k): _sql(v) for k, v in record.items()}
                text = json.dumps(clean, sort_keys=True)
                key = keys[i] if keys is not None else "imp-" + hashlib.sha256(text.encode()).hexdigest()[:12]
                loss = clean.get("final_val_loss", clean.get("loss"))
                diverged = bool(clean.get("diverged")) or loss is None or not math.isfinite(float(loss))
                status = statuses[i] if statuses is not None else "diverged" if diverged else "done"
                cur = con.execute(
                    """INSERT OR IGNORE INTO runs (key, status, source, spec_json, result_json, attempts,
                       oasl_version, created_at, updated_at) VALUES (?, ?, ?, ?, '{}', 1, ?, ?, ?)""",
                    (key, status, source, text, __version__, now, now),
                )
                new += cur.rowcount
        return new


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
