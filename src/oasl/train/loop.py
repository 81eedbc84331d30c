"""The training loop shared by one run (:func:`oasl.train.train`) and K batched runs
(:func:`oasl.train.train_batched`): data, reads, evaluation, curves, divergence, stopping, results.

A :class:`Stepper` owns the model(s) and optimizer(s) of ``n`` members and does one update of all of
them per call; :func:`run_loop` drives it. The loop does not wait on the device every step: each step's
training loss and gradient norm stay on the device and are read together every :func:`read_interval`
steps (and at evaluations), when the curve points are written and divergence is checked. A member found
diverged at a read is recorded as diverged at the step where it happened, exactly as if it had been
checked every step; the few steps the device ran past it are discarded (its result is NaN either way).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from oasl.config import RunSpec
from oasl.train import gns, gns_hessian
from oasl.train.result import RunResult

EVAL_BATCH_SEQS = 8  # held-out batches have a fixed size so every run is scored on the same tokens
READ_EVERY = 16  # steps between host reads of the loss and gradient norm (at most; evaluations also read)
EMA_BETA = 0.9  # smoothing of the training loss for the divergence check

ProgressFn = Callable[[dict[str, float]], None]
StopFn = Callable[[int, float, list[dict[str, float]]], "str | None"]


def read_interval(spec: RunSpec) -> int:
    """Steps between host reads of the training loss: ``min(eval_interval, READ_EVERY)``."""
    return max(1, min(spec.eval_interval, READ_EVERY))


def make_autocast(device: torch.device) -> Callable[[], Any]:
    """bf16 autocast on CUDA (the loop's mixed precision); a no-op context elsewhere (CPU runs in fp32)."""
    if device.type == "cuda":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a host batch to ``device``: through pinned memory and without blocking the host on CUDA."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def eval_batches(data, spec: RunSpec, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The fixed held-out batches of ``spec`` (same tokens for every run), already on ``device``."""
    batches = data.eval_batches(spec.eval_tokens, EVAL_BATCH_SEQS, spec.shape.seq_len)
    return [(to_device(x, device), to_device(y, device)) for x, y in batches]


@torch.no_grad()
def mean_loss(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], batches) -> torch.Tensor:
    """Mean of ``loss_fn(x, y)`` (a scalar or one loss per member) over ``batches``, in float64, on the
    device (no host sync): every batch has the same size, so each weighs the same."""
    return torch.stack([loss_fn(x, y).double() for x, y in batches]).mean(0)


