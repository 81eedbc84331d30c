"""Sweeps: expanding a SweepSpec into runs, planning them, executing them (local pool, batched, Ray)."""

from oasl.sweep.execute import SweepSummary, run_sweep, todo
from oasl.sweep.executors import BatchedExecutor, Executor, Job, LocalExecutor, make_executor
from oasl.sweep.plan import SweepPlan, measure_speed, measure_tokens_per_s, plan
from oasl.sweep.prune import GroupBoard, GroupPruner, group_reference
from oasl.sweep.spec import Execution, Ladder, Pruning, SweepSpec, expand, grid_values, group_key, load_sweep

__all__ = [
    "BatchedExecutor",
    "Execution",
    "Executor",
    "GroupBoard",
    "GroupPruner",
    "Job",
    "Ladder",
    "LocalExecutor",
    "Pruning",
    "SweepPlan",
    "SweepSpec",
    "SweepSummary",
    "expand",
    "grid_values",
    "group_key",
    "group_reference",
    "load_sweep",
    "make_executor",
    "measure_speed",
    "measure_tokens_per_s",
    "plan",
    "run_sweep",
    "todo",
]
