"""One training run, end to end: ``train(spec) -> RunResult``.

Divergence is a result, not a crash: a non-finite loss, or a smoothed training loss far above the
initial loss, stops the run early and is recorded with its reason. On CPU the same spec and seed
give the same losses (one thread count, same machine).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from oasl.config import RunSpec
from oasl.errors import TrainError

EVAL_BATCH_SEQS = 8  # held-out batches have a fixed size so every run is scored on the same tokens
_DATASETS: dict[str, Any] = {}


@dataclass
class RunResult:
    """What one run produced. ``status`` is "done", "diverged" or "stopped" (stopped early on purpose).

    ``final_val_loss`` is the mean cross-entropy (nats/token) over the fixed held-out batches at the
    end (NaN when diverged). ``curve`` holds one dict per step: step, tokens, lr, train_loss,
    grad_norm, and val_loss / update_ratio at evaluation steps. ``flops`` counts training FLOPs
    (``flops_per_token * tokens_trained``).
    """

    spec: RunSpec
    status: str
    final_val_loss: float
    curve: list[dict[str, float]]
    n_params: int
    n_params_total: int
    flops: float
    tokens_trained: int
    steps_done: int
    tokens_per_s: float
    wall_s: float
    initial_val_loss: float
    diverged: bool = False
    diverge_reason: str | None = None
    stop_reason: str | None = None
    corpus_hash: str = ""
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        """Scalar results as a JSON-able dict (what the store keeps beside the spec)."""
        out = {
            "final_val_loss": self.final_val_loss if math.isfinite(self.final_val_loss) else None,
            "initial_val_loss": self.initial_val_loss,
            "n_params": self.n_params,
            "n_params_total": self.n_params_total,
            "flops": self.flops,
            "tokens_trained": self.tokens_trained,
            "steps_done": self.steps_done,
            "tokens_per_s": self.tokens_per_s,
            "wall_s": self.wall_s,
            "diverged": self.diverged,
            "diverge_reason": self.diverge_reason,
            "stop_reason": self.stop_reason,
            "device": self.device,
        }
        out.update(self.extra)
        return out

    def curve_frame(self):
        import pandas as pd

        return pd.DataFrame(self.curve)


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda if available, else cpu; otherwise the named device (TrainError if unusable)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise TrainError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainError(f"device {device!r} asked for but CUDA is not available: use --device cpu or auto")
    return dev


def get_dataset(spec: RunSpec):
    """The token dataset of ``spec.corpus``, cached per process."""
    from oasl.data import TokenDataset

    k = spec.corpus.model_dump_json()
    if k not in _DATASETS:
        _DATASETS[k] = TokenDataset.from_spec(spec.corpus)
    return _DATASETS[k]


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches, device: torch.device, autocast) -> float:
    """Mean loss over ``batches`` (each weighted equally: they have the same size)."""
    was_training = model.training
    model.eval()
    total = 0.0
    for x, y in batches:
        with autocast():
            _, loss = model(x.to(device), y.to(device))
        total += float(loss)
    model.train(was_training)
    return total / len(batches)


def _noise_scale(model, data, spec: RunSpec, step: int, device, autocast) -> dict[str, float]:
    """Gradient noise scale fields for the curve (oasl.train.gns); the trajectory is not disturbed."""
    from oasl.train import gns

    batches = gns.measurement_batches(data, spec.seed, step, spec.batch_seqs, spec.shape.seq_len, device)
    return gns.measure(model, batches, autocast).curve_fields()


ProgressFn = Callable[[dict[str, float]], None]
StopFn = Callable[[int, float, list[dict[str, float]]], "str | None"]


def train(spec: RunSpec, progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> RunResult:
    """Train the model of ``spec`` for ``spec.steps`` steps and evaluate it.

    ``progress`` is called after every step with a dict (step, steps, train_loss, lr, tokens_per_s,
    val_loss when evaluated). ``should_stop(step, val_loss, curve)`` is called at each evaluation and
    may return a reason to stop early (multi-fidelity pruning, divergence prediction): the run is
    then recorded with status "stopped". Returns a :class:`RunResult`.
    """
    from oasl.models import GPT, Parametrization, count_params, flops_per_token
    from oasl.optim import lr_factor, make_optimizer, set_lr

    device = resolve_device(spec.device)
    data = get_dataset(spec)
    data.check_fits(spec.shape.seq_len, spec.shape.vocab_size)
    torch.manual_seed(spec.seed)
    rng = np.random.default_rng(spec.seed)
    model = GPT(spec.shape, Parametrization(spec.parametrization, spec.base_width)).to(device)
    opt = make_optimizer(model, spec.optimizer, spec.lr, spec.hps)
    counts = count_params(spec.shape)
    fpt = flops_per_token(spec.shape)
    if device.type == "cuda":

        def autocast():
            return torch.autocast("cuda", dtype=torch.bfloat16)
    else:
        autocast = contextlib.nullcontext

    eval_batches = data.eval_batches(spec.eval_tokens, EVAL_BATCH_SEQS, spec.shape.seq_len)
    initial = evaluate(model, eval_batches, device, autocast)
    steps, bt = spec.steps, spec.batch_tokens
    threshold = spec.diverge_factor * initial
    ema, beta = None, 0.9
    curve: list[dict[str, float]] = []
    status, reason, stop_reason = "done", None, None
    train_s = 0.0
    t_start = time.perf_counter()
    snapshot_every = max(1, steps // 40)
    model.train()
    step = 0
    for step in range(steps):
        t0 = time.perf_counter()
        lr = set_lr(opt, spec.lr, lr_factor(spec.schedule, step, steps))
        x, y = data.batch(rng, spec.batch_seqs, spec.shape.seq_len)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast():
            _, loss = model(x, y)
        loss.backward()
        if spec.grad_clip is not None:
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
        else:
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
        before = None
        if step % snapshot_every == 0:
            before = [p.detach().clone() for p in model.parameters()]
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss_v, gnorm_v = float(loss.detach()), float(gnorm)
        train_s += time.perf_counter() - t0
        point = {
            "step": step + 1,
            "tokens": (step + 1) * bt,
            "lr": lr,
            "train_loss": loss_v,
            "grad_norm": gnorm_v,
        }
        if before is not None:
            with torch.no_grad():
                num = sum(
                    float((p - b).pow(2).sum()) for p, b in zip(model.parameters(), before, strict=True)
                )
                den = sum(float(b.pow(2).sum()) for b in before)
            point["update_ratio"] = math.sqrt(num / max(den, 1e-30))
        if not math.isfinite(loss_v) or not math.isfinite(gnorm_v):
            status, reason = "diverged", f"non-finite loss at step {step + 1}"
        else:
            ema = loss_v if ema is None else beta * ema + (1 - beta) * loss_v
            if ema > threshold:
                status, reason = (
                    "diverged",
                    (
                        f"smoothed train loss {ema:.3g} above {spec.diverge_factor:g}x the initial {initial:.3g} at step {step + 1}"
                    ),
                )
        is_eval = (step + 1) % spec.eval_interval == 0 and step + 1 < steps
        if is_eval and status == "done":
            point["val_loss"] = evaluate(model, eval_batches, device, autocast)
            if spec.gns:
                point.update(_noise_scale(model, data, spec, step + 1, device, autocast))
            if not math.isfinite(point["val_loss"]):
                status, reason = "diverged", f"non-finite validation loss at step {step + 1}"
        curve.append(point)
        if progress is not None:
            progress(
                {
                    "step": step + 1,
                    "steps": steps,
                    "train_loss": loss_v,
                    "lr": lr,
                    "tokens_per_s": (step + 1) * bt / max(train_s, 1e-9),
                    "val_loss": point.get("val_loss", math.nan),
                }
            )
        if status != "done":
            break
        if is_eval and should_stop is not None:
            stop_reason = should_stop(step + 1, point["val_loss"], curve)
            if stop_reason:
                status = "stopped"
                break

    steps_done = step + 1 if steps else 0
    if status == "diverged":
        final = math.nan
    else:
        final = evaluate(model, eval_batches, device, autocast)
        if status == "done":
            curve[-1]["val_loss"] = final
            if spec.gns:
                curve[-1].update(_noise_scale(model, data, spec, steps_done, device, autocast))
        if not math.isfinite(final):
            status, reason, final = "diverged", "non-finite final validation loss", math.nan
    tokens = steps_done * bt
    return RunResult(
        spec=spec,
        status=status,
        final_val_loss=final,
        curve=curve,
        n_params=counts.n_params,
        n_params_total=counts.n_params_total,
        flops=fpt * tokens,
        tokens_trained=tokens,
        steps_done=steps_done,
        tokens_per_s=tokens / max(train_s, 1e-9),
        wall_s=time.perf_counter() - t_start,
        initial_val_loss=initial,
        diverged=status == "diverged",
        diverge_reason=reason,
        stop_reason=stop_reason,
        corpus_hash=data.corpus_hash,
        device=str(device),
    )
