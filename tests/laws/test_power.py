"""PowerLaw and kin: recovery, calibrated intervals, robustness, near-optimal rows, diagnostics, bad input."""

import math

import numpy as np
import pandas as pd
import pytest

from oasl.errors import ConfigError, FitError
from oasl.laws import ConstantLaw, LogLinearLaw, OneMinusPowerLaw, PowerLaw, near_optimal


def synth(rng, n=8, a=-0.5, c=2.0, noise=0.1, d_exp=None):
    """Optima lr* = c N^a (D^d_exp) with log-normal scatter ``noise``."""
    N = np.geomspace(1e6, 1e8, n)
    df = pd.DataFrame({"N": N})
    z = math.log(c) + a * np.log(N) + rng.normal(0, noise, n)
    if d_exp is not None:
        df["D"] = np.geomspace(1e9, 1e10, n)[rng.permutation(n)]
        z = z + d_exp * np.log(df["D"].to_numpy())
    return df, np.exp(z)


def test_recovers_two_exponents_and_attributes():
    rng = np.random.default_rng(2)
    X, y = synth(rng, n=12, noise=0.02, d_exp=0.3)
    law = PowerLaw(("N", "D")).fit(X, y)
    assert law.exponents_["N"] == pytest.approx(-0.5, abs=0.03)
    assert law.exponents_["D"] == pytest.approx(0.3, abs=0.06)
    assert law.coef_ == pytest.approx(math.exp(law.intercept_))
    assert law.cov_.shape == (3, 3) and law.dof_ == 9 and law.n_groups_ == 12
    assert law.range_["N"] == pytest.approx((1e6, 1e8))
    s = law.score()
    assert s["r2"] > 0.99 and s["rmse_log"] < 0.03 and s["loo_mape"] < 0.05
    assert law.formula().startswith("lr = ") and "N^-0.49" in law.formula()
    # y may come from the table itself, X may be a dict of arrays
    again = PowerLaw(("N", "D")).fit({"N": X["N"].to_numpy(), "D": X["D"].to_numpy(), "lr": y})
    assert np.allclose(again.coef_vector_, law.coef_vector_)
    held = law.score(X.assign(lr=y))
    assert held["mape"] < 0.05


def test_true_exponent_covered_about_90_percent():
    """Calibration: over 200 synthetic sweeps of 6 optima, the 90% credible interval of the exponent
    contains the true exponent about 90% of the time (reference prior = exact t interval)."""
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(200):
        X, y = synth(rng, n=6, noise=0.15)
        lo, hi = PowerLaw(("N",)).fit(X, y).exponent_interval(0.9)["N"]
        hits += lo <= -0.5 <= hi
    assert 0.83 <= hits / 200 <= 0.96


def test_predictive_interval_calibrated_and_widens_with_extrapolation():
    rng = np.random.default_rng(1)
    inside = 0
    for _ in range(200):
        X, y = synth(rng, n=8, noise=0.1)
        law = PowerLaw(("N",)).fit(X, y)
        truth = 2.0 * 1e9**-0.5 * math.exp(rng.normal(0, 0.1))  # a new optimum 10x beyond the largest N
        lo, hi = law.predict_interval(pd.DataFrame({"N": [1e9]}), 0.9)
        inside += lo[0] <= truth <= hi[0]
    assert 0.83 <= inside / 200 <= 0.97
    q = pd.DataFrame({"N": [1e7, 1e8, 1e9, 1e10, 1e11]})
    for method in ("bayes", "bootstrap"):
        lo, hi = law.predict_interval(q, 0.9, method=method)
        width = np.log(hi / lo)
        assert np.all(np.diff(width) > 0), (method, width)
        assert np.all((lo < law.predict(q)) & (law.predict(q) < hi))
    assert law.extrapolation_ratio(q).tolist() == pytest.approx([1.0, 1.0, 10.0, 100.0, 1000.0])
    per = law.extrapolation_ratio(pd.DataFrame({"N": [1e5]}), per_feature=True)
    assert list(per.columns) == ["N"] and per["N"].iloc[0] == pytest.approx(10.0)


def test_bootstrap_interval_and_exponent_interval():
    rng = np.random.default_rng(5)
    X, y = synth(rng, n=10, noise=0.1)
    law = PowerLaw(("N",), interval="bootstrap", n_boot=400, seed=3).fit(X, y)
    assert law.boot_coefs_.shape[1] == 2 and len(law.boot_coefs_) >= 200
    lo, hi = law.exponent_interval(0.9)["N"]
    blo, bhi = law.exponent_interval(0.9, method="bayes")["N"]
    assert law.exponent_interval("N", 0.9) == (lo, hi)  # the one-exponent form
    assert lo < law.exponents_["N"] < hi
    # the two methods agree on the scale of the uncertainty (within a factor 2 in width)
    assert 0.5 < (hi - lo) / (bhi - blo) < 2.0
    same = PowerLaw(("N",), interval="bootstrap", n_boot=400, seed=3).fit(X, y)
    assert np.array_equal(same.boot_coefs_, law.boot_coefs_)  # seeded


