"""Running a sweep: which runs are still to do, local process pools or Ray, pruning, the summary.

Resumable by construction: the store decides what is done. A run whose result is in the store is
skipped; one marked "running" (its process was killed) runs again; one that raised is retried once on
the next start. Local workers write their own results (one transaction each), so a driver killed
with SIGKILL loses no finished run and, since keys are unique, duplicates none.
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from oasl.config import RunSpec
from oasl.errors import DependencyError, SweepError
from oasl.store import FINISHED, SQLiteStore, Store, open_store
from oasl.sweep.spec import EarlyWarn, Pruning, group_key

MAX_ATTEMPTS = 2  # a run that raised is retried once on the next start


@dataclass
class SweepSummary:
    """What a sweep call did: counts by outcome, compute spent and saved by pruning, best per group."""

    planned: int
    skipped: int = 0
    done: int = 0
    diverged: int = 0
    stopped: int = 0
    failed: int = 0
    gave_up: int = 0
    flops_spent: float = 0.0
    flops_saved: float = 0.0
    wall_s: float = 0.0
    best: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def todo(runs: list[RunSpec], store: Store) -> tuple[list[RunSpec], int, int]:
    """Runs still to execute, how many are already finished, and how many failed too often."""
    statuses = store.statuses()
    out, finished, gave_up = [], 0, 0
    for r in runs:
        st = statuses.get(r.key())
        if st in FINISHED:
            finished += 1
        elif st == "failed" and isinstance(store, SQLiteStore) and store.attempts(r.key()) >= MAX_ATTEMPTS:
            gave_up += 1
        else:
            out.append(r)
    return out, finished, gave_up


def order_for_pruning(runs: list[RunSpec]) -> list[RunSpec]:
    """Within each group, start from the middle of the lr grid: good runs first make pruning bite."""
    import numpy as np

    by_group: dict[str, list[RunSpec]] = {}
    for r in runs:
        by_group.setdefault(group_key(r), []).append(r)
    ordered = []
    for group in by_group.values():
        mid = float(np.median([math.log(r.lr) for r in group]))
        ordered.extend(sorted(group, key=lambda r: abs(math.log(r.lr) - mid)))
    return ordered


class GroupPruner:
    """``should_stop`` callback: compares a run's validation loss at a checkpoint with its group's best.

    The group's best at the same step is read from the curves of finished runs in the store, so
    workers in other processes (or Ray nodes writing through the driver) inform each other.
    """

    def __init__(self, spec: RunSpec, store_path: str, pruning: Pruning):
        self.spec, self.store_path, self.pruning = spec, store_path, pruning
        self.steps = spec.steps
        self.checkpoints = [max(1, int(c * self.steps)) for c in pruning.checkpoints]
        self.done_checkpoints: set[int] = set()

    def __call__(self, step: int, val_loss: float, curve) -> str | None:
        due = [c for c in self.checkpoints if step >= c and c not in self.done_checkpoints]
        if not due:
            return None
        self.done_checkpoints.update(due)
        best = self._group_best(step)
        if best is None:
            return None
        if val_loss > best * (1 + self.pruning.margin):
            return (
                f"pruned at {step}/{self.steps} steps: val loss {val_loss:.4f} worse than the group's best "
                f"{best:.4f} by more than {self.pruning.margin:.0%}"
            )
        return None

    def _group_best(self, step: int) -> float | None:
        con = sqlite3.connect(self.store_path, timeout=60)
        try:
            keys = _group_keys(con, self.spec, ("done", "stopped"))
            if len(keys) < self.pruning.min_runs:
                return None
            marks = ",".join("?" * len(keys))
            found = con.execute(
                f"SELECT MIN(val_loss) FROM curves WHERE key IN ({marks}) AND step=? AND val_loss IS NOT NULL",
                (*keys, step),
            ).fetchone()
        finally:
            con.close()
        return found[0] if found and found[0] is not None else None


def _group_keys(con: sqlite3.Connection, spec: RunSpec, statuses: tuple[str, ...]) -> list[str]:
    """Keys of the other runs of ``spec``'s group (same run but for the HPs) with one of ``statuses``."""
    gk = group_key(spec)
    marks = ",".join("?" * len(statuses))
    rows = con.execute(f"SELECT key, spec_json FROM runs WHERE status IN ({marks})", statuses).fetchall()
    return [k for k, s in rows if k != spec.key() and group_key(RunSpec.model_validate_json(s)) == gk]


