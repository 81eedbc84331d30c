"""The :class:`Curve` value every schedule-aware loss law fits and predicts, the checks of a fit's input,
warmup inference, and the per-curve error measures.

Step convention (every law): ``lrs[t]`` is the learning rate of the optimizer update at step ``t``
(0-based), and the loss observed at step ``t`` is the loss after that update, so the LR area seen by
it is ``S1(t) = lrs[0] + ... + lrs[t]``. This is the indexing of the multi-power-law authors' code
(thu-yao-01-luo/MultiPowerLaw, ``src/utils.py``) and of :func:`oasl.optim.schedules.lr_curve`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from oasl.errors import DataError, FitError

HUBER_DELTA = 1e-3  # Luo et al. 2025, App. C (the authors' config.py: HUBER_DELTA = 0.001)


@dataclass
class Curve:
    """One training curve.

    ``steps``: optimizer steps (0-based, strictly increasing) where ``loss`` was observed.
    ``lrs``: the full per-step learning rate of the run from step 0 to (at least) the last observed
    step; ``lrs[t]`` is the LR of the update at step ``t``. The schedule may run past the last
    observed step (a run that was stopped early, or only partly logged).
    ``loss``: the training (or validation) loss, in nats per token, after the update at each step.
    ``name``: a label used in messages and reports. ``n_params``: the model's non-embedding
    parameter count, needed only by :class:`ScaledScheduleLaw`.
    """

    steps: np.ndarray
    lrs: np.ndarray
    loss: np.ndarray
    name: str = ""
    n_params: float | None = None
    _S1: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        what = f"curve {self.name!r}" if self.name else "curve"
        try:
            steps = np.asarray(self.steps, dtype=float).ravel()
            lrs = np.asarray(self.lrs, dtype=float).ravel()
            loss = np.asarray(self.loss, dtype=float).ravel()
        except (TypeError, ValueError) as exc:
            raise DataError(f"{what}: steps, lrs and loss must be numeric arrays ({exc})") from None
        if len(steps) != len(loss):
            raise DataError(
                f"{what}: {len(steps)} steps but {len(loss)} losses; give one loss per observed step"
            )
        if len(steps) == 0:
            raise DataError(f"{what}: no observed points; give at least one (step, loss) pair")
        for label, v in (("steps", steps), ("loss", loss), ("lrs", lrs)):
            if not np.all(np.isfinite(v)):
                raise DataError(
                    f"{what}: {label} contains NaN or inf; drop those points or fill the schedule"
                )
        if np.any(steps != np.round(steps)):
            raise DataError(f"{what}: steps must be whole optimizer step numbers")
        if np.any(loss <= 0):
            raise DataError(f"{what}: losses must be positive (the laws fit the log loss)")
        if np.any(lrs < 0):
            raise DataError(f"{what}: learning rates must be non-negative")
        steps = steps.astype(np.int64)
        if np.any(np.diff(steps) <= 0):
            raise DataError(f"{what}: steps must be strictly increasing; sort them and drop duplicates")
        if steps[0] < 0 or steps[-1] >= len(lrs):
            raise DataError(
                f"{what}: observed steps run from {steps[0]} to {steps[-1]} but the LR schedule covers steps "
                f"0..{len(lrs) - 1}; pass the full per-step schedule from step 0 (e.g. oasl.optim.schedules.lr_curve)"
            )
        S1 = np.cumsum(lrs)[steps]
        if S1[0] <= 0:
            raise DataError(
                f"{what}: loss observed at step {steps[0]} before any positive LR; drop points before training starts"
            )
        if self.n_params is not None and not (math.isfinite(self.n_params) and self.n_params > 0):
            raise DataError(f"{what}: n_params must be a positive parameter count, got {self.n_params}")
        self.steps, self.lrs, self.loss, self._S1 = steps, lrs, loss, S1

    def __len__(self) -> int:
        return len(self.steps)

    def thin(self, every: int) -> Curve:
        """The same curve keeping every ``every``-th observed point (and always the last one)."""
        if every < 1:
            raise DataError("thin(every) needs every >= 1")
        idx = np.unique(np.r_[np.arange(0, len(self.steps), every), len(self.steps) - 1])
        return Curve(self.steps[idx], self.lrs, self.loss[idx], self.name, self.n_params)


def infer_warmup_steps(lrs: np.ndarray) -> int:
    """Index of the step where the LR first reaches the peak of its initial non-decreasing run (0 when
    the schedule starts at its peak). For oasl's schedules with ``warmup`` steps this is ``warmup - 1``;
    for the multi-power-law data (warmup of 2160 steps from 0) it is 2159."""
    lrs = np.asarray(lrs, dtype=float)
    if len(lrs) == 0:
        raise DataError("empty LR schedule")
    dec = np.nonzero(np.diff(lrs) < 0)[0]
    end = dec[0] + 1 if len(dec) else len(lrs)
    return int(np.argmax(lrs[:end]))


def anneals(lrs: np.ndarray, upto: int | None = None) -> bool:
    """Whether the LR decreases anywhere after warmup (up to step ``upto``): without a decrease the
    annealing terms of the laws are not identified."""
    lrs = np.asarray(lrs, dtype=float)
    seg = lrs[infer_warmup_steps(lrs) : (None if upto is None else upto + 1)]
    return bool(np.any(np.diff(seg) < -1e-12 * max(float(lrs.max()), 1e-300)))


def check_curve_set(
    curves: Sequence[Curve], optimizers: Sequence[str] | None = None, one_size: bool = True
) -> None:
    """Refuse a set of curves a schedule law cannot learn from, naming what is missing: at least one
    constant-LR schedule (no decay after warmup, which pins down the power law in the LR area) and one
    that decays its LR (which identifies the loss-drop term), all of one optimizer (``optimizers``: each
    curve's, when known) and one model size (``n_params``, when set)."""
    curves = list(curves)
    if not curves:
        raise DataError("no curves: give at least a constant-LR and a decaying schedule of one model")
    if optimizers is not None:
        opts = sorted({str(o) for o in optimizers})
        if len(opts) > 1:
            raise DataError(
                f"the curves mix optimizers ({', '.join(opts)}): a schedule law describes one optimizer; "
                "pick one (e.g. --where optimizer=adamw)"
            )
    sizes = sorted({c.n_params for c in curves if c.n_params is not None})
    if one_size and len(sizes) > 1:
        raise DataError(
            f"the curves come from {len(sizes)} model sizes ({', '.join(f'{s:.3g}' for s in sizes)}): "
            "fit one size (e.g. --where width=...) or across sizes with --scaled"
        )
    decaying = [c.name for c in curves if anneals(c.lrs, c.steps[-1])]
    constant = [c.name for c in curves if not anneals(c.lrs)]
    missing = []
    if not constant:
        missing.append("a constant-LR schedule (it pins down the power law in the LR area)")
    if not decaying:
        missing.append("a schedule whose LR decays before its last logged point (cosine, WSD, a step drop)")
    if missing:
        have = ", ".join(c.name or "?" for c in curves[:6]) + (" ..." if len(curves) > 6 else "")
        raise DataError(f"the curves ({have}) lack " + " and ".join(missing) + "; add such a run")


def check_curves(curves: Sequence[Curve], n_free: int, law: str) -> list[Curve]:
    """Validate a fit's input; raise FitError naming the fix, warn when one schedule is all there is."""
    if isinstance(curves, Curve):
        curves = [curves]
    curves = list(curves)
    if not curves:
        raise FitError(f"{law}: no curves to fit; pass a list of Curve objects")
    for c in curves:
        if not isinstance(c, Curve):
            raise FitError(
                f"{law}: expected Curve objects, got {type(c).__name__}; wrap arrays in Curve(steps, lrs, loss)"
            )
        if len(c) < 3:
            raise FitError(f"{law}: curve {c.name!r} has {len(c)} points; at least 3 per curve are needed")
    n = sum(len(c) for c in curves)
    if n < 3 * n_free:
        raise FitError(
            f"{law}: {n} observed points for {n_free} free parameters; log the loss more often (>= {3 * n_free})"
        )
    if not any(anneals(c.lrs, c.steps[-1]) for c in curves):
        raise FitError(
            f"{law}: no curve decays its LR before its last observed point, so the annealing term is not identified; "
            "add a curve with a decay (cosine, WSD cooldown or a step drop)"
        )
    if len(curves) == 1:
        warnings.warn(
            f"{law}: fitting a single schedule leaves the annealing parameters weakly identified; predictions for "
            "other schedules may be poor (fit on at least two schedules, e.g. constant and cosine)",
            UserWarning,
            stacklevel=3,
        )
    return curves


def curve_errors(pred: np.ndarray, loss: np.ndarray) -> dict[str, float]:
    """Errors of a predicted curve: mean and worst relative error |L - Lhat| / L (fractions, not %),
    the relative error of the last point, and R^2 of the loss values."""
    pred, loss = np.asarray(pred, float), np.asarray(loss, float)
    rel = np.abs(pred - loss) / loss
    ss = float(np.sum((loss - loss.mean()) ** 2))
    return {
        "mean_rel": float(rel.mean()),
        "worst_rel": float(rel.max()),
        "final_rel": float(rel[-1]),
        "final_abs": float(pred[-1] - loss[-1]),
        "r2": 1 - float(np.sum((loss - pred) ** 2)) / ss if ss > 0 else math.nan,
    }
