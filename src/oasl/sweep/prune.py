"""Stopping runs inside a sweep: group pruning and the divergence early warning's group reference.

A run's ``should_stop`` compares its validation loss at a checkpoint with the best of its group (the
runs that differ only in their HPs). The group's losses come from two places: the curves of finished
runs in the store (:meth:`oasl.store.Store.group_members`, :meth:`~oasl.store.Store.curve_values`),
and a :class:`GroupBoard` of the losses that runs still in training report: in one process the members
of a batch share one board; on Ray one board lives in an actor that every task reports to.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

from oasl.config import RunSpec
from oasl.store import Store, open_store
from oasl.sweep.spec import Pruning, group_key

# losses of the other runs of a spec's group at a step: key -> val loss
Reference = Callable[[int], dict[str, float]]


class GroupBoard:
    """Validation losses that runs in training report, by group, run key and step.

    ``best_at(group, key, step)`` gives, for every other run of the group, its loss at the latest step
    it reported up to ``step``: a run that lags behind is compared at an earlier (higher) loss, which
    only makes pruning more cautious. Thread-safe; a Ray actor wraps one (see the Ray executor)."""

    def __init__(self) -> None:
        self._losses: dict[str, dict[str, dict[int, float]]] = {}
        self._curves: dict[str, dict[str, list]] = {}
        self._lock = threading.Lock()

    def report(self, group: str, key: str, step: int, val_loss: float) -> None:
        if not math.isfinite(val_loss):
            return
        with self._lock:
            self._losses.setdefault(group, {}).setdefault(key, {})[int(step)] = float(val_loss)

    def report_curve(self, group: str, key: str, losses: dict[int, float]) -> None:
        for step, v in losses.items():
            self.report(group, key, step, v)

    def add_curve(self, group: str, key: str, curve: list) -> None:
        """Keep a run's live per-step curve (the list its trainer appends to), for :meth:`window_reference`."""
        with self._lock:
            self._curves.setdefault(group, {})[key] = curve

    def window_reference(self, group: str, key: str, end: int) -> float | None:
        """The early warning's group reference from the other runs' live curves that reached ``end``
        (see :func:`group_reference`); None if none has."""
        with self._lock:
            curves = [
                c for k, c in self._curves.get(group, {}).items() if k != key and c and c[-1]["step"] >= end
            ]
        means = [m for c in curves if (m := window_mean_log_loss(c, end)) is not None]
        return min(means) if means else None

    def best_at(self, group: str, key: str, step: int) -> dict[str, float]:
        out = {}
        with self._lock:
            for other, curve in self._losses.get(group, {}).items():
                steps = [s for s in curve if s <= step]
                if other != key and steps:
                    out[other] = curve[max(steps)]
        return out


class GroupPruner:
    """``should_stop`` callback: stop a run whose validation loss at a checkpoint is worse than its group's
    best by more than ``pruning.margin`` (relative), once ``pruning.min_runs`` other runs inform the best.

    ``reference(step)`` returns the other runs' losses at ``step`` (key -> loss); ``report(step, loss)``
    (optional) tells siblings in training about this run's loss."""

    def __init__(
        self,
        spec: RunSpec,
        pruning: Pruning,
        reference: Reference,
        report: Callable[[int, float], None] | None = None,
    ):
        self.spec, self.pruning, self.reference, self.report = spec, pruning, reference, report
        self.steps = spec.steps
        self.checkpoints = [max(1, int(c * self.steps)) for c in pruning.checkpoints]
        self.done_checkpoints: set[int] = set()

    def __call__(self, step: int, val_loss: float, curve) -> str | None:
        if self.report is not None:
            self.report(step, val_loss)
        due = [c for c in self.checkpoints if step >= c and c not in self.done_checkpoints]
        if not due:
            return None
        self.done_checkpoints.update(due)
        others = self.reference(step)
        if len(others) < self.pruning.min_runs:
            return None
        best = min(others.values())
        if val_loss > best * (1 + self.pruning.margin):
            return (
                f"pruned at {step}/{self.steps} steps: val loss {val_loss:.4f} worse than the group's best "
                f"{best:.4f} by more than {self.pruning.margin:.0%}"
            )
        return None


