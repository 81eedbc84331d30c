"""K runs of one shape trained as one stacked model in one process: ``train_batched(specs)``.

Small models leave a CPU's vector units and a GPU's cores mostly idle; stacking the K members of a sweep
group along a leading dimension turns K small matrix products into one batched product, and K optimizer
steps into a few tensor operations. The model is :class:`oasl.models.GPT` itself, run through
``torch.func.functional_call`` under ``torch.func.vmap`` over the stacked parameters, so the batched model
has no second copy of the model's math (muP multipliers, attention scale, init all come from GPT). The
update rules are :class:`oasl.optim.stacked.StackedOptimizer`'s (AdamW, SGD, Lion: those of the torch
optimizers ``make_optimizer`` builds).

Members share the shape, batch size, token budget, data order (``data_seed``, so every member sees the
same batches: comparisons between them are paired) and evaluation settings (:func:`batch_signature`);
each has its own seed-determined init (drawn exactly as :func:`oasl.train.train` draws it), lr,
schedule, hyperparameters, gradient clipping, optimizer state, curve and divergence check. A member that
diverges or is stopped has its parameters and state set to zero and its loss masked out of the backward
pass; the others' arithmetic does not involve it, so their numbers are exactly those of a batch without it.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence

import numpy as np
import torch

from oasl.config import RunSpec
from oasl.errors import TrainError
from oasl.optim.stacked import BATCHED_OPTIMIZERS, Segment, StackedOptimizer
from oasl.train.loop import ProgressFn, StopFn, make_autocast, mean_loss, run_loop
from oasl.train.memory import check_fits_memory
from oasl.train.result import RunResult
from oasl.train.run import get_dataset, maybe_compile, resolve_device

__all__ = ["BATCHED_OPTIMIZERS", "batch_signature", "train_batched"]


@contextlib.contextmanager
def _quiet():
    """Silence two warnings that torch raises on every batched step and that say nothing actionable:
    the stacked parameters are strided views of one flat [K, P] tensor with .grad views of one flat
    gradient (autograd accumulates into them in place but warns that they are not dense; the layout is
    deliberate: the optimizer works on whole rows), and torch's CPU flash-attention kernel has no vmap
    batching rule, so vmap calls it once per member. Measured on 2 cores at width 32, that is still
    faster than the math kernel (one batched matmul, but extra masking passes), and it is the kernel
    train() uses, so members match single runs more closely."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout contract")
        warnings.filterwarnings("ignore", message=r"There is a performance drop .*scaled_dot_product")
        yield


def batch_signature(spec: RunSpec) -> tuple:
    """What runs must share to train in one batch: shape, parametrization (base width, output_mult), optimizer,
    batch size, token budget, data order (``data_seed`` resolved), evaluation settings, corpus, device
    (resolved) and ``compile``. Specs with equal signatures can be passed together to
    :func:`train_batched`; lr, schedule, hyperparameters, seed, gradient clipping and the divergence
    factor may differ between members."""
    return (
        spec.shape.model_dump_json(),
        spec.parametrization,
        spec.base_width if spec.parametrization == "mup" else None,
        spec.output_mult,
        spec.optimizer,
        spec.batch_seqs,
        spec.tokens,
        spec.data_order_seed,
        spec.eval_interval,
        spec.eval_tokens,
        spec.corpus.model_dump_json(),
        str(resolve_device(spec.device)),
        spec.compile,
    )


