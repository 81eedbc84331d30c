import math

import numpy as np
import pandas as pd
import pytest

from oasl.errors import ConfigError, FitError
from oasl.laws import (ConstantLaw, LossLaw, OneMinusPowerLaw, OptimizerLaw, PowerLaw, get_published, load_laws,
                       save_laws, select_law)
from oasl.testing import shared_data


def synth(rng, n=8, a=-0.5, c=2.0, noise=0.1, d_exp=None):
    N = np.geomspace(1e6, 1e8, n)
    df = pd.DataFrame({"N": N})
    z = math.log(c) + a * np.log(N) + rng.normal(0, noise, n)
    if d_exp is not None:
        df["D"] = np.geomspace(1e9, 1e10, n)[rng.permutation(n)]
        z = z + d_exp * np.log(df["D"])
    return df, np.exp(z)


def test_true_exponent_covered_about_90_percent():
    rng = np.random.default_rng(0)
    hits = 0
    draws = 200
    for _ in range(draws):
        X, y = synth(rng, n=6, noise=0.15)
        lo, hi = PowerLaw(("N",)).fit(X, y).exponent_interval("N", 0.9)
        hits += lo <= -0.5 <= hi
    assert 0.83 <= hits / draws <= 0.96


def test_predictive_interval_calibrated_and_widens_with_extrapolation():
    rng = np.random.default_rng(1)
    inside = 0
    for _ in range(200):
        X, y = synth(rng, n=8, noise=0.1)
        law = PowerLaw(("N",)).fit(X, y)
        q = pd.DataFrame({"N": [1e9]})
        truth = 2.0 * 1e9**-0.5 * math.exp(rng.normal(0, 0.1))
        lo, hi = law.predict_interval(q, 0.9)
        inside += lo[0] <= truth <= hi[0]
    assert 0.83 <= inside / 200 <= 0.97
    widths = [np.log(np.divide(*law.predict_interval(pd.DataFrame({"N": [n]}), 0.9)[::-1]))[0]
              for n in (1e7, 1e8, 1e9, 1e10)]
    assert all(b > a for a, b in zip(widths, widths[1:], strict=False))
    assert law.extrapolation_ratio(pd.DataFrame({"N": [1e7, 1e10]})).tolist() == pytest.approx([1.0, 100.0])
    lo_b, hi_b = law.predict_interval(pd.DataFrame({"N": [1e7, 1e10]}), method="bootstrap", n_boot=300)
    assert (hi_b > lo_b).all() and (hi_b[1] / lo_b[1]) > (hi_b[0] / lo_b[0])


def test_two_features_and_huber_resists_an_outlier():
    rng = np.random.default_rng(2)
    X, y = synth(rng, n=12, noise=0.02, d_exp=0.3)
    law = PowerLaw(("N", "D")).fit(X, y)
    assert law.exponents_["N"] == pytest.approx(-0.5, abs=0.05) and law.exponents_["D"] == pytest.approx(0.3, abs=0.1)
    assert law.r2_ > 0.95 and law.score()["loo_mape"] < 0.1
    y2 = y.copy()
    y2[3] *= 20
    robust = PowerLaw(("N", "D"), loss="huber", huber_delta=0.05).fit(X, y2)
    plain = PowerLaw(("N", "D")).fit(X, y2)
    assert abs(robust.exponents_["N"] + 0.5) < abs(plain.exponents_["N"] + 0.5)


def test_one_minus_and_constant():
    N = np.geomspace(1e6, 1e9, 7)
    beta2 = 1 - 0.05 * (N / 1e6) ** -0.2
    law = OneMinusPowerLaw(("N",), target="beta2").fit(pd.DataFrame({"N": N}), beta2 * (1 + 1e-6 * np.arange(7)))
    assert law.exponents_["N"] == pytest.approx(-0.2, abs=0.01)
    assert 0.99 < law.predict(pd.DataFrame({"N": [1e10]}))[0] < 1
    c = ConstantLaw(target="lr").fit(pd.DataFrame({"N": N}), np.full(7, 3e-3) * np.exp(np.linspace(-0.1, 0.1, 7)))
    assert c.predict(pd.DataFrame({"N": [1e12]}))[0] == pytest.approx(3e-3, rel=0.05)


def test_optimizer_laws_and_selection():
    rng = np.random.default_rng(3)
    rows = []
    for opt, c in (("adamw", 1.0), ("sgd", 30.0)):
        for n in np.geomspace(1e5, 1e8, 6):
            rows.append({"optimizer": opt, "N": n, "lr": c * n**-0.4 * math.exp(rng.normal(0, 0.05))})
    df = pd.DataFrame(rows)
    shared = OptimizerLaw("power", ("N",), "lr", "shared_exponents").fit(df)
    law = shared.law_for("sgd")
    assert law.coef_["sgd"] / law.coef_["adamw"] == pytest.approx(30, rel=0.3)
    assert law.exponents_["N"] == pytest.approx(-0.4, abs=0.05)
    best, table = select_law(df, "lr", ("N",))
    assert best.form == "power" and best.sharing in ("shared_exponents", "separate")
    assert table.iloc[0]["loo_mape"] < table[table["form"] == "constant"]["loo_mape"].min()
    pred = best.predict(pd.DataFrame({"optimizer": ["adamw"], "N": [1e9]}))[0]
    assert pred == pytest.approx(1e9**-0.4, rel=0.3)


