"""Parameter groups: weight decay by role, muP LR multipliers, Muon's hidden matrices.

Like nanoGPT's ``configure_optimizers``, one function decides which tensors decay; unlike it, the
decision is by the parameter's role (keyed by name, so it survives save/load and wrapping) rather than
by tensor rank alone, because an embedding is 2-D yet is often better left undecayed.
"""

from __future__ import annotations

from typing import Any

import torch

from oasl.optim.registry import get_optimizer

NO_DECAY_ROLES = frozenset({"norm", "bias"})


def param_groups(
    model: torch.nn.Module, optimizer: str, decay_embeddings: bool = False
) -> list[dict[str, Any]]:
    """Split ``model``'s parameters into groups for ``optimizer``.

    ``model`` must provide ``param_roles()`` and ``lr_multipliers(family)`` keyed by parameter name
    (see :class:`oasl.models.GPT`). Each group carries ``role``, ``lr_mult`` (the muP multiplier of
    the peak LR; 1 under SP) and ``weight_decay=0`` where the role takes no decay. Tied parameters
    appear once. A decayed group with a muP multiplier also carries ``wd_mult = 1 / lr_mult``, which
    :func:`oasl.optim.make_optimizer` applies to its weight decay: torch's decay is multiplied by the LR,
    and microsoft/mup's ``MuAdam``/``MuSGD`` (``decoupled_wd=False``) scale the decay inversely to the LR
    so that lr x wd, the decay per step, does not change with width.
    """
    entry = get_optimizer(optimizer)
    roles = model.param_roles()
    mults = model.lr_multipliers(entry.family)
    no_decay = set(NO_DECAY_ROLES)
    if not decay_embeddings:
        no_decay |= {"embedding", "position"}
    buckets: dict[tuple[str, float, bool], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():  # named_parameters() yields tied tensors once
        if not p.requires_grad:
            continue
        role = roles[name]
        key = (role, float(mults[name]), role not in no_decay)
        buckets.setdefault(key, []).append(p)
    groups = []
    for (role, mult, decay), params in sorted(buckets.items(), key=lambda kv: kv[0]):
        g: dict[str, Any] = {"params": params, "role": role, "lr_mult": mult}
        if not decay:
            g["weight_decay"] = 0.0
        elif mult != 1.0:
            g["wd_mult"] = 1.0 / mult
        groups.append(g)
    return groups