def group_reference(store_path: str | Path, spec: RunSpec, end: int) -> float | None:
    """The early warning's group reference: the lowest mean log train loss over steps (0.9 end, end]
    among the finished runs of ``spec``'s group in the SQLite store at ``store_path``; None if none."""
    import numpy as np
    import pandas as pd

    con = sqlite3.connect(str(store_path), timeout=60)
    try:
        keys = _group_keys(con, spec, ("done", "stopped", "diverged"))
        if not keys:
            return None
        marks = ",".join("?" * len(keys))
        found = con.execute(
            f"SELECT key, train_loss FROM curves WHERE key IN ({marks}) AND step > ? AND step <= ?",
            (*keys, 0.9 * end, end),
        ).fetchall()
    finally:
        con.close()
    df = pd.DataFrame(found, columns=["key", "train_loss"])
    df = df[np.isfinite(pd.to_numeric(df["train_loss"], errors="coerce")) & (df["train_loss"] > 0)]
    if df.empty:
        return None
    return float(np.log(df["train_loss"].astype(float)).groupby(df["key"]).mean().min())


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _stopper(spec: RunSpec, store_path: str | None, pruning: Pruning | None, early_warn: dict | None):
    """The run's ``should_stop``: group pruning and/or the early warning (the first reason given wins)."""
    stoppers = []
    if pruning is not None and pruning.enabled and store_path is not None:
        stoppers.append(GroupPruner(spec, store_path, pruning))
    if early_warn is not None:
        from oasl.train.earlywarn import DivergencePredictor, EarlyWarnStopper

        ref = (lambda end: group_reference(store_path, spec, end)) if store_path is not None else None
        stoppers.append(EarlyWarnStopper(spec.steps, DivergencePredictor.from_dict(early_warn), ref))
    if not stoppers:
        return None

    def should_stop(step, val_loss, curve):
        for s in stoppers:
            reason = s(step, val_loss, curve)
            if reason:
                return reason
        return None

    return should_stop


def _run_one(spec: RunSpec, store_path: str, pruning: Pruning | None, early_warn: dict | None = None) -> dict:
    """Train ``spec`` in a worker process and write its outcome to the store; return a small summary."""
    from oasl.train import train

    store = SQLiteStore(store_path)
    store.mark_running(spec)
    try:
        result = train(spec, should_stop=_stopper(spec, store_path, pruning, early_warn))
    except Exception as exc:  # recorded, retried once on the next start
        msg = f"{type(exc).__name__}: {exc}"
        store.mark_failed(spec, msg + "\n" + traceback.format_exc(limit=3))
        return {"key": spec.key(), "status": "failed", "error": msg}
    store.put(result)
    return _summary(spec, result)


def _summary(spec: RunSpec, result) -> dict:
    saved = 0.0
    if result.status == "stopped":
        saved = result.flops / max(result.steps_done, 1) * (spec.steps - result.steps_done)
    return {
        "key": spec.key(),
        "status": result.status,
        "loss": result.final_val_loss,
        "flops": result.flops,
        "saved": saved,
        "group": f"{spec.optimizer} w{spec.shape.width}d{spec.shape.depth}",
    }


