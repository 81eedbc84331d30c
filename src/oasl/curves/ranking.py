"""Ranking candidate schedules by a fitted schedule law's predicted final loss.

- :func:`candidate_schedules` builds per-step LR arrays for short names (``cosine``, ``wsd:0.2``, ...).
- :func:`rank_schedules` orders given per-step LR arrays by predicted final loss.
- :func:`rank_candidates` ranks named candidates, optionally tuning each family's own parameter (the
  WSD decay fraction, the cosine/linear final-LR fraction) on a grid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from oasl.errors import DataError

# Grids over which `rank_candidates(tune=True)` tunes a family's own parameter.
TUNE_GRIDS: dict[str, tuple[str, tuple[float, ...]]] = {
    "wsd": ("decay_frac", (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7)),
    "cosine": ("final_frac", (0.0, 0.01, 0.03, 0.1, 0.2, 0.3)),
    "linear": ("final_frac", (0.0, 0.01, 0.03, 0.1, 0.2, 0.3)),
}


def rank_schedules(law, schedules: Mapping[str, np.ndarray], level: float | None = None, **predict_kwargs):
    """Rank candidate schedules by predicted final loss.

    ``law``: a fitted :class:`ScheduleLaw` (or :class:`ScaledScheduleLaw` with ``n_params=`` in
    ``predict_kwargs``); ``schedules``: name -> per-step LR array (e.g. from
    :func:`oasl.optim.schedules.lr_curve`); ``level``: add a bootstrap interval of that level.
    Returns a DataFrame sorted best first with columns schedule, total_steps, final_loss (nats),
    gap_to_best (nats) and, with ``level``, final_loss_lo / final_loss_hi."""
    if not schedules:
        raise DataError("no schedules to rank; pass name -> per-step LR array")
    rows = []
    for name, lrs in schedules.items():
        lrs = np.asarray(lrs, dtype=float)
        row = {
            "schedule": name,
            "total_steps": len(lrs),
            "final_loss": float(law.predict(lrs, [len(lrs) - 1], **predict_kwargs)[0]),
        }
        if level is not None:
            lo, hi = law.predict_interval(lrs, [len(lrs) - 1], level=level, **predict_kwargs)
            row["final_loss_lo"], row["final_loss_hi"] = float(lo[0]), float(hi[0])
        rows.append(row)
    df = pd.DataFrame(rows).sort_values("final_loss", kind="stable").reset_index(drop=True)
    df.insert(3, "gap_to_best", df["final_loss"] - df["final_loss"].iloc[0])
    return df


def candidate_schedules(
    names: Sequence[str],
    steps: int,
    peak_lr: float,
    warmup_frac: float = 0.0,
    warmup_steps: int | None = None,
) -> dict[str, np.ndarray]:
    """Per-step LR arrays (length ``steps``) for short schedule names (``cosine``, ``cosine:0.1``,
    ``wsd:0.2``, ``linear``, ``constant``, ``step``, ``inverse_sqrt``), all with peak ``peak_lr``
    and the same warmup. Unknown names raise ConfigError naming the known ones."""
    from oasl.errors import ConfigError
    from oasl.optim.schedules import lr_curve, parse_schedule

    if steps < 2:
        raise ConfigError(f"a run of {steps} steps is too short to compare schedules")
    if not (math.isfinite(peak_lr) and peak_lr > 0):
        raise ConfigError(f"peak lr must be positive, got {peak_lr}")
    if not names:
        raise ConfigError("no candidate schedules: pass e.g. cosine,wsd:0.1,wsd:0.2,linear,constant")
    warm = {"warmup_steps": warmup_steps} if warmup_steps is not None else {"warmup_frac": warmup_frac}
    out = {}
    for n in names:
        out[n.strip()] = lr_curve(parse_schedule(n.strip(), **warm), steps, peak_lr)
    return out


def rank_candidates(
    law,
    names: Sequence[str],
    steps: int,
    peak_lr: float,
    warmup_frac: float = 0.0,
    warmup_steps: int | None = None,
    tune: bool = False,
    level: float | None = None,
    **predict_kwargs,
) -> pd.DataFrame:
    """Rank candidate schedules for a run of ``steps`` steps at peak LR ``peak_lr`` by ``law``'s
    predicted final loss (nats), best first. With ``tune``, each family with a parameter of its own
    (see ``TUNE_GRIDS``) also gets its best value on the grid, added as an extra row (``tuned`` True).
    ``level`` adds a bootstrap interval; ``predict_kwargs`` go to the law (``n_params=`` for a
    :class:`~oasl.curves.ScaledScheduleLaw`)."""
    from oasl.optim.schedules import parse_schedule

    scheds = candidate_schedules(names, steps, peak_lr, warmup_frac, warmup_steps)
    tuned: set[str] = set()
    if tune:
        warm = {"warmup_steps": warmup_steps} if warmup_steps is not None else {"warmup_frac": warmup_frac}
        families = {parse_schedule(n, **warm).name for n in scheds}
        for fam in sorted(families & set(TUNE_GRIDS)):
            field, grid = TUNE_GRIDS[fam]
            names_f = [f"{fam}:{v:g}" for v in grid]
            grid_s = candidate_schedules(names_f, steps, peak_lr, warmup_frac, warmup_steps)
            finals = {n: float(law.predict(v, [steps - 1], **predict_kwargs)[0]) for n, v in grid_s.items()}
            best = min(finals, key=finals.get)
            scheds.setdefault(best, grid_s[best])
            tuned.add(best)
    df = rank_schedules(law, scheds, level=level, **predict_kwargs)
    df["tuned"] = df["schedule"].isin(tuned)
    return df
