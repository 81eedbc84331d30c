"""Law-guided refinement: spend k runs of the target model around the law's recommendation, fit the local
valley, and return the lr with an interval.

The rule (docs/refine.md). The law gives a predictive distribution of the target's optimum in log lr: a
normal with its centre at the recommendation and its 90% interval at ±1.645 sd. The valley around the
optimum is a parabola in log lr, ``L / L_min = a + c (x - x*)^2``, whose curvature ``c`` (relative loss per
(log lr)^2), noise ``s`` (relative sd of one run about the parabola: run-to-run scatter plus the
parabola's misfit) and scatter ``s_r`` (the run-to-run part: seeds at one lr) are measured on the ladder
(:func:`ladder_valley`). Runs are placed in that order:

* 1 run: the centre (it checks the law's lr trains, and a divergence there moves the answer down);
* 2 runs: the centre ± ``d`` in log lr, ``d = max(sd, d_min)`` capped at :data:`MAX_STEP`, where
  ``d_min = sqrt(4 s_r / c)`` is the distance at which the valley rises by 4 sds of scatter (closer
  points could not be told apart);
* 3 or more: where the posterior of the optimum points (its mean), or ``d_min`` beside it on the side
  farther from the runs already there when a run is within ``d_min / 2`` of it.

After each run the posterior of ``x*`` is the prior times the parabola's likelihood of the runs (the
offset ``a`` profiled out, ``c`` marginalised over a log-normal prior around the ladder's value, sd
log 2), on a grid; a diverged run at ``x_d`` cuts off ``x* >= x_d``, and so does a run above the best one
that rose more than the parabola rises x3.3 above the optimum (:func:`over_cliff`: past the valley's
cliff, where a parabola would read a plateau as a large shift). The answer is the posterior mean
of ``x*`` (it minimises the expected squared log-lr error, hence the expected regret of a symmetric
valley) with the posterior's 90% interval. With one run the posterior is the prior: the answer is the law.

It borrows from multi-fidelity tuning (cheap evaluations, here a fitted law on a ladder, narrow where the
expensive ones go; e.g. Hyperband, Li et al. 2018, and the learned-prior BO of Swersky et al. 2013) and
from CARBS (Fetterman et al. 2023, arXiv 2306.08055, Sec. 3), which searches locally around a learned
scaling of the optimum rather than over the whole range. It fails when the law's interval misses the
valley (the runs all fall on one side: flagged ``beyond``) and when the valley is flatter than the noise
over the runs (flagged ``flat``: the runs cannot say where the optimum is, and the answer stays near the
law's).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

#: z of the 90% central interval of a normal
Z90 = 1.6448536269514722
#: log-lr sd of the law's prediction when it gives no finite interval (a factor of e per sd)
DEFAULT_SD = 1.0
#: farthest the first two runs go from the centre, in log lr (x/÷ 3.3): a parabola stops describing the
#: valley beyond that (it is steeper above the optimum and diverges)
MAX_STEP = 1.2
#: defaults where the ladder cannot say: relative curvature per (log lr)^2 and relative noise (runs of one
#: seed at neighbouring lrs); typical of the CPU ladders of docs/ladders.md
DEFAULT_CURVATURE = 0.04
DEFAULT_NOISE = 0.002
NOISE_MIN = 5e-4
#: degrees of freedom of the Student-t prior of the optimum (heavy tails: the CPU ladders' 90% intervals
#: missed the target's optimum more often than one time in ten, issue 25)
PRIOR_DOF = 3.0


@dataclass
class Valley:
    """The valley's shape as the ladder measured it: ``curvature`` (relative loss per (log lr)^2 near the
    optimum, of the largest swept size), ``noise`` (relative sd of one run's loss about the fitted
    parabola: run-to-run scatter and the parabola's misfit; the likelihood's noise), ``scatter`` (the
    run-to-run part alone, which sets how far apart runs must be placed) and ``asym``, the curvature above the optimum over the curvature below it (1: symmetric;
    :func:`with_asymmetry` sets it from :func:`ladder_risk`'s measurement). ``source`` says where the
    numbers came from."""

    curvature: float = DEFAULT_CURVATURE
    noise: float = DEFAULT_NOISE
    source: str = "defaults"
    asym: float = 1.0
    #: run-to-run sd of one run's relative loss at a fixed lr (seeds of the ladder); None: not measured
    #: (a single-seed ladder), ``noise`` stands for it
    scatter: float | None = None
    #: how the likelihood lets the target's valley differ from the ladder's: "tied" (one curvature
    #: multiplier for both sides, the asymmetry fixed) or "independent" (each side's its own)
    sides: str = "tied"
    #: what a run risen beyond the parabola's range above the best run is (:func:`over_cliff`): "bound"
    #: (left out of the parabola; the optimum lies below it: the rule since 2026-12-05) or "fit" (a point
    #: of the parabola like any other: the rule before)
    cliff: str = "bound"
    #: the ladder's first steps: the rise one tried lr above the best tried lr over the rise one tried lr
    #: below (medians over rungs, at least 1; :func:`ladder_valley`)
    step_ratio: float = 1.0
    #: where the first two runs go (:func:`plan`): "symmetric" (the centre x/÷ e^d) or "equal-rise"
    #: (e^d below, e^(d / sqrt(step_ratio)) above: equal rises on a valley step_ratio times steeper above)
    placement: str = "symmetric"
    #: the single runs' residual sd about the parabola on each side of the best lr (medians over rungs, as
    #: ``noise``; None: not measured): on v3's ladder runs above the best lr sit 2-4x farther from it
    noise_above: float | None = None
    noise_below: float | None = None
    #: the likelihood's noise: "one" (``noise`` for every run) or "sides" (``noise_above`` for a run above
    #: the lowest run, ``noise_below`` for the others; a candidate of session 17, docs/refine.md)
    noise_sides: str = "one"

    def __post_init__(self) -> None:
        from oasl.errors import ConfigError

        if self.sides not in ("tied", "independent"):
            raise ConfigError(f"valley sides {self.sides!r}: use 'tied' or 'independent'")
        if self.cliff not in ("fit", "bound"):
            raise ConfigError(f"valley cliff {self.cliff!r}: use 'fit' or 'bound'")
        if self.placement not in ("symmetric", "equal-rise"):
            raise ConfigError(f"valley placement {self.placement!r}: use 'symmetric' or 'equal-rise'")
        if self.noise_sides not in ("one", "sides"):
            raise ConfigError(f"valley noise_sides {self.noise_sides!r}: use 'one' or 'sides'")

    def side_noise(self) -> tuple[float, float]:
        """The likelihood's noise of a run above the lowest run and of the others: ``noise_above`` and
        ``noise_below`` with ``noise_sides == "sides"`` (each at least :data:`NOISE_MIN`; ``noise`` where one
        is not measured), ``noise`` for both otherwise."""
        if self.noise_sides != "sides":
            return self.noise, self.noise

        def pick(v: float | None) -> float:
            return max(float(v), NOISE_MIN) if v is not None and math.isfinite(v) else self.noise

        return pick(self.noise_above), pick(self.noise_below)

    def side_weights(self) -> tuple[float, float]:
        """The curvature's factor above and below the optimum, ``2 r / (1 + r)`` and ``2 / (1 + r)`` for
        ``r = asym`` (1 and 1 when the asymmetry is not a positive number)."""
        r = self.asym if math.isfinite(self.asym) and self.asym > 0 else 1.0
        return 2 * r / (1 + r), 2 / (1 + r)

    def min_step(self) -> float:
        """Log-lr distance at which the valley rises by 4 sds of run-to-run scatter: runs closer than that
        are not told apart. The scatter, not ``noise``: the parabola's misfit, which ``noise`` also holds,
        grows with the distance from the optimum and is not beaten by placing runs farther apart."""
        s = self.scatter if self.scatter is not None and math.isfinite(self.scatter) else self.noise
        return math.sqrt(4.0 * max(s, NOISE_MIN) / self.curvature)


@dataclass
class RefineResult:
    """What :func:`refine` found: ``lr`` (posterior mean of the optimum) with its 90% ``interval``; the runs
    (``lrs``, ``losses``; NaN = diverged) in the order trained; the prior (``center``, ``prior_interval``);
    the ``valley`` used; ``flags`` (``beyond``, ``flat``, ``diverged``) with ``messages`` saying what to do;
    ``risk`` the asymmetric valley the answer was risk-adjusted on ({} when it is the posterior mean);
    ``rule`` the sentence saying which answer rule was used and why (set by the refine workflow)."""

    lr: float
    interval: tuple[float, float]
    lrs: list[float]
    losses: list[float]
    center: float
    prior_interval: tuple[float, float]
    valley: dict[str, Any]
    k: int
    flags: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    batch_seqs: int | None = None
    risk: dict[str, Any] = field(default_factory=dict)
    rule: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON (non-finite losses as None)."""
        d = asdict(self)
        d["losses"] = [v if math.isfinite(v) else None for v in self.losses]
        d["prior_interval"] = [v if math.isfinite(v) else None for v in self.prior_interval]
        return d


def prior_sd(center: float, interval: tuple[float, float] | None) -> float:
    """Log-lr sd of the law's prediction: half the log width of its 90% ``interval`` over z_0.95 (the wider
    side when the interval is not centred on ``center``); :data:`DEFAULT_SD` without a finite interval."""
    if interval is None:
        return DEFAULT_SD
    lo, hi = (float(v) for v in interval)
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
        return DEFAULT_SD
    mu = math.log(center)
    return max(mu - math.log(lo), math.log(hi) - mu, 1e-3) / Z90


def posterior(
    center: float,
    sd: float,
    lrs: Sequence[float],
    losses: Sequence[float],
    valley: Valley,
    n_grid: int = 801,
) -> tuple[np.ndarray, np.ndarray]:
    """The posterior of the optimum ``x* = log lr*`` on a grid: ``(grid, weights)`` (weights sum to 1).

    Prior: a Student t (:data:`PRIOR_DOF` dof) centred on log center with scale ``sd``; likelihood of the
    finite runs under ``L / L_min = a + c w (x - x*)^2`` with Gaussian noise ``valley.noise`` (``a``
    profiled out, ``c`` on a log grid around ``valley.curvature`` with a log-normal prior, sd log 2; ``w``
    = 2 r / (1 + r) above the optimum and 2 / (1 + r) below it, ``r = valley.asym``, so the mean of the two
    sides' curvatures stays ``c``; with ``valley.sides == "independent"`` each side has its own multiplier,
    a variant the refinement's check rejected, docs/refine.md); a diverged run at ``x_d`` excludes
    ``x* >= x_d``."""
    mu = math.log(center)
    x = np.log(np.asarray(lrs, dtype=float))
    y = np.asarray(losses, dtype=float)
    ok = np.isfinite(y)
    lo, hi = mu - 5 * sd, mu + 5 * sd
    if x.size:
        lo, hi = min(lo, x.min() - 2 * MAX_STEP), max(hi, x.max() + 2 * MAX_STEP)
    grid = np.linspace(lo, hi, n_grid)
    # Student t (3 dof) rather than normal: the data must be able to overrule a law whose interval misses
    logp = -0.5 * (PRIOR_DOF + 1) * np.log1p(((grid - mu) / sd) ** 2 / PRIOR_DOF)
    for xd in x[~ok]:
        logp = np.where(grid < xd, logp, -np.inf)
    cliff = over_cliff(lrs, losses, valley)
    for xc in x[cliff]:  # a run over the cliff bounds the optimum from above, like a diverged one
        logp = np.where(grid < xc, logp, -np.inf)
    ok = ok & ~cliff
    if ok.sum() >= 2:
        yr = y[ok] / y[ok].min()
        xs = x[ok]
        mult = np.exp(np.linspace(-2.0, 2.0, 21))
        log_prior_c = -0.5 * (np.log(mult) / math.log(2.0)) ** 2
        # r[c, g, i] = y_i - c w (x_i - x*_g)^2; the offset a profiled out by centring over runs
        d = xs[None, :] - grid[:, None]
        wa, wb = valley.side_weights()
        above = d > 0
        qa = np.where(above, wa * d**2, 0.0)
        qb = np.where(above, 0.0, wb * d**2)
        cm = valley.curvature * mult
        if valley.sides == "independent":
            # each side's curvature its own multiplier: [c_above, c_below, grid, run] flattened to [c, ...]
            r = yr - cm[:, None, None, None] * qa - cm[None, :, None, None] * qb
            r = r.reshape(mult.size**2, *d.shape)
            lpc = (log_prior_c[:, None] + log_prior_c[None, :]).ravel()
        else:
            r = yr[None, None, :] - cm[:, None, None] * (qa + qb)[None, :, :]
            lpc = log_prior_c
        if valley.noise_sides == "sides":
            # each run's own noise, fixed by its place against the lowest run (as over_cliff classifies
            # runs): above it, the noisier side's. Weighted least squares, the offset a profiled out; the
            # weights do not depend on x*, so the normalisation is constant. (Classifying by the hypothesised
            # optimum instead makes the noise itself evidence: it favours every x* that puts the runs on the
            # quiet side, i.e. above them all.)
            na, nb = valley.side_noise()
            wt = np.where(xs > xs[np.argmin(yr)], 1 / na**2, 1 / nb**2)
            a_hat = (r * wt).sum(axis=-1, keepdims=True) / wt.sum()
            sse = (wt * (r - a_hat) ** 2).sum(axis=-1)
            ll = -sse / 2 + lpc[:, None]
        else:
            sse = ((r - r.mean(axis=2, keepdims=True)) ** 2).sum(axis=2)
            ll = -sse / (2 * valley.noise**2) + lpc[:, None]
        m = ll.max(axis=0)
        logp = logp + m + np.log(np.exp(ll - m).sum(axis=0))
    if not np.any(np.isfinite(logp)):  # every candidate cut off: the optimum lies below every run
        logp = np.where(grid == grid.min(), 0.0, -np.inf)
    w = np.exp(logp - np.max(logp))
    return grid, w / w.sum()


def over_cliff(lrs: Sequence[float], losses: Sequence[float], valley: Valley) -> np.ndarray:
    """Which runs rose beyond the range the valley's parabola describes: with ``valley.cliff == "bound"``,
    a finite run above the lowest run (in lr) whose loss exceeds the lowest run's by more than the
    parabola rises at :data:`MAX_STEP` above the optimum (``c w_above MAX_STEP^2``, relative). Above the
    optimum the CPU ladders' valleys are a cliff and then a plateau, where a parabola reads any run as a
    large shift; below it they rise slowly and smoothly, so runs there are always fitted. All False for
    "fit"."""
    y = np.asarray(losses, dtype=float)
    ok = np.isfinite(y)
    if valley.cliff != "bound" or ok.sum() < 2:
        return np.zeros(y.shape, dtype=bool)
    x = np.log(np.asarray(lrs, dtype=float))
    kb = int(np.flatnonzero(ok)[np.argmin(y[ok])])
    limit = valley.curvature * valley.side_weights()[0] * MAX_STEP**2
    return ok & (x > x[kb]) & (y / y[kb] - 1 > limit)


def _risk_point(grid: np.ndarray, w: np.ndarray, risk) -> float:
    """The setting (log lr) that minimises the expected regret under the posterior ``(grid, w)`` of the
    optimum when the valley is ``risk`` (:class:`oasl.laws.risk.ValleyShape`: asymmetric, with divergence)."""
    v = grid[::2]
    expected = risk.regret(v[:, None] - grid[None, :]) @ w
    return float(v[int(np.argmin(expected))])


def _summary(grid: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    cdf = np.cumsum(w)
    mean = float((grid * w).sum())
    lo = float(np.interp((1 - 0.9) / 2, cdf, grid))
    hi = float(np.interp((1 + 0.9) / 2, cdf, grid))
    return mean, lo, hi


def next_lr(
    center: float,
    sd: float,
    lrs: Sequence[float],
    losses: Sequence[float],
    valley: Valley,
) -> float:
    """Where the next target run goes after the first ones of :func:`plan` (the module's placement rule):
    the posterior mean of the optimum, or ``d_min`` beside it when a run is already within ``d_min / 2``."""
    grid, w = posterior(center, sd, lrs, losses, valley)
    m, _, _ = _summary(grid, w)
    xs = np.log(np.asarray(lrs, dtype=float))
    step = min(valley.min_step(), MAX_STEP)
    if np.min(np.abs(xs - m)) >= step / 2:
        return math.exp(m)
    cands = [m - step, m + step]
    return math.exp(max(cands, key=lambda c: float(np.min(np.abs(xs - c)))))


def plan(center: float, sd: float, k: int, valley: Valley, risk=None) -> list[float]:
    """The first runs of a budget of ``k``: the centre for k = 1 (the risk-adjusted point when ``risk``, a
    :class:`oasl.laws.risk.ValleyShape`, is given), the centre ± d for k >= 2 (the rest depend on the
    losses, see :func:`next_lr`)."""
    if k <= 1:
        if risk is not None:
            grid, w = posterior(center, sd, [], [], valley)
            return [math.exp(_risk_point(grid, w, risk))]
        return [center]
    d = min(max(sd, valley.min_step()), MAX_STEP)
    up = d
    if valley.placement == "equal-rise" and math.isfinite(valley.step_ratio) and valley.step_ratio > 1:
        up = d / math.sqrt(valley.step_ratio)
    return [center * math.exp(-d), center * math.exp(up)]


def refine(
    center: float,
    interval: tuple[float, float] | None,
    k: int,
    train: Callable[[list[float]], list[float]],
    valley: Valley | None = None,
    batch_seqs: int | None = None,
    risk=None,
) -> RefineResult:
    """Place ``k`` target runs around the law's recommendation ``center`` (lr) with its 90% ``interval``,
    train them with ``train(lrs) -> final losses`` (NaN where a run diverged; e.g. through the store with
    :func:`oasl.sweep.run_sweep`), fit the local valley and return a :class:`RefineResult`.

    ``valley`` is the ladder's valley (:func:`ladder_valley`; defaults otherwise). The first runs of a
    budget (:func:`plan`) are trained together, the rest one at a time (each placed where the posterior
    points). ``risk`` (a :class:`oasl.laws.risk.ValleyShape` measured on the ladder, :func:`ladder_risk`)
    makes the answer the lr of least expected regret under the posterior on that asymmetric valley
    instead of the posterior mean. ``batch_seqs`` is carried into the result when the batch was chosen
    jointly."""
    from oasl.errors import ConfigError

    if k < 1:
        raise ConfigError(f"k = {k}: give at least one target run to refine with")
    if not (math.isfinite(center) and center > 0):
        raise ConfigError(f"centre lr {center!r} is not a positive number: give the law's recommendation")
    valley = valley or Valley()
    sd = prior_sd(center, interval)
    lrs = plan(center, sd, k, valley, risk)
    losses = [float(v) for v in train(list(lrs))]
    while len(lrs) < k:
        nxt = next_lr(center, sd, lrs, losses, valley)
        lrs.append(nxt)
        losses.append(float(train([nxt])[0]))
    return fit_runs(center, interval, lrs, losses, valley, batch_seqs, risk)


def fit_runs(
    center: float,
    interval: tuple[float, float] | None,
    lrs: Sequence[float],
    losses: Sequence[float],
    valley: Valley | None = None,
    batch_seqs: int | None = None,
    risk=None,
) -> RefineResult:
    """The refined lr from runs already trained (``lrs``, ``losses``; NaN = diverged), with the flags;
    with no runs, the law's own point (risk-adjusted when ``risk`` is given)."""
    valley = valley or Valley()
    sd = prior_sd(center, interval)
    grid, w = posterior(center, sd, lrs, losses, valley)
    m, lo, hi = _summary(grid, w)
    if risk is not None:
        m = _risk_point(grid, w, risk)
    flags, msgs = [], []
    y = np.asarray(losses, dtype=float)
    x = np.log(np.asarray(lrs, dtype=float))
    ok = np.isfinite(y)
    if (~ok).any():
        flags.append("diverged")
        msgs.append(
            f"{int((~ok).sum())} run(s) diverged (lr {', '.join(f'{v:.3g}' for v in np.exp(x[~ok]))}): the "
            "optimum is taken to lie below them"
        )
    cliff = over_cliff(lrs, losses, valley)
    if cliff.any():
        flags.append("cliff")
        ok = ok & ~cliff
        msgs.append(
            f"{int(cliff.sum())} run(s) rose beyond the ladder's parabola (lr "
            f"{', '.join(f'{v:.3g}' for v in np.exp(x[cliff]))}): the optimum is taken to lie below them"
            + (
                "; with fewer than two runs left to fit, the answer leans on the law's: one more run (raise k) "
                "finds the bottom"
                if ok.sum() < 2
                else ""
            )
        )
    if ok.sum() >= 2:
        yr = y[ok] / y[ok].min()
        xs = x[ok]
        best = xs[np.argmin(yr)]
        # two runs within noise of each other may also bracket the optimum symmetrically: only a third
        # run (placed between them) can tell a flat valley from a centred one
        if ok.sum() >= 3 and float(yr.max() - 1.0) < 2 * valley.noise:
            flags.append("flat")
            msgs.append(
                f"the runs differ by {100 * float(yr.max() - 1):.2f}%, less than twice the noise "
                f"({100 * valley.noise:.2f}%): the valley is flatter than the noise here, so the runs cannot "
                "place the optimum and the answer stays near the law's; any lr in this range is about as good"
            )
        else:
            # where the runs alone point, under the ladder's curvature (no prior): beyond the runs by more
            # than half a resolvable step means the valley's bottom was not bracketed
            cand = np.linspace(xs.min() - 4 * MAX_STEP, xs.max() + 4 * MAX_STEP, 1601)
            r = yr[None, :] - valley.curvature * (xs[None, :] - cand[:, None]) ** 2
            x_data = float(cand[np.argmin(((r - r.mean(axis=1, keepdims=True)) ** 2).sum(axis=1))])
            half = valley.min_step() / 2
            if best in (xs.min(), xs.max()) and not xs.min() - half <= x_data <= xs.max() + half:
                side = "above" if x_data > xs.max() else "below"
                edge = math.exp(xs.max() if side == "above" else xs.min())
                flags.append("beyond")
                # a parabola extrapolated far beyond the runs is no answer: go at most MAX_STEP past the
                # best run, and let the interval span what the runs say
                capped = float(np.clip(m, best - MAX_STEP, best + MAX_STEP))
                lo, hi = min(best, capped, x_data), max(best, capped, x_data)
                m = capped
                msgs.append(
                    f"the runs point to an optimum {side} lr {edge:.3g} (near {math.exp(x_data):.3g} at the "
                    "ladder's curvature), outside the runs: the law's interval likely misses the valley; the "
                    f"answer goes at most x{math.exp(MAX_STEP):.1f} past the best run; train more runs {side} "
                    "it (raise k) before using it"
                )
    return RefineResult(
        lr=float(math.exp(m)),
        interval=(float(math.exp(lo)), float(math.exp(hi))),
        lrs=[float(v) for v in lrs],
        losses=[float(v) for v in losses],
        center=float(center),
        prior_interval=tuple(float(v) for v in interval) if interval is not None else (math.nan, math.nan),
        valley=asdict(valley),
        k=len(lrs),
        flags=flags,
        messages=msgs,
        batch_seqs=batch_seqs,
        risk=risk.to_dict() if risk is not None else {},
    )


def with_asymmetry(valley: Valley, risk) -> Valley:
    """``valley`` with ``asym`` = ``risk.curv_above / risk.curv_below`` (a
    :class:`oasl.laws.risk.ValleyShape` from :func:`ladder_risk`): the likelihood of the refinement's runs
    then has the valley's measured asymmetry (steeper above the optimum on every CPU ladder measured).
    Unchanged when ``risk`` is None or its curvatures are not positive and finite."""
    if risk is None:
        return valley
    a, b = float(risk.curv_above), float(risk.curv_below)
    if not (math.isfinite(a) and math.isfinite(b) and a > 0 and b > 0):
        return valley
    return replace(valley, asym=a / b, source=f"{valley.source}; asymmetry {a / b:.2f} (ladder)")


def ladder_valley(
    runs: pd.DataFrame, optimizer: str | None = None, window: float = 1.2, noise_from: str = "median"
) -> Valley:
    """The valley's shape measured on a ladder's runs (the store's frame: ``lr``, ``final_val_loss``,
    ``n_params``, ``optimizer``, ``status``): for each size, the seed-mean loss per lr within ``window`` (log
    lr) of the best, fitted by a parabola in log lr on the relative loss; ``curvature`` is the largest
    size's (the one nearest the target), ``noise`` the median over sizes of the residual sd of single runs
    (every seed) about that parabola: the noise of one target run, not of a seed mean; ``scatter`` the
    median of the pooled sd of the runs at one lr about their mean (None with one seed); ``noise_above`` and
    ``noise_below`` the median residual sd of the single runs above and below the best lr. With
    ``noise_from="largest"`` the noise and the scatter are the largest measured size's, like the curvature
    (an option, off: the refinement's check rejected it, docs/refine.md). Defaults where fewer than 4 finite
    points sit in the window of any size."""
    if noise_from not in ("median", "largest"):
        from oasl.errors import ConfigError

        raise ConfigError(f"valley noise_from {noise_from!r}: use 'median' or 'largest'")
    df = runs
    if optimizer is not None and "optimizer" in df:
        df = df[df["optimizer"] == optimizer]
    ratio = step_ratio(df)
    if "status" in df:
        df = df[df["status"] == "done"]
    df = df[np.isfinite(pd.to_numeric(df.get("final_val_loss"), errors="coerce"))]
    curv: dict[float, float] = {}
    resid: dict[float, float] = {}
    scatter: dict[float, float] = {}
    side_resid: dict[str, list[float]] = {"above": [], "below": []}
    for n, sub in df.groupby("n_params"):
        mean = sub.groupby("lr")["final_val_loss"].mean()
        x = np.log(mean.index.to_numpy(float))
        y = mean.to_numpy(float) / mean.min()
        xb = x[np.argmin(y)]  # the best tried lr (log)
        near = np.abs(x - xb) <= window
        if near.sum() < 4:
            continue
        coef = np.polyfit(x[near], y[near], 2)
        if coef[0] <= 0:
            continue
        curv[float(n)] = float(coef[0])
        # the noise of ONE run (the target's runs are single-seed): every seed's run about the parabola
        # of the seed means, so seed-to-seed scatter counts in full and the parabola's misfit too
        lo, hi = float(x[near].min()), float(x[near].max())
        xr = np.log(sub["lr"].to_numpy(float))
        inside = (xr >= lo - 1e-9) & (xr <= hi + 1e-9)
        yr = sub["final_val_loss"].to_numpy(float)[inside] / mean.min()
        dof = max(int(inside.sum()) - 3, 1)
        res = yr - np.polyval(coef, xr[inside])
        resid[float(n)] = float(np.sqrt(np.sum(res**2) / dof))
        # the same residuals on each side of the best lr (the best lr's runs count below), each side's
        # share of the parabola's 3 dof taken off
        up = xr[inside] > xb + 1e-9
        for side, mask in ((side_resid["above"], up), (side_resid["below"], ~up)):
            n_side = int(mask.sum())
            if n_side >= 2:
                side.append(float(np.sqrt(np.sum(res[mask] ** 2) / max(n_side - 3 * n_side / res.size, 1.0))))
        # run-to-run scatter: the pooled sd of the runs at one lr (seeds) about their mean, same window
        at = pd.DataFrame({"x": xr[inside], "y": yr})
        g = at.groupby("x")["y"]
        dof_s = int((g.count() - 1).clip(lower=0).sum())
        if dof_s > 0:
            scatter[float(n)] = float(np.sqrt(float(((at["y"] - g.transform("mean")) ** 2).sum()) / dof_s))
    if not curv:
        return Valley()
    top = max(curv)

    def pick(values: dict[float, float]) -> float | None:
        if noise_from == "largest":
            return values.get(top)
        return float(np.median(list(values.values()))) if values else None

    noise, spread = pick(resid), pick(scatter)
    noise = max(noise, NOISE_MIN) if noise is not None else DEFAULT_NOISE
    spread = max(spread, NOISE_MIN) if spread is not None else None
    return Valley(
        curvature=curv[top],
        noise=noise,
        source=f"ladder ({len(curv)} sizes)",
        scatter=spread,
        step_ratio=ratio,
        noise_above=float(np.median(side_resid["above"])) if side_resid["above"] else None,
        noise_below=float(np.median(side_resid["below"])) if side_resid["below"] else None,
    )


def seed_means(runs: pd.DataFrame) -> pd.Series:
    """The seed-mean final loss per (``n_params``, ``lr``) of one optimizer's runs, sorted; NaN at a lr where
    any run diverged or did not finish (``status`` other than done, or no finite loss)."""
    loss = pd.to_numeric(runs["final_val_loss"], errors="coerce")
    if "status" in runs:
        loss = loss.where(runs["status"] == "done")
    g = loss.groupby([runs["n_params"].to_numpy(float), runs["lr"].to_numpy(float)])
    return g.mean().where(g.count() == g.size())


def first_rises(means: pd.Series, steps=(-1, 1)) -> tuple[int, dict[int, float]] | None:
    """One rung's seed means (:func:`seed_means`, ordered by lr): the position of the best tried lr and the
    relative rise of the loss ``j`` tried lrs from it, for each ``j`` of ``steps`` (NaN off the grid or where
    that lr has no mean). None when no lr has a mean."""
    y = means.to_numpy(float)
    if not np.isfinite(y).any():
        return None
    i = int(np.nanargmin(y))
    return i, {j: float(y[i + j] / y[i] - 1) if 0 <= i + j < y.size else float("nan") for j in steps}


def step_ratio(runs: pd.DataFrame) -> float:
    """The ladder's first steps (one optimizer's runs: ``n_params``, ``lr``, ``final_val_loss``, ``status``):
    per rung, the rise of the seed-mean loss one tried lr above and one below the best tried lr
    (:func:`first_rises`); over the rungs where both neighbours have a mean, the median relative rise above
    over the median rise below, at least 1. 1 when no rung has both."""
    above: list[float] = []
    below: list[float] = []
    for _, means in seed_means(runs).groupby(level=0):
        found = first_rises(means)
        if found is not None and np.isfinite(found[1][-1]) and np.isfinite(found[1][1]):
            above.append(found[1][1])
            below.append(found[1][-1])
    if not above:
        return 1.0
    lo = float(np.median(below))
    hi = float(np.median(above))
    return max(1.0, hi / lo) if lo > 0 else 1.0


def ladder_risk(runs: pd.DataFrame, optima: pd.DataFrame, optimizer: str | None = None, window: float = 1.5):
    """The ladder's asymmetric valley (:class:`oasl.laws.risk.ValleyShape`, Marin-style: curvature below
    and above the optimum, where runs diverge) from the runs around each size's located optimum
    (``optima``: ``n_params``, ``opt``, ``loss_at_opt``); finite runs within ``window`` (log lr) of it,
    every diverged run. None when it cannot be measured."""
    from oasl.errors import FitError
    from oasl.laws.risk import ValleyShape

    df, op = runs, optima
    if optimizer is not None:
        df = df[df["optimizer"] == optimizer] if "optimizer" in df else df
        op = op[op["optimizer"] == optimizer] if "optimizer" in op else op
    t, dl, dv, g = [], [], [], []
    for _, row in op.iterrows():
        opt, at = float(row.get("opt", math.nan)), float(row.get("loss_at_opt", math.nan))
        if not (math.isfinite(opt) and opt > 0 and math.isfinite(at)):
            continue
        sub = df[df["n_params"] == row["n_params"]]
        loss = pd.to_numeric(sub["final_val_loss"], errors="coerce").to_numpy(float)
        div = ~np.isfinite(loss)
        if "status" in sub:
            div |= (sub["status"] == "diverged").to_numpy()
        x = np.log(sub["lr"].to_numpy(float) / opt)
        keep = div | (np.abs(x) <= window)
        t += list(x[keep])
        dl += list(np.where(div, 0.0, loss - at)[keep])
        dv += list(div[keep])
        g += [float(row["n_params"])] * int(keep.sum())
    if not t:
        return None
    try:
        return ValleyShape.from_runs(t, dl, dv, groups=g)
    except FitError:
        return None


def zero_run(center: float, interval, valley: Valley | None = None, risk=None) -> RefineResult:
    """The law's point with no target run: the lr of least expected regret under the law's predictive
    distribution (the Student-t prior of :func:`posterior`) on the ladder's asymmetric valley ``risk``;
    the centre when ``risk`` is None."""
    return fit_runs(center, interval, [], [], valley, None, risk)
