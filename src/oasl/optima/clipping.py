"""Will the target train in the ladder's gradient-clipping regime?

Clipping at a fixed global norm c is a width-dependent intervention: the pre-clip gradient norm of
these models grows with N, so a ladder whose optima clip on a few percent of their steps can predict a
target that clips on nearly every step. For SGD (with or without momentum) a clipped step is
``lr * c / |g|``: the step size the ladder's lr law describes is not the one the target takes, and the
law does not transfer (docs/ladders.md section 8 measures it). Adam-type updates divide by a running
gradient scale and Lion takes the sign, so a rescaled gradient barely changes their step; they are not
flagged.

:func:`clip_regime` reads the median pre-clip gradient norm (the curve's ``grad_norm`` column) of each
swept size's best lr, fits it as a power law of N, extrapolates it to the target and says when the
target is predicted to clip on most steps while the ladder did not.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from oasl.optima._common import LOSS

__all__ = ["CLIP_SENSITIVE", "ClipRegime", "clip_regime", "grad_norm_stats"]

#: Optimizers whose step scales with the gradient's norm, so that clipping changes their effective lr.
CLIP_SENSITIVE = frozenset({"sgd"})
#: The ladder counts as "rarely clipped" when its optima clip on fewer than this share of steps.
RARE = 0.5


@dataclass
class ClipRegime:
    """One optimizer's clipping regime: per swept size (``sizes``: n_params, lr, median pre-clip gradient
    norm, share of steps clipped), the log-log slope of that norm over N, its extrapolation to
    ``target_n``, the share of the target's steps above ``grad_clip`` measured where target runs are
    given (NaN otherwise), and ``warning`` ("" when the regimes agree or the optimizer is insensitive)."""

    optimizer: str
    grad_clip: float
    target_n: float
    sizes: list[dict[str, float]] = field(default_factory=list)
    slope: float = math.nan
    predicted_norm: float = math.nan
    measured_norm: float = math.nan
    measured_clip_frac: float = math.nan
    warning: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def grad_norm_stats(curve: pd.DataFrame, grad_clip: float) -> tuple[float, float]:
    """Median pre-clip gradient norm of a run's curve and the share of its recorded steps above
    ``grad_clip`` (NaN, NaN without gradient norms)."""
    if curve is None or "grad_norm" not in curve:
        return math.nan, math.nan
    g = pd.to_numeric(curve["grad_norm"], errors="coerce").to_numpy(float)
    g = g[np.isfinite(g)]
    if g.size == 0:
        return math.nan, math.nan
    return float(np.median(g)), float(np.mean(g > grad_clip)) if math.isfinite(grad_clip) else 0.0


def _pooled(keys: Iterable[str], curves: Callable[[str], pd.DataFrame], clip: float) -> tuple[float, float]:
    stats = [grad_norm_stats(curves(k), clip) for k in keys]
    stats = [s for s in stats if math.isfinite(s[0])]
    if not stats:
        return math.nan, math.nan
    return float(np.mean([s[0] for s in stats])), float(np.mean([s[1] for s in stats]))


def clip_regime(
    runs: pd.DataFrame,
    curves: Callable[[str], pd.DataFrame],
    target_n: float,
    target_keys: Iterable[str] = (),
    loss: str = LOSS,
) -> ClipRegime:
    """The clipping regime of one optimizer's sweep ``runs`` (columns key, optimizer, n_params, lr,
    grad_clip and ``loss``; finished runs) against a target of ``target_n`` parameters.

    Per size, the lr with the lowest mean loss over seeds is that size's optimum; its runs' curves
    (``curves(key)`` -> a curve frame with ``grad_norm``) give the median pre-clip gradient norm and the
    share of steps clipped. ``target_keys``: runs trained at the target (e.g. at oasl's lr) whose
    measured regime is reported beside the prediction. Needs at least 2 sizes with gradient norms to
    extrapolate; otherwise the slope and prediction stay NaN and no warning is given.
    """
    opts = runs["optimizer"].unique()
    if len(opts) != 1:
        raise ValueError(f"clip_regime takes one optimizer's runs, got {sorted(opts)}")
    opt = str(opts[0])
    clips = pd.to_numeric(runs["grad_clip"], errors="coerce").fillna(math.inf)
    clip = float(clips.max())
    out = ClipRegime(optimizer=opt, grad_clip=clip, target_n=float(target_n))
    ok = runs[np.isfinite(pd.to_numeric(runs[loss], errors="coerce"))]
    for n, g in ok.groupby("n_params"):
        means = g.groupby("lr")[loss].mean()
        lr = float(means.idxmin())
        norm, frac = _pooled(g.loc[g["lr"] == lr, "key"], curves, clip)
        if math.isfinite(norm):
            out.sizes.append({"n_params": float(n), "lr": lr, "median_grad_norm": norm, "clip_frac": frac})
    out.measured_norm, out.measured_clip_frac = _pooled(list(target_keys), curves, clip)
    if len(out.sizes) >= 2:
        x = np.log([s["n_params"] for s in out.sizes])
        y = np.log([s["median_grad_norm"] for s in out.sizes])
        out.slope, icpt = (float(v) for v in np.polyfit(x, y, 1))
        out.predicted_norm = float(math.exp(icpt + out.slope * math.log(target_n)))
    fracs = [s["clip_frac"] for s in out.sizes]
    if (
        opt in CLIP_SENSITIVE
        and math.isfinite(clip)
        and math.isfinite(out.predicted_norm)
        and out.predicted_norm > clip
        and max(fracs) < RARE
    ):
        norms = [s["median_grad_norm"] for s in out.sizes]
        out.warning = (
            f"{opt}: the ladder's optima clip on {min(fracs):.0%}-{max(fracs):.0%} of steps (median gradient "
            f"norm {min(norms):.2f}-{max(norms):.2f}), but the norm grows as N^{out.slope:.2f} and reaches "
            f"{out.predicted_norm:.2f} > grad_clip {clip:g} at the target: the target will clip on most steps, "
            f"where {opt}'s step is lr x {clip:g}/|g|, so the lr law fitted on rarely clipped runs may not "
            f"transfer: check {opt}'s lr at the target. With a tied embedding and readout, untying them kept "
            f"the norm flat and made SGD's law transfer on oasl's own ladder (docs/ladders.md section 8)"
        )
    return out
