"""Published laws give the numbers their papers (and the authors' released artefacts) give."""

import math

import numpy as np
import pandas as pd
import pytest

from oasl.errors import ConfigError
from oasl.laws import (
    PUBLISHED,
    PowerLaw,
    deepseek_flops,
    deepseek_flops_from_6nd,
    describe_published,
    get_published,
    law_from_dict,
)


def test_step_law_matches_the_authors_bootstrap_mean():
    """Step Law's tool (step-law/steplaw code/fit_tool.py pred-opt-lr-bs) predicts with the mean of the
    1,000 bootstrap fits in data/1004_fitted_lr_bs_scaling_model_parameters.csv: ln C_lr = 0.586308,
    N exponent -0.712922, D exponent 0.307491; ln C_bs = -0.543542, D exponent 0.570944. At the README's
    example (N = 7e9, D = 1.4e12) that gives lr 9.347e-4 and 4.997e6 batch tokens; the paper's rounded
    formula must agree to rounding (2%)."""
    step = get_published("step-law")
    q = pd.DataFrame({"N": [7e9], "D": [1.4e12]})
    lr_tool = math.exp(0.586308 - 0.712922 * math.log(7e9) + 0.307491 * math.log(1.4e12))
    bs_tool = math.exp(-0.543542 + 0.570944 * math.log(1.4e12))
    assert lr_tool == pytest.approx(9.347e-4, rel=1e-3) and bs_tool == pytest.approx(4.997e6, rel=1e-3)
    assert step["lr"].predict(q)[0] == pytest.approx(lr_tool, rel=0.025)
    assert step["batch_tokens"].predict(q)[0] == pytest.approx(bs_tool, rel=0.005)
    assert step["lr"].citation.startswith("Li et al. 2025") and step["lr"].optimizer == "adamw"
    assert step["lr"].units["batch_tokens"].startswith("tokens")
    # the released runs span N 2.1e8-1.08e9: 7e9 is 6.5x beyond, D 1.4e12 is 14x beyond
    ratio = step["lr"].extrapolation_ratio(q, per_feature=True)
    assert ratio["N"].iloc[0] == pytest.approx(7e9 / 1.08e9) and ratio["D"].iloc[0] == pytest.approx(14.0)
    lo, hi = step["lr"].predict_interval(q)
    assert lo[0] == hi[0] == pytest.approx(step["lr"].predict(q)[0])  # no published scatter


@pytest.mark.parametrize(
    "layers, width, lr, batch_seqs",
    [(30, 4096, 4.2e-4, 2304), (95, 8192, 3.2e-4, 4608)],
)
def test_deepseek_law_gives_the_hyperparameters_deepseek_trained_with(layers, width, lr, batch_seqs):
    """DeepSeek LLM 7B (30 layers x 4096) and 67B (95 x 8192) were trained on 2T tokens of 4096-token
    sequences with lr 4.2e-4 / 3.2e-4 and batches of 2304 / 4608 sequences (deepseek-ai/DeepSeek-LLM
    README, Pre-Training; arXiv 2401.02954 Table 2), chosen with their Eq. 1 at C = M D (Eq. 2)."""
    ds = get_published("deepseek")
    C = deepseek_flops(layers, width, 4096, 2e12)
    q = pd.DataFrame({"C": [C]})
    assert ds["lr"].predict(q)[0] == pytest.approx(lr, rel=0.05)
    assert ds["batch_tokens"].predict(q)[0] / 4096 == pytest.approx(batch_seqs, rel=0.1)
    # 6 N D with N = 12 L d^2 understates their C by the attention term
    n = 12 * layers * width**2
    assert deepseek_flops_from_6nd(n, 2e12, width, 4096) == pytest.approx(C)
    assert 6 * n * 2e12 < C


def test_kaplan_laws():
    kap = get_published("kaplan")
    # Eq. D.1 with the natural log: at their largest model (1.5e9) a usable 2.9e-4 (GPT-3 XL, 1.3B, used 2e-4)
    lr = kap["lr"].predict(pd.DataFrame({"N": [1.5e9]}))[0]
    assert lr == pytest.approx(0.003239 - 0.0001395 * math.log(1.5e9))
    assert 1e-4 < lr < 5e-4
    assert kap["lr"].predict(pd.DataFrame({"N": [1e6]}))[0] > kap["lr"].predict(pd.DataFrame({"N": [1e8]}))[0]
    assert "ln N" in kap["lr"].formula()
    # Eq. 5.3: B_crit(L) = 2e8 / L^(1/0.21) tokens, i.e. about 2.5M tokens at L = 2.5
    b = kap["batch_tokens"].predict(pd.DataFrame({"L": [2.5, 3.0]}))
    assert b[0] == pytest.approx(2e8 / 2.5 ** (1 / 0.21)) and 2e6 < b[0] < 3e6 and b[1] < b[0]


def test_registry_description_and_errors():
    assert set(PUBLISHED) >= {"step-law", "deepseek", "kaplan"}
    assert get_published("StepLaw").name == "step-law" and get_published("deepseek_llm").name == "deepseek"
    mine = get_published("step-law")
    runs = {"N": [1e8, 2e8, 4e8, 8e8], "D": [1e9, 4e9, 2e9, 8e9], "lr": [1e-3, 8e-4, 5e-4, 4e-4]}
    mine["lr"].fit(pd.DataFrame(runs))
    assert mine["lr"].coef_ != 1.79 and PUBLISHED["step-law"]["lr"].coef_ == 1.79  # registry untouched
    with pytest.raises(ConfigError, match="choose one of step-law, deepseek, kaplan"):
        get_published("gpt5")
    with pytest.raises(ConfigError, match="has no law of beta2"):
        get_published("step-law")["beta2"]
    table = describe_published()
    assert {"name", "target", "formula", "optimizer", "citation", "range"} <= set(table.columns)
    assert len(table) == sum(len(s.laws) for s in PUBLISHED.values())
    row = table[(table["name"] == "deepseek") & (table["target"] == "lr")].iloc[0]
    assert (
        "C^-0.125" in row["formula"] and "2401.02954" in row["citation"] and "C 1e+17-3e+20" in row["range"]
    )
    for s in PUBLISHED.values():
        for law in s.laws.values():
            back = law_from_dict(law.to_dict())
            x = pd.DataFrame({f: [1e9] for f in law.features})
            assert np.allclose(back.predict(x), law.predict(x)) and back.citation == law.citation


def test_fixed_law_with_a_scatter_has_intervals():
    law = PowerLaw.fixed(
        1.0, {"N": -0.5}, "lr", citation="test", sigma_log=0.2, valid_range={"N": (1e6, 1e8)}
    )
    lo, hi = law.predict_interval(pd.DataFrame({"N": [1e6]}), 0.9)
    assert math.log(hi[0] / lo[0]) == pytest.approx(2 * 1.6449 * 0.2, rel=1e-3)
