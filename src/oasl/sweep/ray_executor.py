"""The Ray executor: one Ray task per run, with CPU and GPU requests, pruning through a Ray actor.

Tasks may run on machines without the store file, so the driver is the runner the store sees: it
claims each run before submitting it (renewing the claim while the task trains), and writes the result
when the task returns. Pruning needs the group's losses while runs train: every task reports its
validation losses to one :class:`~oasl.sweep.prune.GroupBoard` held by a Ray actor, seeded by the
driver with the curves of the group's finished runs in the store, and asks it for the group's best at
each checkpoint. The early warning runs inside the task without a group reference (the store is not
reachable from there).
"""

from __future__ import annotations

from oasl.config import RunSpec
from oasl.errors import DependencyError
from oasl.sweep.base import Executor, Job, Record, busy, failed, outcome
from oasl.sweep.claims import Lease
from oasl.sweep.prune import GroupBoard, make_stopper
from oasl.sweep.spec import group_key


def _train_task(spec: RunSpec, pruning, early_warn, threads: int, board):
    """Body of a Ray task: train ``spec``; returns (spec, result or None, error or None)."""
    from oasl.trainers import train_run

    if spec.trainer is None:  # oasl's GPT trains in this task; a user's command starts its own process
        import torch

        torch.set_num_threads(threads)
    try:
        stop = make_stopper(spec, None, pruning, early_warn, remote_board=board)
        return spec, train_run(spec, should_stop=stop), None
    except Exception as exc:  # returned, recorded by the driver
        return spec, None, exc


def ray_resources(gpus_per_run: float | None, cluster_gpus: float, runs: list[RunSpec]) -> float:
    """GPUs a task asks for: ``gpus_per_run`` when given (fractions pack several runs on one GPU), else
    one GPU per run on a cluster with GPUs when the runs may use CUDA, else none."""
    if gpus_per_run is not None:
        return float(gpus_per_run)
    wants_cuda = any(r.device in ("auto", "cuda") or r.device.startswith("cuda") for r in runs)
    return 1.0 if cluster_gpus > 0 and wants_cuda else 0.0


def inflight_limit(workers: int, cpus: float, gpus: float, cpus_per_run: float, gpus_per_run: float) -> int:
    """Tasks kept in flight: what the cluster's resources hold (CPUs / cpus_per_run, and GPUs /
    gpus_per_run when runs take GPUs), at least ``workers``."""
    fit = cpus / cpus_per_run if cpus_per_run > 0 else float("inf")
    if gpus_per_run > 0:
        fit = min(fit, gpus / gpus_per_run)
    return max(workers, int(fit) if fit != float("inf") else workers)


class RayExecutor(Executor):
    """Ray tasks, each asking for ``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs (fractions allowed).

    ``address="auto"`` joins a running cluster; None starts a local instance with ``workers`` CPUs."""

    name = "ray"

    def __init__(
        self,
        workers: int = 1,
        gpus_per_run: float | None = None,
        cpus_per_run: float = 1.0,
        address: str | None = None,
    ):
        super().__init__()
        try:
            import ray  # noqa: F401
        except ImportError:
            raise DependencyError("the ray executor needs Ray: `pip install 'oasl[ray]'`") from None
        self.workers, self.gpus_per_run, self.cpus_per_run, self.address = (
            workers,
            gpus_per_run,
            cpus_per_run,
            address,
        )

    def execute(self, pending: list[RunSpec], job: Job, record: Record) -> None:
        import ray

        started_here = not ray.is_initialized()
        if started_here:
            if self.address:
                ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False)
            else:
                ray.init(
                    num_cpus=self.workers,
                    include_dashboard=False,
                    ignore_reinit_error=True,
                    log_to_driver=False,
                )
        try:
            self._execute(ray, pending, job, record)
        finally:
            if started_here:
                ray.shutdown()

    def _execute(self, ray, pending: list[RunSpec], job: Job, record: Record) -> None:
        res = ray.cluster_resources()
        gpr = ray_resources(self.gpus_per_run, res.get("GPU", 0.0), pending)
        limit = inflight_limit(self.workers, res.get("CPU", 1.0), res.get("GPU", 0.0), self.cpus_per_run, gpr)
        threads = max(1, int(self.cpus_per_run))
        task = ray.remote(_train_task).options(num_cpus=self.cpus_per_run, num_gpus=gpr)
        board = None
        if job.pruning is not None and job.pruning.enabled:
            board = ray.remote(GroupBoard).remote()
            seen = set()
            for spec in pending:  # the finished runs of each group inform the board from the start
                gk = group_key(spec)
                if gk in seen:
                    continue
                seen.add(gk)
                keys = job.store.group_members(spec, group_key, ("done", "stopped"))
                df = job.store.curve_values(keys, "val_loss", 0, spec.steps)
                for key, g in df.groupby("key"):
                    board.report_curve.remote(
                        gk, key, dict(zip(g["step"].astype(int), g["value"], strict=True))
                    )
        queue, inflight = list(pending), {}
        try:
            while queue or inflight:
                while queue and len(inflight) < limit:
                    spec = queue.pop(0)
                    lease = Lease(job.store, [spec.key()], job.lease_s).__enter__()
                    if not lease.claimed:
                        record(busy(spec))
                        continue
                    job.store.mark_running(spec)
                    ref = task.remote(spec, job.pruning, job.early_warn, threads, board)
                    inflight[ref] = lease
                if not inflight:
                    continue
                ready, _ = ray.wait(list(inflight), num_returns=1)
                for ref in ready:
                    lease = inflight.pop(ref)
                    spec, result, error = ray.get(ref)
                    if error is not None:
                        record(failed(spec, error, job.store))
                    else:
                        job.store.put(result)
                        record(outcome(spec, result))
                    lease.__exit__(None, None, None)
        finally:
            for lease in inflight.values():
                lease.__exit__(None, None, None)
