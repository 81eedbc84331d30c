"""The over-training loss law of Gadre et al. 2024 ("Language models scale reliably with over-training and
on downstream tasks", arXiv 2403.08540, Sec. 3, Eq. 4)::

    L(C, M) = E + (a M^eta + b M^-eta) C^-eta,   C = 6 N D,  M = D / N

the Chinchilla form ``E + A N^-alpha + B D^-beta`` (Hoffmann et al. 2022, Eq. 2) with one exponent
``eta = alpha = beta``, which the paper assumes so that the law reads in compute C and the token
multiplier M (their Eq. 3 -> 4). In N and M (the authors' code, mlfoundations/scaling,
``scaling/laws.py``, fits ``A N^-eta + B' (M N)^-eta + E``) it is ``E + A N^-eta + B (M N)^-eta``, which
is how :class:`OvertrainingLossLaw` writes it; ``a = A 6^-eta``-style constants follow by substitution.

Which N. Gadre et al. count parameters with embeddings (their runs set tokens = 20 M x params with
embeddings) and so did Chinchilla (Pearce & Song 2024, arXiv 2406.12907); oasl's ``n_params`` is
non-embedding (DESIGN.md, after Kaplan et al. 2020). Both laws take whatever N they are given, and the
choice is a measurement, not a convention: on Gadre et al.'s released runs (benchmarks/loss_overtraining.py,
fit on 10.6M-154M, predict 412M) Chinchilla's form extrapolates better with the non-embedding count, and
this form better with the total count, the one its authors fitted it with. The embedding share falls from
about half of the 10.6M model to 13% of the 412M one, so the two counts disagree most across small models.

Fitted like :class:`~oasl.laws.loss.LossLaw` (Huber on log residuals, delta 1e-3, from the best points of
Hoffmann et al.'s grid restricted to alpha = beta), the deviation from the authors' least squares in loss
space (``scipy.optimize.curve_fit``) being oasl's (docs/deviations.md).
"""

from __future__ import annotations

import numpy as np

from oasl.laws.loss import _GRID, LossLaw, _grid_objective, _objective

# alpha = beta rows of the Hoffmann et al. grid (a, b, e, eta)
_SHARED = np.unique(_GRID[_GRID[:, 3] == _GRID[:, 4]][:, :4], axis=0)


def _objective_shared(t4, logN, logD, logL, delta):
    """:func:`oasl.laws.loss._objective` with alpha = beta = eta; gradient in (a, b, e, eta)."""
    f, g = _objective(np.r_[t4, t4[3]], logN, logD, logL, delta)
    return f, np.r_[g[:3], g[3] + g[4]]


class OvertrainingLossLaw(LossLaw):
    """``L(N, D) = E + A N^-eta + B D^-eta`` (Gadre et al. 2024, Eq. 4, written in N and D = M N): final loss
    (nats/token) of a model of N parameters trained on D tokens, any token multiplier M = D / N.

    Same interface as :class:`~oasl.laws.loss.LossLaw` (``fit(N, D, L)``, ``predict``, intervals, ``params_``
    with E, A, B, alpha, beta where ``alpha == beta == eta``); :meth:`predict_m` predicts from N and M."""

    kind = "overtraining_loss_law"
    CITATION = (
        "Gadre et al. 2024, Language models scale reliably with over-training and on downstream tasks, "
        "arXiv 2403.08540, Eq. 4"
    )

    def _fit_arrays(self, logN, logD, logL, starts=None) -> np.ndarray:
        if starts is None:
            full = np.c_[_SHARED, _SHARED[:, 3]]
            values = _grid_objective(logN, logD, logL, self.delta_, grid=full)
            starts = _SHARED[np.argsort(values, kind="stable")[: self.n_starts]]
        else:
            starts = [np.asarray(s, float)[:4] for s in starts]
        best = self._best_of(_objective_shared, starts, logN, logD, logL)
        return np.r_[best, best[3]]

    def predict_m(self, N, M) -> np.ndarray:
        """Predicted loss (nats/token) of a model of ``N`` parameters trained on ``M x N`` tokens."""
        N = np.asarray(N, float)
        return self.predict(N, N * np.asarray(M, float))

    @property
    def eta_(self) -> float:
        """The shared exponent eta."""
        self._check_fitted()
        return self.params_["alpha"]

    def formula(self) -> str:
        self._check_fitted()
        p = self.params_
        return f"L = {p['E']:.4g} + {p['A']:.4g}/N^{p['alpha']:.4g} + {p['B']:.4g}/D^{p['alpha']:.4g}"
