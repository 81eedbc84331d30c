"""Learning-rate schedules as pure functions of the step.

Every schedule is linear warmup from 0 to the peak over ``warmup`` steps, then a decay shape.
:func:`lr_factor` returns the multiplier of the peak LR at a step; :func:`lr_curve` the whole
per-step array (what schedule-aware loss laws consume).
"""

from __future__ import annotations

import math

import numpy as np

from oasl.config import ScheduleSpec


def lr_factor(spec: ScheduleSpec, step: int, total_steps: int) -> float:
    """Multiplier of the peak LR at ``step`` (0-based) of a run of ``total_steps`` steps.

    The LR used for the update at step ``s`` is ``peak * lr_factor(spec, s, total)``. Warmup is linear
    from ``1/warmup`` at step 0 to 1 at step ``warmup - 1`` (so no update is taken at LR 0). After
    warmup, ``progress`` runs from 0 at the first post-warmup step to 1 at the last step.
    """
    if total_steps < 1:
        raise ValueError("total_steps must be >= 1")
    warmup = spec.warmup_for(total_steps)
    if step < warmup:
        return (step + 1) / warmup
    decay_steps = total_steps - warmup
    progress = 1.0 if decay_steps <= 1 else (step - warmup) / (decay_steps - 1)
    progress = min(max(progress, 0.0), 1.0)
    final = spec.final_frac
    name = spec.name
    if name == "constant":
        return 1.0
    if name == "cosine":
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))
    if name == "linear":
        return 1.0 - (1 - final) * progress
    if name == "wsd":
        # Warmup-stable-decay (Hu et al. 2024, MiniCPM, arXiv 2404.06395 Sec. 4): constant, then a
        # decay over the last `decay_frac` of the run to `final_frac`.
        decay_len = max(1, int(round(spec.decay_frac * total_steps)))
        decay_start = total_steps - decay_len
        if step < decay_start:
            return 1.0
        p = 1.0 if decay_len <= 1 else (step - decay_start) / (decay_len - 1)
        if spec.decay_shape == "linear":
            shape = p
        elif spec.decay_shape == "cosine":
            shape = 0.5 * (1 - math.cos(math.pi * p))
        else:  # "sqrt" (1 - sqrt) cooldown, Hägele et al. 2024 (arXiv 2405.18392) Sec. 3
            shape = math.sqrt(p)
        return 1.0 - (1 - final) * shape
    if name == "inverse_sqrt":
        # 1/sqrt(t) after warmup, continuous at the end of warmup (Vaswani et al. 2017, Sec. 5.3).
        ref = max(warmup, 1)
        return math.sqrt(ref / (ref + step - warmup))
    if name == "step":
        factor = 1.0
        for m in spec.milestones:
            if progress >= m:
                factor *= spec.gamma
        return factor
    raise ValueError(f"unknown schedule {name!r}")


def lr_curve(spec: ScheduleSpec, total_steps: int, peak_lr: float = 1.0) -> np.ndarray:
    """Per-step learning rates (length ``total_steps``) of ``spec`` with peak ``peak_lr``."""
    return np.array([peak_lr * lr_factor(spec, s, total_steps) for s in range(total_steps)])


def parse_schedule(text: str, **defaults) -> ScheduleSpec:
    """Parse a short schedule name: ``cosine``, ``cosine:0.1`` (final fraction), ``wsd:0.2`` (decay
    fraction), ``linear``, ``constant``, ``inverse_sqrt``, ``step``; ``defaults`` fill other fields."""
    from oasl.config import build

    name, _, arg = text.partition(":")
    name = name.strip().replace("-", "_")
    data = dict(defaults)
    data["name"] = name
    if arg:
        try:
            value = float(arg)
        except ValueError:
            from oasl.errors import ConfigError

            raise ConfigError(f"schedule {text!r}: the part after ':' must be a number") from None
        if name == "wsd":
            data["decay_frac"] = value
        else:
            data["final_frac"] = value
    return build(ScheduleSpec, data, what=f"schedule {text!r}")
