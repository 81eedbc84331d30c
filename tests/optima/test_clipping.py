"""The clipping-regime diagnostic: the ladder's pre-clip gradient norm extrapolated to the target."""

import math

import numpy as np
import pandas as pd
import pytest

from oasl.optima.clipping import clip_regime, grad_norm_stats


def _ladder(opt: str, norm_at, sizes=(2.5e4, 5.5e4, 1e5), lrs=(0.05, 0.1, 0.2), grad_clip=1.0):
    """Sweep runs (best lr 0.1 at every size) and their curves: the gradient norm is lognormal around
    ``norm_at(N)`` with a 30% spread."""
    rng = np.random.default_rng(0)
    rows, curves = [], {}
    for n in sizes:
        for lr in lrs:
            key = f"{opt}-{n:g}-{lr:g}"
            rows.append(
                {
                    "key": key,
                    "optimizer": opt,
                    "n_params": n,
                    "lr": lr,
                    "grad_clip": grad_clip,
                    "final_val_loss": 2.0 + math.log(lr / 0.1) ** 2,
                }
            )
            curves[key] = pd.DataFrame({"grad_norm": norm_at(n) * np.exp(0.3 * rng.standard_normal(400))})
    return pd.DataFrame(rows), curves


def test_a_norm_that_crosses_the_threshold_at_the_target_warns_for_sgd_only():
    norm = lambda n: 0.4 * (n / 2.5e4) ** 0.4  # noqa: E731  (0.4 at the smallest size, ~0.7 at the largest)
    for opt, warns in (("sgd", True), ("adamw", False)):
        runs, curves = _ladder(opt, norm)
        target = f"{opt}-target"
        curves[target] = pd.DataFrame({"grad_norm": np.full(100, norm(9e5))})
        r = clip_regime(runs, curves.get, 9e5, [target])
        assert [s["lr"] for s in r.sizes] == [0.1, 0.1, 0.1]
        assert r.slope == pytest.approx(0.4, abs=0.05)
        assert r.predicted_norm == pytest.approx(norm(9e5), rel=0.1) and r.predicted_norm > 1.0
        assert max(s["clip_frac"] for s in r.sizes) < 0.5
        assert r.measured_norm == pytest.approx(norm(9e5)) and r.measured_clip_frac == 1.0
        assert bool(r.warning) is warns
        if warns:
            assert "sgd" in r.warning and "grad_clip 1" in r.warning


def test_no_warning_when_the_target_stays_below_the_threshold_or_the_ladder_already_clips():
    low, _ = _ladder("sgd", lambda n: 0.1 * (n / 2.5e4) ** 0.2)
    r = clip_regime(low, _ladder("sgd", lambda n: 0.1 * (n / 2.5e4) ** 0.2)[1].get, 9e5)
    assert r.predicted_norm < 1.0 and not r.warning
    runs, curves = _ladder("sgd", lambda n: 2.0 * (n / 2.5e4) ** 0.4)  # clipped everywhere already
    r = clip_regime(runs, curves.get, 9e5)
    assert min(s["clip_frac"] for s in r.sizes) > 0.5 and not r.warning
    runs, curves = _ladder("sgd", lambda n: 0.4 * (n / 2.5e4) ** 0.4, grad_clip=None)  # no clipping at all
    r = clip_regime(runs, curves.get, 9e5)
    assert math.isinf(r.grad_clip) and not r.warning


def test_grad_norm_stats_and_input_checks():
    med, frac = grad_norm_stats(pd.DataFrame({"grad_norm": [0.5, 2.0, np.nan, 3.0]}), 1.0)
    assert med == 2.0 and frac == pytest.approx(2 / 3)
    assert all(math.isnan(v) for v in grad_norm_stats(pd.DataFrame({"loss": [1.0]}), 1.0))
    runs, curves = _ladder("sgd", lambda n: 0.5, sizes=(2.5e4,))
    r = clip_regime(runs, curves.get, 9e5)  # one size: nothing to extrapolate, no warning
    assert math.isnan(r.predicted_norm) and not r.warning
    both = pd.concat([_ladder("sgd", lambda n: 0.5)[0], _ladder("adamw", lambda n: 0.5)[0]])
    with pytest.raises(ValueError, match="one optimizer"):
        clip_regime(both, curves.get, 9e5)
