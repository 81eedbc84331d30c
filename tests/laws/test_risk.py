"""The asymmetric-risk rule on synthetic valleys with known answers."""

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from oasl.errors import FitError
from oasl.laws.risk import ValleyShape, expected_regret, risk_adjusted, sd_from_interval


def test_symmetric_valley_without_divergence_does_not_shift():
    v = ValleyShape(0.05, 0.05)
    for sd in (0.1, 0.5, 1.0):
        value, shift = risk_adjusted(math.log(0.01), sd, v)
        assert abs(shift) < 1e-4 and value == pytest.approx(math.log(0.01) + shift)
    assert risk_adjusted(1.0, 0.0, ValleyShape(0.01, 1.0, diverge_at=0.1)) == (1.0, 0.0)


def test_asymmetric_quadratic_matches_the_closed_form_optimum():
    """regret a t^2 (t < 0), b t^2 (t > 0), t ~ N(m, s): d/dm E = 0 at
    a (m Phi(-z) - s phi(z)) + b (m Phi(z) + s phi(z)) = 0, z = m / s."""
    a, b, s = 0.02, 0.08, 0.4

    def grad(m):
        z = m / s
        return a * (m * norm.cdf(-z) - s * norm.pdf(z)) + b * (m * norm.cdf(z) + s * norm.pdf(z))

    m_true = brentq(grad, -2 * s, 2 * s)
    _, shift = risk_adjusted(0.0, s, ValleyShape(a, b))
    assert m_true < 0 and shift == pytest.approx(m_true, abs=1e-4)
    # steeper below than above moves it up instead
    _, up = risk_adjusted(0.0, s, ValleyShape(b, a))
    assert up == pytest.approx(-m_true, abs=1e-4)


def test_expected_regret_matches_monte_carlo():
    v = ValleyShape(0.02, 0.05, diverge_at=0.7, diverge_cost=4.0, diverge_below=1.5)
    rng = np.random.default_rng(0)
    e = rng.normal(0, 0.4, 400_000)
    for shift in (-0.5, 0.0, 0.3):
        mc = float(v.regret(shift - e).mean())
        assert expected_regret(shift, 0.4, v) == pytest.approx(mc, rel=0.02)


def test_divergence_above_moves_the_setting_down_more_with_more_uncertainty():
    v = ValleyShape(0.02, 0.05, diverge_at=math.log(2), diverge_cost=4.0)
    shifts = [risk_adjusted(0.0, sd, v)[1] for sd in (0.05, 0.2, 0.4, 0.8)]
    assert all(s < 0 for s in shifts) and shifts == sorted(shifts, reverse=True)
    # the chosen point keeps the chance of divergence small: a lost run costs ~100x the valley's rise
    for sd, s in zip((0.05, 0.2, 0.4, 0.8), shifts, strict=True):
        assert norm.sf((math.log(2) - s) / sd) < 0.02
    # a cheap divergence barely matters
    cheap = ValleyShape(0.02, 0.05, diverge_at=math.log(2), diverge_cost=1e-4)
    assert abs(risk_adjusted(0.0, 0.2, cheap)[1] - risk_adjusted(0.0, 0.2, ValleyShape(0.02, 0.05))[1]) < 0.01


def test_valley_shape_from_runs_recovers_a_known_valley():
    rng = np.random.default_rng(1)
    groups, t, y, d = [], [], [], []
    for g in range(6):
        for k in (-2, -1, 1, 2, 3):
            tt = k * math.log(2)
            groups.append(g)
            t.append(tt)
            div = k >= 3 or (k == 2 and g < 3)  # half the valleys diverge one step earlier
            d.append(div)
            y.append(math.nan if div else (0.02 if tt < 0 else 0.05) * tt * tt + rng.normal(0, 1e-4))
    v = ValleyShape.from_runs(t, y, d, groups)
    assert v.curv_below == pytest.approx(0.02, rel=0.02) and v.curv_above == pytest.approx(0.05, rel=0.02)
    # boundaries 1.5 ln2 (three valleys) and 2.5 ln2 (three): the median is 2 ln2
    assert v.diverge_at == pytest.approx(2 * math.log(2)) and math.isinf(v.diverge_below)
    assert v.n_diverged == 9 and v.n_below == 12
    back = ValleyShape.from_dict(v.to_dict())
    assert back == v and ValleyShape.from_dict(ValleyShape(0.1, 0.1).to_dict()).diverge_at == math.inf
    with pytest.raises(FitError):
        ValleyShape.from_runs([], [], [])
    with pytest.raises(FitError):
        ValleyShape(-1.0, 0.1)


def test_sd_from_interval():
    assert sd_from_interval(1.0, math.e ** (2 * norm.ppf(0.95)), 0.9) == pytest.approx(1.0)
    assert math.isnan(sd_from_interval(1.0, 1.0)) and math.isnan(sd_from_interval(None, 2.0))
    with pytest.raises(FitError):
        risk_adjusted(0.0, -1.0, ValleyShape(0.1, 0.1))
