"""The estimator behind every schedule-aware loss law: the :class:`ScheduleLaw` base class (fit / predict /
predict_interval / to_dict, in the scikit-learn habit of the rest of oasl: settings in ``__init__``, learned
state with a trailing underscore, nothing fitted in the constructor) and :class:`RobustFit`, the robust
multi-start fit that :class:`~oasl.curves.MultiPowerLaw`, :class:`~oasl.curves.AnnealingLaw` and
:class:`~oasl.curves.ScaledScheduleLaw` share.

Fitting recipe (Luo et al., ICLR 2025, arXiv 2503.12811, Sec. 4 and App. C): Huber loss (delta 1e-3)
on the residual of the log loss, a grid of starting points, then a gradient optimizer. oasl uses
L-BFGS-B (scipy) on gradients from torch autograd in float64, with every parameter optimised in log
space (all are positive), see docs/deviations.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from oasl.curves.curve import HUBER_DELTA, Curve, check_curves, curve_errors, infer_warmup_steps
from oasl.errors import DataError, FitError


@contextmanager
def single_thread():
    """Run torch on one thread: the fit's tensors (~1e5 cells) gain little from threads, and on a
    shared machine thread contention made each evaluation ~10x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def huber(r: torch.Tensor, delta: float) -> torch.Tensor:
    """Huber loss of residuals ``r`` scaled by 1/delta^2 (0.5 (r/delta)^2 inside, linear outside)."""
    a = r.abs() / delta
    return torch.where(a < 1, 0.5 * a**2, a - 0.5)


PredFn = Callable[[torch.Tensor, int], torch.Tensor]


