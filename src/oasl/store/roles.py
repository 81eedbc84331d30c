"""Which runs count: run roles (sweep, target, baseline; laws are fitted on sweep runs) and removing runs.

:class:`RolesMixin` holds the SQL of these :class:`~oasl.store.sqlite.SQLiteStore` methods (it uses the
store's ``_connect``/``_transaction``); :func:`ensure_role_column` migrates a store written before roles.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from oasl.errors import StoreError
from oasl.store.base import ROLES


def ensure_role_column(con: sqlite3.Connection) -> None:
    """Add the ``role`` column to a store written before roles existed (idempotent): every old run
    reads as a sweep run until a harness marks it."""
    cols = {r[1] for r in con.execute("PRAGMA table_info(runs)")}
    if "role" not in cols:
        try:
            con.execute("ALTER TABLE runs ADD COLUMN role TEXT NOT NULL DEFAULT 'sweep'")
        except sqlite3.OperationalError as exc:  # another process added it first
            if "duplicate column" not in str(exc):
                raise


class RolesMixin:
    """SQLiteStore's run roles (set_role, roles) and removal (delete)."""

    # -- run roles (sweep, target, baseline): which runs a law is fitted on ------------------------
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
