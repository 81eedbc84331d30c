"""Optimizer-aware laws and selection of a law's form and sharing by held-out error."""

import math

import numpy as np
import pandas as pd
import pytest

from oasl.errors import ConfigError, FitError
from oasl.laws import OptimizerLaw, PowerLaw, fit_law, select_law

NS = np.geomspace(1e5, 1e8, 6)


def sweep(rng, truth: dict, noise=0.05, ns=NS) -> pd.DataFrame:
    """Optima lr* = c_O N^a_O with log-normal scatter; ``truth`` maps optimizer -> (c, a)."""
    rows = [
        {"optimizer": o, "N": n, "lr": c * n**a * math.exp(rng.normal(0, noise))}
        for o, (c, a) in truth.items()
        for n in ns
    ]
    return pd.DataFrame(rows)


def test_shared_exponents_recovers_optimizer_constants():
    df = sweep(np.random.default_rng(3), {"adamw": (1.0, -0.4), "sgd": (30.0, -0.4), "lion": (0.1, -0.4)})
    law = OptimizerLaw("power", ("N",), "lr", "shared_exponents").fit(df)
    assert law.constant("sgd") / law.constant("adamw") == pytest.approx(30, rel=0.15)
    assert law.constant("lion") / law.constant("adamw") == pytest.approx(0.1, rel=0.15)
    assert law.exponents("sgd") == law.exponents("adamw")
    assert law.exponents("sgd")["N"] == pytest.approx(-0.4, abs=0.03)
    assert law.n_coef == 4  # three constants, one shared exponent
    lo, hi = law.exponent_interval(0.9)["*"]["N"]
    assert lo < law.exponents("sgd")["N"] < hi
    q = pd.DataFrame({"optimizer": ["sgd", "adamw"], "N": [1e9, 1e9]})
    pred = law.predict(q)
    assert pred[0] / pred[1] == pytest.approx(30, rel=0.15)
    lo, hi = law.predict_interval(q)
    assert np.all((lo < pred) & (pred < hi))
    assert law.extrapolation_ratio(q).tolist() == pytest.approx([10.0, 10.0])
    # the truth lies in the 90% interval of every optimizer's constant ratio, via the shared-law posterior
    sep = OptimizerLaw("power", ("N",), "lr", "separate").fit(df)
    assert set(sep.laws_) == {"adamw", "lion", "sgd"} and sep.n_coef == 6
    pooled = OptimizerLaw("power", ("N",), "lr", "pooled").fit(df)
    assert pooled.score()["loo_mape"] > 3 * law.score()["loo_mape"]
    with pytest.raises(FitError, match="'muon'"):
        law.predict(pd.DataFrame({"optimizer": ["muon"], "N": [1e6]}))


@pytest.mark.parametrize(
    "truth, expect",
    [
        ({"adamw": (1.0, -0.4), "sgd": (30.0, -0.4)}, ("power", "shared_exponents")),
        ({"adamw": (1.0, -0.2), "sgd": (3000.0, -0.7)}, ("power", "separate")),
        ({"adamw": (1.0, -0.4), "sgd": (1.0, -0.4)}, ("power", "pooled")),
        ({"adamw": (3e-3, 0.0), "sgd": (3e-1, 0.0)}, ("constant", "shared_exponents")),
    ],
)
def test_selection_picks_the_true_form(truth, expect):
    """Over 10 synthetic sweeps, select_law picks the generating form and sharing at least 8 times."""
    picks = []
    for seed in range(10):
        best, table = select_law(sweep(np.random.default_rng(seed), truth), "lr", ("N",))
        picks.append((best.form, best.sharing))
        assert table.iloc[0]["selected"] and table["selected"].sum() == 1
        assert (table.iloc[0]["form"], table.iloc[0]["sharing"]) == picks[-1]
    assert picks.count(expect) >= 8, picks


def test_selection_table_and_rules():
    df = sweep(np.random.default_rng(0), {"adamw": (1.0, -0.4), "sgd": (30.0, -0.4)})
    best, table = select_law(df, "lr", ("N",))
    assert set(table.columns) >= {
        "form",
        "sharing",
        "n_coef",
        "loo_mape",
        "loo_mape_se",
        "loo_rmse_log",
        "r2",
    }
    assert len(table) == 5  # power x 3 sharings + constant x (shared, pooled)
    const = table[table["form"] == "constant"]["loo_mape"].min()
    assert table.iloc[0]["loo_mape"] < const / 5
    strict, t2 = select_law(df, "lr", ("N",), rule="min")
    assert t2.iloc[0]["loo_mape"] == pytest.approx(t2["loo_mape"].min())
    only, t3 = select_law(df, "lr", ("N",), candidates=["power/separate", ("constant", "pooled")])
    assert len(t3) == 2
    # without an optimizer column only pooled laws are tried
    nob, t4 = select_law(df[df["optimizer"] == "adamw"].drop(columns="optimizer"), "lr", ("N",))
    assert set(t4["sharing"]) == {"pooled"} and nob.form == "power"
    pred = nob.predict(pd.DataFrame({"N": [1e9]}))[0]
    assert pred == pytest.approx(1e9**-0.4, rel=0.2)
    with pytest.raises(ConfigError, match="bad candidate"):
        select_law(df, "lr", ("N",), candidates=["cubic/pooled"])
    with pytest.raises(ConfigError, match="selection rule"):
        select_law(df, "lr", ("N",), rule="aic")


