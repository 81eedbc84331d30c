"""The run store's interface: the :class:`Store` methods every backend implements, the run statuses
and roles, and :func:`flatten_row` (a stored run as analysis columns). No SQL here: the SQLite backend
is :mod:`oasl.store.sqlite`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from oasl.config import RunSpec
    from oasl.train import RunResult

FINISHED = ("done", "diverged", "stopped")  # statuses a sweep does not run again
STATUSES = (*FINISHED, "running", "failed")
ROLES = ("sweep", "target", "baseline")  # what a run was for: laws are fitted on sweep runs

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
    def import_frame(
        self,
        df: pd.DataFrame,
        source: str = "import",
        keys: list[str] | None = None,
        statuses: list[str] | None = None,
    ) -> int:
        """Store externally produced runs (one per row); returns how many were new. ``keys``/``statuses``:
        optional stable key and status per row (default: a content hash; diverged/done from the loss)."""

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
