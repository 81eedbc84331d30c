"""recommend(): published laws at the settings their papers report, exports, warnings, bad input."""

import json
import math

import pytest
import torch

from oasl.config import ModelShape
from oasl.errors import ConfigError
from oasl.models import GPT
from oasl.recommend import recommend

# DeepSeek LLM 7B (Bi et al. 2024, Table 2): 30 layers, width 4096, 4096-token sequences, 2T tokens;
# their laws (Sec. 3.1) gave peak lr 4.2e-4 and batch 2304 x 4096 = 9.4M tokens.
DS7B = ModelShape(width=4096, depth=30, n_heads=32, seq_len=4096)


def test_deepseek_7b_reproduces_the_paper_with_its_own_compute_measure():
    rec = recommend("adamw", shape=DS7B, tokens=2e12, published="deepseek")
    assert rec.value("lr") == pytest.approx(4.2e-4, rel=0.05)
    assert rec.value("batch_tokens") == pytest.approx(9.4e6, rel=0.08)
    # without a shape C falls back to 6ND, which the source says
    rough = recommend("adamw", n_params=6.9e9, tokens=2e12, published="deepseek")
    assert "6ND" in rough.items["lr"].source and "6ND" not in rec.items["lr"].source


def test_step_law_and_exports():
    rec = recommend("adamw", n_params=1e9, tokens=1e11, published="step-law", seq_len=2048)
    # Step Law (Li et al. 2025, Eq. 1): lr = 1.79 N^-0.713 D^0.307
    assert rec.value("lr") == pytest.approx(1.79 * 1e9**-0.713 * 1e11**0.307, rel=1e-3)
    kw = rec.torch_kwargs()
    assert kw["class"] == "torch.optim.AdamW" and kw["lr"] == rec.value("lr")
    model = GPT(ModelShape(width=32, depth=1, seq_len=16))
    opt = rec.torch_optimizer(model)
    assert isinstance(opt, torch.optim.AdamW)
    assert max(g["lr"] for g in opt.param_groups) == pytest.approx(rec.value("lr"))
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == sum(
        p.numel() for p in model.parameters()
    )
    batch = rec.value("batch_seqs")
    hf = rec.hf_training_arguments()
    assert hf["learning_rate"] == rec.value("lr") and hf["per_device_train_batch_size"] == batch
    with pytest.raises(ConfigError, match="not divisible by --world-size 4"):
        rec.hf_training_arguments(world_size=4, round_batch=False)  # 541 sequences: --exact-batch refuses
    rec.items["batch_seqs"].value = 544
    hf = rec.hf_training_arguments(world_size=4, grad_accum=2)
    assert hf["per_device_train_batch_size"] == 68 and hf["gradient_accumulation_steps"] == 2
    assert rec.value("total_steps") == int(1e11 // (batch * 2048))


def test_extrapolation_warning_and_bad_input():
    rec = recommend("adamw", n_params=1e12, tokens=1e13, published="step-law")
    assert any("extrapolates" in w for w in rec.warnings)
    no_law = recommend("sgd", n_params=1e8, tokens=1e9)
    assert math.isclose(no_law.value("lr"), 0.1) or "default" in no_law.items["lr"].source
    with pytest.raises(ConfigError, match="positive"):
        recommend("adamw", n_params=-1, tokens=1e9)
    with pytest.raises(ConfigError, match="params must be a finite positive number, got nan"):
        recommend("adamw", n_params=float("nan"), tokens=1e9, published="step-law")
    with pytest.raises(ConfigError):
        recommend("adamw")


def test_published_law_of_another_optimizer_is_refused_unless_forced():
    with pytest.raises(ConfigError, match="fitted on adamw, not sgd"):
        recommend("sgd", n_params=1e8, tokens=1e10, published="step-law")
    rec = recommend("sgd", n_params=1e8, tokens=1e10, published="step-law", force=True)
    assert "the adamw law applied to sgd" in rec.items["lr"].warning
    assert not recommend("adamw", n_params=1e8, tokens=1e10, published="step-law").warnings


def test_implausible_token_budgets_warn():
    few = recommend("adamw", n_params=1e9, tokens=10, published="step-law")
    assert any("step(s)" in w for w in few.warnings) and any(
        "tokens per parameter" in w for w in few.warnings
    )
    huge = recommend("adamw", n_params=1e6, tokens=1e11, published="step-law")
    assert any("1e+05 tokens per parameter" in w for w in huge.warnings)


def test_counts_take_suffixes_and_a_total_converts_to_non_embedding(capsys):
    from oasl.config import parse_count
    from oasl.models.counting import non_embedding_params
    from oasl.testing import run_cli

    assert parse_count("7B") == 7e9 and parse_count("350M") == 3.5e8 and parse_count("1.2e9") == 1.2e9
    assert parse_count("12k") == 12e3 and parse_count("2T") == 2e12 and parse_count("1.5G") == 1.5e9
    with pytest.raises(ConfigError, match="suffix K, M, B/G or T"):
        parse_count("7X")
    assert non_embedding_params(7e9, 50257, 4096) == 7e9 - 50257 * 4096
    assert non_embedding_params(7e9, 50257, 4096, tied=False) == 7e9 - 2 * 50257 * 4096
    with pytest.raises(ConfigError, match="not more than its"):
        non_embedding_params(1e6, 50257, 4096)
    code, out, err = run_cli(
        ["recommend", "--params", "7B", "--tokens", "2T", "--published", "step-law", "--format", "json"],
        capsys,
    )
    assert code == 0 and json.loads(out)["n_params"] == 7e9 and json.loads(out)["tokens"] == 2e12, err
    args = ["recommend", "--params-total", "7B", "--vocab", "50257", "--width", "4096", "--tokens", "2T"]
    code, out, err = run_cli([*args, "--published", "step-law", "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["n_params"] == 7e9 - 50257 * 4096, err
