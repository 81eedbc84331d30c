"""Optimizers (registry by name, param groups with muP multipliers) and LR schedules."""

from __future__ import annotations

import torch

from oasl.optim.groups import param_groups
from oasl.optim.registry import HP, REGISTRY, OptimizerEntry, get_optimizer, validate_hps
from oasl.optim.schedules import lr_curve, lr_factor, parse_schedule


def make_optimizer(
    model: torch.nn.Module,
    optimizer: str,
    lr: float,
    hps: dict[str, float],
    decay_embeddings: bool = False,
    fused: bool = False,
) -> torch.optim.Optimizer:
    """Build ``optimizer`` (a registry name) over ``model`` with peak ``lr`` and validated ``hps``.

    Every param group keeps ``lr_mult``; :func:`set_lr` applies ``peak * factor * lr_mult``. muP groups
    with weight decay get it scaled by ``wd_mult`` (see :func:`param_groups`). ``fused=True`` selects
    torch's fused AdamW kernel when the optimizer is AdamW (meant for CUDA; other optimizers ignore it).
    """
    entry = get_optimizer(optimizer)
    full = validate_hps(entry.name, hps)
    groups = param_groups(model, entry.name, decay_embeddings=decay_embeddings)
    opt = entry.build(groups, lr, full)
    for g in opt.param_groups:
        if "wd_mult" in g:
            g["weight_decay"] = g["weight_decay"] * g["wd_mult"]
        if fused and type(opt) is torch.optim.AdamW:
            # the same flags AdamW(fused=True) sets; read by every step
            g["fused"], g["foreach"] = True, False
    set_lr(opt, lr, 1.0)
    return opt


def set_lr(opt: torch.optim.Optimizer, peak_lr: float, factor: float) -> float:
    """Set every group's LR to ``peak_lr * factor * lr_mult``; return ``peak_lr * factor``."""
    lr = peak_lr * factor
    for g in opt.param_groups:
        g["lr"] = lr * g.get("lr_mult", 1.0)
    return lr


__all__ = [
    "HP",
    "REGISTRY",
    "OptimizerEntry",
    "get_optimizer",
    "lr_curve",
    "lr_factor",
    "make_optimizer",
    "param_groups",
    "parse_schedule",
    "set_lr",
    "validate_hps",
]
