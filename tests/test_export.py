"""One source of truth: the report's card, `oasl recommend` and every export (hf, torch, optax) say the
same batch, warmup, schedule and floor for the same laws.json and target."""

import json
import math
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from oasl.errors import ConfigError
from oasl.export import optax_config, optax_lr, torch_config
from oasl.laws import save_laws
from oasl.laws.published import get_published
from oasl.recommend import SWEEP_FIXED, recommend, sweep_settings
from oasl.report.card import build_card
from oasl.testing import run_cli

N, D = 2.0e6, 4.0e8


def _sweep_runs() -> pd.DataFrame:
    """A sweep that held batch (16 x 64), warmup 5%, cosine to 10% and beta2 0.99 fixed."""
    rows = [
        {
            "optimizer": "adamw",
            "n_params": n,
            "tokens": 20 * n,
            "lr": lr,
            "batch_seqs": 16,
            "seq_len": 64,
            "warmup_frac": 0.05,
            "schedule": "cosine",
            "final_frac": 0.1,
            "beta2": 0.99,
            "role": "sweep",
        }
        for n in (1e4, 3e4, 1e5)
        for lr in (1e-3, 3e-3, 1e-2)
    ]
    return pd.DataFrame(rows)


@pytest.fixture
def laws_json(tmp_path):
    law = get_published("step-law").laws["lr"]  # any law of lr in (N, D) will do
    path = tmp_path / "laws.json"
    save_laws(path, {"lr": law}, {"source": "test", "fixed": sweep_settings(_sweep_runs())})
    return path, law


def test_sweep_settings_reads_what_the_sweep_held_fixed():
    fixed = sweep_settings(_sweep_runs())
    assert fixed["batch_seqs"] == 16 and fixed["seq_len"] == 64 and fixed["warmup_frac"] == 0.05
    assert fixed["schedule"] == "cosine" and fixed["final_frac"] == 0.1
    assert fixed["hps"]["adamw"] == {"beta2": 0.99}  # beta1 never set: its default speaks for itself
    varied = _sweep_runs().assign(batch_seqs=[8, 16, 32] * 3)
    assert "batch_seqs" not in sweep_settings(varied)  # not held fixed: no value to keep