class _StackedStepper:
    """K GPTs as rows of one flat parameter tensor [K, P], stepped together under vmap."""

    def __init__(self, specs: Sequence[RunSpec], device: torch.device):
        from torch.func import functional_call, vmap

        from oasl.models import GPT, Parametrization
        from oasl.optim import lr_curve, param_groups

        spec0 = specs[0]
        self.specs, self.n, self.device = list(specs), len(specs), device
        models = []
        for s in specs:
            torch.manual_seed(s.seed)  # each member's init exactly as train() draws it
            models.append(GPT(s.shape, Parametrization.of(s)).to(device))
        base = models[0]
        names = {id(p): name for name, p in base.named_parameters()}
        layout, segments, off = [], [], 0
        for g in param_groups(base, spec0.optimizer):  # contiguous columns per group, as make_optimizer's
            start = off
            for p in g["params"]:
                layout.append((names[id(p)], off, p.shape))
                off += p.numel()
            segments.append(Segment(start, off, g["lr_mult"], "weight_decay" not in g, g.get("wd_mult", 1.0)))
        self.flat = torch.empty(self.n, off, device=device)
        self.grad = torch.zeros_like(self.flat)
        self.params: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for k, m in enumerate(models):
                own = dict(m.named_parameters())
                for name, start, _ in layout:
                    self.flat[k, start : start + own[name].numel()] = own[name].reshape(-1)
        for name, start, shp in layout:
            n = int(np.prod(shp))
            # leaves that alias the flat rows: the optimizer updates the flat tensor in place, and
            # autograd accumulates into .grad views of one flat gradient tensor
            leaf = self.flat[:, start : start + n].view(self.n, *shp).detach().requires_grad_()
            leaf.grad = self.grad[:, start : start + n].view(self.n, *shp)
            self.params[name] = leaf
        self.buffers = {
            name: torch.stack([dict(m.named_buffers())[name] for m in models])
            for name, _ in base.named_buffers()
        }
        del models[1:]

        def member_loss(params, buffers, x, y):
            return functional_call(base, (params, buffers), (x, y))[1]

        self.loss_fn = maybe_compile(vmap(member_loss, in_dims=(0, 0, None, None)), spec0)
        self.base = base
        self.autocast = make_autocast(device)
        self.opt = StackedOptimizer(spec0.optimizer, self.flat, segments, [s.hps for s in specs])
        self.lr_table = np.stack([lr_curve(s.schedule, spec0.steps, s.lr) for s in specs])  # [K, steps]
        clip = [s.grad_clip if s.grad_clip is not None else float("inf") for s in specs]
        self.clip = torch.tensor(clip, device=device)
        self.active = torch.ones(self.n, dtype=torch.bool, device=device)
        self.dead: torch.Tensor | None = None

    def lrs(self, step: int) -> list[float]:
        return self.lr_table[:, step].tolist()

    def _losses(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with self.autocast(), _quiet():
            return self.loss_fn(self.params, self.buffers, x, y)

    def step(self, step: int, x: torch.Tensor, y: torch.Tensor, snapshot: bool):
        self.grad.zero_()
        losses = self._losses(x, y)
        # finished members' losses are masked out: their gradients are exactly zero, never NaN
        with _quiet():
            torch.where(self.active, losses, torch.zeros_like(losses)).sum().backward()
        with torch.no_grad():
            # per-member global norm and clipping, as torch.nn.utils.clip_grad_norm_ on each model
            norms = torch.linalg.vector_norm(self.grad, dim=1)
            coef = (self.clip / (norms + 1e-6)).clamp(max=1.0)
            self.grad.mul_(coef.unsqueeze(1))
            before = self.flat.clone() if snapshot else None
            self.opt.step(self.grad, self.lr_table[:, step])
            if self.dead is not None:
                self._zero(self.dead)
            ratio = None
            if before is not None:
                ratio = torch.stack(
                    [(self.flat - before).pow(2).double().sum(1), before.pow(2).double().sum(1)]
                )
        return losses.detach().float(), norms, ratio

    def evaluate(self, batches) -> torch.Tensor:
        with torch.no_grad():
            return mean_loss(self._losses, batches)

    def _zero(self, members: torch.Tensor) -> None:
        self.flat.index_fill_(0, members, 0.0)
        self.opt.zero_members(members)

    def finish(self, members: list[int]) -> None:
        idx = torch.tensor(members, device=self.device)
        self.active[idx] = False
        self.dead = torch.nonzero(~self.active).flatten()
        with torch.no_grad():
            self._zero(self.dead)


def _check(specs: Sequence[RunSpec], hooks, what: str) -> list:
    if hooks is None or callable(hooks):
        return [hooks] * len(specs)
    hooks = list(hooks)
    if len(hooks) != len(specs):
        raise TrainError(
            f"train_batched got {len(hooks)} {what} hooks for {len(specs)} specs: pass one per spec"
        )
    return hooks


def train_batched(
    specs: Sequence[RunSpec],
    progress: ProgressFn | Sequence[ProgressFn | None] | None = None,
    should_stop: Sequence[StopFn | None] | None = None,
) -> list[RunResult]:
    """Train the K runs ``specs`` (equal :func:`batch_signature`, optimizer in
    :data:`BATCHED_OPTIMIZERS`) as one stacked model; return one :class:`RunResult` per spec, in order.

    Each result is the run that :func:`oasl.train.train` would produce for its spec, to float rounding
    (same curve keys, statuses and divergence rule). ``progress`` is one callable for all members or a
    list with one callable (or None) per member, called with :func:`oasl.train.train`'s dict.
    ``should_stop`` is a list with one ``should_stop(step, val_loss, curve)`` (or None) per member,
    called at evaluation steps: a reason stops that member (status "stopped"), the others go on.
    Raises :class:`TrainError` for an empty list, mixed signatures, an optimizer that cannot be batched
    or members that together do not fit in the device's memory (:func:`oasl.train.memory.check_fits_memory`).
    """
    specs = list(specs)
    if not specs:
        raise TrainError("train_batched got no specs: pass at least one RunSpec")
    bad = sorted({s.optimizer for s in specs} - BATCHED_OPTIMIZERS)
    if bad:
        raise TrainError(
            f"optimizer {', '.join(bad)} cannot be batched (batched: {', '.join(sorted(BATCHED_OPTIMIZERS))}): "
            "train its runs one per process with train()"
        )
    sig = batch_signature(specs[0])
    for i, s in enumerate(specs[1:], 1):
        if batch_signature(s) != sig:
            fields = (
                "shape",
                "parametrization",
                "base_width",
                "output_mult",
                "optimizer",
                "batch_seqs",
                "tokens",
                "data order (data_seed)",
                "eval_interval",
                "eval_tokens",
                "corpus",
                "device",
                "compile",
            )
            diff = [f for f, a, b in zip(fields, sig, batch_signature(s), strict=True) if a != b]
            raise TrainError(
                f"spec {i} cannot share a batch with spec 0: they differ in {', '.join(diff)}; "
                "group specs by batch_signature() first"
            )
    progress_fns = _check(specs, progress, "progress")
    stop_fns = _check(specs, should_stop, "should_stop")
    if any(s.gns for s in specs):  # the noise scale is measured on one model's gradients (oasl.train.gns)
        from oasl.train.run import train

        return [train(s, p, f) for s, p, f in zip(specs, progress_fns, stop_fns, strict=True)]
    check_fits_memory(specs)
    device = resolve_device(specs[0].device)
    data = get_dataset(specs[0])
    data.check_fits(specs[0].shape.seq_len, specs[0].shape.vocab_size)
    stepper = _StackedStepper(specs, device)
    return run_loop(specs, stepper, data, device, progress_fns, stop_fns)
