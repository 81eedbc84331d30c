"""Claims of runs in progress, and the group look-ups sweep executors and pruners ask of a store.

A claim says "owner is training this run until expires_at (a Unix time)"; runners renew it by a
heartbeat and release it with the result (as Optuna's heartbeat does for RUNNING trials), so two sweeps
on one store never train a run twice and a dead runner's runs are taken over. :class:`ClaimsMixin` holds
the SQL of these :class:`~oasl.store.base.Store` methods for :class:`~oasl.store.sqlite.SQLiteStore`,
whose ``_connect``/``_transaction`` it uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import pandas as pd

from oasl.errors import StoreError
from oasl.store.base import CURVE_COLUMNS, FINISHED

if TYPE_CHECKING:
    from oasl.config import RunSpec

# Claims of runs in progress (see Store.claim); no foreign key: a run is claimed before its row exists.
CLAIMS_SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL,
    claimed_at REAL NOT NULL
);
"""


class ClaimsMixin:
    """SQLiteStore's claims (claim, renew, release, live_claims) and group look-ups (group_members,
    curve_values); see the Store interface for what each takes and returns."""

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
