"""The harness's statistics on synthetic numbers with known answers; the baseline plug-in protocol."""

import math

import numpy as np
import pytest

from oasl.validate import stats


def test_per_seed_regret_is_relative_to_the_oracle_of_the_same_seed():
    r = stats.per_seed_regret([2.2, 3.0, math.nan], [2.0, 3.0, 2.5])
    assert r[0] == pytest.approx(0.1) and r[1] == 0 and r[2] == math.inf
    with pytest.raises(ValueError, match="same seeds"):
        stats.per_seed_regret([1.0], [1.0, 2.0])


def test_bootstrap_interval_of_a_mean():
    # one value: a point; constant values: a point; two values a, b: resampled means are a, (a+b)/2, b
    assert stats.bootstrap_mean_interval([0.02]) == (0.02, 0.02)
    assert stats.bootstrap_mean_interval([0.01] * 5) == pytest.approx((0.01, 0.01))
    lo, hi = stats.bootstrap_mean_interval([0.0, 0.04])
    assert lo == pytest.approx(0.0) and hi == pytest.approx(0.04)
    assert stats.bootstrap_mean_interval([0.1, math.inf]) == (math.inf, math.inf)
    # many normal draws: the 90% percentile interval is mean +- 1.645 sd / sqrt(n)
    v = np.random.default_rng(0).normal(0.01, 0.02, size=400)
    lo, hi = stats.bootstrap_mean_interval(v)
    half = 1.645 * v.std(ddof=1) / math.sqrt(v.size)
    assert lo == pytest.approx(v.mean() - half, abs=0.25 * half)
    assert hi == pytest.approx(v.mean() + half, abs=0.25 * half)


def test_noise_floor_is_the_oracle_spread_over_seeds():
    assert stats.noise_floor([2.0, 2.02, 1.98]) == pytest.approx(0.01)
    assert math.isnan(stats.noise_floor([2.0]))


@pytest.mark.parametrize(
    "baseline, oasl, expected",
    [
        ([0.05, 0.06, 0.055], [0.01, 0.012, 0.008], "worse than oasl"),  # worse on every seed
        ([0.0, 0.001, 0.0], [0.02, 0.03, 0.025], "better than oasl"),  # better on every seed
        ([0.01, 0.03, 0.0], [0.02, 0.0, 0.02], "indistinguishable"),  # sign changes over seeds
        ([0.02, math.inf, 0.01], [0.02, 0.01, 0.01], "worse than oasl"),  # diverged on a seed
        ([0.02, 0.01, 0.01], [0.02, math.inf, 0.01], "better than oasl"),  # oasl diverged
    ],
)
def test_verdicts_are_paired_by_seed(baseline, oasl, expected):
    assert stats.verdict(baseline, oasl) == expected


def test_one_seed_gives_no_verdict():
    assert stats.verdict([0.05], [0.01]) == stats.NO_VERDICT


def test_pairing_resolves_what_unpaired_spread_hides():
    # seed luck moves both methods together: the seed spread (3%) dwarfs the gap (0.2%), yet the
    # gap has the same sign on every seed, so the paired verdict resolves it
    luck = np.array([0.0, 0.03, -0.03, 0.015])
    assert stats.verdict(luck + 0.002, luck) == "worse than oasl"


def test_beating_the_oracle_beyond_noise_is_flagged():
    assert stats.beats_oracle([-0.02, -0.01, -0.015])
    assert not stats.beats_oracle([-0.02, 0.01, 0.0])


def test_baselines_are_plug_ins():
    from oasl.validate import BASELINES, make_baseline
    from oasl.validate.spec import ValidateSpec

    assert {"naive", "defaults", "mup", "step-law", "random", "tpe"} <= set(BASELINES)
    assert make_baseline("tpe:8").name == "tpe:8" and make_baseline("naive").name == "naive"
    for bad in ("random", "naive:3", "bogus", "tpe:0"):
        with pytest.raises(ValueError, match="unknown baseline"):
            make_baseline(bad)
    sweep = {
        "name": "s",
        "ladder": {"widths": [16], "depth": 1},
        "optimizers": {"adamw": {"lr": {"log_range": [1e-3, 1e-2], "num": 3}}},
        "tokens": 1000,
    }
    with pytest.raises(ValueError, match="unknown baseline 'random'"):
        ValidateSpec.model_validate({"sweep": sweep, "target": {}, "baselines": ["random"]})
    with pytest.raises(ValueError, match="repeat a seed"):
        ValidateSpec.model_validate({"sweep": sweep, "target": {}, "seeds": [0, 0]})
