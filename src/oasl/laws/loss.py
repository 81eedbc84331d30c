"""The loss law ``L(N, D) = E + A / N^alpha + B / D^beta`` and compute-optimal allocation.

Fitted as Hoffmann et al. 2022 (Approach 3, Sec. 3.3 and App. D.2) and the replication of Besiroglu
et al. 2024 (arXiv 2404.10102, Sec. 2-3) do: minimise the Huber loss (delta = 1e-3) of the log-space
residual ``LSE(a - alpha log N, b - beta log D, e) - log L`` over ``(a, b, e, alpha, beta)`` with
``A = e^a, B = e^b, E = e^e``, by L-BFGS from a grid of starting points, keeping the best optimum.
Parameter uncertainty: a bootstrap over the (N, D, L) points (the replication's 4,000 resamples,
Sec. 3; fewer by default here), each refitted from the full-data optimum.

Huber's threshold. Both papers use delta = 1e-3 (the default here). ``delta="scaled"`` sets it from the
residuals instead: 1.345 x the MAD scale (1.4826 x median absolute deviation) of the log residuals of the
previous fit, iterated from 1e-3 until it moves by less than 1% (at most 20 rounds): Huber's M-estimator with
a concurrent scale (Huber 1981, Sec. 7.7). With residuals of ~1% (single runs), delta = 1e-3 makes the fit a
least-absolute-deviations fit. Compared on Gadre et al.'s over-training runs with the training sizes only
(benchmarks/loss_overtraining.py), the scaled threshold did not predict better, so it is not the default.

Deviations (docs/deviations.md): instead of running L-BFGS from all 4,500 grid points, oasl
evaluates the objective on the whole grid (one vectorised pass) and starts the local optimiser from
the best ``n_starts`` of them; and the local optimiser is BFGS by default (the replication's choice
for its bootstrap fits), not L-BFGS-B: both reach the same optimum on the Chinchilla points (to 1e-8
in every parameter), but scipy's L-BFGS-B calls BLAS on every iteration and runs ten times slower on
a busy machine with a threaded BLAS. ``method="L-BFGS-B"`` restores the papers' optimiser.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import huber, logsumexp

from oasl.errors import ConfigError, FitError
from oasl.laws.base import as_frame

PARAMS = ("E", "A", "B", "alpha", "beta")
# E below this fraction of the smallest fitted loss counts as "at its bound" (E >= 0): the fit found no
# irreducible term, so the law's N and D terms carry all of the loss and extrapolate too low
E_AT_BOUND = 0.01

SCALED = "scaled"  # delta set from the residuals (Huber's concurrent scale)


def _huber_scale(r: np.ndarray) -> float:
    """Huber's threshold for residuals ``r``: 1.345 x their MAD scale (1.4826 x median absolute deviation),
    floored at 1e-4 (Huber 1981, Sec. 7.7; 1.345 gives 95% efficiency under Gaussian noise)."""
    return max(1.345 * 1.4826 * float(np.median(np.abs(r - np.median(r)))), 1e-4)


# The initialisation grid of Hoffmann et al. (App. D.2) as the replication's code spells it out:
# a, b in {0, 5, ..., 25}, e in {-1, -0.5, ..., 1}, alpha, beta in {0, 0.5, ..., 2}.
_GRID = np.array(
    list(
        itertools.product(
            np.arange(0, 30, 5),
            np.arange(0, 30, 5),
            np.arange(-1, 1.5, 0.5),
            np.arange(0, 2.5, 0.5),
            np.arange(0, 2.5, 0.5),
        )
    ),
    dtype=float,
)


def _objective(theta, logN, logD, logL, delta) -> tuple[float, np.ndarray]:
    """Huber loss of the log-space residuals and its gradient in (a, b, e, alpha, beta)."""
    a, b, e, alpha, beta = theta
    t0, t1 = a - alpha * logN, b - beta * logD
    m = np.maximum(np.maximum(t0, t1), e)  # log-sum-exp, shifted for stability
    e0, e1, e2 = np.exp(t0 - m), np.exp(t1 - m), np.exp(e - m)
    s = e0 + e1 + e2
    r = m + np.log(s) - logL
    ar = np.abs(r)
    f = float(np.sum(np.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta))))
    dh = np.clip(r, -delta, delta) / s  # Huber derivative times d pred / d term, up to the softmax term
    g0, g1 = dh * e0, dh * e1
    return f, np.array([g0.sum(), g1.sum(), float(np.sum(dh * e2)), -(g0 @ logN), -(g1 @ logD)])


def _grid_objective(logN, logD, logL, delta, grid: np.ndarray = _GRID) -> np.ndarray:
    """The objective at every point of ``grid`` (rows a, b, e, alpha, beta), in chunks (vectorised over
    starting points)."""
    out = np.empty(len(grid))
    for s in range(0, len(grid), 500):
        g = grid[s : s + 500]
        t = np.stack(
            [
                g[:, [0]] - g[:, [3]] * logN,
                g[:, [1]] - g[:, [4]] * logD,
                np.broadcast_to(g[:, [2]], (len(g), len(logN))),
            ]
        )
        out[s : s + 500] = huber(delta, logsumexp(t, axis=0) - logL).sum(axis=1)
    return out


class LossLaw:
    """``L(N, D) = E + A N^-alpha + B D^-beta``: final loss (nats/token) of a model of N parameters
    trained on D tokens.

    ``delta``: Huber threshold on log-loss residuals: a number (default 1e-3, as in both papers), or
    "scaled" (set from the residuals, see the module docstring); the value used is ``delta_``. ``n_starts``: local
    optimisations from the best grid points. ``n_boot``: bootstrap resamples for parameter intervals
    (0: none). ``method``: the local optimiser, "BFGS" (default) or "L-BFGS-B" (the papers').
    Fitted: ``params_`` (E, A, B, alpha, beta), ``theta_`` (a, b, e, alpha, beta), ``boot_params_``
    (DataFrame of resampled parameters), ``range_``, ``rmse_log_``, ``warnings_`` (e.g. E at its bound 0).
    """

    kind = "loss_law"

    def __init__(
        self,
        delta: float | str = 1e-3,
        n_starts: int = 20,
        n_boot: int = 0,
        seed: int = 0,
        method: str = "BFGS",
    ):
        if delta != SCALED and not (isinstance(delta, (int, float)) and delta > 0):
            raise ConfigError(f"delta must be positive or {SCALED!r}, got {delta!r}")
        if n_starts < 1 or n_boot < 0:
            raise ConfigError(f"n_starts must be >= 1 and n_boot >= 0, got {n_starts} and {n_boot}")
        if method not in ("BFGS", "L-BFGS-B"):
            raise ConfigError(f"unknown method {method!r}: use 'BFGS' or 'L-BFGS-B'")
        self.delta, self.n_starts, self.n_boot, self.seed = delta, int(n_starts), int(n_boot), int(seed)
        self.method = method

    @staticmethod
    def _arrays(args, what: str):
        """(N, D) from ``fit(X, y)``/``predict(X)`` with a DataFrame or dict X, or from ``(N, D, ...)``."""
        if len(args) >= 1 and isinstance(args[0], (pd.DataFrame, dict)):
            X = as_frame(args[0], ("N", "D"), what)
            return X["N"].to_numpy(float), X["D"].to_numpy(float), args[1:]
        if len(args) < 2:
            raise FitError(f"{what} takes a table with columns N and D, or N and D as arrays")
        return np.asarray(args[0], float).ravel(), np.asarray(args[1], float).ravel(), args[2:]

    @staticmethod
    def _check(N, D, L):
        if not (len(N) == len(D) == len(L)):
            raise FitError(f"N, D and L have different lengths ({len(N)}, {len(D)}, {len(L)})")
        for name, v in (("N", N), ("D", D), ("L", L)):
            if np.any(~np.isfinite(v)) or np.any(v <= 0):
                raise FitError(
                    f"{name} must be positive and finite everywhere (the law is fitted in log space)"
                )
        if len(N) < 6:
            raise FitError(f"a loss law has 5 parameters: give at least 6 (N, D, loss) points, got {len(N)}")
        if np.ptp(np.log(N)) == 0 or np.ptp(np.log(D)) == 0:
            raise FitError("N and D must each take more than one value to separate their terms")

    def _fit_arrays(self, logN, logD, logL, starts=None) -> np.ndarray:
        if starts is None:
            values = _grid_objective(logN, logD, logL, self.delta_)
            starts = _GRID[np.argsort(values, kind="stable")[: self.n_starts]]
        return self._best_of(_objective, starts, logN, logD, logL)

    def _best_of(self, objective, starts, logN, logD, logL) -> np.ndarray:
        """The parameters of the lowest of ``objective``'s local minima found from each of ``starts``."""
        best, best_val = None, math.inf
        for t0 in starts:
            res = minimize(
                objective,
                t0,
                args=(logN, logD, logL, self.delta_),
                jac=True,
                method=self.method,
                options={"maxiter": 2000, "gtol": 1e-9}
                | ({"ftol": 1e-15} if self.method == "L-BFGS-B" else {}),
            )
            if res.fun < best_val:
                best, best_val = res.x, res.fun
        return best

    def fit(self, *args) -> LossLaw:
        """Fit on ``(X, L)`` with X a table of N (parameters) and D (tokens), or on ``(N, D, L)``;
        L the final losses in nats/token. Returns self. FitError on fewer than 6 points, N or D
        constant, or non-positive values."""
        N, D, rest = self._arrays(args, "LossLaw.fit")
        if len(rest) != 1:
            raise FitError("LossLaw.fit takes (X, L) or (N, D, L)")
        L = np.asarray(rest[0], float).ravel()
        self._check(N, D, L)
        logN, logD, logL = np.log(N), np.log(D), np.log(L)
        if self.delta == SCALED:
            self.delta_ = 1e-3
            for _ in range(20):
                theta = self._fit_arrays(logN, logD, logL)
                new = _huber_scale(np.log(self._predict_params(self._params(theta), N, D)) - logL)
                if abs(new - self.delta_) < 0.01 * self.delta_:
                    break
                self.delta_ = new
        else:
            self.delta_ = float(self.delta)
        self.theta_ = self._fit_arrays(logN, logD, logL)
        self.params_ = self._params(self.theta_)
        self.range_ = {"N": (float(N.min()), float(N.max())), "D": (float(D.min()), float(D.max()))}
        self.n_ = len(N)
        self.rmse_log_ = float(np.sqrt(np.mean((np.log(self.predict(N, D)) - logL) ** 2)))
        self.boot_params_ = None
        self.warnings_ = []
        if self.params_["E"] < E_AT_BOUND * float(L.min()):
            self.warnings_.append(
                f"the loss law's E = {self.params_['E']:.3g} sits at its bound 0: these (N, D, loss) points do not "
                "show an irreducible loss, so its predictions beyond the fitted N and D are too low; fit on a wider "
                "range of N and D"
            )
        if self.n_boot:
            rng = np.random.default_rng(self.seed)
            thetas = []
            for _ in range(self.n_boot):
                idx = rng.integers(0, len(N), len(N))
                thetas.append(self._fit_arrays(logN[idx], logD[idx], logL[idx], starts=[self.theta_]))
            self.boot_params_ = pd.DataFrame([self._params(t) for t in thetas])
        return self

    @staticmethod
    def _params(theta) -> dict[str, float]:
        a, b, e, alpha, beta = (float(v) for v in theta)
        return {"E": math.exp(e), "A": math.exp(a), "B": math.exp(b), "alpha": alpha, "beta": beta}

    def _check_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise FitError("this LossLaw is not fitted yet: call fit() first")

    def predict(self, *args) -> np.ndarray:
        """Predicted loss (nats/token) at ``X`` (table of N, D) or at ``(N, D)``."""
        self._check_fitted()
        N, D, _ = self._arrays(args, "LossLaw.predict")
        return self._predict_params(self.params_, N, D)

    @staticmethod
    def _predict_params(p: dict[str, float], N: np.ndarray, D: np.ndarray) -> np.ndarray:
        return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]

    def param_interval(self, level: float = 0.9) -> dict[str, tuple[float, float]]:
        """Percentile bootstrap interval of each parameter (needs ``n_boot`` > 0)."""
        self._check_fitted()
        if self.boot_params_ is None or self.boot_params_.empty:
            raise FitError("no bootstrap was run: fit with LossLaw(n_boot=200) or more")
        if not 0 < level < 1:
            raise ConfigError(f"level must lie strictly between 0 and 1, got {level}")
        q = [0.5 - level / 2, 0.5 + level / 2]
        return {k: tuple(float(v) for v in np.quantile(self.boot_params_[k], q)) for k in PARAMS}

    def param_se(self) -> dict[str, float]:
        """Bootstrap standard error of each parameter (as the replication reports them)."""
        self._check_fitted()
        if self.boot_params_ is None or self.boot_params_.empty:
            raise FitError("no bootstrap was run: fit with LossLaw(n_boot=200) or more")
        return {k: float(self.boot_params_[k].std(ddof=1)) for k in PARAMS}

    def predict_interval(self, *args, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Percentile band of the fitted curve at ``X`` or ``(N, D)`` over the bootstrap parameters
        (uncertainty of the law's parameters only, not the scatter of single runs)."""
        self._check_fitted()
        if self.boot_params_ is None or self.boot_params_.empty:
            raise FitError("no bootstrap was run: fit with LossLaw(n_boot=200) or more")
        N, D, _ = self._arrays(args, "LossLaw.predict_interval")
        P = self.boot_params_
        sims = (
            P["E"].to_numpy()[:, None]
            + P["A"].to_numpy()[:, None] / N[None] ** P["alpha"].to_numpy()[:, None]
            + P["B"].to_numpy()[:, None] / D[None] ** P["beta"].to_numpy()[:, None]
        )
        lo, hi = np.quantile(sims, [0.5 - level / 2, 0.5 + level / 2], axis=0)
        return lo, hi

    def compute_optimal(self, C) -> tuple[np.ndarray, np.ndarray]:
        """Loss-minimising ``(N*, D*)`` for training compute ``C = 6 N D`` FLOPs (Hoffmann et al. 2022,
        Eq. 4): ``N* = G (C/6)^(beta/(alpha+beta))``, ``G = (alpha A / (beta B))^(1/(alpha+beta))``,
        ``D* = (C/6) / N*``."""
        self._check_fitted()
        p = self.params_
        a, b = p["alpha"], p["beta"]
        C6 = np.asarray(C, float) / 6
        if np.any(~(C6 > 0)):
            raise ConfigError("compute budgets must be positive")
        G = (a * p["A"] / (b * p["B"])) ** (1 / (a + b))
        N = G * C6 ** (b / (a + b))
        return N, C6 / N

    def formula(self) -> str:
        self._check_fitted()
        return "L = {E:.4g} + {A:.4g}/N^{alpha:.4g} + {B:.4g}/D^{beta:.4g}".format(**self.params_)

    def __repr__(self) -> str:
        try:
            return f"LossLaw({self.formula()})"
        except FitError:
            return "LossLaw(unfitted)"

    def to_dict(self, data: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "kind": self.kind,
            "delta": self.delta,
            "n_starts": self.n_starts,
            "n_boot": self.n_boot,
            "seed": self.seed,
            "method": self.method,
        }
        if hasattr(self, "params_"):
            d.update(
                params=self.params_,
                theta=[float(v) for v in self.theta_],
                range={k: list(v) for k, v in self.range_.items()},
                rmse_log=self.rmse_log_,
                n=self.n_,
                delta_fitted=self.delta_,
                formula=self.formula(),
                warnings=list(getattr(self, "warnings_", [])),
            )
            if data and self.boot_params_ is not None:
                d["boot_params"] = self.boot_params_.to_dict(orient="list")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LossLaw:
        law = cls(
            d.get("delta", 1e-3),
            d.get("n_starts", 20),
            d.get("n_boot", 0),
            d.get("seed", 0),
            d.get("method", "BFGS"),
        )
        if "params" in d:
            law.params_ = {k: float(d["params"][k]) for k in PARAMS}
            p = law.params_
            law.theta_ = np.array(
                d.get("theta")
                or [math.log(p["A"]), math.log(p["B"]), math.log(p["E"]), p["alpha"], p["beta"]]
            )
            law.range_ = {k: tuple(v) for k, v in d.get("range", {}).items()}
            law.rmse_log_, law.n_ = d.get("rmse_log", math.nan), d.get("n", 0)
            law.delta_ = float(d.get("delta_fitted", law.delta if law.delta != SCALED else 1e-3))
            law.boot_params_ = pd.DataFrame(d["boot_params"]) if d.get("boot_params") else None
            law.warnings_ = list(d.get("warnings", []))
        return law
