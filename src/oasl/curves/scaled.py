"""A schedule-aware loss law whose parameters move with model size N.

Every parameter of the base law (all positive) is a power of N around a reference size::

    log p_j(N) = a_j + b_j log(N / n_ref)

with ``b_j`` fitted for the parameters in ``scaled`` (default L0, A, alpha, B: the ones that move
across the multi-power-law paper's 25M/100M/400M fits, while C, beta, gamma stay within a few
percent) and ``b_j = 0`` (shared) for the rest. Slopes given in ``slopes`` are held fixed: that is
how a law fitted on a single size is transferred to another (e.g. with
:func:`oasl.curves.paper.paper_slopes`). The power-in-N form follows the Chinchilla habit
(Hoffmann et al. 2022, Eq. 2) for the irreducible part L0 and is an assumption for the shape
parameters, not a result of either schedule paper (docs/deviations.md).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from oasl.curves.annealing import AnnealingLaw
from oasl.curves.curve import Curve, curve_errors
from oasl.curves.estimator import RobustFit, ScheduleLaw, as_schedule, segment_weights
from oasl.curves.multipower import MultiPowerLaw
from oasl.errors import FitError, OaslError

_BASES = {"multi_power": MultiPowerLaw, "annealing": AnnealingLaw}


class ScaledScheduleLaw:
    """A :class:`ScheduleLaw` fitted jointly on curves of several model sizes, with parameters that
    are powers of N. ``fit(curves)`` reads each curve's ``n_params`` (or the ``n_params`` list);
    ``law_at(n_params)`` returns the base law at a size; ``predict(lrs, steps, n_params=...)``.

    ``base``: an unfitted law giving the form and its settings (default ``MultiPowerLaw()``);
    ``scaled``: parameters whose slope in log N is fitted; ``slopes``: fixed slopes d log p / d log N
    (required for every scaled parameter when only one size is given); ``n_ref``: reference size
    (default: the largest training size).
    """

    def __init__(
        self,
        base: ScheduleLaw | None = None,
        scaled: Sequence[str] = ("L0", "A", "alpha", "B"),
        slopes: dict[str, float] | None = None,
        n_ref: float | None = None,
        n_starts: int = 2,
        n_boot: int = 20,
        seed: int = 0,
    ):
        self.base, self.scaled, self.slopes, self.n_ref = base, tuple(scaled), dict(slopes or {}), n_ref
        self.n_starts, self.n_boot, self.seed = n_starts, n_boot, seed

    def _base(self) -> ScheduleLaw:
        return self.base if self.base is not None else MultiPowerLaw()

    # -- fitting ----------------------------------------------------------------------------------
    def fit(self, curves: Sequence[Curve], n_params: Sequence[float] | None = None) -> ScaledScheduleLaw:
        """Fit on ``curves`` of one or more model sizes. Sets ``intercepts_`` (log p_j at ``n_ref_``),
        ``slopes_`` (d log p_j / d log N), ``size_laws_`` (the per-size fits used as the start) and
        ``train_errors_``. Returns self."""
        base = self._base()
        names = base.PARAMS
        curves = list(curves)
        if not curves:
            raise FitError("ScaledScheduleLaw: no curves to fit")
        if n_params is not None:
            if len(n_params) != len(curves):
                raise FitError(f"{len(curves)} curves but {len(n_params)} n_params values")
            curves = [
                Curve(c.steps, c.lrs, c.loss, c.name, float(n)) for c, n in zip(curves, n_params, strict=True)
            ]
        if any(c.n_params is None for c in curves):
            raise FitError(
                "ScaledScheduleLaw needs each curve's model size: set Curve(n_params=...) or pass n_params=[...]"
            )
        unknown = [k for k in (*self.scaled, *self.slopes) if k not in names]
        if unknown:
            raise FitError(f"unknown parameter(s) {unknown}: {type(base).__name__} has {', '.join(names)}")
        sizes = sorted({float(c.n_params) for c in curves})
        free = [k for k in self.scaled if k not in self.slopes]
        if len(sizes) == 1 and free:
            raise FitError(
                f"one model size ({sizes[0]:.3g}) cannot show how {', '.join(free)} move with N: add curves of a "
                "second size, or pass slopes={...} (e.g. oasl.curves.paper.paper_slopes())"
            )
        n_ref = float(self.n_ref) if self.n_ref is not None else sizes[-1]

        # starting point: independent fits per size, log-parameters regressed on log N
        size_laws, logs = {}, []
        for n in sizes:
            group = [c for c in curves if c.n_params == n]
            try:
                law = _clone(base).fit(group)
            except OaslError:
                continue
            size_laws[n] = law
            logs.append((math.log(n / n_ref), law.theta_))
        if not size_laws:
            raise FitError(
                "no model size could be fitted on its own; give each size a decaying and a constant schedule"
            )
        x = np.array([u for u, _ in logs])
        Y = np.array([t for _, t in logs])
        a0, b0 = np.empty(len(names)), np.zeros(len(names))
        for j, k in enumerate(names):
            b = self.slopes.get(k, None)
            if b is None and k in free and len(x) >= 2:
                b = float(np.polyfit(x, Y[:, j], 1)[0])
            b0[j] = 0.0 if b is None else b
            a0[j] = float(np.mean(Y[:, j] - b0[j] * x))

        work = _clone(base)  # carries the optimizer coordinates' reference; the user's base stays unfitted
        work._reference(curves)
        feats = [work._features(c.lrs, c.steps, True) for c in curves]
        logn = [math.log(c.n_params / n_ref) for c in curves]
        free_idx = [names.index(k) for k in free]
        fixed_b = torch.tensor([self.slopes.get(k, 0.0) for k in names], dtype=torch.float64)

        def theta_at(th: torch.Tensor, u: float) -> torch.Tensor:
            """Log parameters at log(N / n_ref) = u from optimizer coordinates (intercepts, free slopes)."""
            b = fixed_b.clone()
            if free_idx:
                b = b.index_put((torch.tensor(free_idx),), th[len(names) :])
            return work._to_log(th[: len(names)]) + b * u

        prior = work._penalty_fn()
        fitter = RobustFit(
            lambda th, i: work._pred(work._unpack(theta_at(th, logn[i])), feats[i]),
            [np.log(c.loss) for c in curves],
            work._bounds(curves) + [(-2.0, 2.0)] * len(free_idx),
            work.delta,
            penalty=None if prior is None else (lambda th: prior(th[: len(names)])),
        )
        # starts: the regression of the per-size fits, and each size's own optimum moved to n_ref
        starts = [np.r_[work._from_log(a0), b0[free_idx]]]
        starts += [
            np.r_[work._from_log(law.theta_ - b0 * math.log(n / n_ref)), b0[free_idx]]
            for n, law in size_laws.items()
        ]
        theta, val = fitter.best_of(starts, self.n_starts, base.maxiter)
        self.n_ref_, self.sizes_, self.free_ = n_ref, sizes, free
        self.intercepts_ = dict(zip(names, theta_at(torch.as_tensor(theta), 0.0).tolist(), strict=True))
        b = fixed_b.numpy().copy()
        b[free_idx] = theta[len(names) :]
        self.slopes_ = dict(zip(names, b.tolist(), strict=True))
        # a slope at its bound means the sizes do not pin it down (e.g. L0 of short runs of two sizes)
        stuck = [k for k in free if abs(self.slopes_[k]) >= 2.0 - 1e-3]
        self.warnings_ = []
        if stuck:
            self.warnings_.append(
                f"the slope in log N of {', '.join(stuck)} hit its bound (+-2): {len(sizes)} model sizes do not "
                "determine it; predictions at other sizes are unreliable. Scale fewer parameters (scaled=...), "
                "fix the slope (slopes={...}) or add sizes"
            )
            warnings.warn("ScaledScheduleLaw: " + self.warnings_[-1], stacklevel=2)
        self.theta_, self.objective_, self.size_laws_ = theta, val, size_laws
        self._train = (curves, fitter, theta_at)
        self.boot_thetas_ = None
        self.train_errors_ = {
            f"{c.name}@{c.n_params:.3g}": curve_errors(
                self.predict(c.lrs, c.steps, n_params=c.n_params), c.loss
            )
            for c in curves
        }
        return self

    # -- prediction -------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "intercepts_"):
            raise FitError("this ScaledScheduleLaw is not fitted yet: call fit() first")

    def params_at(self, n_params: float) -> dict[str, float]:
        """The base law's parameters at model size ``n_params``."""
        self._check_fitted()
        if not (math.isfinite(n_params) and n_params > 0):
            raise FitError(f"n_params must be a positive parameter count, got {n_params}")
        u = math.log(n_params / self.n_ref_)
        return {k: math.exp(self.intercepts_[k] + self.slopes_[k] * u) for k in self.intercepts_}

    def law_at(self, n_params: float) -> ScheduleLaw:
        """The base law (fixed parameters) at model size ``n_params``."""
        base = self._base()
        return type(base).from_params(self.params_at(n_params), **base._settings())

    def predict(self, lrs, steps=None, *, n_params: float) -> np.ndarray:
        """Predicted loss (nats) at ``steps`` of a model of ``n_params`` parameters trained with ``lrs``."""
        return self.law_at(n_params).predict(lrs, steps)

    def predict_final(self, lrs, *, n_params: float) -> float:
        """Predicted loss (nats) after the last step of ``lrs`` for a model of ``n_params`` parameters."""
        return float(self.predict(lrs, n_params=n_params)[0])

    def bootstrap(self) -> np.ndarray:
        """Refit on ``n_boot`` segment-bootstrap resamples of all training curves (started at the fit);
        caches and returns the raw parameter draws ``boot_thetas_`` (intercepts, then free slopes)."""
        self._check_fitted()
        if self.boot_thetas_ is not None:
            return self.boot_thetas_
        if getattr(self, "_train", None) is None:
            raise FitError("intervals need the training curves: call fit() on this law")
        curves, fitter, _ = self._train
        rng = np.random.default_rng(self.seed)
        saved, draws = fitter.weights, []
        try:
            for _ in range(self.n_boot):
                fitter.weights = [
                    torch.as_tensor(w) for w in segment_weights([len(c) for c in curves], 8, rng)
                ]
                draws.append(fitter.minimize(self.theta_, maxiter=200)[0])
        finally:
            fitter.weights = saved
        self.boot_thetas_ = np.array(draws)
        return self.boot_thetas_

    def predict_interval(self, lrs, steps=None, level: float = 0.9, *, n_params: float):
        """Equal-tailed ``level`` interval of the loss at ``steps`` for a model of ``n_params`` from the
        segment bootstrap (fit uncertainty only: fixed slopes are taken as exact)."""
        if not 0 < level < 1:
            raise FitError(f"level must lie in (0, 1), got {level}")
        self._check_fitted()
        lrs, steps = as_schedule(lrs, steps)
        _, _, theta_at = self._train if getattr(self, "_train", None) else (None, None, None)
        if theta_at is None:
            raise FitError("intervals need the training curves: call fit() on this law")
        u = math.log(n_params / self.n_ref_)
        thetas = np.array([theta_at(torch.as_tensor(th), u).numpy() for th in self.bootstrap()])
        draws = self._base()._predict_theta(thetas, lrs, steps)
        q = (1 - level) / 2
        return np.quantile(draws, q, axis=0), np.quantile(draws, 1 - q, axis=0)

    # -- persistence ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: base kind and settings, intercepts, slopes, n_ref."""
        self._check_fitted()
        base = self._base()
        return {
            "kind": "scaled_schedule",
            "base": {"kind": base.KIND, "settings": base._settings()},
            "intercepts": self.intercepts_,
            "slopes": self.slopes_,
            "n_ref": self.n_ref_,
            "sizes": self.sizes_,
            "free": self.free_,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScaledScheduleLaw:
        """Inverse of :meth:`to_dict` (without bootstrap state)."""
        if d.get("kind") != "scaled_schedule" or d.get("base", {}).get("kind") not in _BASES:
            raise FitError("not a ScaledScheduleLaw dict")
        base = _BASES[d["base"]["kind"]](**d["base"]["settings"])
        law = cls(
            base=base,
            scaled=d["free"],
            slopes={k: v for k, v in d["slopes"].items() if k not in d["free"]},
            n_ref=d["n_ref"],
        )
        law.n_ref_, law.sizes_, law.free_ = d["n_ref"], d["sizes"], d["free"]
        law.intercepts_, law.slopes_ = dict(d["intercepts"]), dict(d["slopes"])
        law.boot_thetas_, law.warnings_ = None, []
        return law


def _clone(law: ScheduleLaw) -> ScheduleLaw:
    """A fresh, unfitted law with the same settings."""
    settings = {
        k: getattr(law, k)
        for k in ("warmup", "warmup_steps", "n_starts", "n_boot", "n_segments", "seed", "delta", "maxiter")
    }
    extra = {k: v for k, v in law._settings().items() if k not in settings}
    return type(law)(**settings, **extra)


TRANSFER_FREE = ("L0", "A", "alpha")


def transfer_law(
    law: ScheduleLaw, curves: Sequence[Curve], free: Sequence[str] = TRANSFER_FREE
) -> ScheduleLaw:
    """A schedule law for a new model size from a fitted ``law`` of another size plus a few curves of the
    new size, typically one constant-LR run: the parameters in ``free`` (default L0, A, alpha: the power
    law in the LR area, which a constant-LR curve pins down) are refitted on ``curves``, the others (the
    loss-drop term B, C, beta, gamma, which a constant run cannot identify and which move little with N
    in the multi-power-law authors' 25M-400M fits) are kept. Returns a new law of the same kind (no
    bootstrap state). oasl's own rule, not from either schedule paper (docs/deviations.md)."""
    law._check_fitted()
    names = law.PARAMS
    unknown = [k for k in free if k not in names]
    if unknown or not free:
        raise FitError(f"free must name some of {', '.join(names)}; got {list(free)}")
    curves = [curves] if isinstance(curves, Curve) else list(curves)
    if not curves or any(not isinstance(c, Curve) or len(c) < 3 for c in curves):
        raise FitError("transfer_law needs at least one Curve of the new size with 3 or more points")
    n = sum(len(c) for c in curves)
    if n < 3 * len(free):
        raise FitError(f"{n} observed points for {len(free)} free parameters; log the loss more often")
    work = _clone(law)
    feats = [work._features(c.lrs, c.steps, True) for c in curves]
    idx = torch.tensor([names.index(k) for k in free])
    theta0 = torch.as_tensor(np.asarray(law.theta_, dtype=float))

    def full(u: torch.Tensor) -> torch.Tensor:
        return theta0.index_put((idx,), u)

    fitter = RobustFit(
        lambda u, i: work._pred(work._unpack(full(u)), feats[i]),
        [np.log(c.loss) for c in curves],
        [(math.log(1e-8), math.log(1e8))] * len(free),
        law.delta,
    )
    u, _ = fitter.best_of([theta0[idx].numpy()], 1, law.maxiter)
    theta = full(torch.as_tensor(u)).numpy()
    out = type(law).from_params(dict(zip(names, np.exp(theta).tolist(), strict=True)), **law._settings())
    out.train_errors_ = {c.name or str(i): out.score(c) for i, c in enumerate(curves)}
    return out