def test_bad_inputs_give_clear_errors():
    X = pd.DataFrame({"N": [1e6]})
    with pytest.raises(FitError, match="give at least 3 optima"):
        PowerLaw(("N",)).fit(X, [1e-3])
    with pytest.raises(FitError, match="N has the same value in every row"):
        PowerLaw(("N",)).fit(pd.DataFrame({"N": [1e6] * 4}), [1e-3, 2e-3, 1e-3, 3e-3])
    with pytest.raises(FitError, match="must be positive"):
        PowerLaw(("N",)).fit(pd.DataFrame({"N": [1e6, -1e7, 1e8]}), [1e-3] * 3)
    with pytest.raises(FitError, match="must be positive"):
        PowerLaw(("N",)).fit(pd.DataFrame({"N": [1e6, 1e7, 1e8]}), [1e-3, 0.0, 1e-3])
    with pytest.raises(FitError, match="NaN"):
        PowerLaw(("N",)).fit(pd.DataFrame({"N": [1e6, 1e7, 1e8]}), [1e-3, np.nan, 1e-3])
    with pytest.raises(FitError, match="not fitted"):
        PowerLaw(("N",)).predict(X)
    with pytest.raises(FitError, match="unknown feature"):
        PowerLaw(("params",))


def test_laws_file_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    X, y = synth(rng)
    law = PowerLaw(("N",)).fit(X, y)
    shared = OptimizerLaw("power", ("N",), "lr", "shared_exponents").fit(X.assign(optimizer="adamw", lr=y))
    save_laws(tmp_path / "laws.json", {"lr": law, "lr_opt": shared}, {"store": "x.db"})
    laws, meta = load_laws(tmp_path / "laws.json")
    q = pd.DataFrame({"N": [3e9], "optimizer": ["adamw"]})
    assert laws["lr"].predict(q)[0] == pytest.approx(law.predict(q)[0])
    assert np.allclose(laws["lr"].predict_interval(q), law.predict_interval(q))
    assert laws["lr_opt"].predict(q)[0] == pytest.approx(shared.predict(q)[0])
    assert meta["store"] == "x.db"
    with pytest.raises(ConfigError, match="does not exist"):
        load_laws(tmp_path / "none.json")


def test_published_formulas_give_the_papers_numbers():
    step = get_published("step-law")
    q = pd.DataFrame({"N": [1e9], "D": [1e11]})
    assert step["lr"].predict(q)[0] == pytest.approx(1.79 * 1e9**-0.713 * 1e11**0.307)
    assert step["batch_tokens"].predict(q)[0] == pytest.approx(0.58 * 1e11**0.571)
    ds = get_published("deepseek")
    c = pd.DataFrame({"C": [1e20]})
    assert ds["lr"].predict(c)[0] == pytest.approx(0.3118 * 1e20**-0.125)
    assert ds["batch_tokens"].predict(c)[0] == pytest.approx(0.2920 * 1e20**0.3271)
    kap = get_published("kaplan")
    assert kap["lr"].predict(pd.DataFrame({"N": [1e8]}))[0] == pytest.approx(0.003239 - 0.0001395 * math.log(1e8))
    assert kap["batch_tokens"].predict(pd.DataFrame({"L": [3.0]}))[0] == pytest.approx(2e8 / 3 ** (1 / 0.21))
    assert step["lr"].extrapolation_ratio(pd.DataFrame({"N": [7e9], "D": [2e12]}))[0] == pytest.approx(7.0)
    with pytest.raises(ConfigError, match="unknown published law"):
        get_published("gpt5")


def test_chinchilla_replication():
    """Besiroglu et al. 2024 (arXiv 2404.10102) report E=1.82 (SE 0.03), A=482.01 (124.58),
    B=2085.43 (1293.23), alpha=0.3478 (0.02), beta=0.3658 (0.02); their fit leaves out the five
    highest-loss points as outliers."""
    path = shared_data("chinchilla_epoch") / "svg_extracted_data.csv"
    if not path.exists():
        pytest.skip(f"Chinchilla data not found at {path}")
    df = pd.read_csv(path)
    N, C, L = (df[c].to_numpy(float) for c in ("Model Size", "Training FLOP", "loss"))
    keep = L < np.sort(L)[-5]
    law = LossLaw().fit(N[keep], (C / (6 * N))[keep], L[keep])
    reported = {"E": (1.82, 0.03), "A": (482.01, 124.58), "B": (2085.43, 1293.23), "alpha": (0.3478, 0.02),
                "beta": (0.3658, 0.02)}
    for k, (v, se) in reported.items():
        assert abs(law.params_[k] - v) <= se, (k, law.params_[k])
    n_opt, d_opt = law.compute_optimal(5.76e23)  # Chinchilla's budget
    assert 1e10 < n_opt < 2e11 and n_opt * d_opt * 6 == pytest.approx(5.76e23)
    with pytest.raises(FitError, match="at least 6"):
        LossLaw().fit(N[:3], N[:3], L[:3])
