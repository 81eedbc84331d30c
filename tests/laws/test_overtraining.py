"""Gadre et al.'s over-training loss law, the loss law's E-at-bound warning, and extrapolation on their runs."""

import json

import numpy as np
import pandas as pd
import pytest

from oasl.laws import LossLaw, OvertrainingLossLaw, law_from_dict
from oasl.testing import shared_data


def synthetic(E=1.8, A=150.0, B=300.0, eta=0.28, seed=0):
    rng = np.random.default_rng(seed)
    N = np.repeat([1e7, 3e7, 8e7, 2e8], 6)
    M = np.tile([1, 2, 4, 8, 16, 32], 4)
    D = 20 * M * N
    L = (E + A * N**-eta + B * D**-eta) * np.exp(rng.normal(0, 1e-3, len(N)))
    return N, D, L


def test_overtraining_law_recovers_its_parameters_and_round_trips():
    N, D, L = synthetic()
    law = OvertrainingLossLaw().fit(N, D, L)
    p = law.params_
    assert p["alpha"] == p["beta"] == law.eta_
    assert law.eta_ == pytest.approx(0.28, abs=0.02) and p["E"] == pytest.approx(1.8, rel=0.05)
    assert law.predict_m([1e9], [640.0])[0] == pytest.approx(
        1.8 + 150 * 1e9**-0.28 + 300 * (640e9) ** -0.28, rel=5e-3
    )
    back = law_from_dict(json.loads(json.dumps(law.to_dict())))
    assert isinstance(back, OvertrainingLossLaw) and np.allclose(back.predict(N, D), law.predict(N, D))
    assert law.warnings_ == []


def test_loss_law_warns_when_E_sits_at_its_bound():
    # a pure power law in N and D (no irreducible loss): the fit puts E at 0
    N = np.repeat([1e6, 4e6, 1.6e7, 6.4e7], 3)
    D = np.tile([1e8, 1e9, 1e10], 4)
    law = LossLaw().fit(N, D, 30 * N**-0.2 + 40 * D**-0.15)
    assert law.params_["E"] < 0.01 and "sits at its bound 0" in law.warnings_[0]
    assert law_from_dict(law.to_dict()).warnings_ == law.warnings_


def test_extrapolation_to_the_largest_model_on_gadre_runs():
    """Fit on 10.6M-153.7M models of one corpus, predict the 411.6M model (benchmarks/loss_overtraining.py
    does all three corpora and both N counts): the error stays near the benchmark's figure."""
    path = shared_data("gadre_overtraining") / "overtraining_losses.csv"
    if not path.exists():
        pytest.skip(
            f"Gadre et al.'s runs not found at {path} (see ../shared/data/gadre_overtraining/NOTES.md)"
        )
    d = pd.read_csv(path)
    d = d[(d["dataset"] == "rpj") & (d["tokens"] / (d["global_bs"] * 2048) > d["warmup"])]
    big = d["params"].max()
    tr, te = d[d["params"] < big], d[d["params"] == big]
    y = "loss__eval_data/c4_val"
    law = OvertrainingLossLaw().fit(tr["params"], tr["tokens"], tr[y])
    err = np.abs(law.predict(te["params"], te["tokens"]) / te[y] - 1)
    assert err.mean() < 0.02 and 0.2 < law.eta_ < 0.35
