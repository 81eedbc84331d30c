"""The executor interface every back end implements, and the outcome dicts executors hand back.

Split from :mod:`oasl.sweep.executors` so that the Ray executor needs only this interface (no import
cycle between the two).
"""

from __future__ import annotations

import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from oasl.config import RunSpec
from oasl.store import Store
from oasl.sweep.claims import DEFAULT_LEASE_S
from oasl.sweep.spec import Pruning
from oasl.trainers.params import model_label

Record = Callable[[dict], None]


@dataclass(frozen=True)
class Job:
    """What every runner of a sweep needs besides its runs (picklable: it travels to worker processes).

    ``early_warn`` is a predictor dict (:meth:`DivergencePredictor.to_dict`) or None; ``lease_s`` the
    lifetime of a claim without heartbeat, in seconds."""

    store: Store
    pruning: Pruning | None = None
    early_warn: dict | None = None
    lease_s: float = DEFAULT_LEASE_S


class Executor(ABC):
    """Interface of an executor: ``execute(pending, job, record)`` trains each run of ``pending`` (or
    finds it claimed by a live runner elsewhere) and calls ``record`` with one outcome dict per run:
    key, status ("done", "diverged", "stopped", "failed", or "busy" when claimed elsewhere) and, for
    trained runs, loss, flops, saved (FLOPs pruning saved), group. ``notes`` collects one-line remarks
    for the user (a fallback taken, say)."""

    name: str = "executor"

    def __init__(self) -> None:
        self.notes: list[str] = []

    @abstractmethod
    def execute(self, pending: list[RunSpec], job: Job, record: Record) -> None:
        """Train ``pending`` (runs not finished in ``job.store``), calling ``record`` per run."""


# -- outcomes ---------------------------------------------------------------------------------------


def outcome(spec: RunSpec, result) -> dict:
    """The outcome dict of a trained run (see :class:`Executor`)."""
    saved = 0.0
    if result.status == "stopped":
        saved = result.flops / max(result.steps_done, 1) * (spec.steps - result.steps_done)
    return {
        "key": spec.key(),
        "status": result.status,
        "loss": result.final_val_loss,
        "flops": result.flops,
        "saved": saved,
        "group": f"{spec.optimizer} {model_label(spec)}",
        "note": result.extra.get("note") if isinstance(getattr(result, "extra", None), dict) else None,
    }


def failed(spec: RunSpec, exc: BaseException, store: Store | None) -> dict:
    """Record ``spec`` as failed in ``store`` (retried once on the next start); its outcome dict. A
    trainer's failure (:class:`~oasl.errors.TrainerError`) is stored with the tail of the trainer's stderr
    in place of oasl's traceback."""
    msg = f"{type(exc).__name__}: {exc}"
    if store is not None:
        detail = getattr(exc, "detail", None)
        if detail is not None:
            text = msg + ("\n--- stderr (last lines) ---\n" + detail if detail else "")
        else:
            text = msg + "\n" + "".join(traceback.format_exception(exc, limit=3))
        store.mark_failed(spec, text)
    return {"key": spec.key(), "status": "failed", "error": msg}


def busy(spec: RunSpec) -> dict:
    return {"key": spec.key(), "status": "busy"}