def test_near_one_targets_default_to_one_minus():
    rng = np.random.default_rng(1)
    rows = [
        {"optimizer": "adamw", "N": n, "beta2": 1 - 0.05 * (n / 1e5) ** -0.3 * math.exp(rng.normal(0, 0.05))}
        for n in NS
    ]
    best, table = select_law(pd.DataFrame(rows), "beta2", ("N",))
    assert set(table["form"]) == {"one_minus", "constant"} and best.form == "one_minus"
    assert best.predict(pd.DataFrame({"optimizer": ["adamw"], "N": [1e12]}))[0] < 1


def test_too_few_optima_fail_or_are_skipped_with_reasons():
    df = sweep(np.random.default_rng(0), {"adamw": (1.0, -0.4)}, ns=NS[:2])
    best, table = select_law(df, "lr", ("N",))
    # two optima: a power law cannot be held out (1 point left for 2 coefficients), the constant can
    assert best.form == "constant"
    assert "cannot" in " ".join(table["error"])
    one = df.iloc[:1]
    with pytest.raises(FitError, match="no law of lr could be fitted"):
        select_law(one, "lr", ("N",))
    with pytest.raises(FitError, match="column 'optimizer' is missing"):
        OptimizerLaw("power", ("N",), "lr", "separate").fit(df.drop(columns="optimizer"))


def test_groups_and_weights_by_column_name_and_fit_law():
    rng = np.random.default_rng(2)
    base = sweep(rng, {"adamw": (1.0, -0.4), "sgd": (30.0, -0.4)})
    base["g"] = base["optimizer"] + base["N"].astype(str)
    rows = pd.concat([base.assign(lr=base["lr"] * f) for f in (0.9, 1.0, 1.1)], ignore_index=True)
    law = fit_law(rows, "lr", ("N",), sharing="shared_exponents", groups="g")
    assert isinstance(law, OptimizerLaw)
    assert law.laws_["*"].n_groups_ == 12 and law.laws_["*"].n_ == 36
    assert len(law.loo_errors()) == 12
    plain = fit_law(base, "lr", ("N",), weights=np.ones(len(base)))
    assert isinstance(plain, PowerLaw) and plain.by is None
    best, _ = select_law(rows, "lr", ("N",), groups="g")
    assert best.sharing == "shared_exponents"


def test_round_trip_of_an_optimizer_law():
    df = sweep(np.random.default_rng(4), {"adamw": (1.0, -0.4), "sgd": (30.0, -0.3)})
    for sharing in ("separate", "shared_exponents", "pooled"):
        law = OptimizerLaw("power", ("N",), "lr", sharing).fit(df)
        back = OptimizerLaw.from_dict(law.to_dict())
        q = pd.DataFrame({"optimizer": ["adamw", "sgd"], "N": [3e9, 3e9]})
        assert np.allclose(back.predict(q), law.predict(q))
        assert np.allclose(back.predict_interval(q), law.predict_interval(q))


def test_forward_chaining_predicts_each_size_from_the_smaller_ones_only():
    from oasl.laws.base import forward_chaining

    df = sweep(np.random.default_rng(4), {"adamw": (1.0, -0.4)}, noise=0.1, ns=np.geomspace(1e5, 1e8, 5))
    law = OptimizerLaw("power", ("N",), "lr", "pooled").fit(df)
    fwd = law.forward_errors()
    assert len(fwd) == 3  # the two smallest sizes have fewer than 2 smaller sizes to extrapolate from
    for k, row in enumerate(fwd.itertuples(), start=2):
        smaller = df.iloc[:k]  # rows are in increasing N
        slope, icpt = np.polyfit(np.log(smaller["N"]), np.log(smaller["lr"]), 1)
        assert row.pred == pytest.approx(math.exp(icpt + slope * math.log(df["N"].iloc[k])), rel=1e-6)
        assert row.truth == pytest.approx(df["lr"].iloc[k])
    w = np.ones(len(df))
    same = forward_chaining(law, law.X_, law.y_, w, law.groups_, "N", min_sizes=4)
    assert len(same) == 1  # only the largest size has 4 smaller ones


def test_forward_selection_compares_on_common_groups_and_falls_back_below_three_sizes():
    df = sweep(np.random.default_rng(5), {"adamw": (1.0, -0.4), "sgd": (30.0, -0.4)}, noise=0.05)
    best, table = select_law(df, "lr", ("N",), cv="forward")
    assert (best.form, best.sharing) == ("power", "shared_exponents") and set(table["cv"]) == {"forward"}
    const = table[table["form"] == "constant"]["loo_mape"].min()
    assert table.iloc[0]["loo_mape"] < const / 5  # a constant extrapolates a falling lr* badly
    two = df[df["N"] <= sorted(df["N"].unique())[1]]
    _, t2 = select_law(two, "lr", ("N",), cv="forward", candidates=["constant/pooled"])
    assert set(t2["cv"]) == {"loo"}
    with pytest.raises(ConfigError, match="cross-validation"):
        select_law(df, "lr", ("N",), cv="kfold")
