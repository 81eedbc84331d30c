"""Executors: how a sweep's pending runs are trained. One small interface, several back ends.

An :class:`Executor` takes the runs still to do and a :class:`Job` (the store, pruning, early warning,
lease) and calls ``record(outcome)`` once per run. As Optuna's storages and samplers are plug-ins
behind one protocol, :func:`oasl.sweep.run_sweep` only sees this interface:

- :class:`LocalExecutor`: a process pool, one run per process (``workers=1`` trains in this process);
  on a GPU machine its workers are spread over the visible GPUs, ``runs_per_gpu`` per GPU.
- :class:`BatchedExecutor`: groups compatible runs (same :func:`oasl.train.batch_signature`) and trains
  each group of K as one stacked model (:func:`oasl.train.train_batched`) in a worker; K comes from the
  memory free per worker, capped by ``members``.
- :class:`oasl.sweep.ray_executor.RayExecutor`: Ray tasks with CPU and GPU requests per run.

Every runner claims its runs in the store with a lease it renews while training
(:mod:`oasl.sweep.claims`) and writes each result in one transaction, so a runner killed with SIGKILL
loses no finished run and two sweeps on one store never train a run twice.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from oasl.config import RunSpec
from oasl.errors import SweepError
from oasl.sweep.base import Executor, Job, Record, busy, failed, outcome
from oasl.sweep.claims import Lease
from oasl.sweep.prune import GroupBoard, make_stopper
from oasl.sweep.spec import Execution

__all__ = [
    "EXECUTORS",
    "BatchedExecutor",
    "Executor",
    "Job",
    "LocalExecutor",
    "Record",
    "busy",
    "failed",
    "make_executor",
    "outcome",
]

EXECUTORS = ("auto", "local", "batched", "ray")
MEMORY_FRACTION = 0.5  # of the memory free per worker that batched members may fill


# -- devices: pure functions, unit-tested without a GPU -------------------------------------------


def gpu_slots(workers: int, n_gpus: int, runs_per_gpu: int | None = None) -> list[int | None]:
    """The GPU index of each worker process: ``runs_per_gpu`` workers on each of ``n_gpus`` GPUs when
    given, else ``workers`` workers dealt round-robin over the GPUs; ``workers`` CPU workers (None)
    when there is no GPU."""
    if n_gpus <= 0:
        return [None] * workers
    n = n_gpus * runs_per_gpu if runs_per_gpu else workers
    return [i % n_gpus for i in range(n)]


def device_for(spec_device: str, gpu: int | None) -> str:
    """Where a worker pinned to ``gpu`` trains a run whose spec says ``spec_device``: "auto" and "cuda"
    become "cuda:<gpu>"; an explicit "cpu" or "cuda:N" is kept (the device is not part of the run key)."""
    if gpu is None or spec_device not in ("auto", "cuda"):
        return spec_device
    return f"cuda:{gpu}"


def visible_gpus(runs: list[RunSpec]) -> int:
    """How many CUDA devices the runs can use: 0 when none is visible or every run asks for the CPU."""
    if not runs or all(r.device not in ("auto", "cuda") for r in runs):
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def free_memory_bytes(gpu: int | None = None) -> int:
    """Memory free for training: on ``gpu`` (``torch.cuda.mem_get_info``), else the host's available
    RAM (MemAvailable of /proc/meminfo, else free pages from ``os.sysconf``), in bytes."""
    if gpu is not None:
        import torch

        return int(torch.cuda.mem_get_info(gpu)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def cpu_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


THREADS_ENV = "OASL_THREADS"


def given_threads(threads: int | None = None) -> int | None:
    """Torch threads per worker asked for: ``threads`` when given, else ``$OASL_THREADS`` when set, else
    None. SweepError (one line) on a bad value."""
    if threads is None:
        raw = os.environ.get(THREADS_ENV, "").strip()
        if raw:
            try:
                threads = int(raw)
            except ValueError:
                raise SweepError(f"${THREADS_ENV} must be a whole number of threads, got {raw!r}") from None
    if threads is not None and threads < 1:
        raise SweepError(f"torch threads per worker must be at least 1, got {threads}")
    return threads


def worker_threads(workers: int, threads: int | None = None) -> int:
    """Torch threads for each of ``workers`` processes: :func:`given_threads` when asked for, else this
    process's cores // workers (at least 1). On a machine other jobs share, that default oversubscribes
    the cores (a width-24 run measured 1.4k tokens/s instead of 182k with 2 threads on 2 busy cores,
    benchmarks/transfer.py), so ask for fewer there."""
    asked = given_threads(threads)
    return asked if asked is not None else max(1, cpu_cores() // max(1, workers))


# -- what a worker process runs ---------------------------------------------------------------------

_WORKER_GPU: int | None = None  # the GPU this worker process is pinned to (see gpu_slots)
PARENT_POLL_S = 1.0  # how often a worker checks that the sweep that started it is alive


def exit_with_parent(parent_pid: int, poll_s: float = PARENT_POLL_S) -> None:
    """End this process soon after ``parent_pid`` dies. A pool worker whose sweep was killed (SIGKILL, an
    out-of-memory kill) would otherwise finish its run on cores nobody asked for. The claim it leaves names
    a dead process, so the next start of the sweep takes the run over at once
    (:func:`oasl.sweep.claims.owner_dead`) and trains it again; nothing is lost, as the store only ever
    holds finished results. A daemon thread polls, as POSIX has no portable parent-death signal."""
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(1)  # the parent is gone: no clean-up is owed to anyone

    threading.Thread(target=watch, name="oasl-parent-watch", daemon=True).start()


def _worker_init(threads: int, slots, parent_pid: int | None = None) -> None:
    import torch

    global _WORKER_GPU
    if parent_pid is not None:
        exit_with_parent(parent_pid)
    torch.set_num_threads(threads)
    if slots is not None:
        _WORKER_GPU = slots.get()


def _placed(spec: RunSpec) -> RunSpec:
    device = device_for(spec.device, _WORKER_GPU)
    return spec if device == spec.device else spec.model_copy(update={"device": device})


def run_one(spec: RunSpec, job: Job) -> list[dict]:
    """Claim ``spec``, train it, write its result, release the claim; a one-element list of outcomes."""
    with Lease(job.store, [spec.key()], job.lease_s) as lease:
        return _train_claimed(spec, job) if lease.claimed else [busy(spec)]


def _train_claimed(spec: RunSpec, job: Job) -> list[dict]:
    from oasl.trainers import train_run

    job.store.mark_running(spec)
    try:
        stop = make_stopper(spec, job.store, job.pruning, job.early_warn)
        result = train_run(_placed(spec), should_stop=stop)
    except Exception as exc:  # recorded, retried once on the next start
        return [failed(spec, exc, job.store)]
    job.store.put(result)
    return [outcome(spec, result)]


def run_batch(specs: list[RunSpec], job: Job) -> list[dict]:
    """Claim the runs of one batch, train those claimed as one stacked model, write each result."""
    from oasl.train import train_batched

    with Lease(job.store, [s.key() for s in specs], job.lease_s) as lease:
        mine = [s for s in specs if s.key() in set(lease.claimed)]
        outs = [busy(s) for s in specs if s.key() not in set(lease.claimed)]
        if len(mine) == 1:  # trained alone, under this lease
            return outs + _train_claimed(mine[0], job)
        if not mine:
            return outs
        for s in mine:
            job.store.mark_running(s)
        board = GroupBoard()  # members of one batch inform each other's pruning
        stops = [make_stopper(s, job.store, job.pruning, job.early_warn, board) for s in mine]
        try:
            results = train_batched([_placed(s) for s in mine], should_stop=stops)
        except Exception as exc:
            return outs + [failed(s, exc, job.store) for s in mine]
        for spec, result in zip(mine, results, strict=True):
            job.store.put(result)
            lease.release([spec.key()])
            outs.append(outcome(spec, result))
    return outs


Task = tuple[Callable[[Any, Job], list[dict]], Any]


def run_tasks(
    tasks: list[Task], job: Job, record: Record, slots: list[int | None], threads: int | None = None
) -> None:
    """Run ``tasks`` ((function, argument) pairs) on ``len(slots)`` worker processes pinned to the slots'
    GPUs, recording every outcome as it comes back; one CPU worker runs them in this process. Each worker
    process gets :func:`worker_threads` torch threads; in this process, the process's own count stands unless
    threads are asked for (``threads`` or ``$OASL_THREADS``)."""
    if not tasks:
        return
    slots = slots[: len(tasks)] or [None]
    if len(slots) == 1 and slots[0] in (None, 0):  # one worker on the CPU or on the only GPU: in this process
        import torch

        # this process's own thread count stands unless threads were asked for
        old = torch.get_num_threads()
        torch.set_num_threads(given_threads(threads) or old)
        try:
            for fn, arg in tasks:
                for out in fn(arg, job):
                    record(out)
        finally:
            torch.set_num_threads(old)
        return
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # fork after torch has threads is unsafe
    queue = None
    if any(s is not None for s in slots):
        queue = ctx.Queue()
        for s in slots:
            queue.put(s)
    n_threads = worker_threads(len(slots), threads)
    with ProcessPoolExecutor(
        len(slots), mp_context=ctx, initializer=_worker_init, initargs=(n_threads, queue, os.getpid())
    ) as pool:
        futures = {pool.submit(fn, arg, job) for fn, arg in tasks}
        while futures:
            done, futures = wait(futures, return_when=FIRST_COMPLETED)
            for f in done:
                for out in f.result():
                    record(out)


# -- the executors ----------------------------------------------------------------------------------


class LocalExecutor(Executor):
    """One run per process: ``workers`` processes share the cores (torch threads: ``threads`` each, by
    default cores // workers, see :func:`worker_threads`); with GPUs visible, workers are spread over them
    (``runs_per_gpu`` each, see :func:`gpu_slots`)."""

    name = "local"

    def __init__(self, workers: int = 1, runs_per_gpu: int | None = None, threads: int | None = None):
        super().__init__()
        if workers < 1:
            raise SweepError(f"--workers must be at least 1, got {workers}")
        self.workers, self.runs_per_gpu, self.threads = workers, runs_per_gpu, threads

    def execute(self, pending: list[RunSpec], job: Job, record: Record) -> None:
        slots = gpu_slots(self.workers, visible_gpus(pending), self.runs_per_gpu)
        run_tasks([(run_one, s) for s in pending], job, record, slots, self.threads)


def batchable(runs: list[RunSpec]) -> tuple[dict[tuple, list[RunSpec]], list[RunSpec]]:
    """Split runs into groups that can share a batch (by :func:`oasl.train.batch_signature`, optimizers in
    ``BATCHED_OPTIMIZERS``, two or more runs) and the runs left to train one per process."""
    from oasl.train import BATCHED_OPTIMIZERS, batch_signature

    groups: dict[tuple, list[RunSpec]] = {}
    single = []
    for r in runs:
        if r.optimizer in BATCHED_OPTIMIZERS and r.trainer is None:  # only oasl's own GPT batches
            groups.setdefault(batch_signature(r), []).append(r)
        else:
            single.append(r)
    for sig in [s for s, g in groups.items() if len(g) < 2]:
        single.extend(groups.pop(sig))
    return groups, single


def choose_members(member_bytes: int, free_bytes: int, workers_sharing: int, cap: int | None = None) -> int:
    """Largest K whose members fit in ``MEMORY_FRACTION`` of ``free_bytes`` shared by ``workers_sharing``
    worker processes (``member_bytes`` each), at most ``cap``; at least 1."""
    k = int(MEMORY_FRACTION * free_bytes / max(1, workers_sharing) / max(1, member_bytes))
    if cap is not None:
        k = min(k, cap)
    return max(1, k)


def split_batches(groups: list[list[RunSpec]], k_max: list[int], workers: int) -> list[list[RunSpec]]:
    """Cut each group into near-equal batches of at most its ``k_max``; while there are fewer batches than
    ``workers``, cut the largest batch in two (so no worker idles while another trains 2K members)."""
    batches = []
    for group, k in zip(groups, k_max, strict=True):
        n = math.ceil(len(group) / k)
        size = math.ceil(len(group) / n)
        batches.extend(group[i : i + size] for i in range(0, len(group), size))
    while batches and len(batches) < workers:
        big = max(batches, key=len)
        if len(big) < 4:  # two members or fewer per half: batching would gain little
            break
        batches.remove(big)
        half = math.ceil(len(big) / 2)
        batches.extend([big[:half], big[half:]])
    return batches


def _cost(specs: list[RunSpec]) -> float:
    from oasl.models import flops_per_token

    return sum(flops_per_token(s.shape) * s.tokens for s in specs)


class BatchedExecutor(Executor):
    """K compatible runs per process as one stacked model (:func:`oasl.train.train_batched`).

    K is the number of members whose memory (:func:`oasl.train.member_bytes`) fits in half the memory
    free per worker (GPU memory when the runs train on a GPU), capped by ``members``. Runs of other
    optimizers, and groups of one, run one per process (one note says so). ``workers`` processes share
    the cores (``threads`` torch threads each, see :func:`worker_threads`); with GPUs, workers are pinned
    as in :class:`LocalExecutor`."""

    name = "batched"

    def __init__(
        self,
        workers: int = 1,
        members: int | None = None,
        runs_per_gpu: int | None = None,
        threads: int | None = None,
    ):
        super().__init__()
        if workers < 1:
            raise SweepError(f"--workers must be at least 1, got {workers}")
        if members is not None and members < 1:
            raise SweepError(f"--members must be at least 1, got {members}")
        self.workers, self.members, self.runs_per_gpu = workers, members, runs_per_gpu
        self.threads = threads

    @staticmethod
    def applies(runs: list[RunSpec]) -> bool:
        """Whether batching has anything to do: two or more compatible runs of a batched optimizer."""
        try:
            return bool(batchable(runs)[0])
        except ImportError:  # pragma: no cover - a train/ without train_batched
            return False

    def plan(self, pending: list[RunSpec]) -> tuple[list[list[RunSpec]], list[RunSpec], list[int | None]]:
        """The batches, the runs left single, and the worker slots (GPU per worker) for ``pending``."""
        from oasl.train import BATCHED_OPTIMIZERS, member_bytes

        groups, single = batchable(pending)
        n_gpus = visible_gpus(pending)
        slots = gpu_slots(self.workers, n_gpus, self.runs_per_gpu)
        per_device = max(1, len(slots) // max(1, n_gpus)) if n_gpus else len(slots)
        k_max = []
        for g in groups.values():
            # members on one device share its memory with the other workers on it
            free = min(free_memory_bytes(i) for i in range(n_gpus)) if n_gpus else free_memory_bytes()
            k_max.append(choose_members(member_bytes(g[0]), free, per_device, self.members))
        batches = split_batches(list(groups.values()), k_max, len(slots))
        others = sorted({r.optimizer for r in single if r.optimizer not in BATCHED_OPTIMIZERS})
        if others:
            self.notes.append(
                f"note: {sum(r.optimizer in others for r in single)} run(s) of {', '.join(others)} do not batch "
                f"(batched: {', '.join(sorted(BATCHED_OPTIMIZERS))}); they train one per process"
            )
        return batches, single, slots

    def execute(self, pending: list[RunSpec], job: Job, record: Record) -> None:
        batches, single, slots = self.plan(pending)
        tasks: list[Task] = [(run_batch, b) for b in batches] + [(run_one, s) for s in single]
        # longest first, so the last task to finish is a short one
        tasks.sort(key=lambda t: -_cost(t[1] if isinstance(t[1], list) else [t[1]]))
        run_tasks(tasks, job, record, slots, self.threads)


def make_executor(name: str, runs: list[RunSpec], opts: Execution) -> Executor:
    """The executor called ``name`` (auto, local, batched, ray) for ``runs``, with the counts of ``opts``
    (validated by :class:`Execution`). "auto" is batched when the runs train on a GPU and
    :meth:`BatchedExecutor.applies`, else local: on CPU, batching measured 0.8-1.1x one run per process
    (benchmarks/sweep_throughput.py; a tiny model's step is compute-bound there, and K members lose cache
    locality), while on a GPU a small model leaves the chip idle and K members fill it.
    SweepError (one line) on an unknown name; DependencyError for "ray" without Ray."""
    if name not in EXECUTORS:
        raise SweepError(f"unknown executor {name!r}: use one of {', '.join(EXECUTORS)}")
    if name == "auto":
        name = "batched" if visible_gpus(runs) > 0 and BatchedExecutor.applies(runs) else "local"
    if name == "local":
        return LocalExecutor(opts.workers, opts.runs_per_gpu, opts.threads)
    if name == "batched":
        return BatchedExecutor(opts.workers, opts.members, opts.runs_per_gpu, opts.threads)
    from oasl.sweep.ray_executor import RayExecutor

    return RayExecutor(
        workers=opts.workers,
        gpus_per_run=opts.gpus_per_run,
        cpus_per_run=opts.cpus_per_run,
        address=opts.ray_address,
    )
