import math

import pytest

from oasl.testing import tiny_run
from oasl.train import train


def test_tiny_model_learns_the_default_corpus():
    r = train(tiny_run(tokens=8 * 32 * 150, lr=1e-2))
    assert r.status == "done" and not r.diverged
    assert r.initial_val_loss == pytest.approx(math.log(256), abs=0.3)
    assert r.final_val_loss < 0.75 * math.log(256)  # well below a uniform guess over bytes
    assert len(r.curve) == r.spec.steps == 150
    assert r.curve[-1]["val_loss"] == r.final_val_loss
    assert r.flops > 0 and r.tokens_per_s > 0 and r.n_params < r.n_params_total
    assert "update_ratio" in r.curve[0]
    lrs = [p["lr"] for p in r.curve]
    assert max(lrs) == pytest.approx(1e-2) and lrs[-1] == pytest.approx(1e-3)  # cosine to 10%


def test_same_seed_same_losses_different_seed_differs():
    a, b = train(tiny_run(seed=3)), train(tiny_run(seed=3))
    assert [p["train_loss"] for p in a.curve] == [p["train_loss"] for p in b.curve]
    assert a.final_val_loss == b.final_val_loss
    c = train(tiny_run(seed=4))
    assert c.curve[-1]["train_loss"] != a.curve[-1]["train_loss"]
    assert c.initial_val_loss != a.initial_val_loss  # different init, same held-out tokens


@pytest.mark.parametrize("opt, lr", [("adamw", 50.0), ("sgd", 1e4)])
def test_absurd_lr_is_recorded_as_diverged(opt, lr):
    r = train(tiny_run(optimizer=opt, lr=lr, grad_clip=None, schedule={"warmup_frac": 0.0}))
    assert r.status == "diverged" and r.diverged
    assert r.diverge_reason and math.isnan(r.final_val_loss)
    assert r.steps_done < r.spec.steps  # stopped early, not a crash


@pytest.mark.parametrize("opt", ["sgd", "adafactor", "lion", "muon"])
def test_every_optimizer_trains(opt):
    lr = {"sgd": 0.3, "adafactor": 0.1, "lion": 1e-3, "muon": 1e-2}[opt]
    r = train(tiny_run(optimizer=opt, lr=lr, tokens=8 * 32 * 40))
    assert r.status == "done" and r.final_val_loss < r.initial_val_loss - 0.5


def test_should_stop_hook_records_a_stopped_run():
    r = train(tiny_run(), should_stop=lambda step, loss, curve: "enough" if step >= 20 else None)
    assert r.status == "stopped" and r.stop_reason == "enough" and r.steps_done == 20
    assert math.isfinite(r.final_val_loss)


def test_mup_run_trains():
    r = train(tiny_run(parametrization="mup", base_width=16))
    assert r.status == "done" and r.final_val_loss < r.initial_val_loss
