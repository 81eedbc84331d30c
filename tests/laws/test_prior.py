"""The prior on the lr exponent in N (oasl.laws.prior): set from the shipped laws, pulls a flat ladder's
law to a falling one with a wider interval, leaves a well-resolved law alone, exempts muP, round-trips."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from oasl.laws import load_laws, save_laws, select_law
from oasl.laws.pipeline import fit_laws
from oasl.laws.prior import LR_N_PRIOR, apply_prior, prior_line, prior_sources, with_exponent_prior

# widths 32/48/64 at depth 2 and the target width 192 (oasl's count, seq 64): the v3 ladder
NS = [24736, 55536, 98624]
NT = 885696


def q(n, opt="adamw"):
    return pd.DataFrame({"N": [float(n)], "optimizer": [opt]})


def test_constants_are_the_shipped_laws_mean_and_sd():
    src = prior_sources()
    assert src == dict(LR_N_PRIOR.sources)
    v = np.array(list(src.values()))
    assert LR_N_PRIOR.mean == pytest.approx(v.mean(), abs=5e-4)
    assert LR_N_PRIOR.sd == pytest.approx(v.std(ddof=1), abs=5e-4)


def test_flat_optima_become_a_falling_law_with_a_wider_interval():
    # issue 25's second corpus: 0.01, 0.004, 0.01 at widths 32, 48, 64; the optimum at 192 was 0.00198
    t = pd.DataFrame({"N": NS, "lr": [0.01, 0.004, 0.01], "optimizer": "adamw", "weight": 1.0})
    law, sel = select_law(t, "lr", ("N",), weights="weight", cv="forward")
    assert law.form == "constant"
    flat = float(law.predict(q(NT))[0])
    out, info = with_exponent_prior(law, t)
    assert info["replaced"].startswith("constant/") and out.form == "power" and law.form == "constant"
    e = out.exponents("adamw")["N"]
    assert abs(e - LR_N_PRIOR.mean) < 0.05  # three flat, jagged points say almost nothing
    pred = float(out.predict(q(NT))[0])
    assert pred < 0.5 * flat and 0.00198 / 2 < pred < 0.00198 * 2
    # inside the ladder the two laws agree; at 9x the prior's law is less sure than the constant
    assert float(out.predict(q(NS[1]))[0]) == pytest.approx(flat, rel=0.15)
    lo, hi = (float(v[0]) for v in out.predict_interval(q(NT)))
    flo, fhi = (float(v[0]) for v in law.predict_interval(q(NT)))
    assert math.log(hi / lo) > math.log(fhi / flo)
    assert "could not tell a constant" in prior_line("lr", info)


def test_a_well_resolved_law_is_left_almost_unchanged():
    rng = np.random.default_rng(0)
    n = np.geomspace(1e4, 1e6, 6)
    t = pd.DataFrame({"N": n, "lr": 0.5 * n**-0.7 * np.exp(rng.normal(0, 0.05, 6)), "optimizer": "adamw"})
    law, _ = select_law(t, "lr", ("N",), cv="forward")
    out, info = with_exponent_prior(law, t)
    assert info["replaced"] is None
    assert out.exponents("adamw")["N"] == pytest.approx(law.exponents("adamw")["N"], abs=0.005)
    assert float(out.predict(q(1e7))[0]) == pytest.approx(float(law.predict(q(1e7))[0]), rel=0.02)


def test_a_rising_law_is_pulled_down_and_the_input_law_is_kept():
    rng = np.random.default_rng(1)
    n = np.repeat(NS, 2)
    t = pd.DataFrame(
        {"N": n, "lr": 1e-3 * (n / 1e4) ** 0.3 * np.exp(rng.normal(0, 0.15, 6)), "optimizer": "a"}
    )
    law, _ = select_law(t, "lr", ("N",), forms=["power"], cv="loo")
    before = law.exponents("a")["N"]
    sub = law.law_for("a")
    info = apply_prior(sub, LR_N_PRIOR)
    assert info["applied"] and info["posterior"] < info["data"]
    assert info["posterior_sd"] < info["data_sd"] and sub.exponents_["N"] == info["posterior"]
    assert sub.prior_["mean"] == LR_N_PRIOR.mean and before == info["data"]


def _runs(parametrization: str) -> pd.DataFrame:
    rows = []
    for n, best in zip(NS, [0.01, 0.004, 0.01], strict=True):
        for lr in np.geomspace(best / 8, best * 8, 7):
            loss = 3.0 + 0.1 * math.log(lr / best) ** 2
            rows.append(
                {
                    "optimizer": "adamw",
                    "n_params": n,
                    "tokens": 1e6,
                    "lr": lr,
                    "final_val_loss": loss,
                    "status": "done",
                    "parametrization": parametrization,
                }
            )
    return pd.DataFrame(rows)


def test_fit_laws_applies_it_to_standard_parametrisation_only(tmp_path):
    sp = fit_laws(_runs("sp"), hps=["lr"], n_boot=20)
    assert sp.priors["lr"]["laws"] and sp.laws["lr"].form == "power"
    assert sp.laws["lr"].exponents("adamw")["N"] < -0.2
    mup = fit_laws(_runs("mup"), hps=["lr"], n_boot=20)
    assert not mup.priors and mup.laws["lr"].form == "constant"
    off = fit_laws(_runs("sp"), hps=["lr"], n_boot=20, exponent_prior=False)
    assert not off.priors and off.laws["lr"].form == "constant"
    # the laws file keeps the posterior and says where it came from
    path = tmp_path / "laws.json"
    save_laws(path, {"lr": sp.laws["lr"]})
    back, _ = load_laws(path)
    assert float(back["lr"].predict(q(NT))[0]) == pytest.approx(float(sp.laws["lr"].predict(q(NT))[0]))
    assert "prior" in json.dumps(json.loads(path.read_text()))