def run_sweep(
    runs: list[RunSpec],
    store: str | Path,
    workers: int = 1,
    backend: str = "local",
    pruning: Pruning | None = None,
    ray_address: str | None = None,
    on_update: Callable[[SweepSummary, int], None] | None = None,
    early_warn: EarlyWarn | None = None,
) -> SweepSummary:
    """Execute every run of ``runs`` not yet finished in ``store``.

    ``workers`` processes share the machine's cores (torch threads per worker = cores // workers).
    ``backend`` is "local" (process pool; ``workers=1`` trains in this process) or "ray" (Ray tasks;
    ``ray_address="auto"`` joins a running cluster, None starts a local instance; the driver writes
    results). ``on_update(summary, total)`` is called after each run. ``early_warn`` (with a predictor
    file) stops runs the divergence early warning flags (status "stopped"). Returns a :class:`SweepSummary`.
    """
    if workers < 1:
        raise SweepError(f"--workers must be at least 1, got {workers}")
    if backend not in ("local", "ray"):
        raise SweepError(f"unknown backend {backend!r}: use local or ray")
    st = open_store(store)
    if not isinstance(st, SQLiteStore):  # pragma: no cover - only SQLite exists today
        raise SweepError("sweeps need a SQLite store")
    store_path = str(st.path)
    warn = None
    if early_warn is not None and early_warn.predictor:
        from oasl.train.earlywarn import DivergencePredictor

        pred = DivergencePredictor.load(early_warn.predictor)
        if early_warn.threshold is not None:
            pred.threshold = early_warn.threshold
        warn = pred.to_dict()
    pending, finished, gave_up = todo(runs, st)
    summary = SweepSummary(planned=len(runs), skipped=finished, gave_up=gave_up)
    if on_update is not None:
        on_update(summary, len(pending))  # shows the runs already in the store at once
    if pruning is not None and pruning.enabled:
        pending = order_for_pruning(pending)
    t0 = time.perf_counter()

    def record(out: dict) -> None:
        status = out["status"]
        setattr(summary, status, getattr(summary, status) + 1)
        if status == "failed":
            summary.errors.append(f"{out['key']}: {out['error']}")
        else:
            summary.flops_spent += out["flops"]
            summary.flops_saved += out["saved"]
            if out["loss"] is not None and math.isfinite(out["loss"]) and status == "done":
                g = out["group"]
                summary.best[g] = min(summary.best.get(g, math.inf), out["loss"])
        summary.wall_s = time.perf_counter() - t0
        if on_update is not None:
            on_update(summary, len(pending))

    if backend == "ray":
        _run_ray(pending, st, workers, pruning, ray_address, record, warn)
    elif workers == 1:
        for spec in pending:
            record(_run_one(spec, store_path, pruning, warn))
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
        import multiprocessing as mp

        with ProcessPoolExecutor(
            workers, mp_context=mp.get_context("spawn"), initializer=_worker_init, initargs=(threads,)
        ) as pool:
            futures = {pool.submit(_run_one, spec, store_path, pruning, warn) for spec in pending}
            while futures:
                finished_f, futures = wait(futures, return_when=FIRST_COMPLETED)
                for f in finished_f:
                    record(f.result())
    summary.wall_s = time.perf_counter() - t0
    return summary


def _run_ray(pending, store: SQLiteStore, workers, pruning, ray_address, record, warn=None) -> None:
    if pruning is not None and pruning.enabled:
        # Ray workers may run on other machines without the store file: pruning needs shared state.
        raise SweepError("pruning is supported on the local backend only; set pruning.enabled: false for Ray")
    try:
        import ray
    except ImportError:
        raise DependencyError("the ray backend needs Ray: `pip install 'oasl[ray]'`") from None
    started_here = not ray.is_initialized()
    if started_here:
        if ray_address:
            ray.init(address=ray_address, ignore_reinit_error=True, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    threads = max(1, int(ray.available_resources().get("CPU", workers)) // workers)

    @ray.remote(num_cpus=1)
    def remote_train(spec: RunSpec, threads: int):
        import torch

        from oasl.train import train

        torch.set_num_threads(threads)
        try:  # the early warning needs no shared state, so it works on Ray (pruning does not)
            return spec, train(spec, should_stop=_stopper(spec, None, None, warn)), None
        except Exception as exc:  # returned, recorded by the driver
            return spec, None, f"{type(exc).__name__}: {exc}"

    try:
        inflight = {}
        queue = list(pending)
        while queue or inflight:
            while queue and len(inflight) < workers:
                spec = queue.pop(0)
                store.mark_running(spec)
                inflight[remote_train.remote(spec, threads)] = spec
            ready, _ = ray.wait(list(inflight), num_returns=1)
            for ref in ready:
                inflight.pop(ref)
                spec, result, error = ray.get(ref)
                if error is not None:
                    store.mark_failed(spec, error)
                    record({"key": spec.key(), "status": "failed", "error": error})
                else:
                    store.put(result)
                    record(_summary(spec, result))
    finally:
        if started_here:
            ray.shutdown()
