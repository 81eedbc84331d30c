"""Jackknife+ prediction intervals of a law of optimal HPs: the definition, the fallback, the JSON
round trip, coverage where the precision weights understate the scatter, and `fit_laws`'s default."""

import math

import numpy as np
import pandas as pd
import pytest

from oasl.laws import PowerLaw
from oasl.laws.pipeline import fit_laws


def optima(g=12, seed=0):
    rng = np.random.default_rng(seed)
    n = np.geomspace(1e8, 1e9, g)
    return pd.DataFrame({"N": n, "lr": 0.3 * n**-0.3 * np.exp(rng.normal(0, 0.1, g))})


def test_interval_is_the_jackknife_plus_of_leave_one_out_refits():
    X = optima()
    w = np.linspace(1, 3, len(X))
    law = PowerLaw(("N",), "lr", interval="jackknife+").fit(X, weights=w)
    q = pd.DataFrame({"N": [2e9]})
    lo, hi = law.predict_interval(q, 0.9)
    # by hand: refit without each optimum, residual at the held-out one, order statistics
    lows, highs = [], []
    for i in range(len(X)):
        keep = np.arange(len(X)) != i
        m = PowerLaw(("N",), "lr").fit(X[keep], weights=w[keep])
        r = abs(math.log(X["lr"].iloc[i]) - m.predict_z(X.iloc[[i]])[0])
        mu = m.predict_z(q)[0]
        lows.append(mu - r)
        highs.append(mu + r)
    g = len(X)  # alpha (G + 1) = 1.3 -> 1st smallest; (1 - alpha)(G + 1) = 11.7 -> 12th smallest
    assert lo[0] == pytest.approx(math.exp(sorted(lows)[int(0.1 * (g + 1)) - 1]))
    assert hi[0] == pytest.approx(math.exp(sorted(highs)[math.ceil(0.9 * (g + 1)) - 1]))
    assert lo[0] < law.predict(q)[0] < hi[0]
    # it is not the Bayesian interval, and the exponents keep their posterior
    assert not np.allclose((lo, hi), law.predict_interval(q, 0.9, method="bayes"))
    assert law.exponent_interval(0.9) == law.exponent_interval(0.9, method="bayes")


def test_too_few_groups_fall_back_to_bayes_and_json_keeps_the_refits():
    few = PowerLaw(("N",), "lr", interval="jackknife+").fit(optima(g=6))
    q = pd.DataFrame({"N": [2e9, 3e8]})
    assert np.allclose(few.predict_interval(q, 0.9), few.predict_interval(q, 0.9, method="bayes"))
    law = PowerLaw(("N",), "lr", interval="jackknife+").fit(optima())
    back = PowerLaw.from_dict(law.to_dict(data=False))
    assert back.interval == "jackknife+" and back.jk_coefs_.shape == (12, 2)
    assert np.allclose(back.predict_interval(q, 0.9), law.predict_interval(q, 0.9))


def test_covers_new_optima_when_precision_weights_understate_the_scatter():
    """Optima whose bootstrap intervals are tight except for a few imprecise ones that also sit far
    from the law (as on Step Law's sweep): the weighted Bayesian interval of a new group under-covers,
    jackknife+ keeps about its level."""
    rng = np.random.default_rng(0)
    n = np.append(np.geomspace(1e8, 1e9, 12), 2e9)
    hits = {"bayes": 0, "jackknife+": 0}
    sims = 200
    for _ in range(sims):
        off = rng.random(13) < 0.15
        sd = np.where(off, 0.13, rng.uniform(0.02, 0.07, 13))
        e = rng.normal(0, 0.06, 13) + np.where(off, rng.choice([-1, 1], 13) * 0.3, 0)
        y = 0.3 * n**-0.3 * np.exp(e)
        X = pd.DataFrame({"N": n[:12], "lr": y[:12]})
        law = PowerLaw(("N",), "lr", interval="jackknife+").fit(X, weights=1 / sd[:12] ** 2)
        for method in hits:
            lo, hi = law.predict_interval(pd.DataFrame({"N": [n[12]]}), 0.9, method=method)
            hits[method] += bool(lo[0] <= y[12] <= hi[0])
    assert hits["jackknife+"] / sims >= 0.87
    assert hits["bayes"] / sims <= hits["jackknife+"] / sims - 0.03


def test_fit_laws_uses_jackknife_plus_by_default():
    rng = np.random.default_rng(1)
    rows = []
    for n in (1e6, 2e6, 4e6, 8e6):
        for d in (1e8, 3e8, 9e8):
            lr0 = 0.3 * n**-0.3 * d**0.05 * math.exp(rng.normal(0, 0.05))
            for lr in lr0 * 2.0 ** np.arange(-2, 2.5):
                loss = 3 + 0.03 * math.log(lr / lr0) ** 2 + rng.normal(0, 1e-4)
                rows.append(
                    {"optimizer": "adamw", "n_params": n, "tokens": d, "lr": lr, "final_val_loss": loss}
                )
    rep = fit_laws(pd.DataFrame(rows), n_boot=20)
    law = rep.laws["lr"].law_for("adamw")
    assert law.interval == "jackknife+" and law.jk_coefs_.shape[0] == 12
    q = pd.DataFrame({"N": [1.6e7], "D": [1e9], "optimizer": ["adamw"]})
    assert not np.allclose(law.predict_interval(q, 0.9), law.predict_interval(q, 0.9, method="bayes"))
    old = fit_laws(pd.DataFrame(rows), n_boot=20, interval="bayes").laws["lr"].law_for("adamw")
    assert not hasattr(old, "jk_coefs_")
