"""The Hugging Face example: a Trainer ladder of GPT-2 configs to a law, a recommendation and a
validation at a 9x target (skipped without transformers; `pip install 'oasl[hf]'`)."""

import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

ROOT = Path(__file__).resolve().parents[2]


def test_hf_trainer_ladder_law_recommendation_validation(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sys.path.insert(0, str(ROOT / "examples" / "hf_trainer"))
    try:
        import hf_ladder
    finally:
        sys.path.pop(0)
    out = hf_ladder.main(["--out", str(tmp_path / "out"), "--workers", "2"])
    assert out["law"].startswith("adamw: lr =")
    assert 1e-4 < out["recommended_lr"] < 0.1
    assert out["target_n_params"] > 8 * 12 * 32**2 * 2
    oasl = next(m for m in out["validation"]["optimizers"][0]["methods"] if m["method"] == "oasl")
    assert math.isfinite(oasl["regret_mean"]) and len(oasl["regret_ci"]) == 2
    assert (tmp_path / "out" / "laws.json").is_file()


def test_training_arguments_from_a_trial_and_a_recommendation():
    from oasl.config import RunSpec, TrainerSpec
    from oasl.integrations.hf import oasl_callback, training_arguments
    from oasl.trainers import Trial

    spec = RunSpec(
        shape={"width": 32, "depth": 2},
        lr=3e-3,
        tokens=100 * 16 * 128,
        batch_seqs=16,
        hps={"weight_decay": 0.1, "beta2": 0.95},
        schedule={"name": "cosine", "warmup_frac": 0.1, "final_frac": 0.1},
        trainer=TrainerSpec(function="x:y"),
    )
    trial = Trial(spec)
    kw = training_arguments(trial, grad_accum=2)
    assert kw["learning_rate"] == 3e-3 and kw["max_steps"] == 100 and kw["warmup_steps"] == 10
    assert kw["per_device_train_batch_size"] == 8 and kw["gradient_accumulation_steps"] == 2
    assert kw["lr_scheduler_type"] == "cosine_with_min_lr" and kw["lr_scheduler_kwargs"] == {
        "min_lr_rate": 0.1
    }
    assert kw["adam_beta2"] == 0.95 and kw["weight_decay"] == 0.1
    from transformers import TrainingArguments

    TrainingArguments(output_dir=str(Path("/tmp") / "oasl-hf-args"), use_cpu=True, **kw)  # accepted as is
    cb = oasl_callback(trial)

    class State:
        global_step = 10

    class Control:
        should_training_stop = False

    c = Control()
    cb.on_log(None, State(), c, logs={"loss": 3.0})
    cb.on_log(None, State(), c, logs={"eval_loss": float("nan")})
    assert c.should_training_stop and trial.diverge_reason
