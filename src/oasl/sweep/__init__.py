"""Sweeps: expanding a SweepSpec into runs, planning them, executing them locally or on Ray."""

from oasl.sweep.execute import GroupPruner, SweepSummary, run_sweep, todo
from oasl.sweep.plan import SweepPlan, measure_tokens_per_s, plan
from oasl.sweep.spec import Ladder, Pruning, SweepSpec, expand, grid_values, group_key, load_sweep

__all__ = [
    "GroupPruner",
    "Ladder",
    "Pruning",
    "SweepPlan",
    "SweepSpec",
    "SweepSummary",
    "expand",
    "grid_values",
    "group_key",
    "load_sweep",
    "measure_tokens_per_s",
    "plan",
    "run_sweep",
    "todo",
]