def test_card_and_recommend_say_the_same_for_the_same_laws_and_target(laws_json, capsys):
    path, law = laws_json
    code, out, err = run_cli(
        ["recommend", "--laws", str(path), "--params", str(N), "--tokens", str(D), "--format", "json"], capsys
    )
    assert code == 0, err
    items = json.loads(out)["items"]
    # the sweep's fixed settings win over the heuristics (0.5M tokens or 1%; warmup 2%)
    assert items["batch_seqs"]["value"] == 16 and json.loads(out)["seq_len"] == 64
    assert items["batch_tokens"]["source"].startswith(SWEEP_FIXED)
    steps = int(D // (16 * 64))
    assert items["total_steps"]["value"] == steps and items["warmup_steps"]["value"] == round(0.05 * steps)
    assert items["beta2"]["value"] == 0.99
    q = pd.DataFrame({"N": [N], "D": [D], "C": [6 * N * D]})
    ov = SimpleNamespace(
        optimizer="adamw",
        target_n_params=N,
        target_tokens=D,
        target_shape={},
        largest_swept_n_params=1e5,
        extrapolation_ratio=20.0,
        law=law.to_dict(),
        recommended_lr=float(law.predict(q)[0]),
        recommended_interval=(1e-3, 2e-3),
        methods=[],
        clipping={},
        noise_floor=math.nan,
    )
    card = build_card(ov, _sweep_runs())
    rows = {r.name: r for r in card.rows}
    assert items["lr"]["value"] == pytest.approx(card.recommendation.value("lr"))
    assert items["lr"]["value"] == pytest.approx(ov.recommended_lr)
    assert rows["batch size"].value == f"16 sequences x 64 = {16 * 64:,} tokens"
    assert rows["warmup"].value == f"5% of the steps = {items['warmup_steps']['value']} of {steps} steps"
    assert rows["schedule"].value == "cosine to 10% of the peak"
    assert rows["beta2"].value == "0.99"
    # and for the same reason, word for word
    for row, item in (("batch size", "batch_tokens"), ("warmup", "warmup_steps"), ("schedule", "schedule")):
        assert rows[row].source == items[item]["source"], row
    for kind in ("hf", "torch", "optax"):
        code, out, err = run_cli(
            ["recommend", "--laws", str(path), "--params", str(N), "--tokens", str(D), "--format", kind],
            capsys,
        )
        assert code == 0, (kind, err)
        exp = json.loads(out)
        total = exp.get("max_steps", exp.get("total_steps"))
        assert total == steps, kind
        warm = exp.get("warmup_steps", exp.get("scheduler", exp.get("schedule", {})).get("warmup_steps"))
        assert warm == items["warmup_steps"]["value"], kind


def test_hf_export_is_cosine_to_the_floor_in_transformers():
    transformers = pytest.importorskip("transformers")
    rec = recommend("adamw", n_params=1e9, tokens=1e11, published="step-law", seq_len=2048)
    args = rec.hf_training_arguments()
    assert args["lr_scheduler_type"] == "cosine_with_min_lr"
    assert args["lr_scheduler_kwargs"] == {"min_lr_rate": 0.1}
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=args["learning_rate"])
    sched = transformers.get_scheduler(
        args["lr_scheduler_type"],
        opt,
        num_warmup_steps=args["warmup_steps"],
        num_training_steps=args["max_steps"],
        scheduler_specific_kwargs=args["lr_scheduler_kwargs"],
    )
    lam = sched.lr_lambdas[0]
    assert lam(args["warmup_steps"]) == pytest.approx(1.0)
    assert lam(args["max_steps"]) * args["learning_rate"] == pytest.approx(0.1 * rec.value("lr"))
    assert lam(args["max_steps"] // 2) < 1.0


def test_hf_export_rounds_an_indivisible_batch_and_says_by_how_much():
    rec = recommend("adamw", n_params=1e9, tokens=1e11, published="step-law", seq_len=2048)
    assert rec.value("batch_seqs") == 541
    args = rec.hf_training_arguments(world_size=8, grad_accum=4)
    assert args["per_device_train_batch_size"] * 8 * 4 == 544  # 541 -> 544, the nearest multiple of 32
    assert args["max_steps"] == int(1e11 // (544 * 2048))
    assert any("rounded the global batch from 541 to 544 sequences (+0.6%)" in w for w in rec.warnings)
    with pytest.raises(
        ConfigError, match="not divisible by --world-size 8 x --grad-accum 4 = 32: train with 544"
    ):
        rec.hf_training_arguments(world_size=8, grad_accum=4, round_batch=False)


def test_torch_export_builds_the_optimizer_and_schedule_oasl_trains_with():
    rec = recommend("adamw", n_params=1e6, tokens=2e7, published="step-law", seq_len=64)
    cfg = torch_config(rec)
    assert cfg["total_steps"] == rec.value("total_steps") and cfg["batch_seqs"] == rec.value("batch_seqs")
    scope = {"model": torch.nn.Linear(4, 4)}
    exec(cfg["code"], scope)
    opt, sched = scope["optimizer"], scope["scheduler"]
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["betas"] == (0.9, 0.95)
    peak, total = rec.value("lr"), cfg["total_steps"]
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [peak * rec.lr_factor(s) for s in range(total)]
    assert np.allclose(lrs, expected, rtol=1e-9)
    assert lrs[-1] == pytest.approx(0.1 * peak) and max(lrs) == pytest.approx(peak)
    assert cfg["scheduler"]["final_lr"] == pytest.approx(0.1 * peak)


def test_optax_export_without_jax():
    rec = recommend("adamw", n_params=1e6, tokens=2e7, published="step-law", seq_len=64)
    cfg = optax_config(rec)
    s = cfg["schedule"]
    peak, total, warm = rec.value("lr"), rec.value("total_steps"), rec.value("warmup_steps")
    assert s["fn"] == "optax.warmup_cosine_decay_schedule" and s["decay_steps"] == total
    assert s["warmup_steps"] == warm and s["end_value"] == pytest.approx(0.1 * peak)
    assert optax_lr(cfg, warm) == pytest.approx(peak) and optax_lr(cfg, total) == pytest.approx(0.1 * peak)
    # the same curve as oasl's schedule to within one step of warmup convention
    mid = (warm + total) // 2
    assert optax_lr(cfg, mid) == pytest.approx(peak * rec.lr_factor(mid), rel=0.02)
    assert cfg["optimizer"] == {"fn": "optax.adamw", "b1": 0.9, "b2": 0.95, "eps": 1e-8, "weight_decay": 0.1}
    assert re.search(r"optax\.adamw\(schedule, b1=0\.9", cfg["code"])


@pytest.mark.parametrize("optimizer", ["adamw", "sgd", "lion", "adafactor", "muon"])
def test_torch_snippet_runs_for_every_optimizer(optimizer):
    from oasl.config import ModelShape
    from oasl.models import GPT

    rec = recommend(optimizer, n_params=1e6, tokens=2e7, seq_len=64)
    scope = {"model": GPT(ModelShape(width=32, depth=1, seq_len=16))}
    exec(torch_config(rec)["code"], scope)
    first = scope["scheduler"].get_last_lr()[0]
    assert first == pytest.approx(rec.value("lr") * rec.lr_factor(0))
