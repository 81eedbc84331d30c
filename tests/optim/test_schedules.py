import math

import numpy as np
import pytest
import torch

from oasl.config import ScheduleSpec
from oasl.errors import ConfigError
from oasl.optim import REGISTRY, lr_curve, lr_factor, make_optimizer, parse_schedule, validate_hps

T = 200


def test_warmup_reaches_peak_at_its_end():
    for name in ("constant", "cosine", "linear", "wsd", "inverse_sqrt", "step"):
        spec = ScheduleSpec(name=name, warmup_frac=0.1)
        curve = lr_curve(spec, T, peak_lr=2.0)
        assert curve[0] == pytest.approx(2.0 / 20)
        assert curve[19] == pytest.approx(2.0), name
        assert np.all(np.diff(curve[:20]) > 0)
        assert curve.max() == pytest.approx(2.0)


@pytest.mark.parametrize("name", ["cosine", "linear", "wsd"])
def test_decays_end_at_final_fraction(name):
    spec = ScheduleSpec(name=name, warmup_frac=0.05, final_frac=0.1)
    curve = lr_curve(spec, T)
    assert curve[-1] == pytest.approx(0.1)
    assert np.all(np.diff(curve[10:]) <= 1e-12)


def test_cosine_midpoint():
    spec = ScheduleSpec(name="cosine", final_frac=0.0)
    assert lr_factor(spec, 0, 101) == pytest.approx(1.0)
    assert lr_factor(spec, 50, 101) == pytest.approx(0.5)


@pytest.mark.parametrize("shape", ["linear", "cosine", "sqrt"])
def test_wsd_plateau_then_decay(shape):
    spec = ScheduleSpec(name="wsd", warmup_frac=0.1, decay_frac=0.2, final_frac=0.0, decay_shape=shape)
    curve = lr_curve(spec, T)
    assert np.allclose(curve[20:160], 1.0)  # stable phase
    assert curve[159] == 1.0 and curve[160] == pytest.approx(1.0)  # decay starts at 80% of the run
    assert curve[-1] == pytest.approx(0.0)
    assert np.all(np.diff(curve[160:]) < 0)


def test_step_and_inverse_sqrt():
    spec = ScheduleSpec(name="step", milestones=(0.5,), gamma=0.1)
    curve = lr_curve(spec, 101)
    assert curve[49] == 1.0 and curve[50] == pytest.approx(0.1)
    inv = lr_curve(ScheduleSpec(name="inverse_sqrt", warmup_steps=10), 110)
    assert inv[9] == pytest.approx(1.0)
    assert inv[10 + 30] == pytest.approx(math.sqrt(10 / 40))


def test_parse_schedule():
    assert parse_schedule("wsd:0.2").decay_frac == 0.2
    assert parse_schedule("cosine:0.05").final_frac == 0.05
    with pytest.raises(ConfigError, match="schedule"):
        parse_schedule("bogus")
    with pytest.raises(ConfigError, match="number"):
        parse_schedule("wsd:x")


def test_registry_hps_and_errors():
    assert validate_hps("sgd", {"momentum": 0.5})["momentum"] == 0.5
    with pytest.raises(ConfigError, match="no hyperparameter beta1"):
        validate_hps("sgd", {"beta1": 0.9})
    with pytest.raises(ConfigError, match="outside its valid range"):
        validate_hps("adamw", {"beta2": 1.5})
    with pytest.raises(ConfigError, match="unknown optimizer"):
        validate_hps("adamx", {})


class _Toy(torch.nn.Module):
    """A model with the name-keyed metadata the optimizer package expects."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(10, 8)
        self.lin = torch.nn.Linear(8, 8)
        self.norm = torch.nn.LayerNorm(8)

    def param_roles(self):
        return {
            "emb.weight": "embedding",
            "lin.weight": "hidden",
            "lin.bias": "bias",
            "norm.weight": "norm",
            "norm.bias": "bias",
        }

    def lr_multipliers(self, family):
        return {n: (0.5 if n == "lin.weight" else 1.0) for n in self.param_roles()}

    def forward(self, idx):
        return self.norm(self.lin(self.emb(idx))).pow(2).mean()


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_optimizer_steps_and_respects_groups(name):
    torch.manual_seed(0)
    model = _Toy()
    opt = make_optimizer(model, name, lr=0.01, hps={})
    groups = {g["role"]: g for g in opt.param_groups}
    assert groups["norm"]["weight_decay"] == 0.0 and groups["bias"]["weight_decay"] == 0.0
    assert groups["hidden"]["lr"] == pytest.approx(0.005)  # muP multiplier applied
    # muP keeps lr x wd of a decayed group width-independent (microsoft/mup MuAdam/MuSGD): wd / lr_mult
    wd = validate_hps(name, {})["weight_decay"]
    assert groups["hidden"]["weight_decay"] * groups["hidden"]["lr_mult"] == pytest.approx(wd)
    before = model.lin.weight.detach().clone()
    loss = model(torch.arange(10))
    loss.backward()
    opt.step()
    assert not torch.equal(before, model.lin.weight)
    n_params = sum(len(g["params"]) for g in opt.param_groups)
    assert n_params == len(list(model.parameters()))


def test_lion_matches_its_update_rule():
    from oasl.optim.lion import Lion

    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    opt = Lion([p], lr=0.1, betas=(0.9, 0.99), weight_decay=0.1)
    p.grad = torch.tensor([0.3, -0.1, 0.0])
    opt.step()
    # first step: m=0 so update = sign(0.1 g); p = p (1 - lr wd) - lr sign
    expected = torch.tensor([1.0, -2.0, 0.5]) * (1 - 0.01) - 0.1 * torch.tensor([1.0, -1.0, 0.0])
    assert torch.allclose(p.detach(), expected)
    assert torch.allclose(opt.state[p]["exp_avg"], 0.01 * torch.tensor([0.3, -0.1, 0.0]))
