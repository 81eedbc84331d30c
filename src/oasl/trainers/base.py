"""The trainer protocol: who trains a run. One small interface, one file per implementation.

As Optuna's samplers and pruners are plug-ins behind one protocol, a sweep only sees :class:`Trainer`:

- :class:`oasl.trainers.builtin.BuiltinTrainer`: oasl's own GPT (:func:`oasl.train.train`; it batches).
- :class:`oasl.trainers.command.CommandTrainer`: a shell command template; the process reports through a
  JSON-lines file (:mod:`oasl.integrations.reporter`).
- :class:`oasl.trainers.function.FunctionTrainer`: a Python callable ``f(trial)``.
- :mod:`oasl.integrations.hf`: a ``transformers`` callback and ``TrainingArguments`` helper for functions
  that train with the Hugging Face ``Trainer``.

A user's trainer sees a :class:`Trial`: ``trial.params`` (the run's full spec as a flat dict) and
``trial.report(step, loss, ...)``, which feeds pruning and the divergence early warning and returns True
when the run should stop. :meth:`Trainer.train` turns what the trainer returned into a
:class:`oasl.train.RunResult` that the store, optima and laws read as any other run.
"""

from __future__ import annotations

import math
import time
import warnings
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from oasl.config import RunSpec
from oasl.errors import TrainerError
from oasl.trainers.params import arch_known, run_params, stated_n_params

if TYPE_CHECKING:
    from oasl.train.result import RunResult

# relative gap between reported and counted n_params that earns a warning: bias and norm conventions
# (GPT-2 has biases, oasl's GPT none) move N by about 1/width; a larger gap means another model
N_PARAMS_TOLERANCE = 0.05


class Trial:
    """One run as a user's trainer sees it.

    ``params``: the run's full spec as a flat dict (:func:`oasl.trainers.params.run_params`: lr, batch_seqs,
    steps, tokens, seed, the ladder rung's model fields, ...). ``report(step, loss)`` records a point of
    the loss curve and returns True when the run should stop (pruned, flagged by the early warning, or
    the loss is not finite); ``should_stop`` says the same afterwards and ``stop_reason`` why."""

    def __init__(self, spec: RunSpec, should_stop=None):
        self.spec = spec
        self.key = spec.key()
        self.params: dict[str, Any] = run_params(spec)
        self.curve: list[dict[str, float]] = []
        self.stop_reason: str | None = None
        self.diverge_reason: str | None = None
        self._should_stop = should_stop

    @property
    def should_stop(self) -> bool:
        """Whether oasl asked this run to stop (the function should return soon)."""
        return self.stop_reason is not None or self.diverge_reason is not None

    def report(
        self,
        step: int,
        loss: float,
        tokens: int | None = None,
        grad_norm: float | None = None,
        train_loss: float | None = None,
    ) -> bool:
        """Record the evaluation ``loss`` (nats/token; the validation loss, else the training loss) after
        ``step`` optimizer steps (``tokens`` trained so far: default step x batch_tokens). Returns True when
        the run should stop: the caller should then return (its last reported loss stands). A non-finite
        loss marks the run diverged."""
        step, loss = int(step), float(loss)
        row: dict[str, float] = {
            "step": step,
            "tokens": float(tokens) if tokens is not None else float(step * self.spec.batch_tokens),
            "val_loss": loss,
            # the early warning reads the training curve: the evaluation loss stands in when none is given
            "train_loss": float(train_loss) if train_loss is not None else loss,
        }
        if grad_norm is not None:
            row["grad_norm"] = float(grad_norm)
        if (
            self.curve and self.curve[-1]["step"] == step
        ):  # reported twice (a final evaluation): the last wins
            self.curve[-1] = row
        elif self.curve and self.curve[-1]["step"] > step:
            raise TrainerError(
                f"report(step={step}) after step {self.curve[-1]['step']}: report steps in increasing order"
            )
        else:
            self.curve.append(row)
        if self.should_stop:
            return True
        if not math.isfinite(loss):
            self.diverge_reason = f"non-finite loss ({loss}) reported at step {step}"
            return True
        if self._should_stop is not None:
            reason = self._should_stop(step, loss, self.curve)
            if reason:
                self.stop_reason = str(reason)
        return self.should_stop


