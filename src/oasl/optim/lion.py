"""Lion optimizer (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", arXiv 2302.06675,
Algorithm 2): the update is the sign of an interpolation of momentum and gradient, with decoupled weight
decay; the momentum is then updated with a second coefficient."""

from __future__ import annotations

import torch
from torch.optim import Optimizer


class Lion(Optimizer):
    """Lion: ``u = sign(b1 m + (1 - b1) g)``; ``p -= lr (u + wd p)``; ``m = b2 m + (1 - b2) g``."""

    def __init__(
        self, params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99), weight_decay: float = 0.0
    ):
        if lr <= 0:
            raise ValueError(f"invalid lr {lr}")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"invalid betas {betas}")
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                m = state["exp_avg"]
                update = (m * beta1).add_(p.grad, alpha=1 - beta1).sign_()
                if group["weight_decay"]:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(update, alpha=-group["lr"])
                m.mul_(beta2).add_(p.grad, alpha=1 - beta2)
        return loss
