"""`fit_laws` (what `oasl fit` runs): lr and batch located jointly when both are swept, precision weights,
and intervals for a new group of typical precision."""

import math

import numpy as np
import pandas as pd
import pytest

from oasl.laws import PowerLaw
from oasl.laws.pipeline import fit_laws, precision_weights


def runs(seed=0):
    """lr* = 0.3 N^-0.3 D^0.05 and batch* = 2 D^0.5 tokens; the loss valley is tilted (lr and batch
    interact), so locating each HP at the other's best grid value is biased."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in (1e6, 2e6, 4e6, 8e6):
        for d in (2e8, 8e8):
            lr0, bt0 = 0.3 * n**-0.3 * d**0.05, 2 * d**0.5
            for lr in lr0 * 2.0 ** np.arange(-2.5, 3):
                for bt in bt0 * 2.0 ** np.arange(-2, 2.5):
                    x, y = math.log(lr / lr0), math.log(bt / bt0)
                    loss = 3 * (1 + 0.01 * (x * x + y * y + 1.2 * x * y)) + rng.normal(0, 1e-3)
                    rows.append(
                        {
                            "optimizer": "adamw",
                            "n_params": n,
                            "tokens": d,
                            "lr": lr,
                            "batch_tokens": bt,
                            "final_val_loss": loss,
                        }
                    )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def report():
    return fit_laws(runs(), n_boot=30)


def test_joint_optima_and_weighted_laws(report):
    lr_opt = report.optima["lr"]
    assert "partner" in lr_opt and len(lr_opt) == 8  # located on the lr x batch surface
    law = report.laws["lr"].laws_["adamw"]
    assert law.exponents_["N"] == pytest.approx(-0.3, abs=0.05)
    bt = report.laws["batch_tokens"].laws_["adamw"]
    assert bt.exponents_["D"] == pytest.approx(0.5, abs=0.05)
    assert not np.allclose(law.w_, law.w_[0])  # precision weights, not equal weights


def test_one_at_a_time_is_the_fallback(report):
    alone = fit_laws(runs(), joint=False, weighted=False, n_boot=30)
    assert "partner" not in alone.optima["lr"]
    joint_err = abs(report.laws["lr"].laws_["adamw"].exponents_["N"] + 0.3)
    assert joint_err <= abs(alone.laws["lr"].laws_["adamw"].exponents_["N"] + 0.3) + 0.02


def test_precision_weights_and_new_group_variance():
    opt = pd.DataFrame({"ci_low": [0.9, 0.5, np.nan], "ci_high": [1.1, 2.0, np.nan]})
    w = precision_weights(opt)
    assert w[0] > w[1] and w[2] == pytest.approx(np.median(w[:2]))
    X = pd.DataFrame({"N": [1e6, 2e6, 4e6, 8e6, 1.6e7], "lr": [1.0, 0.81, 0.66, 0.53, 0.43]})
    even = PowerLaw(("N",), "lr").fit(X)
    uneven = PowerLaw(("N",), "lr").fit(X, weights=[1, 1, 1, 1, 50])
    assert even.new_group_var_ == pytest.approx(1.0) and uneven.new_group_var_ > 1.5
    back = PowerLaw.from_dict(uneven.to_dict())
    assert back.new_group_var_ == pytest.approx(uneven.new_group_var_)
    assert np.allclose(back.predict_interval(X, 0.9), uneven.predict_interval(X, 0.9))
