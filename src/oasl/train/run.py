"""One training run, end to end: ``train(spec) -> RunResult``.

Divergence is a result, not a crash: a non-finite loss, or a smoothed training loss far above the
initial loss, stops the run early and is recorded with its reason. On CPU the same spec and seed
give the same losses (one thread count, same machine). The loop itself (reads, evaluation, curve,
divergence, stopping) is :func:`oasl.train.loop.run_loop`, shared with :func:`oasl.train.train_batched`.
"""

from __future__ import annotations

from typing import Any

import torch

from oasl.config import RunSpec
from oasl.train.loop import EVAL_BATCH_SEQS, ProgressFn, StopFn, make_autocast, mean_loss, run_loop
from oasl.train.memory import check_fits_memory, resolve_device
from oasl.train.result import RunResult

__all__ = ["EVAL_BATCH_SEQS", "RunResult", "evaluate", "get_dataset", "resolve_device", "train"]

_DATASETS: dict[str, Any] = {}


def get_dataset(spec: RunSpec):
    """The token dataset of ``spec.corpus``, cached per process."""
    from oasl.data import TokenDataset

    k = spec.corpus.model_dump_json()
    if k not in _DATASETS:
        _DATASETS[k] = TokenDataset.from_spec(spec.corpus)
    return _DATASETS[k]


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches, device: torch.device, autocast) -> float:
    """Mean loss (nats/token) of ``model`` over ``batches`` (each weighted equally: they have the same size)."""
    was_training = model.training
    model.eval()

    def loss_fn(x, y):
        with autocast():
            return model(x.to(device), y.to(device))[1]

    out = float(mean_loss(loss_fn, batches))
    model.train(was_training)
    return out


def maybe_compile(fn, spec: RunSpec):
    """``torch.compile(fn)`` when ``spec.compile`` is set, else ``fn``."""
    return torch.compile(fn) if spec.compile else fn


class _SingleStepper:
    """One model and its torch optimizer (any registry optimizer), driven by :func:`run_loop`."""

    n = 1

    def __init__(self, spec: RunSpec, device: torch.device):
        from oasl.models import GPT, Parametrization
        from oasl.optim import make_optimizer

        self.spec, self.device = spec, device
        torch.manual_seed(spec.seed)
        self.model = GPT(spec.shape, Parametrization.of(spec)).to(device)
        # torch's fused AdamW kernel on CUDA: one launch per step instead of several per tensor
        self.opt = make_optimizer(self.model, spec.optimizer, spec.lr, spec.hps, fused=device.type == "cuda")
        self.forward = maybe_compile(self.model, spec)
        self.autocast = make_autocast(device)
        self.clip = spec.grad_clip if spec.grad_clip is not None else float("inf")
        self.model.train()

    def lrs(self, step: int) -> list[float]:
        from oasl.optim import lr_factor

        return [self.spec.lr * lr_factor(self.spec.schedule, step, self.spec.steps)]

    def step(self, step: int, x: torch.Tensor, y: torch.Tensor, snapshot: bool):
        from oasl.optim import lr_factor, set_lr

        set_lr(self.opt, self.spec.lr, lr_factor(self.spec.schedule, step, self.spec.steps))
        with self.autocast():
            _, loss = self.forward(x, y)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        params = list(self.model.parameters())
        before = [p.detach().clone() for p in params] if snapshot else None
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        ratio = None
        if before is not None:
            with torch.no_grad():
                num = torch.stack([(p - b).pow(2).sum() for p, b in zip(params, before, strict=True)])
                den = torch.stack([b.pow(2).sum() for b in before])
                ratio = torch.stack([num.double().sum(), den.double().sum()]).view(2, 1)
        return loss.detach().reshape(1), gnorm.detach().reshape(1), ratio

    def evaluate(self, batches) -> torch.Tensor:
        self.model.eval()
        with self.autocast():
            out = mean_loss(lambda x, y: self.model(x, y)[1], batches).reshape(1)
        self.model.train()
        return out

    def finish(self, members: list[int]) -> None:
        pass


def train(spec: RunSpec, progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> RunResult:
    """Train the model of ``spec`` for ``spec.steps`` steps and evaluate it.

    ``progress`` is called after every step with a dict (step, steps, train_loss, lr, tokens_per_s,
    val_loss when evaluated); calls come in bursts at each read of the device (every
    :func:`oasl.train.loop.read_interval` steps). ``should_stop(step, val_loss, curve)`` is called at
    each evaluation and may return a reason to stop early (multi-fidelity pruning, divergence
    prediction): the run is then recorded with status "stopped". Returns a :class:`RunResult`.
    Raises :class:`TrainError`, before allocating, when the model cannot fit in the device's memory
    (:func:`oasl.train.memory.check_fits_memory`).
    """
    check_fits_memory(spec)
    device = resolve_device(spec.device)
    data = get_dataset(spec)
    data.check_fits(spec.shape.seq_len, spec.shape.vocab_size)
    stepper = _SingleStepper(spec, device)
    return run_loop([spec], stepper, data, device, [progress], [should_stop])[0]