def test_huber_resists_an_outlying_optimum():
    rng = np.random.default_rng(2)
    X, y = synth(rng, n=12, noise=0.02, d_exp=0.3)
    y2 = y.copy()
    y2[3] *= 20
    robust = PowerLaw(("N", "D"), loss="huber").fit(X, y2)
    plain = PowerLaw(("N", "D")).fit(X, y2)
    assert abs(robust.exponents_["N"] + 0.5) < 0.05 < abs(plain.exponents_["N"] + 0.5)
    fixed_delta = PowerLaw(("N", "D"), loss="huber", huber_delta=0.05).fit(X, y2)
    assert abs(fixed_delta.exponents_["N"] + 0.5) < abs(plain.exponents_["N"] + 0.5)


def test_near_optimal_rows_do_not_shrink_intervals():
    """Many near-optimal runs per (N, D) fit the same law as their group means, and the intervals
    count groups, not rows: copying every row ten times changes nothing."""
    rng = np.random.default_rng(7)
    X, y = synth(rng, n=6, noise=0.1)
    one = PowerLaw(("N",)).fit(X, y)
    rows = pd.concat([X.assign(lr=y, g=np.arange(len(X)))] * 10, ignore_index=True)
    many = PowerLaw(("N",)).fit(rows, weights=None, groups="g")
    assert np.allclose(many.coef_vector_, one.coef_vector_)
    q = pd.DataFrame({"N": [1e9]})
    assert np.allclose(many.predict_interval(q), one.predict_interval(q))
    assert many.n_ == 60 and many.n_groups_ == 6 and many.dof_ == 4
    assert len(many.loo_errors()) == 6
    # the same rows treated as independent would claim far narrower intervals
    naive = PowerLaw(("N",)).fit(rows)
    assert (
        np.log(np.divide(*naive.predict_interval(q)[::-1]))[0]
        < 0.5 * np.log(np.divide(*many.predict_interval(q)[::-1]))[0]
    )


def test_near_optimal_selection_from_raw_runs():
    runs = pd.DataFrame(
        {
            "N": [1, 1, 1, 2, 2, 2],
            "D": [5] * 6,
            "lr": [1, 2, 4, 1, 2, 4],
            "loss": [3.0, 3.005, 3.1, 2.495, 2.49, np.nan],
        }
    )
    sel = near_optimal(runs, loss="loss", rel_tol=0.0025)
    assert sorted(zip(sel["N"], sel["lr"], strict=True)) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert sel.groupby("group").size().tolist() == [2, 2]


def test_one_minus_constant_and_log_linear():
    N = np.geomspace(1e6, 1e9, 7)
    beta2 = 1 - 0.05 * (N / 1e6) ** -0.2 * np.exp(np.random.default_rng(1).normal(0, 0.02, 7))
    law = OneMinusPowerLaw(("N",), target="beta2").fit(pd.DataFrame({"N": N}), beta2)
    assert law.exponents_["N"] == pytest.approx(-0.2, abs=0.01)
    far = pd.DataFrame({"N": [1e12]})
    assert 0.99 < law.predict(far)[0] < 1
    lo, hi = law.predict_interval(far)
    assert lo[0] < law.predict(far)[0] < hi[0] < 1
    assert law.formula().startswith("1 - beta2 =")
    with pytest.raises(FitError, match=r"\[0, 1\)"):
        OneMinusPowerLaw(("N",), target="beta2").fit(pd.DataFrame({"N": N}), beta2 + 0.5)

    y = np.full(7, 3e-3) * np.exp(np.linspace(-0.1, 0.1, 7))
    c = ConstantLaw(("N",), target="lr").fit(pd.DataFrame({"N": N}), y)
    assert c.predict(pd.DataFrame({"N": [1e12]}))[0] == pytest.approx(3e-3, rel=0.01)
    assert c.exponents_ == {} and c.n_coef == 1
    assert c.extrapolation_ratio(pd.DataFrame({"N": [1e12]}))[0] == pytest.approx(1e3)
    assert "constant in N" in c.formula()

    lr = 0.003 - 0.0001 * np.log(N) + np.random.default_rng(0).normal(0, 1e-5, 7)
    ll = LogLinearLaw(("N",)).fit(pd.DataFrame({"N": N}), lr)
    assert ll.coef_ == pytest.approx(0.003, abs=3e-4) and ll.exponents_["N"] == pytest.approx(-1e-4, rel=0.1)
    lo, hi = ll.predict_interval(pd.DataFrame({"N": [1e7]}))
    assert lo[0] < ll.predict(pd.DataFrame({"N": [1e7]}))[0] < hi[0]
    assert "ln N" in ll.formula()


