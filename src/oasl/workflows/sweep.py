"""Sweep workflows: load a spec, plan it, run it into a store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


def load_sweep_spec(spec: Any):
    """A :class:`~oasl.sweep.SweepSpec` from a spec object, a YAML path or a mapping (ConfigError, one
    line, on a bad spec)."""
    from oasl.config import build
    from oasl.sweep import SweepSpec, load_sweep

    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, dict):
        return build(SweepSpec, spec, what="sweep spec")
    return load_sweep(spec)


def sweep(
    spec: Any,
    *,
    store: Any = "runs.db",
    executor: Any = None,
    workers: int | None = None,
    members: int | None = None,
    runs_per_gpu: int | None = None,
    threads: int | None = None,
    gpus_per_run: float | None = None,
    backend: str | None = None,
    ray_address: str | None = None,
    wait: bool = True,
    execution: Any = None,
    trainer: Any = None,
    trainer_version: str = "",
    progress: Callable[[Any, int], None] | None = None,
):
    """Run every run of the sweep ``spec`` (a :class:`~oasl.sweep.SweepSpec`, a YAML path or a mapping)
    not yet finished in ``store`` (a path or a :class:`~oasl.store.Store`); a killed sweep resumes where it
    stopped. The keyword arguments override the spec's ``execution:`` block (as the flags of ``oasl sweep
    run`` do), over ``execution`` (an :class:`~oasl.sweep.Execution`) when given; ``trainer`` (a function ``f(trial)``,
    ``"pkg.module:func"``, a shell command or ``{command: ...}``; :mod:`oasl.trainers`) trains every run
    instead of the spec's own trainer, and ``trainer_version`` goes into each run's store key with it (change
    it when the code changes); ``progress(summary, total)`` is called after each run. Returns a :class:`~oasl.sweep.SweepSummary` (counts, FLOPs spent
    and saved, wall seconds, best loss per group, errors)."""
    from oasl.sweep import expand, run_sweep

    spec = load_sweep_spec(spec)
    execution = sweep_execution(
        spec,
        execution,
        executor=executor,
        backend=backend,
        workers=workers,
        members=members,
        ray_address=ray_address,
        runs_per_gpu=runs_per_gpu,
        gpus_per_run=gpus_per_run,
        threads=threads,
    )
    if trainer is not None:
        from oasl.trainers import as_trainer_spec

        # set on the spec before expanding, so a ladder of named model configs keeps its own fields
        spec = spec.model_copy(update={"trainer": as_trainer_spec(trainer, trainer_version)})
    return run_sweep(
        expand(spec),
        store,
        pruning=spec.pruning,
        early_warn=spec.early_warn,
        execution=execution,
        on_update=progress,
        wait=wait,
    )


def sweep_execution(spec: Any, execution: Any = None, **options: Any):
    """How ``spec`` runs: its ``execution:`` block (or ``execution``) with every option given (not None:
    executor, backend, workers, members, ray_address, runs_per_gpu, gpus_per_run, threads) put over it.
    SweepError, one line, on an unknown executor or a bad count. Returns an :class:`~oasl.sweep.Execution`."""
    from oasl.sweep.execute import resolve_execution

    spec = load_sweep_spec(spec)
    return resolve_execution(execution if execution is not None else spec.execution, **options)


def plan_sweep(
    spec: Any,
    *,
    store: str | Path | None = None,
    executor: str | None = None,
    workers: int | None = None,
    members: int | None = None,
    threads: int | None = None,
    measure: bool = True,
):
    """How many runs ``spec`` has (those finished in ``store`` not counted again), their FLOPs and an
    estimate of their wall time on this machine. Returns a :class:`~oasl.sweep.SweepPlan`."""
    from oasl.store import open_store
    from oasl.sweep import expand, plan

    spec = load_sweep_spec(spec)
    ex = sweep_execution(spec, executor=executor, workers=workers, members=members, threads=threads)
    return plan(
        expand(spec),
        open_store(store) if store else None,
        workers=ex.workers,
        measure=measure,
        executor=ex.executor,
        members=ex.members,
        threads=ex.threads,
    )