class Stepper(Protocol):
    """The model(s) and optimizer(s) of ``n`` members that :func:`run_loop` drives."""

    n: int

    def step(
        self, step: int, x: torch.Tensor, y: torch.Tensor, snapshot: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One update of every active member on batch ``(x, y)`` at 0-based ``step``. Returns the
        training loss [n] and gradient norm [n] (before clipping) on the device, and when ``snapshot``
        the squared update and squared parameter norms [2, n] (the update ratio's parts)."""
        ...

    def lrs(self, step: int) -> list[float]:
        """Each member's LR (peak x schedule factor, before muP multipliers) used at ``step``."""
        ...

    def evaluate(self, batches) -> torch.Tensor:
        """Mean held-out loss [n] of each member (float64, on the device)."""
        ...

    def finish(self, members: list[int]) -> None:
        """``members`` stopped or diverged: stop updating them (a single run need do nothing)."""
        ...


class MemberLog:
    """One member's curve, status and divergence check, fed with host numbers at each read."""

    def __init__(self, spec: RunSpec, initial: float, progress: ProgressFn | None, stop: StopFn | None):
        self.spec, self.initial, self.progress, self.stop = spec, initial, progress, stop
        self.threshold = spec.diverge_factor * initial
        self.ema: float | None = None
        self.curve: list[dict[str, float]] = []
        self.status, self.reason, self.stop_reason = "done", None, None
        self.final: float | None = None

    @property
    def active(self) -> bool:
        return self.status == "done"

    def add_step(
        self, step: int, lr: float, loss: float, gnorm: float, ratio: tuple[float, float] | None
    ) -> None:
        """Record the point of 0-based ``step``; mark the member diverged if its loss says so."""
        point = {
            "step": step + 1,
            "tokens": (step + 1) * self.spec.batch_tokens,
            "lr": lr,
            "train_loss": loss,
            "grad_norm": gnorm,
        }
        if ratio is not None:
            point["update_ratio"] = math.sqrt(ratio[0] / max(ratio[1], 1e-30))
        self.curve.append(point)
        if not math.isfinite(loss) or not math.isfinite(gnorm):
            self.status, self.reason = "diverged", f"non-finite loss at step {step + 1}"
            return
        self.ema = loss if self.ema is None else EMA_BETA * self.ema + (1 - EMA_BETA) * loss
        if self.ema > self.threshold:
            self.status, self.reason = (
                "diverged",
                f"smoothed train loss {self.ema:.3g} above {self.spec.diverge_factor:g}x the initial "
                f"{self.initial:.3g} at step {step + 1}",
            )

    def add_eval(self, val: float) -> None:
        """Record the held-out loss of the last point (an evaluation step)."""
        self.curve[-1]["val_loss"] = val
        if not math.isfinite(val):
            self.status, self.reason = (
                "diverged",
                f"non-finite validation loss at step {self.curve[-1]['step']}",
            )

    def report(self, points: list[dict[str, float]], tokens_per_s: float) -> None:
        if self.progress is None:
            return
        for p in points:
            self.progress(
                {
                    "step": p["step"],
                    "steps": self.spec.steps,
                    "train_loss": p["train_loss"],
                    "lr": p["lr"],
                    "tokens_per_s": tokens_per_s,
                    "val_loss": p.get("val_loss", math.nan),
                }
            )

    def ask_stop(self) -> None:
        """At an evaluation step: ask ``should_stop``; a reason stops the member (its final loss is this
        evaluation's: nothing changes its weights before the final evaluation would run)."""
        if self.stop is None or not self.active:
            return
        reason = self.stop(self.curve[-1]["step"], self.curve[-1]["val_loss"], self.curve)
        if reason:
            self.status, self.stop_reason = "stopped", reason
            self.final = self.curve[-1]["val_loss"]


def run_extra(members: int, device: torch.device) -> dict[str, Any]:
    """Result fields beside the metrics: the batch's member count when batched, and on CPU the torch
    threads the run trained with (its tokens/s depends on them, and a shared machine's default
    oversubscribes; see :func:`oasl.sweep.executors.worker_threads`)."""
    out: dict[str, Any] = {"batch_members": members} if members > 1 else {}
    if device.type == "cpu":
        out["threads"] = torch.get_num_threads()
    return out


def _read(pending: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor | None]], n: int):
    """One host sync for all queued steps: (step, losses[n], gnorms[n], ratio parts [2, n] or None)."""
    parts = [torch.stack([loss, gn]) for _, loss, gn, _ in pending]
    parts += [r for *_, r in pending if r is not None]
    host = torch.stack(parts).double().cpu().numpy()  # [len(pending) + snapshots, 2, n]
    out, j = [], len(pending)
    for i, (step, *_, r) in enumerate(pending):
        ratio = None
        if r is not None:
            ratio, j = host[j], j + 1
        out.append((step, host[i, 0], host[i, 1], ratio))
    return out


