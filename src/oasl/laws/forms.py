"""Variants of the power law: HPs near 1, the scale-free null model, and a log-linear form.

``OneMinusPowerLaw``: ``1 - h* = C * prod x^a`` for HPs near 1 (beta1, beta2, momentum).
``ConstantLaw``: ``h*`` independent of scale, the null model every other form must beat.
``LogLinearLaw``: ``h* = c0 + sum c_i ln x_i`` (Kaplan et al. 2020's learning-rate fit, Eq. D.1).

Each changes only how the response is transformed into the linear space of
:class:`~oasl.laws.power.PowerLaw` (and how the constant is read), so fitting, intervals,
diagnostics and serialisation are shared.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from oasl.errors import FitError
from oasl.laws.power import PowerLaw


class OneMinusPowerLaw(PowerLaw):
    """For HPs near 1 (beta1, beta2, momentum): ``1 - h* = C * prod(x_i ^ a_i)``, fitted on
    ``log(1 - h*)``; predictions stay below 1 however far they extrapolate."""

    kind: ClassVar[str] = "one_minus"

    def _transform(self, y: np.ndarray) -> np.ndarray:
        if np.any(~np.isfinite(y)):
            raise FitError(f"{self.target} values contain NaN or inf: drop those rows before fitting")
        if np.any((y >= 1) | (y < 0)):
            raise FitError(
                f"{self.target} values must lie in [0, 1) for a 1 - h law; got {y[(y >= 1) | (y < 0)][0]:g}"
            )
        return np.log1p(-y)

    def _inverse(self, z: np.ndarray) -> np.ndarray:
        return 1.0 - np.exp(z)

    def _lhs(self) -> str:
        return f"1 - {self.target}"


class ConstantLaw(PowerLaw):
    """``h*`` independent of scale: the null model every other form must beat.

    A power law without exponents (the weighted geometric mean of the optima, with the same
    intervals). ``features`` name what it claims independence of: they are not used to predict, but
    their fitted range is kept so that :meth:`extrapolation_ratio` can warn when a query lies far
    outside the scales the constant was observed at.
    """

    kind: ClassVar[str] = "constant"

    def __init__(
        self,
        features: Sequence[str] = (),
        target: str = "lr",
        loss: str = "l2",
        huber_delta: float | None = None,
        by: str | None = None,
        interval: str = "bayes",
        n_boot: int = 1000,
        seed: int = 0,
        citation: str = "",
    ):
        super().__init__(features, target, loss, huber_delta, by, interval, n_boot, seed, citation)

    @property
    def _design_features(self) -> tuple[str, ...]:
        return ()

    def _constant_str(self) -> str:
        s = super()._constant_str()
        return s + (f" (constant in {', '.join(self.features)})" if self.features else "")


class LogLinearLaw(PowerLaw):
    """``h* = c0 + sum_i c_i ln x_i`` (natural log), fitted by least squares on ``h*`` itself.

    The form of Kaplan et al. 2020's learning-rate fit (App. D.6, Eq. D.1). ``coef_`` is ``c0`` and
    ``exponents_`` holds the slopes ``c_i``; intervals are symmetric in ``h*``.
    """

    kind: ClassVar[str] = "log_linear"

    def _transform(self, y: np.ndarray) -> np.ndarray:
        if np.any(~np.isfinite(y)):
            raise FitError(f"{self.target} values contain NaN or inf: drop those rows before fitting")
        return np.asarray(y, dtype=float)

    def _inverse(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(z, dtype=float)

    @staticmethod
    def _coef_from_intercept(b: float) -> float:
        return float(b)

    @staticmethod
    def _intercept_from_coef(c: float) -> float:
        return float(c)

    def formula(self) -> str:
        self._check_fitted()
        terms = " ".join(f"{'-' if a < 0 else '+'} {abs(a):.4g} ln {f}" for f, a in self.exponents_.items())
        return f"{self.target} = {self._constant_str()} {terms}".strip()


LAW_KINDS: dict[str, type[PowerLaw]] = {
    c.kind: c for c in (PowerLaw, OneMinusPowerLaw, ConstantLaw, LogLinearLaw)
}
