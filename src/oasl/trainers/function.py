"""A Python function as a trainer: ``f(trial)`` reads ``trial.params``, calls ``trial.report(step, loss)``
(True back: stop now) and returns the final loss or a dict of metrics (``loss``, ``n_params``, ``tokens``).

Given as an object (``run_sweep(..., trainer=f)``) or by name (YAML ``trainer: {function: "pkg.mod:f"}``).
Pool workers and Ray tasks are other processes: they import ``f`` by its qualified name, so a function
they cannot import (a lambda, a closure, one defined in ``__main__`` or a notebook) trains in the sweep's
own process, one run at a time (:func:`importable` says which; the sweep prints a note).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from oasl.config import RunSpec, TrainerSpec
from oasl.errors import ConfigError
from oasl.trainers.base import Trainer, Trial

# functions handed over as objects in this process, by qualified name (other processes import them)
_REGISTERED: dict[str, Callable] = {}


def qualified_name(fn: Callable) -> str:
    """``module:qualname`` of ``fn``."""
    return f"{getattr(fn, '__module__', None) or '?'}:{getattr(fn, '__qualname__', None) or repr(fn)}"


def importable(name: str) -> bool:
    """Whether another process can import the function ``name`` (``module:qualname``) by its name."""
    module, _, qual = name.partition(":")
    return module not in ("__main__", "?", "__mp_main__") and "<" not in qual


def register(fn: Callable, version: str = "") -> TrainerSpec:
    """Hand the callable ``fn`` to this process's trainers; the :class:`TrainerSpec` naming it (its
    qualified name and ``version`` go into each run's key: change ``version`` when ``fn`` changes)."""
    if not callable(fn):
        raise ConfigError(f"trainer must be a callable f(trial), got {type(fn).__name__}")
    name = qualified_name(fn)
    _REGISTERED[name] = fn
    return TrainerSpec(function=name, version=version)


def resolve(name: str) -> Callable:
    """The callable called ``name`` (``pkg.module:func``, dots allowed after the colon): registered in this
    process, else imported. ConfigError (one line naming the fix) when it cannot be imported."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    module, sep, qual = name.partition(":")
    if not sep or not module or not qual:
        raise ConfigError(f"trainer.function {name!r}: write it as 'package.module:function'")
    try:
        try:
            obj: Any = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # the `oasl` console script does not put the working folder on sys.path, `python -m` does:
            # a module beside where the user runs oasl imports either way (pool workers inherit sys.path)
            if exc.name != module.split(".")[0] or os.getcwd() in sys.path:
                raise
            sys.path.append(os.getcwd())
            obj = importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"trainer.function {name!r}: cannot import module {module!r} ({exc}); put it on PYTHONPATH or "
            "run from its folder"
        ) from None
    for part in qual.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ConfigError(f"trainer.function {name!r}: module {module!r} has no {qual!r}")
    if not callable(obj):
        raise ConfigError(f"trainer.function {name!r} is a {type(obj).__name__}, not a function f(trial)")
    return obj


class FunctionTrainer(Trainer):
    """Trains a run by calling a Python function ``f(trial)`` in this process."""

    kind = "function"

    def __init__(self, spec: TrainerSpec):
        self.spec = spec
        self._fn: Callable | None = None

    @property
    def fn(self) -> Callable:
        if self._fn is None:
            self._fn = resolve(self.spec.function or "")
        return self._fn

    def check(self, runs: list[RunSpec]) -> None:
        self.fn  # noqa: B018 - import now: one clear line before any run

    def run(self, trial: Trial) -> float | dict[str, Any]:
        return self.fn(trial)
