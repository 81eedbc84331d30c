"""Optimizers over K stacked models: the update rules of the registry's AdamW, SGD and Lion applied to
the rows of a flat ``[K, P]`` parameter tensor, one row per model (a batched sweep's members).

Each member keeps its own learning rate, schedule, hyperparameters and state. The per-element arithmetic
follows torch's single-tensor ``AdamW``/``SGD`` and :class:`oasl.optim.lion.Lion` step by step (the same
operations in the same order, with each member's scalars rounded to float32 as torch's kernels round a
Python scalar), so a member's trajectory matches the same run trained alone with
:func:`oasl.optim.make_optimizer` to float rounding.

Parameter groups are those of :func:`oasl.optim.param_groups`: a :class:`Segment` is one group's
contiguous slice of the flat row, with its muP LR multiplier and whether (and how much, ``wd_mult``) it
decays, exactly as :func:`oasl.optim.make_optimizer` configures the torch optimizer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from oasl.errors import TrainError

BATCHED_OPTIMIZERS = frozenset({"adamw", "sgd", "lion"})


@dataclass(frozen=True)
class Segment:
    """Columns ``start:end`` of the flat rows: one param group (``lr_mult``; ``decay`` False = no weight
    decay; ``wd_mult`` scales the decay of a decayed muP group, see :func:`oasl.optim.param_groups`)."""

    start: int
    end: int
    lr_mult: float
    decay: bool
    wd_mult: float = 1.0


class StackedOptimizer:
    """The update of registry optimizer ``name`` for K members stored as rows of ``params`` [K, P].

    ``hps`` holds each member's validated hyperparameters (registry names). :meth:`step` takes the
    flat gradient [K, P] and each member's current LR (peak x schedule factor, before muP multipliers).
    State tensors have the shape of ``params`` and start at zero, as torch's do.
    """

    def __init__(self, name: str, params: torch.Tensor, segments: list[Segment], hps: list[dict[str, float]]):
        if name not in BATCHED_OPTIMIZERS:
            raise TrainError(
                f"optimizer {name!r} cannot be batched (batched: {', '.join(sorted(BATCHED_OPTIMIZERS))}): "
                "train its runs one per process"
            )
        if len(hps) != params.shape[0]:
            raise TrainError(f"{len(hps)} hyperparameter sets for {params.shape[0]} stacked members")
        self.name, self.params, self.segments = name, params, segments
        self.k = params.shape[0]
        self.t = 0
        self.hp = {h: np.array([m[h] for m in hps], dtype=np.float64) for h in hps[0]}
        n_state = {"adamw": 2, "sgd": 1, "lion": 1}[name]
        self.state = [torch.zeros_like(params) for _ in range(n_state)]
        if name == "sgd":
            nest = (self.hp["nesterov"] != 0) & (self.hp["momentum"] > 0)  # as the registry's _sgd builder
            self.nesterov = None if not nest.any() else torch.tensor(nest, device=params.device).view(-1, 1)
        pin = params.device.type == "cuda"
        self._pin = pin

    def _coefs(self, rows: list[np.ndarray]) -> torch.Tensor:
        """Per-member scalars (float64 on the host) as one float32 [n, K, 1] device tensor: one copy."""
        host = torch.from_numpy(np.stack(rows).astype(np.float32)).view(len(rows), self.k, 1)
        if self._pin:
            host = host.pin_memory()
        return host.to(self.params.device, non_blocking=True)

    def _seg_lr_wd(self, lrs: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        wd = self.hp["weight_decay"]
        for s in self.segments:
            lr = lrs * s.lr_mult  # set_lr: peak * factor * lr_mult, in float64 as there
            out.append((lr, wd * s.wd_mult if s.decay else np.zeros_like(wd)))
        return out

    @torch.no_grad()
    def step(self, grads: torch.Tensor, lrs: np.ndarray) -> None:
        """One update of every member: ``grads`` [K, P] (already clipped), ``lrs`` [K] (float64)."""
        self.t += 1
        getattr(self, f"_{self.name}")(grads, np.asarray(lrs, dtype=np.float64))

    def _adamw(self, grads: torch.Tensor, lrs: np.ndarray) -> None:
        # torch.optim.adam._single_tensor_adam with decoupled weight decay (AdamW).
        b1, b2, eps = self.hp["beta1"], self.hp["beta2"], self.hp["eps"]
        bc1, bc2 = 1 - b1**self.t, 1 - b2**self.t
        rows = [1 - b1, 1 - b2, b2, np.sqrt(bc2), eps]
        for lr, wd in self._seg_lr_wd(lrs):
            rows += [1 - lr * wd, -(lr / bc1)]
        c = self._coefs(rows)
        w1, w2, beta2, bc2_sqrt, eps_t = c[0], c[1], c[2], c[3], c[4]
        m_all, v_all = self.state
        for i, s in enumerate(self.segments):
            p, g = self.params[:, s.start : s.end], grads[:, s.start : s.end]
            m, v = m_all[:, s.start : s.end], v_all[:, s.start : s.end]
            decay, neg_step = c[5 + 2 * i], c[6 + 2 * i]
            p.mul_(decay)
            m.lerp_(g, w1)
            v.mul_(beta2).addcmul_(g * w2, g)
            denom = (v.sqrt() / bc2_sqrt).add_(eps_t)
            p.addcdiv_(m * neg_step, denom)

    def _sgd(self, grads: torch.Tensor, lrs: np.ndarray) -> None:
        # torch.optim.sgd._single_tensor_sgd: coupled L2 decay, heavy-ball or Nesterov momentum, no dampening.
        rows = [self.hp["momentum"]]
        for lr, wd in self._seg_lr_wd(lrs):
            rows += [wd, -lr]
        c = self._coefs(rows)
        mom = c[0]
        (buf_all,) = self.state
        for i, s in enumerate(self.segments):
            p, g = self.params[:, s.start : s.end], grads[:, s.start : s.end]
            buf = buf_all[:, s.start : s.end]
            wd, neg_lr = c[1 + 2 * i], c[2 + 2 * i]
            if s.decay:
                g = g.addcmul(p, wd)
            buf.mul_(mom).add_(g)  # the first step gives buf = g, as torch's clone of the gradient
            upd = buf
            if self.nesterov is not None:
                upd = torch.where(self.nesterov, g.addcmul(buf, mom), buf)
            p.addcmul_(upd, neg_lr)

    def _lion(self, grads: torch.Tensor, lrs: np.ndarray) -> None:
        # oasl.optim.lion.Lion.step (Chen et al. 2023, Algorithm 2).
        b1, b2 = self.hp["beta1"], self.hp["beta2"]
        rows = [b1, 1 - b1, b2, 1 - b2]
        for lr, wd in self._seg_lr_wd(lrs):
            rows += [1 - lr * wd, -lr]
        c = self._coefs(rows)
        (m_all,) = self.state
        for i, s in enumerate(self.segments):
            p, g = self.params[:, s.start : s.end], grads[:, s.start : s.end]
            m = m_all[:, s.start : s.end]
            decay, neg_lr = c[4 + 2 * i], c[5 + 2 * i]
            update = (m * c[0]).addcmul_(g, c[1]).sign_()
            if s.decay:
                p.mul_(decay)
            p.addcmul_(update, neg_lr)
            m.mul_(c[2]).addcmul_(g, c[3])

    @torch.no_grad()
    def zero_members(self, members: torch.Tensor) -> None:
        """Zero the state rows of ``members`` (an index tensor): a finished member holds finite zeros."""
        for s in self.state:
            s.index_fill_(0, members, 0.0)
