"""The gradient noise scale against an exact computation from per-example gradients (torch.func)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.func import functional_call, grad, vmap

from oasl.config import ModelShape
from oasl.models import GPT, Parametrization
from oasl.train.gns import estimate, measure, smoothed_b_simple

SHAPE = ModelShape(width=16, depth=1, seq_len=8, vocab_size=32)


def tiny_model():
    torch.manual_seed(0)
    return GPT(SHAPE, Parametrization("sp", 16))


def per_example_grads(model, x, y) -> torch.Tensor:
    """(n, P) flattened gradients of each sequence's mean loss."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_of(p, xi, yi):
        return functional_call(model, p, (xi[None], yi[None]))[1]

    g = vmap(grad(loss_of), in_dims=(None, 0, 0))(params, x, y)
    return torch.cat([g[k].reshape(len(x), -1) for k in params], dim=1)


def population(n=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, SHAPE.vocab_size, (n, SHAPE.seq_len), generator=gen)
    y = torch.randint(0, SHAPE.vocab_size, (n, SHAPE.seq_len), generator=gen)
    y[: n // 2] = x[: n // 2]  # half the sequences are learnable: a gradient with both signal and noise
    return x, y


def test_norms_match_per_example_gradients():
    model = tiny_model()
    x, y = population()
    pe = per_example_grads(model, x, y).double()
    idx = [torch.arange(i, i + 3) for i in (0, 3, 6, 9)]
    point = measure(model, [(x[i], y[i]) for i in idx])
    means = torch.stack([pe[i].mean(0) for i in idx])
    assert point.b_small == 3 and point.b_big == 12
    assert point.small_sq == pytest.approx(float(means.pow(2).sum(1).mean()), rel=1e-4)
    assert point.big_sq == pytest.approx(float(means.mean(0).pow(2).sum()), rel=1e-4)
    assert all(p.grad is None for p in model.parameters())  # .grad untouched: training is not disturbed


def test_estimates_are_exact_on_a_whole_population():
    """Each sequence of a population once as its own micro-batch (B_small = 1, B_big = n): the estimators
    reduce to the unbiased sample statistics of the per-example gradients, tr(Sigma) with ddof 1 and
    |G|^2 = |mean|^2 - tr(Sigma)/n (McCandlish et al. 2018, App. A.1, exactly)."""
    model = tiny_model()
    x, y = population()
    n = len(x)
    pe = per_example_grads(model, x, y).double()
    mu = pe.mean(0)
    tr_sigma = float((pe - mu).pow(2).sum(1).sum() / (n - 1))
    g2 = float(mu.pow(2).sum()) - tr_sigma / n
    p = measure(model, [(x[i : i + 1], y[i : i + 1]) for i in range(n)])
    assert (p.b_small, p.b_big) == (1, n)
    assert p.s == pytest.approx(tr_sigma, rel=1e-4)
    assert p.g2 == pytest.approx(g2, rel=1e-3)
    assert p.b_simple == pytest.approx(tr_sigma / g2, rel=1e-3)
    assert p.b_simple > 1  # a noisy gradient: the test would not see a wrong sign or scale otherwise


def test_estimator_formulae_and_guards():
    g2, s, b = estimate(small_sq=1.0 + 10.0 / 2, big_sq=1.0 + 10.0 / 8, b_small=2, b_big=8)
    assert (g2, s, b) == pytest.approx((1.0, 10.0, 10.0))
    assert math.isnan(estimate(1.0, 0.2, 2, 8)[2])  # |G|^2 estimate not positive
    with pytest.raises(ValueError):
        estimate(1.0, 1.0, 8, 2)
    assert np.isnan(smoothed_b_simple([-1.0], [1.0])[0])


def test_training_with_the_measurement_keeps_the_trajectory():
    from oasl.testing import tiny_run
    from oasl.train import train

    small = {"shape": {"width": 16}, "tokens": 8 * 32 * 20, "eval_interval": 10}
    plain = train(tiny_run(**small))
    spec = tiny_run(**small, gns=True)
    measured = train(spec)
    # keyed apart (a store holding the plain run must not skip the measured one); the default key is unchanged
    assert spec.key() != plain.spec.key() and tiny_run(**small, gns=False).key() == plain.spec.key()
    assert measured.final_val_loss == plain.final_val_loss
    pts = [p for p in measured.curve if "b_simple" in p]
    assert len(pts) == 2 and pts[-1]["step"] == 20  # each evaluation and the final one
    assert all(p["gns_b_big"] == 8 * p["gns_b_small"] for p in pts)


def test_batched_training_measures_through_the_single_path():
    from oasl.testing import tiny_run
    from oasl.train import train_batched

    specs = [tiny_run(shape={"width": 16}, tokens=8 * 32 * 10, lr=lr, gns=True) for lr in (1e-3, 3e-3)]
    results = train_batched(specs)
    assert all("b_simple" in r.curve[-1] for r in results)
