"""Planning a sweep before it runs: how many runs, their FLOPs, and a time estimate from measured speed.

The estimate follows what the executor will do. Its batches come from the executor itself
(:meth:`oasl.sweep.executors.BatchedExecutor.plan`); the speed of each (shape, batch size, optimizer,
members K) is measured on this machine by training a few real steps (``K`` members stacked for a
batch, one model for a single run) with the torch threads a worker gets; a run's time is its training
tokens plus its evaluation forward passes (a third of a training token each) over that speed; tasks are
scheduled longest first on the workers (what the pool does), plus the measured start-up of a worker
process when there is a pool.
"""

from __future__ import annotations

import heapq
import math
import subprocess
import sys
import time
from dataclasses import dataclass, field

import pandas as pd

from oasl.config import RunSpec

MIN_TIMED_S = 1.0  # training seconds the longest timing run reaches (unless it hits MAX_STEPS)
MAX_STEPS = 128


@dataclass
class SweepPlan:
    """Runs of a sweep with their cost. ``table`` has one row per (optimizer, shape) group; ``seconds`` there
    is the time of its runs on one worker. ``est_seconds`` is the estimated wall time of the runs to do with
    ``executor`` on ``workers`` processes; ``batches`` the member count of each batch it would train."""

    n_runs: int
    n_todo: int
    flops: float
    flops_todo: float
    est_seconds: float
    table: pd.DataFrame
    tokens_per_s: dict[str, float] = field(default_factory=dict)
    executor: str = "local"
    workers: int = 1
    batches: list[int] = field(default_factory=list)
    startup_s: float = 0.0
    load: tuple[float, int] = (float("nan"), 0)  # (1-minute load average, CPU count) when planned

    def load_note(self) -> str:
        """What the wall-time estimate assumes about the machine, with its load when speeds were measured."""
        avg, cpus = self.load
        now = f"; load average {avg:.1f} on {cpus} cores when measured" if avg == avg and cpus else ""
        return (
            f"the estimate assumes the machine stays as busy as when it was measured{now}: other work "
            "started during the sweep slows it (several times over on a shared machine)"
        )


def _short(spec: RunSpec, steps: int) -> RunSpec:
    """``spec`` cut to ``steps`` steps with one small evaluation (for timing)."""
    from oasl.train.run import EVAL_BATCH_SEQS

    return spec.model_copy(
        update={
            "tokens": steps * spec.batch_tokens,
            "eval_interval": 10**9,
            "eval_tokens": EVAL_BATCH_SEQS * spec.shape.seq_len,
        }
    )