def run_loop(
    specs: Sequence[RunSpec],
    stepper: Stepper,
    data,
    device: torch.device,
    progress: Sequence[ProgressFn | None],
    should_stop: Sequence[StopFn | None],
) -> list:
    """Train ``stepper``'s members (one per spec, all with ``specs[0]``'s steps, batches and evaluation
    settings) to the end or until each has diverged or stopped; return their :class:`RunResult`s."""
    from oasl.models import count_params, flops_per_token

    spec0 = specs[0]
    t_start = time.perf_counter()
    batches = eval_batches(data, spec0, device)
    initial = stepper.evaluate(batches).tolist()
    logs = [MemberLog(s, initial[i], progress[i], should_stop[i]) for i, s in enumerate(specs)]
    steps, every = spec0.steps, read_interval(spec0)
    snapshot_every = max(1, steps // 40)
    rng = np.random.default_rng(spec0.data_order_seed)
    pending: list = []
    finished: set[int] = set()
    train_s, t_train = 0.0, time.perf_counter()
    for step in range(steps):
        x, y = data.batch(rng, spec0.batch_seqs, spec0.shape.seq_len)
        loss, gnorm, ratio = stepper.step(
            step, to_device(x, device), to_device(y, device), step % snapshot_every == 0
        )
        pending.append((step, loss, gnorm, ratio))
        is_eval = (step + 1) % spec0.eval_interval == 0 and step + 1 < steps
        if not (is_eval or (step + 1) % every == 0 or step + 1 == steps):
            continue
        rows = _read(pending, stepper.n)
        lrs = {s: stepper.lrs(s) for s, *_ in rows}
        pending = []
        train_s += time.perf_counter() - t_train
        fresh: list[list[dict[str, float]]] = []
        for i, log in enumerate(logs):
            start = len(log.curve)
            for s, losses, gnorms, r in rows:
                if not log.active:
                    break
                log.add_step(
                    s,
                    lrs[s][i],
                    float(losses[i]),
                    float(gnorms[i]),
                    None if r is None else (r[0][i], r[1][i]),
                )
            fresh.append(log.curve[start:])
        if is_eval and any(log.active for log in logs):
            vals = stepper.evaluate(batches).tolist()
            for i, log in enumerate(logs):
                if log.active and log.curve[-1]["step"] == step + 1:
                    log.add_eval(vals[i])
                    record_noise(stepper, data, log.spec, log.curve[-1], step + 1)
        tokens_per_s = (step + 1) * spec0.batch_tokens / max(train_s, 1e-9)
        for log, pts in zip(logs, fresh, strict=True):
            log.report(pts, tokens_per_s)
        if is_eval:
            for log in logs:
                log.ask_stop()
        if not any(log.active for log in logs):
            break
        ended = [i for i, log in enumerate(logs) if not log.active and i not in finished]
        if ended:
            finished.update(ended)
            stepper.finish(ended)
        t_train = time.perf_counter()

    last = [i for i, log in enumerate(logs) if log.active]
    if last:
        final = stepper.evaluate(batches).tolist()
        for i in last:
            logs[i].final = final[i]
            logs[i].curve[-1]["val_loss"] = final[i]
            record_noise(stepper, data, logs[i].spec, logs[i].curve[-1], logs[i].curve[-1]["step"])
    wall = time.perf_counter() - t_start
    counts, fpt = count_params(spec0.shape), flops_per_token(spec0.shape)
    results = []
    for i, log in enumerate(logs):
        final_v = math.nan if log.status == "diverged" else float(log.final)
        status, reason = log.status, log.reason
        if status != "diverged" and not math.isfinite(final_v):
            status, reason, final_v = "diverged", "non-finite final validation loss", math.nan
        steps_done = len(log.curve)
        tokens = steps_done * spec0.batch_tokens
        results.append(
            RunResult(
                spec=log.spec,
                status=status,
                final_val_loss=final_v,
                curve=log.curve,
                n_params=counts.n_params,
                n_params_total=counts.n_params_total,
                flops=fpt * tokens,
                tokens_trained=tokens,
                steps_done=steps_done,
                tokens_per_s=tokens / max(train_s, 1e-9),
                wall_s=wall,
                initial_val_loss=initial[i],
                diverged=status == "diverged",
                diverge_reason=reason,
                stop_reason=log.stop_reason,
                corpus_hash=data.corpus_hash,
                device=str(device),
                extra=run_extra(stepper.n, device),
            )
        )
    return results


def record_noise(stepper, data, spec, point: dict, step: int) -> None:
    """Add the noise-scale fields to the curve ``point`` of evaluation ``step`` when ``spec.gns`` is set,
    and the Hessian-weighted ones (:mod:`oasl.train.gns_hessian`) when ``spec.gns_hessian`` is too.

    Measured on the single-run path (a stepper with one ``model``); K runs batched as one vmapped model
    (:func:`oasl.train.train_batched`) are not measured: per-member gradients would need the stacked
    parameters split, which this first version leaves out."""
    if not spec.gns or not hasattr(stepper, "model"):
        return
    batches = gns.measurement_batches(
        data, spec.seed, step, spec.batch_seqs, spec.shape.seq_len, stepper.device
    )
    b = int(batches[0][0].shape[0])
    if not spec.gns_hessian:  # one gradient in memory at a time
        point.update(gns.measure(stepper.model, batches, stepper.autocast).curve_fields())
        return
    grads = gns.micro_grads(stepper.model, batches, stepper.autocast)  # B_noise reuses them
    point.update(gns.from_grads(grads, b).curve_fields())
    gns_hessian.record(stepper, data, spec, point, step, grads)
