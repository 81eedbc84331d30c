"""Statistics of the validation harness: paired regrets, their bootstrap intervals, the noise floor and the
verdict of each baseline against oasl.

Every method is evaluated at the target on the same seeds, and seed s fixes the initialisation and the
data order of every method's run, so methods are compared seed by seed (paired). Regret of a method on
seed s is ``(L_method(s) - L_oracle(s)) / L_oracle(s)``; its interval is the percentile interval of the
mean regret under resampling the seeds with replacement (the paired bootstrap, Efron & Tibshirani 1993,
*An Introduction to the Bootstrap*, Ch. 13). With few seeds the bootstrap interval is narrow (with 3 seeds
it cannot leave [min, max] of the per-seed values), so the noise floor is printed beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

LEVEL = 0.9
N_BOOT = 4000
VERDICTS = ("better than oasl", "indistinguishable", "worse than oasl")
NO_VERDICT = "one seed: no verdict"  # a single seed cannot tell a difference from seed luck


def per_seed_regret(losses: Sequence[float], oracle: Sequence[float]) -> np.ndarray:
    """Regret of each seed as a fraction of the oracle's loss on that seed; inf where a run diverged."""
    a, b = np.asarray(losses, dtype=float), np.asarray(oracle, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"{a.size} losses but {b.size} oracle losses: evaluate on the same seeds")
    ok = np.isfinite(a) & np.isfinite(b)
    return np.where(ok, (a - np.where(ok, b, 1.0)) / np.where(ok, b, 1.0), np.inf)