def measure_speed(spec: RunSpec, members: int = 1, threads: int | None = None) -> tuple[float, float]:
    """Speed of ONE member of a batch of ``members`` copies of ``spec`` (one run alone when ``members`` is 1)
    on this machine with ``threads`` torch threads, from short real runs of oasl's own training loop.

    Returns (training tokens/s per member, fixed seconds per run: set-up and the evaluations before and
    after training). After one run that pays one-time costs, runs of 4, 8, 16, ... steps are trained
    until one spends ``MIN_TIMED_S`` training (or reaches ``MAX_STEPS`` steps); that run's training
    tokens over its training time is the speed (first-step costs included: a slight overestimate of the
    time), its other wall time the fixed cost. (A difference of two runs' times would leave out the
    first steps, but on a busy machine it is as noisy as the times themselves.)"""
    import torch

    from oasl.train import train, train_batched

    def short_run(steps: int) -> tuple[float, int, float]:
        s = _short(spec, steps)
        r = train(s) if members == 1 else train_batched([s] * members)[0]
        return r.tokens_trained / r.tokens_per_s, r.tokens_trained, r.wall_s

    old = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        short_run(2)
        train_s, tokens, wall = short_run(4)
        while train_s < MIN_TIMED_S and 2 * tokens // spec.batch_tokens <= MAX_STEPS:
            train_s, tokens, wall = short_run(2 * tokens // spec.batch_tokens)
    finally:
        torch.set_num_threads(old)
    return tokens / train_s, max(0.0, wall - train_s)


def measure_tokens_per_s(spec: RunSpec, members: int = 1, threads: int | None = None) -> float:
    """Training tokens/s of one member of a batch of ``members`` copies of ``spec`` (see :func:`measure_speed`)."""
    return measure_speed(spec, members, threads)[0]


def measure_startup_s(spec: RunSpec, pool: bool) -> float:
    """Seconds a worker spends before its first run: starting a process and importing torch and oasl's
    trainer (when ``pool``), and reading ``spec``'s corpus (once per process)."""
    from oasl.data import TokenDataset

    t0 = time.perf_counter()
    if pool:
        subprocess.run([sys.executable, "-c", "import torch, oasl.train"], check=False, capture_output=True)
    TokenDataset.from_spec(spec.corpus)
    return time.perf_counter() - t0


def run_seconds(spec: RunSpec, tokens_per_s: float) -> float:
    """Seconds of ``spec`` at ``tokens_per_s`` (per member): its training tokens plus its evaluations
    (before training, every ``eval_interval`` steps, at the end), each evaluated token a forward pass,
    counted as a third of a training token (forward + backward = 3 forwards)."""
    evals = 2 + (spec.steps - 1) // spec.eval_interval
    return (spec.steps * spec.batch_tokens + evals * spec.eval_tokens / 3) / tokens_per_s


def makespan(seconds: list[float], workers: int) -> float:
    """Wall time of tasks taken longest first by ``workers`` workers, each taking the next when free."""
    free = [0.0] * max(1, workers)
    for s in sorted(seconds, reverse=True):
        heapq.heapreplace(free, free[0] + s)
    return max(free)


def plan(
    runs: list[RunSpec],
    store=None,
    workers: int = 1,
    measure: bool = True,
    executor: str = "auto",
    members: int | None = None,
    threads: int | None = None,
) -> SweepPlan:
    """Cost of ``runs``: FLOPs (6N + attention per token, times tokens) and estimated wall time with
    ``executor`` ("auto", "local", "batched"; "ray" is estimated as local) on ``workers`` processes with
    ``threads`` torch threads each (default :func:`~oasl.sweep.executors.worker_threads`).

    Speeds are measured on this machine (``measure``); without measuring, the median tokens/s of the
    store's finished runs of the same shape and batch size stands in for single runs (batched members
    then count as single runs), and times without either are NaN."""
    from oasl.models import count_params, flops_per_token
    from oasl.sweep.execute import todo
    from oasl.sweep.executors import (
        BatchedExecutor,
        gpu_slots,
        make_executor,
        visible_gpus,
        worker_threads,
    )
    from oasl.sweep.spec import Execution

    pending = runs if store is None else todo(runs, store)[0]
    pending_keys = {r.key() for r in pending}
    ex = make_executor(
        "local" if executor == "ray" else executor,
        pending,
        Execution(workers=workers, members=members, threads=threads),
    )
    if isinstance(ex, BatchedExecutor) and pending:
        batches, single, slots = ex.plan(pending)
    else:
        batches, single = [], list(pending)
        slots = gpu_slots(workers, visible_gpus(pending))
    threads = worker_threads(len(slots), threads)

    stored: dict[str, float] = {}
    if store is not None and not measure:
        df = store.to_dataframe(finished_only=True)
        if not df.empty and "tokens_per_s" in df:
            for (w, d, b), grp in df.groupby(["width", "depth", "batch_seqs"]):
                stored[f"w{w}d{d}b{b}"] = float(grp["tokens_per_s"].median())
    speed: dict[str, float] = {}
    fixed: dict[str, float] = {}

    def seconds(spec: RunSpec, k: int) -> float:
        """Seconds of a run of ``spec`` trained as one of ``k`` members (NaN for a user's trainer: oasl
        cannot time code it does not run)."""
        if spec.trainer is not None:
            return math.nan
        sk = f"w{spec.shape.width}d{spec.shape.depth}s{spec.shape.seq_len}b{spec.batch_seqs}{spec.optimizer}k{k}"
        if sk not in speed:
            if measure:
                speed[sk], fixed[sk] = measure_speed(spec, k, threads)
            else:
                speed[sk] = stored.get(f"w{spec.shape.width}d{spec.shape.depth}b{spec.batch_seqs}", math.nan)
                fixed[sk] = 0.0
        return run_seconds(spec, speed[sk]) + fixed[sk]

    task_s = [seconds(b[0], len(b)) for b in batches] + [seconds(s, 1) for s in single]
    builtin = [r for r in pending if r.trainer is None]
    startup = measure_startup_s(builtin[0], len(slots) > 1) if measure and task_s and builtin else 0.0
    est = makespan(task_s, len(slots)) + startup if task_s else 0.0

    rows = []
    for r in runs:
        rows.append(
            {
                "optimizer": r.optimizer,
                "width": r.shape.width,
                "depth": r.shape.depth,
                "n_params": count_params(r.shape).n_params,
                "flops": flops_per_token(r.shape) * r.steps * r.batch_tokens,
                "todo": r.key() in pending_keys,
                "seconds": seconds(r, 1) if (measure or stored) else math.nan,
            }
        )
    df = pd.DataFrame(rows)
    table = (
        df.groupby(["optimizer", "width", "depth", "n_params"])
        .agg(
            runs=("flops", "size"),
            todo=("todo", "sum"),
            flops=("flops", "sum"),
            seconds=("seconds", lambda x: x.sum(min_count=1)),
        )
        .reset_index()
    )
    return SweepPlan(
        n_runs=len(runs),
        n_todo=int(df["todo"].sum()),
        flops=float(df["flops"].sum()),
        flops_todo=float(df.loc[df["todo"], "flops"].sum()),
        est_seconds=est,
        table=table,
        tokens_per_s=speed,
        executor=ex.name,
        workers=len(slots),
        batches=[len(b) for b in batches],
        startup_s=startup,
        load=_load(),
    )


def _load() -> tuple[float, int]:
    """(1-minute load average, CPU count); NaN where the platform has no load average."""
    import os

    try:
        avg = float(os.getloadavg()[0])
    except (AttributeError, OSError):
        avg = float("nan")
    return avg, os.cpu_count() or 0
