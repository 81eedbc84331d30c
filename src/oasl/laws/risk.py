"""Risk-adjusted recommendations: where to set an HP whose optimum is uncertain and whose valley is
asymmetric (a step too large diverges, one too small costs little).

The rule. A law predicts the log optimum at the target with a predictive distribution
``x* ~ Normal(center_log, sd_log^2)``. Setting the HP at ``v`` (log) costs a regret that depends on
``t = v - x*``, the log distance from the true optimum, as measured on the ladder's valleys
(:class:`ValleyShape`)::

    regret(t) = curv_below * t^2              -diverge_below < t < 0   (below the optimum: a gentle rise)
              = curv_above * t^2              0 <= t < diverge_at
              = max(diverge_cost, c t^2)      t >= diverge_at or t <= -diverge_below  (the run is lost)

(``diverge_below`` is infinite for lr; a batch far below the optimum can diverge at a fixed lr, as
Marin's 520m AdamW runs at batch 128 do.)

:func:`risk_adjusted` returns the ``v`` that minimises the expected regret ``E[regret(v - x*)]``
(a decision-theoretic point estimate under an asymmetric loss, as in Berger 1985, *Statistical
Decision Theory and Bayesian Analysis*, Sec. 4.4.2) and its shift from ``center_log``. With a
symmetric quadratic valley and no divergence the shift is 0; a steeper rise or divergence above
moves it down, further the wider the predictive distribution. The expectation is closed-form (the
truncated moments of a normal), so the rule is exact and fast.

All quantities are in natural-log units of the HP (for betas, of 1 - beta: larger = shorter memory =
"a larger step"); regrets are in the loss's units (nats).

The rule has no tuned constant: the valley is measured on the ladder (:meth:`ValleyShape.from_runs`)
and the spread comes from the law's predictive interval. ``diverge_cost`` defaults to
:data:`DIVERGE_COST`, the loss of a lost run relative to the best (the diverged runs of Marin's 130m and
300m sweeps end a median 4.19 nats above their sweep's best: benchmarks/laws_marin.py). The answer
depends on it roughly through its logarithm (the rule keeps the chance of divergence near curvature /
cost): with sd 0.4, curvatures 0.02 below and 0.04 above and divergence one x2 step above, a cost of
1, 4, 16 or 64 nats shifts the setting by x0.64, x0.55, x0.48 or x0.42.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from oasl.errors import FitError

DIVERGE_COST = 4.0  # nats (module docstring)


@dataclass(frozen=True)
class ValleyShape:
    """The loss increase around an optimum as a function of ``t`` = log(value / optimum).

    ``curv_below``/``curv_above``: loss increase per (log distance)^2 below/above the optimum (nats);
    ``diverge_at``: log distance above the optimum from which runs diverge (``inf``: never seen);
    ``diverge_cost``: the regret of a diverged run (nats); ``diverge_below``: log distance below the
    optimum from which runs diverge (``inf``: never seen); ``n_below``/``n_above``/``n_diverged``: the
    points and diverged runs it was measured from."""

    curv_below: float
    curv_above: float
    diverge_at: float = math.inf
    diverge_cost: float = DIVERGE_COST
    diverge_below: float = math.inf
    n_below: int = 0
    n_above: int = 0
    n_diverged: int = 0

    def __post_init__(self):
        for name in ("curv_below", "curv_above", "diverge_cost"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise FitError(f"ValleyShape.{name} must be finite and >= 0, got {v}")
        for name in ("diverge_at", "diverge_below"):
            if not getattr(self, name) > 0:
                raise FitError(
                    f"ValleyShape.{name} must be > 0 (a log distance from the optimum), got {getattr(self, name)}"
                )

    def regret(self, t) -> np.ndarray:
        """Regret (nats) at log distances ``t`` from the optimum (array-like)."""
        t = np.asarray(t, dtype=float)
        out = np.where(t < 0, self.curv_below * t * t, self.curv_above * t * t)
        lost = (t >= self.diverge_at) | (t <= -self.diverge_below)
        return np.where(lost, np.maximum(self.diverge_cost, out), out)

    @classmethod
    def from_runs(
        cls,
        log_dist,
        dloss,
        diverged,
        groups=None,
        diverge_cost: float = DIVERGE_COST,
    ) -> ValleyShape:
        """Measure a valley from runs around located optima.

        ``log_dist``: log(value / optimum) of each run; ``dloss``: its loss minus the optimum's (ignored
        for diverged runs); ``diverged``: flags; ``groups``: the valley (sweep) of each run (default:
        one valley). Curvatures: least squares through the origin, ``dloss = c t^2``, on the finite
        runs each side (0 when a side has none). ``diverge_at``: in each valley with a diverged run
        above the optimum, the boundary is placed midway (in log) between the largest finite distance
        above (0 if none) and the smallest diverged one; the median over those valleys is taken.
        Valleys that never diverged are not counted, which errs towards caution. ``diverge_below``:
        the same below the optimum. FitError on empty or mismatched input."""
        t = np.asarray(log_dist, dtype=float).ravel()
        y = np.asarray(dloss, dtype=float).ravel()
        d = np.asarray(diverged, dtype=bool).ravel()
        if not (len(t) == len(y) == len(d)) or len(t) == 0:
            raise FitError("ValleyShape.from_runs needs equally long, non-empty log_dist, dloss and diverged")
        g = np.zeros(len(t), int) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
        fin = ~d & np.isfinite(y) & np.isfinite(t)

        def curv(side: np.ndarray) -> float:
            m = fin & side
            if not m.any():
                return 0.0
            return max(0.0, float(np.sum(y[m] * t[m] ** 2) / np.sum(t[m] ** 4)))

        below, above = t < 0, t > 0

        def boundary(tt: np.ndarray, side: np.ndarray) -> float:
            bounds = []
            for k in np.unique(g):
                m = g == k
                dv = tt[m & d & side]
                if len(dv) == 0:
                    continue
                ok = tt[m & fin & side]
                lo = float(ok[ok < dv.min()].max()) if (ok < dv.min()).any() else 0.0
                bounds.append((lo + float(dv.min())) / 2)
            return float(np.median(bounds)) if bounds else math.inf

        return cls(
            curv(below),
            curv(above),
            boundary(t, above),
            float(diverge_cost),
            boundary(-t, below),
            int((fin & below).sum()),
            int((fin & above).sum()),
            int((d & (above | below)).sum()),
        )

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> ValleyShape:
        d = dict(d)
        for k in ("diverge_at", "diverge_below"):
            if d.get(k) is None:
                d[k] = math.inf
        return cls(**d)


def _t2_moment(m, s: float, a: float, b: float):
    """E[t^2 1{a < t < b}] for t ~ Normal(m, s^2) (a, b may be infinite; ``m`` a float or an array)."""
    from scipy.stats import norm

    m = np.asarray(m, dtype=float)
    al, be = (a - m) / s, (b - m) / s
    pa, pb = norm.cdf(al), norm.cdf(be)
    fa = np.zeros_like(m) if math.isinf(a) else norm.pdf(al)
    fb = np.zeros_like(m) if math.isinf(b) else norm.pdf(be)
    afa = np.zeros_like(m) if math.isinf(a) else al * fa
    bfb = np.zeros_like(m) if math.isinf(b) else be * fb
    return (m * m + s * s) * (pb - pa) + 2 * m * s * (fa - fb) + s * s * (afa - bfb)


def expected_regret(shift, sd_log: float, valley: ValleyShape):
    """Expected regret (nats) of setting the HP ``shift`` (log) away from the law's centre when the true
    log optimum is Normal(centre, ``sd_log``^2): ``E[regret(shift - e)]``, e ~ Normal(0, sd^2). ``shift``
    may be an array (one value per shift, computed at once); a float gives a float."""
    scalar = np.ndim(shift) == 0
    if sd_log <= 0:
        out = valley.regret(shift)
        return float(out) if scalar else out
    from scipy.stats import norm

    shift = np.asarray(shift, dtype=float)
    s, D, Db, K = float(sd_log), valley.diverge_at, valley.diverge_below, valley.diverge_cost
    cb, ca = valley.curv_below, valley.curv_above
    # beyond a boundary the regret is max(K, c t^2): the cost up to where the quadratic passes it
    Ta = max(D, math.sqrt(K / ca)) if ca > 0 else math.inf
    Tb = max(Db, math.sqrt(K / cb)) if cb > 0 else math.inf
    out = cb * (_t2_moment(shift, s, -Db, 0.0) + _t2_moment(shift, s, -math.inf, -Tb))
    out = out + ca * (_t2_moment(shift, s, 0.0, D) + _t2_moment(shift, s, Ta, math.inf))
    if math.isfinite(D):
        out = out + K * (norm.cdf((Ta - shift) / s) - norm.cdf((D - shift) / s))
    if math.isfinite(Db):
        out = out + K * (norm.cdf((-Db - shift) / s) - norm.cdf((-Tb - shift) / s))
    return float(out) if scalar else np.asarray(out, dtype=float)


def risk_adjusted(center_log: float, sd_log: float, valley: ValleyShape) -> tuple[float, float]:
    """The risk-adjusted setting ``(value_log, shift)``: ``value_log = center_log + shift`` minimises
    :func:`expected_regret` (module docstring). ``center_log``: the law's predicted log optimum;
    ``sd_log``: its predictive sd in log units (0: no uncertainty, shift 0 unless the valley itself is
    degenerate). FitError for a non-finite centre or a negative sd."""
    from scipy.optimize import minimize_scalar

    if not math.isfinite(center_log):
        raise FitError(f"risk_adjusted needs a finite centre, got {center_log}")
    if not (math.isfinite(sd_log) and sd_log >= 0):
        raise FitError(f"risk_adjusted needs a finite sd >= 0, got {sd_log}")
    if sd_log == 0:
        return float(center_log), 0.0
    span = 8 * sd_log + max(d for d in (valley.diverge_at, valley.diverge_below, 0.0) if math.isfinite(d))
    grid = np.linspace(-span, span, 801)
    vals = expected_regret(grid, sd_log, valley)
    k = int(np.argmin(vals))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    res = minimize_scalar(lambda x: expected_regret(x, sd_log, valley), bounds=(lo, hi), method="bounded")
    shift = float(res.x) if res.fun <= vals[k] else float(grid[k])
    return float(center_log + shift), shift


def sd_from_interval(low: float, high: float, level: float = 0.9) -> float:
    """The sd (log units) of a normal whose central ``level`` interval is ``(low, high)`` (raw units,
    > 0); NaN when the interval is missing or degenerate."""
    from scipy.stats import norm

    if not (low and high and low > 0 and high > low and math.isfinite(high)):
        return math.nan
    return (math.log(high) - math.log(low)) / (2 * norm.ppf(0.5 + level / 2))
