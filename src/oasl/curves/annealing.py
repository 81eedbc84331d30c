"""The LR-annealing law of the loss curve (Tissue et al. 2024, "Scaling Law with Learning Rate
Annealing", arXiv 2408.11029, Eq. 1)::

    L(s) = L0 + A S1^(-alpha) - C S2,   S1 = sum_{i<=s} eta_i,   S2 = sum_{i<=s} m_i,
    m_i = lam m_{i-1} + (eta_{i-1} - eta_i)

with the annealing momentum ``lam`` fixed (0.999 in the paper, Sec. 3). S1 is the LR area of every
step from 0, warmup included. With ``warmup="include"`` (default, the same convention as
:class:`~oasl.curves.multipower.MultiPowerLaw`) the warmup's LR increases enter S2 as negative
annealing; ``warmup="exclude"`` counts only LR changes after warmup (docs/deviations.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from oasl.curves.curve import HUBER_DELTA, Curve
from oasl.curves.estimator import ScheduleLaw
from oasl.errors import FitError


def annealing_area(lrs: np.ndarray, steps: np.ndarray, lam: float, first_k: int = 0) -> np.ndarray:
    """S2 at ``steps``: the cumulative sum of the annealing momentum m_i = lam m_{i-1} + (eta_{i-1} - eta_i)
    (Tissue et al. 2024, Eq. 1), counting the LR changes from step ``first_k`` on (eta_{-1} = 0)."""
    from scipy.signal import lfilter

    T = int(np.max(steps))
    eta = lrs[: T + 1]
    d = np.r_[0.0, eta[:-1]] - eta
    d[:first_k] = 0.0
    m = lfilter([1.0], [1.0, -lam], d)
    return np.cumsum(m)[steps]


class AnnealingLaw(ScheduleLaw):
    """Tissue et al. 2024: ``L = L0 + A S1^-alpha - C S2`` with annealing momentum ``lam`` (fixed, not
    fitted). ``fit(curves)`` needs at least one curve whose LR decays; fitting one schedule alone is
    allowed (the paper does it) but warns. Settings as in
    :class:`~oasl.curves.estimator.ScheduleLaw`."""

    PARAMS = ("L0", "A", "alpha", "C")
    KIND = "annealing"
    CITATION = "Tissue et al. 2024, Scaling Law with Learning Rate Annealing, arXiv 2408.11029, Eq. 1"

    def __init__(
        self,
        lam: float = 0.999,
        warmup: str = "include",
        warmup_steps: int | None = None,
        n_starts: int = 3,
        n_boot: int = 30,
        n_segments: int = 8,
        seed: int = 0,
        delta: float = HUBER_DELTA,
        maxiter: int = 500,
    ):
        super().__init__(warmup, warmup_steps, n_starts, n_boot, n_segments, seed, delta, maxiter)
        self.lam = lam

    def _settings(self):
        return {**super()._settings(), "lam": self.lam}

    def _features(self, lrs, steps, fit):
        if not 0 <= self.lam < 1:
            raise FitError(f"lam must lie in [0, 1), got {self.lam}")
        S1 = np.cumsum(lrs)[steps]
        S2 = annealing_area(lrs, steps, self.lam, self._first_k(lrs))
        return {
            "S1": torch.as_tensor(S1, dtype=torch.float64),
            "S2": torch.as_tensor(S2, dtype=torch.float64),
        }

    def _pred(self, p, f):
        return p["L0"] + p["A"] * f["S1"] ** (-p["alpha"]) - p["C"] * f["S2"]

    def _bounds(self, curves: Sequence[Curve]):
        lmax = max(float(c.loss.max()) for c in curves)
        return [
            (math.log(1e-3), math.log(10 * lmax)),
            (math.log(1e-6), math.log(1e4)),
            (math.log(1e-3), math.log(5.0)),
            (math.log(1e-8), math.log(1e8)),
        ]

    def _starts(self, curves, feats):
        lmin = min(float(c.loss.min()) for c in curves)
        S1 = np.concatenate([f["S1"].numpy() for f in feats])
        S2 = np.concatenate([f["S2"].numpy() for f in feats])
        L = np.concatenate([c.loss for c in curves])
        s2max = max(float(np.abs(S2).max()), 1e-12)
        starts = []
        for L0 in lmin - np.array([0.05, 0.2, 0.4, 0.7, 1.0]):
            if L0 <= 0:
                continue
            for alpha in (0.3, 0.5, 0.7):
                for drop in (0.02, 0.1, 0.3):
                    C = drop / s2max
                    x = S1 ** (-alpha)
                    A = float(np.dot(x, L - L0 + C * S2) / np.dot(x, x))
                    if A > 0:
                        starts.append(np.log([L0, A, alpha, C]))
        return starts or [np.log([0.5 * lmin, 1.0, 0.5, 0.1 / s2max])]
