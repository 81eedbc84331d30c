"""Schedule-aware loss laws: predict a whole loss curve from the per-step learning-rate schedule.

- :class:`MultiPowerLaw` (Luo et al., ICLR 2025, arXiv 2503.12811) and :class:`AnnealingLaw`
  (Tissue et al. 2024, arXiv 2408.11029) fit curves of one model size and predict the loss of any
  schedule: ``law.fit(curves)``, ``law.predict(lrs, steps)``, ``law.predict_final(lrs)``,
  ``law.predict_interval(lrs, steps, level)``.
- :class:`ScaledScheduleLaw` lets the parameters move with the model size N, so curves of small
  models predict a larger model's curve.
- :func:`rank_schedules` orders candidate schedules of one run by predicted final loss.

Curves are :class:`Curve` values: observed steps, the full per-step LR array from step 0, and the loss.
The paper data loaders live in :mod:`oasl.laws.schedule_data`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from oasl.errors import DataError
from oasl.laws.schedule_anneal import AnnealingLaw, annealing_area
from oasl.laws.schedule_base import ScheduleLaw
from oasl.laws.schedule_core import Curve, curve_errors, infer_warmup_steps
from oasl.laws.schedule_mpl import MultiPowerLaw
from oasl.laws.schedule_scaled import ScaledScheduleLaw

__all__ = [
    "AnnealingLaw",
    "Curve",
    "MultiPowerLaw",
    "ScaledScheduleLaw",
    "ScheduleLaw",
    "annealing_area",
    "curve_errors",
    "infer_warmup_steps",
    "rank_schedules",
]


def rank_schedules(law, schedules: Mapping[str, np.ndarray], level: float | None = None, **predict_kwargs):
    """Rank candidate schedules by predicted final loss.

    ``law``: a fitted :class:`ScheduleLaw` (or :class:`ScaledScheduleLaw` with ``n_params=`` in
    ``predict_kwargs``); ``schedules``: name -> per-step LR array (e.g. from
    :func:`oasl.optim.schedules.lr_curve`); ``level``: add a bootstrap interval of that level.
    Returns a DataFrame sorted best first with columns schedule, total_steps, final_loss (nats),
    gap_to_best (nats) and, with ``level``, final_loss_lo / final_loss_hi."""
    import pandas as pd

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
