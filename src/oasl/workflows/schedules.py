"""Schedule-law helpers the schedule commands share: the target run and the law's keyword arguments."""

from __future__ import annotations


def schedule_target(
    ctx: dict, steps: int | None, lr: float | None, warmup_steps: int | None
) -> tuple[int, float, int]:
    """The target run's (steps, peak lr, warmup steps): the values given, else the fitted runs' (``ctx``,
    the context saved with a schedule law)."""
    warm = warmup_steps if warmup_steps is not None else ctx.get("warmup_steps", 0)
    return int(steps or ctx["steps"]), float(lr or ctx["lr"]), int(warm)


def predict_kwargs(law, n_params: float | None, context: dict) -> dict:
    """Keyword arguments of ``law.predict``: the model size for a size-scaled law (``n_params``, else
    the fitted runs'), none for a law of one size."""
    from oasl.curves import ScaledScheduleLaw

    if isinstance(law, ScaledScheduleLaw):
        return {"n_params": float(n_params if n_params is not None else context.get("n_params"))}
    return {}