def store_losses(store: Store, spec: RunSpec, step: int) -> dict[str, float]:
    """Validation losses at ``step`` of the finished ("done", "stopped") runs of ``spec``'s group."""
    keys = store.group_members(spec, group_key, ("done", "stopped"))
    df = store.curve_values(keys, "val_loss", step - 1, step)
    return dict(zip(df["key"], df["value"].astype(float), strict=True))


def window_mean_log_loss(curve: list[dict], end: int) -> float | None:
    """Mean log train loss of a run over steps (0.9 end, end] (finite, positive losses); None if none."""
    vals = [
        math.log(p["train_loss"])
        for p in curve
        if 0.9 * end < p["step"] <= end
        and math.isfinite(p.get("train_loss", math.nan))
        and p["train_loss"] > 0
    ]
    return sum(vals) / len(vals) if vals else None


def group_reference(store: Store | str, spec: RunSpec, end: int) -> float | None:
    """The early warning's group reference: the lowest mean log train loss over steps (0.9 end, end]
    among the finished runs of ``spec``'s group in ``store`` (a Store or a path); None if none."""
    import numpy as np

    st = open_store(store)
    keys = st.group_members(spec, group_key, ("done", "stopped", "diverged"))
    df = st.curve_values(keys, "train_loss", 0.9 * end, end)
    df = df[np.isfinite(df["value"].astype(float)) & (df["value"].astype(float) > 0)]
    if df.empty:
        return None
    return float(np.log(df["value"].astype(float)).groupby(df["key"]).mean().min())


def make_stopper(
    spec: RunSpec,
    store: Store | None,
    pruning: Pruning | None,
    early_warn: dict | None,
    board: GroupBoard | None = None,
    remote_board=None,
):
    """The run's ``should_stop``: group pruning and/or the early warning (the first reason given wins).

    Pruning reads the group from ``store`` (None: not at all) and from ``board`` (siblings training in
    this process) or ``remote_board`` (a Ray actor handle of a :class:`GroupBoard`). ``early_warn`` is a
    predictor dict (:meth:`DivergencePredictor.to_dict`). Returns a callable or None."""
    stoppers = []
    if pruning is not None and pruning.enabled and (store is not None or remote_board is not None):
        gk, key = group_key(spec), spec.key()

        def reference(step: int) -> dict[str, float]:
            out = store_losses(store, spec, step) if store is not None else {}
            if board is not None:
                out.update(board.best_at(gk, key, step))
            if remote_board is not None:
                import ray

                out.update(ray.get(remote_board.best_at.remote(gk, key, step)))
            return out

        def report(step: int, val_loss: float) -> None:
            if board is not None:
                board.report(gk, key, step, val_loss)
            if remote_board is not None:
                remote_board.report.remote(gk, key, step, val_loss)

        stoppers.append(GroupPruner(spec, pruning, reference, report))
    if early_warn is not None:
        from oasl.train.earlywarn import DivergencePredictor, EarlyWarnStopper

        ref = None
        if store is not None or board is not None:

            def ref(end: int) -> float | None:
                # finished runs in the store, and siblings in this batch that reached the window's end
                refs = [group_reference(store, spec, end) if store is not None else None]
                refs.append(board.window_reference(group_key(spec), spec.key(), end) if board else None)
                refs = [r for r in refs if r is not None]
                return min(refs) if refs else None

        stoppers.append(EarlyWarnStopper(spec.steps, DivergencePredictor.from_dict(early_warn), ref))
    if not stoppers:
        return None

    def should_stop(step, val_loss, curve):
        if board is not None:
            board.add_curve(group_key(spec), spec.key(), curve)
        for s in stoppers:
            reason = s(step, val_loss, curve)
            if reason:
                return reason
        return None

    return should_stop
