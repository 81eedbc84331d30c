"""The loss law ``L(N, D) = E + A / N^alpha + B / D^beta`` and compute-optimal allocation.

Fitted as Hoffmann et al. 2022 (Approach 3, App. D.2) and the replication of Besiroglu et al. 2024
(arXiv 2404.10102, Sec. 3) do: minimise the Huber loss (delta = 1e-3) of
``LSE(a - alpha log N, b - beta log D, e) - log L`` with ``A = e^a, B = e^b, E = e^e`` by L-BFGS from
a grid of starting points. Deviation (docs/deviations.md): instead of running L-BFGS from all 4,500
grid points, oasl evaluates the objective on the whole grid and starts L-BFGS from the best
``n_starts`` of them, which finds the same optimum on the Chinchilla data at a fraction of the time.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import huber, logsumexp

from oasl.errors import FitError


def _objective(theta: np.ndarray, logN: np.ndarray, logD: np.ndarray, logL: np.ndarray, delta: float) -> float:
    a, b, e, alpha, beta = theta
    pred = logsumexp(np.stack([a - alpha * logN, b - beta * logD, np.full_like(logN, e)]), axis=0)
    return float(np.sum(huber(delta, pred - logL)))


def _grad(theta, logN, logD, logL, delta):
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * logN, b - beta * logD, np.full_like(logN, e)])
    pred = logsumexp(terms, axis=0)
    w = np.exp(terms - pred)  # softmax weights
    r = pred - logL
    dh = np.clip(r, -delta, delta)  # derivative of Huber
    return np.array([np.sum(dh * w[0]), np.sum(dh * w[1]), np.sum(dh * w[2]),
                     np.sum(dh * w[0] * -logN), np.sum(dh * w[1] * -logD)])


class LossLaw:
    """``L(N, D) = E + A N^-alpha + B D^-beta``; ``fit(N, D, L)``; ``predict(N, D)``; parameters in
    ``params_`` (E, A, B, alpha, beta) and bootstrap intervals in ``intervals_``."""

    def __init__(self, delta: float = 1e-3, n_starts: int = 20, n_boot: int = 0, seed: int = 0):
        self.delta, self.n_starts, self.n_boot, self.seed = delta, n_starts, n_boot, seed

    @staticmethod
    def _check(N, D, L):
        N, D, L = (np.asarray(v, float).ravel() for v in (N, D, L))
        if not (len(N) == len(D) == len(L)):
            raise FitError(f"N, D and L have different lengths ({len(N)}, {len(D)}, {len(L)})")
        for name, v in (("N", N), ("D", D), ("L", L)):
            if np.any(~np.isfinite(v)) or np.any(v <= 0):
                raise FitError(f"{name} must be positive and finite everywhere (the law is fitted in log space)")
        if len(N) < 6:
            raise FitError(f"a loss law has 5 parameters: give at least 6 (N, D, loss) points, got {len(N)}")
        if np.ptp(np.log(N)) == 0 or np.ptp(np.log(D)) == 0:
            raise FitError("N and D must each take more than one value to separate their terms")
        return N, D, L

    def _fit_arrays(self, logN, logD, logL, starts=None) -> np.ndarray:
        if starts is None:
            grid = np.array(list(itertools.product(np.arange(0, 30, 5), np.arange(0, 30, 5), np.arange(-1, 1.5, 0.5),
                                                   np.arange(0, 2.5, 0.5), np.arange(0, 2.5, 0.5))), float)
            values = np.array([_objective(t, logN, logD, logL, self.delta) for t in grid])
            starts = grid[np.argsort(values)[: self.n_starts]]
        best, best_val = None, math.inf
        for t0 in starts:
            res = minimize(_objective, t0, args=(logN, logD, logL, self.delta), jac=_grad, method="L-BFGS-B",
                           options={"maxiter": 2000, "gtol": 1e-10})
            if res.fun < best_val:
                best, best_val = res.x, res.fun
        return best

    def fit(self, N, D, L) -> LossLaw:
        """Fit on model sizes N (parameters), token counts D and final losses L (nats/token)."""
        N, D, L = self._check(N, D, L)
        logN, logD, logL = np.log(N), np.log(D), np.log(L)
        theta = self._fit_arrays(logN, logD, logL)
        self.theta_ = theta
        self.params_ = self._params(theta)
        self.range_ = {"N": (float(N.min()), float(N.max())), "D": (float(D.min()), float(D.max()))}
        pred = self.predict(N, D)
        self.rmse_log_ = float(np.sqrt(np.mean((np.log(pred) - logL) ** 2)))
        self.intervals_ = {}
        if self.n_boot:
            rng = np.random.default_rng(self.seed)
            samples = []
            for _ in range(self.n_boot):
                idx = rng.integers(0, len(N), len(N))
                samples.append(self._fit_arrays(logN[idx], logD[idx], logL[idx], starts=[theta]))
            P = [self._params(t) for t in samples]
            self.intervals_ = {k: (float(np.quantile([p[k] for p in P], 0.05)),
                                   float(np.quantile([p[k] for p in P], 0.95))) for k in self.params_}
        return self

    @staticmethod
    def _params(theta) -> dict[str, float]:
        a, b, e, alpha, beta = theta
        return {"E": math.exp(e), "A": math.exp(a), "B": math.exp(b), "alpha": float(alpha), "beta": float(beta)}

    def predict(self, N, D) -> np.ndarray:
        """Predicted loss at parameters N and tokens D."""
        if not hasattr(self, "params_"):
            raise FitError("this LossLaw is not fitted yet: call fit() first")
        p = self.params_
        N, D = np.asarray(N, float), np.asarray(D, float)
        return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]

    def compute_optimal(self, C) -> tuple[np.ndarray, np.ndarray]:
        """Loss-minimising (N*, D*) for training compute C = 6 N D (Hoffmann et al. 2022, Eq. 4)."""
        p = self.params_
        a, b = p["alpha"], p["beta"]
        G = (a * p["A"] / (b * p["B"])) ** (1 / (a + b))
        C6 = np.asarray(C, float) / 6
        N = G * C6 ** (b / (a + b))
        return N, C6 / N

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "loss_law", "params": self.params_, "intervals": self.intervals_, "range": self.range_,
                "rmse_log": self.rmse_log_}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LossLaw:
        law = cls()
        law.params_ = dict(d["params"])
        law.intervals_ = {k: tuple(v) for k, v in d.get("intervals", {}).items()}
        law.range_ = {k: tuple(v) for k, v in d.get("range", {}).items()}
        law.rmse_log_ = d.get("rmse_log", math.nan)
        return law