def test_shared_exponents_within_one_law():
    rng = np.random.default_rng(3)
    rows = [
        {"optimizer": o, "N": n, "lr": c * n**-0.4 * math.exp(rng.normal(0, 0.05))}
        for o, c in (("adamw", 1.0), ("sgd", 30.0))
        for n in np.geomspace(1e5, 1e8, 6)
    ]
    df = pd.DataFrame(rows)
    law = PowerLaw(("N",), by="optimizer").fit(df)
    assert law.levels_ == ["adamw", "sgd"] and law.n_coef == 3
    assert law.coef_["sgd"] / law.coef_["adamw"] == pytest.approx(30, rel=0.15)
    with pytest.raises(FitError, match="'lion' was not in the fit"):
        law.predict(pd.DataFrame({"optimizer": ["lion"], "N": [1e6]}))


def test_bad_inputs_give_clear_errors():
    X = pd.DataFrame({"N": [1e6]})
    with pytest.raises(FitError, match="give at least 3 optima"):
        PowerLaw(("N",)).fit(X, [1e-3])
    with pytest.raises(FitError, match="N has the same value in every row"):
        PowerLaw(("N",)).fit(pd.DataFrame({"N": [1e6] * 4}), [1e-3, 2e-3, 1e-3, 3e-3])
    with pytest.raises(FitError, match="collinear"):
        N = np.geomspace(1e6, 1e8, 5)
        PowerLaw(("N", "D")).fit(pd.DataFrame({"N": N, "D": 20 * N}), np.geomspace(1e-2, 1e-3, 5))
    with pytest.raises(FitError, match="feature N must be positive"):
        PowerLaw(("N",)).fit(pd.DataFrame({"N": [1e6, -1e7, 1e8]}), [1e-3] * 3)
    with pytest.raises(FitError, match="lr values must be positive"):
        PowerLaw(("N",)).fit(pd.DataFrame({"N": [1e6, 1e7, 1e8]}), [1e-3, 0.0, 1e-3])
    with pytest.raises(FitError, match="NaN"):
        PowerLaw(("N",)).fit(pd.DataFrame({"N": [1e6, 1e7, 1e8]}), [1e-3, np.nan, 1e-3])
    with pytest.raises(FitError, match="feature N contains NaN"):
        PowerLaw(("N",)).fit(pd.DataFrame({"N": [1e6, np.nan, 1e8]}), [1e-3] * 3)
    with pytest.raises(FitError, match="missing column"):
        PowerLaw(("N", "D")).fit(pd.DataFrame({"N": [1e6, 1e7, 1e8, 1e9]}), [1e-3] * 4)
    with pytest.raises(FitError, match="not fitted"):
        PowerLaw(("N",)).predict(X)
    with pytest.raises(FitError, match="weights"):
        PowerLaw(("N",)).fit(pd.DataFrame({"N": [1e6, 1e7, 1e8]}), [1e-3] * 3, weights=[1, -1, 1])
    with pytest.raises(ConfigError, match="unknown feature 'params'"):
        PowerLaw(("params",))
    with pytest.raises(ConfigError, match="unknown loss"):
        PowerLaw(("N",), loss="l1")
    law = PowerLaw(("N",)).fit(pd.DataFrame({"N": [1e6, 1e7, 1e8]}), [1e-2, 5e-3, 2e-3])
    with pytest.raises(ConfigError, match="between 0 and 1"):
        law.predict_interval(X, level=90)


def test_to_dict_round_trip_keeps_predictions_intervals_and_diagnostics():
    rng = np.random.default_rng(4)
    X, y = synth(rng, d_exp=0.2)
    law = PowerLaw(("N", "D"), interval="bootstrap", n_boot=200).fit(X, y)
    back = PowerLaw.from_dict(law.to_dict())
    q = pd.DataFrame({"N": [3e9], "D": [1e11]})
    assert back.predict(q) == pytest.approx(law.predict(q))
    for m in ("bayes", "bootstrap"):
        assert np.allclose(back.predict_interval(q, method=m), law.predict_interval(q, method=m))
    assert back.range_ == law.range_ and back.extrapolation_ratio(q) == pytest.approx(
        law.extrapolation_ratio(q)
    )
    assert back.loo_error() == pytest.approx(law.loo_error())
    stripped = PowerLaw.from_dict(law.to_dict(data=False))
    assert stripped.predict(q) == pytest.approx(law.predict(q))
    with pytest.raises(FitError, match="no fitted data"):
        stripped.loo_errors()
    assert law.clone().get_params() == law.get_params() and not hasattr(law.clone(), "coef_")
