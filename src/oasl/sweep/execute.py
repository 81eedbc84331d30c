"""Running a sweep: which runs are still to do, handing them to an executor, the summary.

Resumable by construction: the store decides what is done. A run whose result is in the store is
skipped; one marked "running" whose runner died runs again; one that raised is retried once on the
next start. Runners claim runs in the store with a lease they renew while training
(:mod:`oasl.sweep.claims`): a sweep skips runs another live sweep is training, waits for them (or
takes them over when their runner dies), so two sweeps on one store train every run once. Results are
written one transaction each, so a sweep killed with SIGKILL loses no finished run and duplicates none.
How runs are trained (a process pool, K runs batched per process, Ray) is the executor's business
(:mod:`oasl.sweep.executors`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from oasl.config import RunSpec, build
from oasl.errors import SweepError
from oasl.store import FINISHED, Store, open_store
from oasl.sweep.claims import owner_dead
from oasl.sweep.executors import EXECUTORS, Executor, Job, make_executor
from oasl.sweep.prune import GroupPruner, group_reference
from oasl.sweep.spec import EarlyWarn, Execution, Pruning, group_key

MAX_ATTEMPTS = 2  # a run that raised is retried once on the next start

__all__ = ["GroupPruner", "SweepSummary", "group_reference", "order_for_pruning", "run_sweep", "todo"]


@dataclass
class SweepSummary:
    """What a sweep call did: counts by outcome, compute spent and saved by pruning, best per group.

    ``busy``: runs left to other live sweeps (only when not waiting for them); ``executor``: the executor
    used; ``notes``: one-line remarks (a fallback taken)."""

    planned: int
    skipped: int = 0
    done: int = 0
    diverged: int = 0
    stopped: int = 0
    failed: int = 0
    gave_up: int = 0
    busy: int = 0
    flops_spent: float = 0.0
    flops_saved: float = 0.0
    wall_s: float = 0.0
    best: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    executor: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def finished(self) -> int:
        """Runs accounted for so far (in the store before, or ended in this call)."""
        return self.skipped + self.done + self.diverged + self.stopped + self.failed + self.gave_up


def todo(runs: list[RunSpec], store: Store) -> tuple[list[RunSpec], int, int]:
    """Runs still to execute, how many are already finished, and how many failed too often."""
    statuses = store.statuses()
    out, finished, gave_up = [], 0, 0
    for r in runs:
        st = statuses.get(r.key())
        if st in FINISHED:
            finished += 1
        elif st == "failed" and store.attempts(r.key()) >= MAX_ATTEMPTS:
            gave_up += 1
        else:
            out.append(r)
    return out, finished, gave_up


def _with_trainer(runs: list[RunSpec], trainer, version: str) -> tuple[list[RunSpec], str | None]:
    """``runs`` stamped with the trainer given as ``trainer=`` (None: as they are), and the trainer's name
    when it is a function other processes cannot import (its runs must train in this process)."""
    from oasl.trainers import as_trainer_spec
    from oasl.trainers.function import importable

    spec = as_trainer_spec(trainer, version)
    if spec is not None:
        for r in runs:
            if r.trainer is not None and r.trainer.identity() != spec.identity():
                raise SweepError(
                    f"run {r.key()} names trainer {r.trainer.identity()} but trainer= gives {spec.identity()}: "
                    "give one of them"
                )
        runs = [r if r.trainer is not None else r.model_copy(update={"trainer": spec}) for r in runs]
    for r in runs:
        if r.trainer is not None and r.trainer.function is not None and not importable(r.trainer.function):
            return runs, r.trainer.function
    return runs, None


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


def resolve_execution(
    execution: Execution | None = None,
    *,
    executor: str | None = None,
    backend: str | None = None,
    workers: int | None = None,
    members: int | None = None,
    ray_address: str | None = None,
    runs_per_gpu: int | None = None,
    gpus_per_run: float | None = None,
    threads: int | None = None,
) -> Execution:
    """``execution`` (a sweep YAML's block, or the defaults) with every option given here (not None)
    put over it. ``backend`` is the old name of ``executor``. Returns the merged :class:`Execution`."""
    base = (execution or Execution()).model_dump()
    if executor is not None and backend is not None and executor != backend:
        raise SweepError(f"executor {executor!r} and backend {backend!r} disagree: give only --executor")
    given = {
        "executor": executor if executor is not None else backend,
        "workers": workers,
        "members": members,
        "ray_address": ray_address,
        "runs_per_gpu": runs_per_gpu,
        "gpus_per_run": gpus_per_run,
        "threads": threads,
    }
    for name, value in given.items():
        if value is not None:
            base[name] = value
    check_options(base)
    return build(Execution, base, what="execution options")


def check_options(opts: dict) -> None:
    """One-line SweepError naming the flag for an unknown executor or an out-of-range count."""
    if opts["executor"] not in EXECUTORS:
        raise SweepError(f"unknown executor {opts['executor']!r}: use one of {', '.join(EXECUTORS)}")
    for name in ("workers", "members", "runs_per_gpu", "threads"):
        v = opts.get(name)
        if v is not None and (not isinstance(v, int) or v < 1):
            raise SweepError(f"--{name.replace('_', '-')} must be a whole number of at least 1, got {v}")
    for name in ("gpus_per_run", "cpus_per_run", "lease_s"):
        v = opts.get(name)
        if v is not None and not (math.isfinite(v) and v >= 0):
            raise SweepError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {v}")


def run_sweep(
    runs: list[RunSpec],
    store: str | Path | Store,
    workers: int | None = None,
    backend: str | None = None,
    pruning: Pruning | None = None,
    ray_address: str | None = None,
    on_update: Callable[[SweepSummary, int], None] | None = None,
    early_warn: EarlyWarn | None = None,
    *,
    executor: str | Executor | None = None,
    members: int | None = None,
    execution: Execution | None = None,
    wait: bool = True,
    threads: int | None = None,
    trainer=None,
    trainer_version: str = "",
) -> SweepSummary:
    """Execute every run of ``runs`` not yet finished in ``store`` (a path or a :class:`Store`).

    How: ``execution`` (a sweep's :class:`Execution` block; defaults: executor "auto", 1 worker), with
    ``executor`` ("auto", "local", "batched", "ray", or an :class:`Executor` object), ``workers``,
    ``members``, ``ray_address`` and ``threads`` (torch threads per worker) put over it when given; ``backend`` is the old name of ``executor``.
    "auto" batches compatible runs K per process on a GPU where two or more share a shape and use a
    batched optimizer, else trains one run per process (on CPU batching does not pay). ``workers`` processes share the machine's cores.
    ``pruning`` stops runs far behind their group; ``early_warn`` (with a predictor file) stops runs the
    divergence early warning flags (both: status "stopped"). ``on_update(summary, total)`` is called
    after each run. ``wait``: when another live sweep trains some of these runs, wait for them (taking
    them over if that sweep dies) rather than return without them. ``trainer`` trains the runs with the
    user's code (:mod:`oasl.trainers`): a callable ``f(trial)``, a command string, a TrainerSpec or a dict
    (``trainer_version`` goes into their keys); runs that already name another trainer are an error. Before
    any run starts, every trainer is checked (a command naming an unknown field, a function that cannot be
    imported: one ConfigError line). Returns a :class:`SweepSummary`.
    """
    notes: list[str] = []
    runs, local_only = _with_trainer(runs, trainer, trainer_version)
    ex_obj = executor if isinstance(executor, Executor) else None
    opts = resolve_execution(
        execution,
        executor=None if ex_obj is not None else executor,
        backend=backend,
        workers=workers,
        members=members,
        ray_address=ray_address,
        threads=threads,
    )
    if local_only and ex_obj is None and (opts.executor == "ray" or opts.workers > 1):
        notes.append(
            f"note: the trainer {local_only} cannot be imported by other processes (a lambda, closure, or a "
            "function of __main__): its runs train here, one at a time; define it in a module to use workers"
        )
        opts = opts.model_copy(update={"executor": "local", "workers": 1})
    from oasl.trainers import check_runs

    check_runs(runs)
    st = open_store(store)
    warn = None
    if early_warn is not None and early_warn.predictor:
        from oasl.train.earlywarn import DivergencePredictor

        pred = DivergencePredictor.load(early_warn.predictor)
        if early_warn.threshold is not None:
            pred.threshold = early_warn.threshold
        warn = pred.to_dict()
    pending, finished, gave_up = todo(runs, st)
    ex = ex_obj or make_executor(opts.executor, pending, opts)
    summary = SweepSummary(planned=len(runs), skipped=finished, gave_up=gave_up, executor=ex.name)
    if on_update is not None:
        on_update(summary, len(pending))  # shows the runs already in the store at once
    job = Job(store=st, pruning=pruning, early_warn=warn, lease_s=opts.lease_s)
    t0 = time.perf_counter()
    tried: set[str] = set()
    answered: set[str] = set()

    def record(out: dict) -> None:
        status = out["status"]
        answered.add(out["key"])
        if status == "busy":  # another runner claimed it first: wait for it below
            return
        tried.add(out["key"])
        setattr(summary, status, getattr(summary, status) + 1)
        if out.get("note"):
            notes.append(out["note"])
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

    poll_s = min(2.0, opts.lease_s / 4)
    while True:
        # runs that another live runner holds are left to it; ours are those free or of dead runners
        claims = st.live_claims()
        left = [r for r in todo(runs, st)[0] if r.key() not in tried]
        free = [r for r in left if r.key() not in claims or owner_dead(claims[r.key()][0])]
        if free:
            if pruning is not None and pruning.enabled:
                free = order_for_pruning(free)
            answered.clear()
            ex.execute(free, job, record)
            if missing := [r.key() for r in free if r.key() not in answered]:
                raise SweepError(f"executor {ex.name} gave no outcome for run(s) {', '.join(missing[:3])}")
            continue
        if not left or not wait:
            summary.busy = len(left)
            break
        time.sleep(poll_s)
    # runs other sweeps finished while this one waited count as already in the store
    summary.skipped = summary.planned - summary.gave_up - summary.busy - len(tried)
    summary.notes = list(dict.fromkeys(notes + ex.notes))
    summary.wall_s = time.perf_counter() - t0
    return summary
