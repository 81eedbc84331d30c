"""B_noise = tr(H Sigma) / (G^T H G) against an exact computation: per-example gradients and the full
Hessian of a model small enough to form both (torch.func)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.func import functional_call, grad, hessian, vmap

from oasl.train.gns import from_grads, micro_grads
from oasl.train.gns_hessian import adam_preconditioner, measure

torch.set_default_dtype(torch.float32)


class SoftmaxMLP(torch.nn.Module):
    """A 2-layer tanh MLP classifier (4 -> 5 -> 3, 43 parameters): an indefinite, non-isotropic Hessian."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.fc = torch.nn.Linear(4, 5)
        self.out = torch.nn.Linear(5, 3)

    def forward(self, x, y):
        logits = self.out(torch.tanh(self.fc(x)))
        return logits, torch.nn.functional.cross_entropy(logits, y)


class Isotropic(torch.nn.Module):
    """Loss c/2 |theta - x|^2: the Hessian is c I on every batch, so B_noise is B_simple."""

    def __init__(self, c=3.0):
        super().__init__()
        self.theta, self.c = torch.nn.Parameter(torch.zeros(6)), c

    def forward(self, x, y):
        return None, 0.5 * self.c * (self.theta - x).pow(2).sum(-1).mean()


def data(n=10, seed=2):
    """A population whose labels follow one input's sign: a gradient with signal (G^T H G > 0) and noise."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=gen) * 2
    return x.double(), (x[:, 0] > 0).long() * 2


def exact(model, x, y, precond=None):
    """(tr(H Sigma), G^T H G) over the finite population (x, y): Sigma the per-example gradient covariance
    (ddof 0), G the mean gradient, H the full-population Hessian; with ``precond`` (a flat vector P), the
    forms with P H P."""
    params = {k: v.detach().double() for k, v in model.named_parameters()}
    names = list(params)
    shapes = [params[k].shape for k in names]
    flat0 = torch.cat([params[k].reshape(-1) for k in names])

    def unflat(f):
        out, i = {}, 0
        for k, s in zip(names, shapes, strict=True):
            n = math.prod(s)
            out[k] = f[i : i + n].reshape(s)
            i += n
        return out

    def loss(f, xs, ys):
        return functional_call(model, unflat(f), (xs, ys))[1]

    pe = vmap(grad(loss), in_dims=(None, 0, 0))(flat0, x[:, None], y[:, None])
    h = hessian(loss)(flat0, x, y)
    if precond is not None:
        h = precond[:, None] * h * precond[None, :]
    mu = pe.mean(0)
    cov = (pe - mu).T @ (pe - mu) / len(x)
    return float(torch.trace(h @ cov)), float(mu @ h @ mu)


def as_batches(x, y, idx):
    return [(x[i], y[i]) for i in idx]


def test_whole_population_gives_the_exact_sample_statistics():
    """Each example once as its own micro-batch (b = 1, k = n) with the Hessian taken on the whole
    population: the estimator is the unbiased sample statistic, tr(H Sigma) with ddof 1 (the exact ddof-0
    value times n / (n - 1)) and G^T H G = mu^T H mu - tr(H Sigma_ddof1) / n, to float64 rounding."""
    model = SoftmaxMLP().double()
    x, y = data()
    n = len(x)
    tr_hs, mhm = exact(model, x, y)
    grads = micro_grads(model, as_batches(x, y, [[i] for i in range(n)]))
    p = measure(model, [[g.double() for g in gs] for gs in grads], 1, (x, y))
    tr1 = tr_hs * n / (n - 1)
    assert p.s_h == pytest.approx(tr1, rel=1e-4)
    assert p.ghg == pytest.approx(mhm - tr1 / n, rel=1e-4)
    assert p.b_noise == pytest.approx(tr1 / (mhm - tr1 / n), rel=1e-3)
    # the test would see a wrong weighting: B_noise and B_simple differ here by more than 30%
    assert abs(math.log(p.b_noise / from_grads(grads, 1).b_simple)) > 0.3


def test_random_micro_batches_average_to_the_exact_values():
    """Micro-batches and the Hessian batch drawn with replacement from the population (so the per-example
    covariance is the population's, ddof 0): over 300 measurements the mean tr(H Sigma) and G^T H G
    estimates lie within 4 standard errors of the exact values, and the pooled B_noise within 15%."""
    model = SoftmaxMLP().double()
    x, y = data()
    tr_hs, mhm = exact(model, x, y)
    rng = np.random.default_rng(0)
    k, b, m = 4, 2, 300
    s_h, ghg = [], []
    for _ in range(m):
        grads = micro_grads(model, as_batches(x, y, rng.integers(0, len(x), (k, b))))
        hb = rng.integers(0, len(x), b)
        p = measure(model, grads, b, (x[hb], y[hb]))
        s_h.append(p.s_h)
        ghg.append(p.ghg)
    for est, true in ((s_h, tr_hs), (ghg, mhm)):
        se = np.std(est, ddof=1) / math.sqrt(m)
        assert abs(np.mean(est) - true) < 4 * se, (np.mean(est), true, se)
    assert np.mean(s_h) / np.mean(ghg) == pytest.approx(tr_hs / mhm, rel=0.15)


def test_preconditioned_forms_match_p_h_p():
    """The Adam variant on the whole population equals the exact statistics with P H P in place of H."""
    model = SoftmaxMLP().double()
    x, y = data()
    n = len(x)
    gen = torch.Generator().manual_seed(3)
    precond = [torch.rand(p.shape, generator=gen, dtype=torch.float64) + 0.5 for p in model.parameters()]
    tr_hs, mhm = exact(model, x, y, torch.cat([q.reshape(-1) for q in precond]))
    grads = micro_grads(model, as_batches(x, y, [[i] for i in range(n)]))
    p = measure(model, [[g.double() for g in gs] for gs in grads], 1, (x, y), precond=precond)
    tr1 = tr_hs * n / (n - 1)
    assert p.s_hp == pytest.approx(tr1, rel=1e-4)
    assert p.ghg_p == pytest.approx(mhm - tr1 / n, rel=1e-4)
    assert p.b_noise_adam != pytest.approx(p.b_noise, rel=0.05)


def test_isotropic_hessian_gives_b_simple():
    """H = c I: every H-weighted form is c times the squared norm, so B_noise equals B_simple exactly and
    G^T H G = c |G|^2 (McCandlish et al. 2018, Sec. 2.2)."""
    model = Isotropic(c=3.0)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(12, 6, generator=gen) + 0.7
    batches = [(x[i : i + 3], None) for i in range(0, 12, 3)]
    grads = micro_grads(model, batches)
    simple = from_grads(grads, 3)
    p = measure(model, grads, 3, (x[:2], None))
    assert p.b_noise == pytest.approx(simple.b_simple, rel=1e-5)
    assert p.ghg == pytest.approx(3.0 * simple.g2, rel=1e-5)


def test_indefinite_hessian_gives_nan():
    """A concave loss (H = -I): G^T H G < 0, so B_noise is NaN rather than a negative batch size."""
    model = Isotropic(c=-1.0)
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(1)) + 1.0
    grads = micro_grads(model, [(x[i : i + 2], None) for i in range(0, 8, 2)])
    p = measure(model, grads, 2, (x[:2], None))
    assert p.ghg < 0 and math.isnan(p.b_noise)


def test_adam_preconditioner_reads_the_optimizer_state():
    model = SoftmaxMLP()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, eps=1e-8)
    params = list(model.parameters())
    assert adam_preconditioner(opt, params) is None  # no second moments before the first step
    x, y = data()
    model(x.float(), y)[1].backward()
    opt.step()
    pc = adam_preconditioner(opt, params)
    v = opt.state[params[0]]["exp_avg_sq"] / (1 - 0.999)
    assert torch.allclose(pc[0], 1 / (v.sqrt() + 1e-8))
    assert adam_preconditioner(torch.optim.SGD(model.parameters(), lr=0.1), params) is None


def test_training_with_b_noise_keeps_the_trajectory_and_the_key():
    """The Hessian measurement changes neither the trajectory nor B_simple's figures; the default key is
    that of a run without the field."""
    from oasl.testing import tiny_run
    from oasl.train import train

    small = {"shape": {"width": 16}, "tokens": 8 * 32 * 20, "eval_interval": 10}
    plain = train(tiny_run(**small))
    simple = train(tiny_run(**small, gns=True))
    spec = tiny_run(**small, gns=True, gns_hessian=True)
    hess = train(spec)
    assert spec.key() != simple.spec.key()
    assert tiny_run(**small, gns=True, gns_hessian=False).key() == simple.spec.key()
    assert hess.final_val_loss == simple.final_val_loss == plain.final_val_loss
    assert [p["train_loss"] for p in hess.curve] == [p["train_loss"] for p in plain.curve]
    pts = [p for p in hess.curve if "gnsh_small_q" in p]
    assert len(pts) == 2
    for a, b in zip(pts, [p for p in simple.curve if "b_simple" in p], strict=True):
        assert a["b_simple"] == b["b_simple"] and a["gns_small_sq"] == b["gns_small_sq"]
        assert "b_noise" in a and "b_noise_adam" in a  # AdamW: the preconditioned variant too


def test_gns_hessian_needs_gns():
    from oasl.errors import ConfigError
    from oasl.testing import tiny_run

    with pytest.raises(ConfigError, match="gns: true"):
        tiny_run(gns_hessian=True)


def test_gpt_hessian_vector_products_match_finite_differences():
    """On the GPT itself (attention through the unfused kernel for the double backward): v^T H v from
    :func:`hvp_on` against a central difference of gradients, in float64."""
    from oasl.config import ModelShape
    from oasl.models import GPT, Parametrization
    from oasl.train.gns_hessian import hvp_on

    shape = ModelShape(width=16, depth=1, seq_len=8, vocab_size=32)
    torch.manual_seed(0)
    model = GPT(shape, Parametrization("sp", 16)).double()
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 32, (4, 8), generator=gen)
    y = torch.randint(0, 32, (4, 8), generator=gen)
    params = [p for p in model.parameters() if p.requires_grad]
    v = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params]
    hv = hvp_on(model, (x, y))([u.double() for u in v])
    q = sum(float((a.double() * b).sum()) for a, b in zip(hv, v, strict=True))

    def grad_at(sign, eps=1e-4):
        with torch.no_grad():
            for p, u in zip(params, v, strict=True):
                p.add_(sign * eps * u)
        g = torch.autograd.grad(model(x, y)[1], params)
        with torch.no_grad():
            for p, u in zip(params, v, strict=True):
                p.sub_(sign * eps * u)
        return g

    gp, gm = grad_at(1), grad_at(-1)
    fd = sum(float(((a - b) * u).sum()) for a, b, u in zip(gp, gm, v, strict=True)) / 2e-4
    assert abs(q) > 1e-3 and q == pytest.approx(fd, rel=1e-4)  # O(eps^2) truncation: ~1e-5
