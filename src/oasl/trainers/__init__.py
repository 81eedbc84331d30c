"""Trainers: who trains a run. oasl's built-in GPT, a shell command, a Python function (and, through
:mod:`oasl.integrations.hf`, a Hugging Face ``Trainer``), behind one protocol (:class:`Trainer`,
:class:`Trial`). Importing this package does not import torch."""

from __future__ import annotations

from typing import Any

from oasl.config import RunSpec, TrainerSpec
from oasl.errors import ConfigError
from oasl.trainers.base import Trainer, Trial, trial_result
from oasl.trainers.params import model_label, run_params

__all__ = [
    "Trainer",
    "TrainerSpec",
    "Trial",
    "as_trainer_spec",
    "check_runs",
    "model_label",
    "run_params",
    "train_run",
    "trainer_for",
    "trial_result",
]


def trainer_for(spec: TrainerSpec | None) -> Trainer:
    """The trainer a :class:`TrainerSpec` names (None: oasl's built-in GPT)."""
    if spec is None:
        from oasl.trainers.builtin import BuiltinTrainer

        return BuiltinTrainer()
    if spec.command is not None:
        from oasl.trainers.command import CommandTrainer

        return CommandTrainer(spec)
    from oasl.trainers.function import FunctionTrainer

    return FunctionTrainer(spec)


def train_run(spec: RunSpec, progress=None, should_stop=None):
    """Train ``spec`` with the trainer its spec names; its :class:`oasl.train.RunResult`."""
    return trainer_for(spec.trainer).train(spec, progress=progress, should_stop=should_stop)


def check_runs(runs: list[RunSpec]) -> None:
    """One ConfigError line, before any run starts, when a trainer cannot train its runs (a command template
    naming an unknown field, a function that cannot be imported)."""
    by_trainer: dict[str, list[RunSpec]] = {}
    specs: dict[str, TrainerSpec] = {}
    for r in runs:
        if r.trainer is not None:
            k = r.trainer.model_dump_json()
            by_trainer.setdefault(k, []).append(r)
            specs[k] = r.trainer
    for k, group in by_trainer.items():
        trainer_for(specs[k]).check(group)


def as_trainer_spec(trainer: Any, version: str = "") -> TrainerSpec | None:
    """A :class:`TrainerSpec` from what a user passes as ``trainer=``: None (keep the runs' own), a
    TrainerSpec, a dict (``{command: ...}`` / ``{function: ...}``), a string (a shell command when it holds
    a space, else ``pkg.module:func``), or a callable ``f(trial)`` (registered in this process)."""
    from oasl.config import build

    if trainer is None or isinstance(trainer, TrainerSpec):
        return trainer
    if isinstance(trainer, dict):
        return build(TrainerSpec, trainer, what="trainer")
    if isinstance(trainer, str):
        key = "command" if " " in trainer.strip() or ":" not in trainer else "function"
        return build(TrainerSpec, {key: trainer, "version": version}, what="trainer")
    if callable(trainer):
        from oasl.trainers.function import register

        return register(trainer, version)
    raise ConfigError(
        f"trainer must be a function f(trial), a command string or {{command: ...}}, got {type(trainer).__name__}"
    )