class RobustFit:
    """Huber-on-log-loss objective over several curves, minimised with L-BFGS-B from several starts.

    ``pred(theta, i)`` returns the predicted loss (torch, float64) at the observed points of curve
    ``i`` for the log-space parameter vector ``theta``; ``log_loss[i]`` are the observed log losses.
    ``penalty(theta)``, if given, is a negative log prior: the objective reads as -log posterior / n
    for Gaussian log-loss residuals of sd ``delta`` (the Huber loss is 0.5 (r/delta)^2 inside).
    """

    def __init__(
        self,
        pred: PredFn,
        log_loss: list[np.ndarray],
        bounds: list[tuple[float, float]],
        delta: float = HUBER_DELTA,
        penalty: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        self.pred, self.delta, self.bounds, self.penalty = pred, delta, bounds, penalty
        self.log_loss = [torch.as_tensor(v, dtype=torch.float64) for v in log_loss]
        self.n = sum(len(v) for v in log_loss)
        self.weights = [torch.ones(len(v), dtype=torch.float64) for v in log_loss]

    def value(self, theta: torch.Tensor) -> torch.Tensor:
        """Mean Huber loss of the log-loss residuals (weighted by ``self.weights``)."""
        total = theta.new_zeros(())
        for i, logL in enumerate(self.log_loss):
            pred = self.pred(theta, i)
            r = torch.log(pred.clamp_min(1e-8)) - logL
            total = total + (self.weights[i] * huber(r, self.delta)).sum()
        if self.penalty is not None:
            total = total + self.penalty(theta)
        return total / self.n

    def _fun(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        theta = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        v = self.value(theta)
        if not torch.isfinite(v):
            return 1e10, np.zeros_like(x)
        (g,) = torch.autograd.grad(v, theta)
        g = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
        return float(v.detach()), g.numpy().copy()

    def evaluate(self, x: np.ndarray) -> float:
        with torch.no_grad(), single_thread():
            v = float(self.value(torch.as_tensor(np.asarray(x, float), dtype=torch.float64)))
        return v if math.isfinite(v) else math.inf

    def minimize(self, x0: np.ndarray, maxiter: int = 500) -> tuple[np.ndarray, float]:
        """Run L-BFGS-B from ``x0`` (clipped into the bounds); return (theta, objective)."""
        from scipy.optimize import minimize

        lo = np.array([b[0] for b in self.bounds])
        hi = np.array([b[1] for b in self.bounds])
        x0 = np.clip(np.asarray(x0, float), lo, hi)
        with single_thread():
            res = minimize(
                self._fun,
                x0,
                jac=True,
                method="L-BFGS-B",
                bounds=self.bounds,
                options={"maxiter": maxiter, "ftol": 1e-12, "gtol": 1e-9, "maxcor": 30},
            )
        return res.x, self.evaluate(res.x)

    def best_of(
        self, starts: Sequence[np.ndarray], n_keep: int, maxiter: int = 500, screen_iter: int = 60
    ) -> tuple[np.ndarray, float]:
        """Evaluate every start, run ``screen_iter`` L-BFGS-B iterations from the ``n_keep`` best, then
        run the best of those to convergence (``maxiter``); return (theta, objective)."""
        vals = [self.evaluate(s) for s in starts]
        order = [j for j in np.argsort(vals)[: max(1, n_keep)] if math.isfinite(vals[j])]
        if not order:
            raise FitError(
                "the fit diverged from every starting point; check that losses and LRs are on sensible scales"
            )
        runs = (
            [self.minimize(starts[j], screen_iter) for j in order]
            if len(order) > 1
            else [(starts[order[0]], vals[order[0]])]
        )
        x, v = min(runs, key=lambda r: r[1])
        if not math.isfinite(v):
            raise FitError(
                "the fit diverged from every starting point; check that losses and LRs are on sensible scales"
            )
        return self.minimize(x, maxiter)


def segment_weights(lengths: Sequence[int], n_segments: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Bootstrap weights: each curve is cut into ``n_segments`` contiguous segments which are resampled
    with replacement (a moving-block bootstrap that keeps the autocorrelation within a segment)."""
    out = []
    for n in lengths:
        k = max(1, min(n_segments, n // 2))
        edges = np.linspace(0, n, k + 1).astype(int)
        counts = rng.multinomial(k, np.full(k, 1.0 / k))
        w = np.zeros(n)
        for j in range(k):
            w[edges[j] : edges[j + 1]] = counts[j]
        out.append(w)
    return out


WARMUP_MODES = ("include", "exclude")
MAX_CELLS = 4_000_000  # float64 cells of one (steps x LR-drop blocks) matrix when predicting
_CHUNK = 256  # steps predicted together


def as_schedule(lrs, steps=None) -> tuple[np.ndarray, np.ndarray]:
    """Validate a per-step LR array and the steps to predict at (default: the last step)."""
    try:
        lrs = np.asarray(lrs, dtype=float).ravel()
    except (TypeError, ValueError):
        raise DataError("lrs must be a numeric per-step learning-rate array") from None
    if len(lrs) == 0 or not np.all(np.isfinite(lrs)) or np.any(lrs < 0):
        raise DataError("lrs must be a non-empty array of finite, non-negative per-step learning rates")
    if steps is None:
        steps = np.array([len(lrs) - 1])
    steps_f = np.atleast_1d(np.asarray(steps, dtype=float)).ravel()
    if not np.all(np.isfinite(steps_f)) or np.any(steps_f != np.round(steps_f)):
        raise DataError("steps must be whole optimizer step numbers")
    steps = steps_f.astype(np.int64)
    if len(steps) and (steps.min() < 0 or steps.max() >= len(lrs)):
        raise DataError(
            f"steps must lie in 0..{len(lrs) - 1} (the schedule's range); pass the full per-step schedule"
        )
    if len(steps) and np.cumsum(lrs)[steps.min()] <= 0:
        raise DataError(f"no positive LR has been applied by step {steps.min()}; predict at later steps")
    return lrs, steps


class ScheduleLaw:
    """Base of the schedule-aware loss laws. Subclasses define ``PARAMS`` (all positive, fitted in log
    space), ``_features``, ``_pred``, ``_bounds`` and ``_starts``.

    Settings shared by every law:
    ``warmup``: ``"include"`` counts LR changes during warmup like any other (the multi-power-law
    authors' code), ``"exclude"`` ignores LR changes up to the end of warmup (the paper's formula);
    ``warmup_steps``: the index of the last warmup step, inferred with :func:`infer_warmup_steps` when
    None; ``n_starts``: L-BFGS-B runs from the best starting points of the grid; ``n_boot`` and
    ``n_segments``: the segment bootstrap behind :meth:`predict_interval`; ``seed``: its RNG seed.
    """

    PARAMS: tuple[str, ...] = ()
    KIND = ""
    CITATION = ""

    def __init__(
        self,
        warmup: str = "include",
        warmup_steps: int | None = None,
        n_starts: int = 3,
        n_boot: int = 30,
        n_segments: int = 8,
        seed: int = 0,
        delta: float = HUBER_DELTA,
        maxiter: int = 500,
    ):
        self.warmup, self.warmup_steps, self.n_starts = warmup, warmup_steps, n_starts
        self.n_boot, self.n_segments, self.seed, self.delta, self.maxiter = (
            n_boot,
            n_segments,
            seed,
            delta,
            maxiter,
        )

    # -- hooks ------------------------------------------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        return {"warmup": self.warmup, "warmup_steps": self.warmup_steps}

    def _features(self, lrs: np.ndarray, steps: np.ndarray, fit: bool) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _pred(self, p: dict[str, torch.Tensor], f: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def _bounds(self, curves: Sequence[Curve]) -> list[tuple[float, float]]:
        raise NotImplementedError

    def _starts(self, curves: Sequence[Curve], feats: list[dict]) -> list[np.ndarray]:
        raise NotImplementedError

    # optimizer coordinates: the identity unless a law decorrelates its parameters (MultiPowerLaw)
    def _reference(self, curves: Sequence[Curve]) -> None:
        """Fix data-dependent constants of the optimizer's coordinates before fitting."""

    def _penalty(self, logp: torch.Tensor) -> torch.Tensor | None:
        """Negative log prior of the log parameters (None: no prior)."""
        return None

    def _penalty_fn(self):
        """The prior as a function of optimizer coordinates, for :class:`RobustFit` (None: no prior)."""
        if self._penalty(torch.zeros(len(self.PARAMS), dtype=torch.float64)) is None:
            return None
        return lambda u: self._penalty(self._to_log(u))

    def _to_log(self, u: torch.Tensor) -> torch.Tensor:
        """Optimizer coordinates -> log parameters (torch, differentiable)."""
        return u

    def _from_log(self, x: np.ndarray) -> np.ndarray:
        """Log parameters -> optimizer coordinates."""
        return np.asarray(x, dtype=float)

    # -- helpers ----------------------------------------------------------------------------------
    def _first_k(self, lrs: np.ndarray) -> int:
        """First step whose LR change counts in the annealing term (0, or the step after warmup)."""
        if self.warmup not in WARMUP_MODES:
            raise FitError(f"warmup must be one of {WARMUP_MODES}, got {self.warmup!r}")
        if self.warmup == "include":
            return 0
        w = infer_warmup_steps(lrs) if self.warmup_steps is None else int(self.warmup_steps)
        return max(w, 0) + 1

    def _unpack(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: theta[j].exp() for j, k in enumerate(self.PARAMS)}

    def _check_fitted(self) -> None:
        if not hasattr(self, "theta_"):
            raise FitError(f"this {type(self).__name__} is not fitted yet: call fit() or from_params() first")

    # -- fitting ----------------------------------------------------------------------------------
    def fit(self, curves: Sequence[Curve]) -> ScheduleLaw:
        """Fit on ``curves`` (a list of :class:`Curve` of one model size, ideally several schedules).
        Sets ``params_`` (name -> value), ``theta_`` (log values), ``objective_``, ``at_bounds_`` (the
        parameters the fit left at a bound of their range) and ``train_errors_`` (per-curve
        :func:`curve_errors`). Returns self."""
        name = type(self).__name__
        curves = check_curves(curves, len(self.PARAMS), name)
        feats = [self._features(c.lrs, c.steps, True) for c in curves]
        self._reference(curves)
        fitter = RobustFit(
            lambda u, i: self._pred(self._unpack(self._to_log(u)), feats[i]),
            [np.log(c.loss) for c in curves],
            self._bounds(curves),
            self.delta,
            penalty=self._penalty_fn(),
        )
        u, val = fitter.best_of(
            [self._from_log(x) for x in self._starts(curves, feats)], self.n_starts, self.maxiter
        )
        self._set_theta(self._to_log(torch.as_tensor(u)).numpy())
        # parameters the optimizer left at a bound: not estimates, the bound speaks
        span = [(lo, hi) for lo, hi in self._bounds(curves)]
        self.at_bounds_ = [
            k
            for k, ui, (lo, hi) in zip(self.PARAMS, np.asarray(u, float), span, strict=True)
            if min(abs(ui - lo), abs(hi - ui)) <= 1e-3 * max(hi - lo, 1e-12)
        ]
        self.objective_ = val
        self._train = (curves, fitter)
        self.boot_thetas_ = None
        self.train_errors_ = {c.name or str(i): self.score(c) for i, c in enumerate(curves)}
        return self

    def _set_theta(self, theta: np.ndarray) -> None:
        self.theta_ = np.asarray(theta, dtype=float)
        self.params_ = {k: float(math.exp(v)) for k, v in zip(self.PARAMS, self.theta_, strict=True)}

    # -- prediction -------------------------------------------------------------------------------
    def _predict_theta(self, thetas: np.ndarray, lrs: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """Predictions (n_thetas x n_steps) at ``steps`` for each row of ``thetas``, in chunks of steps."""
        out = np.empty((len(thetas), len(steps)))
        if len(steps) == 0:
            return out
        order = np.argsort(steps)
        s_sorted = steps[order]
        uniq, inv = np.unique(s_sorted, return_inverse=True)
        res = np.empty((len(thetas), len(uniq)))
        with torch.no_grad(), single_thread():
            for a in range(0, len(uniq), _CHUNK):
                sub = uniq[a : a + _CHUNK]
                f = self._features(lrs, sub, False)
                for j, th in enumerate(thetas):
                    res[j, a : a + _CHUNK] = self._pred(self._unpack(torch.as_tensor(th)), f).numpy()
        out[:, order] = res[:, inv]
        return out

    def predict(self, lrs, steps=None) -> np.ndarray:
        """Predicted loss (nats) at ``steps`` (default: the last step) of a run with the per-step LR
        array ``lrs`` (``lrs[t]`` = LR of the update at step t, from step 0)."""
        self._check_fitted()
        lrs, steps = as_schedule(lrs, steps)
        return self._predict_theta(self.theta_[None, :], lrs, steps)[0]

    def predict_final(self, lrs) -> float:
        """Predicted loss (nats) after the last step of the schedule ``lrs``."""
        return float(self.predict(lrs)[0])

    def bootstrap(self, n_boot: int | None = None) -> np.ndarray:
        """Refit on ``n_boot`` segment-bootstrap resamples of the training curves (each curve cut into
        ``n_segments`` contiguous segments, resampled with replacement; refits start at the fitted
        optimum). Returns and caches the log-parameter draws ``boot_thetas_`` (n_boot x n_params)."""
        self._check_fitted()
        n_boot = self.n_boot if n_boot is None else n_boot
        cached = getattr(self, "boot_thetas_", None)
        if cached is not None and (len(cached) >= n_boot or getattr(self, "_train", None) is None):
            return cached
        if getattr(self, "_train", None) is None:
            raise FitError(
                "intervals need the training curves: call fit() on this law (a law loaded from "
                "to_dict() keeps intervals only if bootstrap() ran before saving)"
            )
        curves, fitter = self._train
        rng = np.random.default_rng(self.seed)
        draws = []
        saved = fitter.weights
        try:
            for _ in range(n_boot):
                fitter.weights = [
                    torch.as_tensor(w)
                    for w in segment_weights([len(c) for c in curves], self.n_segments, rng)
                ]
                u, _ = fitter.minimize(self._from_log(self.theta_), maxiter=200)
                draws.append(self._to_log(torch.as_tensor(u)).numpy())
        finally:
            fitter.weights = saved
        self.boot_thetas_ = np.array(draws)
        return self.boot_thetas_

    def predict_interval(self, lrs, steps=None, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Equal-tailed ``level`` interval of the predicted loss at ``steps`` from the segment
        bootstrap (parameter uncertainty of the fit; the curve's own noise is not added)."""
        if not 0 < level < 1:
            raise FitError(f"level must lie in (0, 1), got {level}")
        self._check_fitted()
        lrs, steps = as_schedule(lrs, steps)
        draws = self._predict_theta(self.bootstrap(), lrs, steps)
        q = (1 - level) / 2
        return np.quantile(draws, q, axis=0), np.quantile(draws, 1 - q, axis=0)

    def score(self, curve: Curve) -> dict[str, float]:
        """:func:`curve_errors` of this law's prediction of ``curve`` (fractions, not percent)."""
        return curve_errors(self.predict(curve.lrs, curve.steps), curve.loss)

    # -- persistence ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: kind, parameters, settings, citation (and bootstrap draws if computed)."""
        self._check_fitted()
        d = {
            "kind": self.KIND,
            "params": dict(self.params_),
            "settings": self._settings(),
            "citation": self.CITATION,
        }
        if getattr(self, "lr_ref_", None) is not None:
            d["lr_ref"] = float(self.lr_ref_)  # the peak LR of the fitted curves (for a shape prior)
        if getattr(self, "boot_thetas_", None) is not None:
            d["boot_thetas"] = self.boot_thetas_.tolist()
        return d

    @classmethod
    def from_params(cls, params: dict[str, float] | None = None, **kwargs) -> ScheduleLaw:
        """A law with given parameter values (e.g. a paper's), no fitting; ``kwargs`` are settings."""
        params = dict(params or {})
        for k in cls.PARAMS:
            if k in kwargs:
                params[k] = kwargs.pop(k)
        missing = [k for k in cls.PARAMS if k not in params]
        if missing:
            raise FitError(f"{cls.__name__}.from_params needs {', '.join(missing)}")
        if any(not (math.isfinite(params[k]) and params[k] > 0) for k in cls.PARAMS):
            raise FitError(f"{cls.__name__} parameters must be positive and finite: {params}")
        law = cls(**kwargs)
        law._set_theta(np.log([float(params[k]) for k in cls.PARAMS]))
        law.boot_thetas_ = None
        return law

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScheduleLaw:
        """Inverse of :meth:`to_dict`."""
        if d.get("kind") != cls.KIND:
            raise FitError(f"not a {cls.__name__} dict (kind {d.get('kind')!r}, expected {cls.KIND!r})")
        law = cls.from_params(d["params"], **d.get("settings", {}))
        if d.get("lr_ref") is not None:
            law.lr_ref_ = float(d["lr_ref"])
        if d.get("boot_thetas") is not None:
            law.boot_thetas_ = np.asarray(d["boot_thetas"], dtype=float)
        return law

    def __repr__(self) -> str:
        if not hasattr(self, "params_"):
            return f"{type(self).__name__}(unfitted)"
        body = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
        return f"{type(self).__name__}({body})"