class Trainer(ABC):
    """Interface of a trainer: ``run(trial)`` trains one run and returns its final loss (nats/token) or a
    dict of metrics (``loss`` required; ``n_params``, ``tokens``, anything else is kept beside the run).
    ``identity`` is what goes into the run's store key; ``supports_batching`` whether K runs can share one
    process (only the built-in GPT). ``check(runs)`` raises one ConfigError line before any run starts."""

    kind: str = "trainer"
    supports_batching: bool = False

    def check(self, runs: list[RunSpec]) -> None:
        """Raise a ConfigError when ``runs`` cannot be trained by this trainer (before any run starts)."""
        return None

    @abstractmethod
    def run(self, trial: Trial) -> float | dict[str, Any]:
        """Train ``trial``'s run; its final loss, or a dict of metrics with ``loss``."""

    def train(self, spec: RunSpec, progress=None, should_stop=None) -> RunResult:
        """Train ``spec`` through :meth:`run` and return its :class:`RunResult` (status "done", "stopped" or
        "diverged"). Raises :class:`TrainerError` when the trainer gave no usable final loss."""
        trial = Trial(spec, should_stop)
        t0 = time.perf_counter()
        metrics = self.run(trial)
        return trial_result(trial, metrics, time.perf_counter() - t0)


def _final_metrics(trial: Trial, metrics: Any) -> dict[str, Any]:
    if isinstance(metrics, dict):
        out = dict(metrics)
    elif metrics is None:
        out = {}
    else:
        try:
            out = {"loss": float(metrics)}
        except (TypeError, ValueError):
            raise TrainerError(
                f"the trainer returned {type(metrics).__name__}: return the final loss (a number) "
                "or a dict with `loss`"
            ) from None
    if "loss" not in out and "final_val_loss" in out:
        out["loss"] = out.pop("final_val_loss")
    if out.get("loss") is None and trial.should_stop and trial.curve:
        out["loss"] = trial.curve[-1]["val_loss"]  # stopped: its last reported loss stands
    if out.get("loss") is None:
        raise TrainerError(
            "the trainer gave no final loss: return it (or a dict with `loss`), or end the script with "
            "reporter.final(loss=..., n_params=...)"
        )
    return out


def trial_result(trial: Trial, metrics: Any, wall_s: float) -> RunResult:
    """The :class:`RunResult` of a trial from what its trainer returned (see :meth:`Trainer.run`)."""
    from oasl.models import count_params
    from oasl.train.result import RunResult

    spec = trial.spec
    out = _final_metrics(trial, metrics)
    loss = float(out.pop("loss"))
    status = "done"
    if trial.diverge_reason is not None:
        status = "diverged"
    elif trial.stop_reason is not None:
        status = "stopped"
    elif not math.isfinite(loss):
        raise TrainerError(
            f"the trainer reported a final loss of {loss}: report the loss curve with report(step, loss) so a "
            "diverged run is recorded as diverged, or fix the run"
        )
    counted = count_params(spec.shape) if arch_known(spec) else None
    note = None
    n_params = out.pop("n_params", None)
    if n_params is None:
        n_params = stated_n_params(spec.model)  # the ladder rung states it
    if n_params is None:
        if counted is None:
            raise TrainerError(
                "the trainer reported no n_params and oasl cannot count this model: report the non-embedding "
                "parameter count (final(loss=..., n_params=...) or a dict with `n_params`), or give it in "
                "the ladder rung (`n_params: ...`)"
            )
        n_params = counted.n_params
    n_params = int(n_params)
    if counted is not None and abs(n_params - counted.n_params) > N_PARAMS_TOLERANCE * counted.n_params:
        note = (
            f"note: a run's n_params is {n_params:,} (reported, or the ladder rung's) but oasl counts "
            f"{counted.n_params:,} for a "
            f"GPT of width {spec.shape.width}, depth {spec.shape.depth}; the reported count is used (check that "
            "it leaves out the embeddings)"
        )
        warnings.warn(note, stacklevel=2)
    n_total = int(out.pop("n_params_total", counted.n_params_total if counted is not None else n_params))
    last = trial.curve[-1] if trial.curve else {}
    tokens = int(out.pop("tokens", last.get("tokens", spec.tokens) if status != "done" else spec.tokens))
    steps_done = int(out.pop("steps", last.get("step", spec.steps) if status != "done" else spec.steps))
    initial = trial.curve[0]["val_loss"] if trial.curve else math.nan
    extra = {k: v for k, v in out.items() if isinstance(v, (int, float, str, bool)) or v is None}
    extra["trainer"] = spec.trainer.kind if spec.trainer is not None else "builtin"
    if note:
        extra["note"] = note
    return RunResult(
        spec=spec,
        status=status,
        final_val_loss=loss if math.isfinite(loss) else math.nan,
        curve=trial.curve,
        n_params=n_params,
        n_params_total=n_total,
        flops=6.0
        * n_params
        * tokens,  # C = 6ND (Kaplan et al. 2020, Sec. 2.1): the model is not oasl's to count
        tokens_trained=tokens,
        steps_done=steps_done,
        tokens_per_s=tokens / wall_s if wall_s > 0 else math.nan,
        wall_s=wall_s,
        initial_val_loss=initial,
        diverged=status == "diverged",
        diverge_reason=trial.diverge_reason,
        stop_reason=trial.stop_reason,
        device=spec.device,
        extra=extra,
    )
