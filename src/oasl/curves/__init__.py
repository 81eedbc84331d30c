"""Schedule-aware loss-curve laws: predict a whole loss curve from the per-step learning-rate schedule.

- :class:`MultiPowerLaw` (Luo et al., ICLR 2025, arXiv 2503.12811) and :class:`AnnealingLaw`
  (Tissue et al. 2024, arXiv 2408.11029) fit curves of one model size and predict the loss of any
  schedule: ``law.fit(curves)``, ``law.predict(lrs, steps)``, ``law.predict_final(lrs)``,
  ``law.predict_interval(lrs, steps, level)``.
- :class:`ScaledScheduleLaw` lets the parameters move with the model size N, so curves of small
  models predict a larger model's curve.
- :func:`rank_schedules` / :func:`rank_candidates` order candidate schedules of one run by predicted
  final loss.

Modules: :mod:`~oasl.curves.curve` (the :class:`Curve` value, input checks, errors),
:mod:`~oasl.curves.estimator` (the shared estimator and robust fit), :mod:`~oasl.curves.multipower`,
:mod:`~oasl.curves.annealing`, :mod:`~oasl.curves.scaled` (the laws), :mod:`~oasl.curves.ranking`,
:mod:`~oasl.curves.runs` (curves out of an oasl store), :mod:`~oasl.curves.io` (law and curve files),
:mod:`~oasl.curves.paper` (the multi-power-law paper's released curves).
"""

from oasl.curves.annealing import AnnealingLaw, annealing_area
from oasl.curves.curve import Curve, curve_errors, infer_warmup_steps
from oasl.curves.estimator import ScheduleLaw
from oasl.curves.multipower import MultiPowerLaw
from oasl.curves.ranking import candidate_schedules, rank_candidates, rank_schedules
from oasl.curves.scaled import ScaledScheduleLaw, transfer_law

__all__ = [
    "AnnealingLaw",
    "Curve",
    "MultiPowerLaw",
    "ScaledScheduleLaw",
    "ScheduleLaw",
    "annealing_area",
    "candidate_schedules",
    "curve_errors",
    "infer_warmup_steps",
    "rank_candidates",
    "rank_schedules",
    "transfer_law",
]