def bootstrap_mean_interval(
    values: Sequence[float], level: float = LEVEL, n_boot: int = N_BOOT, seed: int = 0
) -> tuple[float, float]:
    """Percentile interval of the mean of ``values`` (one per seed) under resampling seeds with replacement.

    One value gives ``(v, v)``; any non-finite value (a diverged run) gives ``(inf, inf)``."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return (math.nan, math.nan)
    if not np.all(np.isfinite(v)):
        return (math.inf, math.inf)
    if v.size == 1:
        return (float(v[0]), float(v[0]))
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    return (float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha)))


def noise_floor(oracle_losses: Sequence[float]) -> float:
    """The oracle's spread over seeds as a fraction of its mean loss (sample standard deviation / mean):
    the size of a regret that one seed's luck can produce. NaN with fewer than 2 finite seeds."""
    v = np.asarray(oracle_losses, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return math.nan
    return float(v.std(ddof=1) / v.mean())


def verdict(method_regrets: Sequence[float], oasl_regrets: Sequence[float], level: float = LEVEL) -> str:
    """Compare a baseline with oasl seed by seed: the paired bootstrap interval of the mean of
    ``regret_baseline(s) - regret_oasl(s)``. Entirely below 0: "better than oasl"; entirely above:
    "worse than oasl"; containing 0: "indistinguishable". A baseline that diverged where oasl did not is
    worse; when oasl diverged and the baseline did not, it is better. With one seed there is no
    interval to judge by: :data:`NO_VERDICT`."""
    m, o = np.asarray(method_regrets, dtype=float), np.asarray(oasl_regrets, dtype=float)
    m_ok, o_ok = bool(np.all(np.isfinite(m))), bool(np.all(np.isfinite(o)))
    if not m_ok or not o_ok:
        if m_ok == o_ok:
            return VERDICTS[1]
        return VERDICTS[0] if m_ok else VERDICTS[2]
    if m.size < 2:
        return NO_VERDICT
    lo, hi = bootstrap_mean_interval(m - o, level)
    if hi < 0:
        return VERDICTS[0]
    if lo > 0:
        return VERDICTS[2]
    return VERDICTS[1]


def beats_oracle(regrets: Sequence[float], level: float = LEVEL) -> bool:
    """True when a method's regret interval lies entirely below 0: it beat the oracle beyond seed noise,
    which means the oracle was not the optimum (a harness fault, not a win)."""
    lo, hi = bootstrap_mean_interval(regrets, level)
    return bool(np.isfinite(hi) and hi < 0)


def regret_at(regrets: dict[float, float], lrs) -> np.ndarray:
    """The mean regret at ``lrs`` read off ``regrets`` (lr -> mean regret over the evaluation seeds, for the
    lrs trained on every seed; non-finite ones left out): piecewise linear in log lr between them, and
    constant beyond the outermost (a lower bound there, for a valley that keeps rising)."""
    pool = sorted(v for v, r in regrets.items() if math.isfinite(r))
    if not pool:
        raise ValueError("no lr with a finite regret on every seed to read regrets off")
    xr = np.log(np.asarray(pool, dtype=float))
    yr = np.asarray([regrets[v] for v in pool], dtype=float)
    return np.interp(np.log(np.asarray(lrs, dtype=float)), xr, yr)


def expected_search_regret(
    seed0: dict[float, float],
    regrets: dict[float, float],
    search_range: tuple[float, float],
    k: int,
    reference: float,
    n_draws: int = N_BOOT,
    seed: int = 0,
) -> dict[str, Any]:
    """Random search of ``k`` log-uniform lrs in ``search_range``, in expectation over its draws.

    The harness trains one draw of the search; its regret says what that draw found, and a lucky draw
    can "beat" a method by luck the seed-paired interval does not see. Here each of ``n_draws`` draws
    picks, as the search does, the lr with the lowest seed-0 loss, read off ``seed0`` (lr -> seed-0 loss
    of every run at the target; piecewise linear in log lr; a diverged run counts as twice the worst
    finite loss), and is scored by the mean regret over the evaluation seeds, read off ``regrets`` (lr ->
    mean regret, for the lrs trained on every seed; piecewise linear in log lr, and constant beyond the
    outermost of them, which favours the search). Returns the mean, median and central :data:`LEVEL`
    range of the drawn regret (``range90``) and ``share_le_reference``, the share of draws with a regret at most ``reference`` (oasl's
    mean regret)."""
    lo, hi = search_range
    x0 = np.log(np.asarray(sorted(seed0), dtype=float))
    y0 = np.asarray([seed0[v] for v in sorted(seed0)], dtype=float)
    finite = np.isfinite(y0)
    if finite.sum() < 2 or k < 1 or not 0 < lo < hi:
        return {}
    y0 = np.where(finite, y0, 2.0 * y0[finite].max())
    if not any(math.isfinite(r) for r in regrets.values()):
        return {}
    rng = np.random.default_rng(seed)
    draws = rng.uniform(math.log(lo), math.log(hi), size=(n_draws, k))
    picks = draws[np.arange(n_draws), np.argmin(np.interp(draws, x0, y0), axis=1)]
    r = regret_at(regrets, np.exp(picks))
    return {
        "k": k,
        "draws": n_draws,
        "mean": float(r.mean()),
        "median": float(np.median(r)),
        "range90": [float(np.quantile(r, (1 - LEVEL) / 2)), float(np.quantile(r, (1 + LEVEL) / 2))],
        "share_le_reference": float(np.mean(r <= reference)),
        "reference": float(reference),
    }


def expected_search_text(method: str, e: dict) -> str:
    """One line describing :func:`expected_search_regret`'s result ``e`` for the search named ``method``."""
    return (
        f"{method} over {e['draws']} draws of its {e['k']} lrs: regret {e['mean']:+.2%} on average (median "
        f"{e['median']:+.2%}; 90% of draws {e['range90'][0]:+.2%} to {e['range90'][1]:+.2%}), at most oasl's "
        f"{e['reference']:+.2%} in {e['share_le_reference']:.0%} of draws"
    )


def interval_regret_text(ends: dict) -> str:
    """One line for the regret at the two ends of oasl's 90% interval (``OptimizerValidation.interval_regret``)."""
    parts = [
        f"{e['lr']:.3g}: {'>= ' if e['beyond_measured'] else ''}{e['regret']:+.2%}" for e in ends.values()
    ]
    return (
        "At the ends of oasl's 90% interval the target's measured regret is "
        + " and ".join(parts)
        + " (read off the lrs trained on every seed; '>=' beyond them)"
    )


def seed0_curve(seed0: dict[float, float]) -> tuple[np.ndarray, np.ndarray] | None:
    """The curve a replayed search sees from ``seed0`` (lr -> one seed's loss, NaN = diverged): (log lrs in
    order, losses), a diverged lr at twice the worst finite loss; None with fewer than 2 finite points."""
    lrs = sorted(seed0)
    y = np.asarray([seed0[v] for v in lrs], dtype=float)
    finite = np.isfinite(y)
    if finite.sum() < 2:
        return None
    return np.log(np.asarray(lrs, dtype=float)), np.where(finite, y, 2.0 * y[finite].max())
