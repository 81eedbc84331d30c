"""The Hessian-weighted noise scale B_noise = tr(H Sigma) / (G^T H G), from Hessian-vector products.

Source: McCandlish et al. 2018, "An Empirical Model of Large-Batch Training" (arXiv 1812.06162), Sec. 2.2.
Expanding the loss to second order around the parameters, an SGD step ``-eps G_est`` with a gradient
averaged over B examples lowers the expected loss most at ``eps_opt(B) = eps_max / (1 + B_noise / B)``,
with the noise scale ``B_noise = tr(H Sigma) / (G^T H G)`` (H the Hessian, Sigma the per-example gradient
covariance, G the true gradient); B_crit ~ B_noise is the paper's prediction. ``B_simple = tr(Sigma) /
|G|^2`` (:mod:`oasl.train.gns`) is what B_noise becomes when H is a multiple of the identity; the paper
uses it because it needs no Hessian. Here B_noise itself is measured.

Estimator (an extension of App. A.1 by the same argument). Take the ``k`` micro-batch gradients ``g_j`` of
``b`` sequences that B_simple already measures, their mean ``g_big``, and an estimate ``Ĥ`` of the Hessian
from an independent batch (its own RNG stream), unbiased and independent of the g's. Then

    E[g_j^T Ĥ g_j]       = G^T H G + tr(H Sigma) / b
    E[g_big^T Ĥ g_big]   = G^T H G + tr(H Sigma) / (k b)

the two-batch-size identities of App. A.1 with H-weighted quadratic forms in place of squared norms, so
:func:`oasl.train.gns.estimate` applied to them gives unbiased G^T H G and tr(H Sigma); as for B_simple,
average the two separately over measurements before taking their ratio. Only the k products ``Ĥ g_j``
are needed: ``g_big^T Ĥ g_big = (1/k^2) sum_ij g_i^T Ĥ g_j``. Away from a minimum H may be indefinite, and
a G^T H G estimate <= 0 gives B_noise = NaN (reported, never clipped).

Adam. AdamW steps along ``-eps P g`` with ``P = diag(lr_mult / (sqrt(v_hat) + eps))`` rather than along
``-eps g``; the same expansion then gives ``B_noise,P = tr(P H P Sigma) / (G^T P H P G)``, measured here with
the same code on the vectors ``P g_j`` (P read from the optimizer's second moments, not changed). This
follows the preconditioned view of Zhang et al. 2019 (arXiv 1907.04164), who find that preconditioning
raises the critical batch; it ignores momentum and weight decay (docs/deviations.md).

Cost per measurement, on top of B_simple's k gradients: one gradient with its graph kept on the Hessian
batch (``b`` sequences) and k double-backward passes, twice k with the Adam variant; memory for the k
micro-batch gradients. Double backward through torch's fused attention kernels is not implemented, so the
Hessian batch's forward runs under the unfused (math) scaled-dot-product attention: the same function. The
training trajectory is untouched: gradients come from :func:`torch.autograd.grad` (``.grad`` and the
optimizer state are only read), and the Hessian batch from its own RNG stream.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from oasl.train.gns import estimate

_RNG_TAG_H = 0x6E6  # the Hessian batch's RNG stream, apart from the micro-batches' (gns._RNG_TAG)

Vec = Sequence[torch.Tensor]  # one tensor per trainable parameter


@dataclass
class CurvaturePoint:
    """One measurement: mean ``small_q = mean_j g_j^T Ĥ g_j`` and ``big_q = g_big^T Ĥ g_big`` at ``b_small``
    / ``b_big`` sequences, and the estimates ``ghg`` (G^T H G), ``s_h`` (tr(H Sigma), per sequence),
    ``b_noise`` (sequences; NaN when ghg <= 0). The ``_p`` fields are the same with Adam's preconditioner
    (NaN when the optimizer has no second moments)."""

    small_q: float
    big_q: float
    b_small: int
    b_big: int
    ghg: float
    s_h: float
    b_noise: float
    small_qp: float = math.nan
    big_qp: float = math.nan
    ghg_p: float = math.nan
    s_hp: float = math.nan
    b_noise_adam: float = math.nan

    def curve_fields(self) -> dict[str, float]:
        """The keys stored in a run's curve at an evaluation step (beside :meth:`NoisePoint.curve_fields`,
        whose ``gns_b_small``/``gns_b_big`` these share); the Adam keys only when measured."""
        out = {"gnsh_small_q": self.small_q, "gnsh_big_q": self.big_q, "b_noise": self.b_noise}
        if math.isfinite(self.small_qp):
            out.update(gnsp_small_q=self.small_qp, gnsp_big_q=self.big_qp, b_noise_adam=self.b_noise_adam)
        return out

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def hvp_on(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor], autocast=None) -> Callable:
    """A function ``v -> Ĥ v`` (lists of float32 tensors shaped like the trainable parameters) with Ĥ the
    Hessian of ``model``'s mean loss on ``batch``: one forward and gradient with the graph kept, then one
    double-backward pass per call."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    params = [p for p in model.parameters() if p.requires_grad]
    x, y = batch
    # the fused attention kernels have no double backward; the math kernel computes the same function
    with sdpa_kernel([SDPBackend.MATH]), autocast() if autocast is not None else contextlib.nullcontext():
        _, loss = model(x, y)
    grads = torch.autograd.grad(loss, params, create_graph=True)

    def hvp(v: Vec) -> list[torch.Tensor]:
        dot = sum((g.float() * u).sum() for g, u in zip(grads, v, strict=True))
        hv = torch.autograd.grad(dot, params, retain_graph=True, allow_unused=True, materialize_grads=True)
        return [h.float() for h in hv]

    return hvp


def quad_forms(vecs: Sequence[Vec], hvp: Callable[[Vec], list[torch.Tensor]]) -> tuple[float, float]:
    """``(mean_j v_j^T Ĥ v_j, vbar^T Ĥ vbar)`` for the ``k`` vectors ``vecs`` (vbar their mean), from k
    Hessian-vector products: the second is ``(1/k^2) sum_ij v_i^T Ĥ v_j``."""
    k = len(vecs)
    flat = torch.stack([torch.cat([t.reshape(-1) for t in v]) for v in vecs]).double()
    hflat = torch.stack([torch.cat([t.reshape(-1) for t in hvp(v)]) for v in vecs]).double()
    q = (flat @ hflat.T).cpu().numpy()  # q[i, j] = v_i^T Ĥ v_j
    return float(np.trace(q)) / k, float(q.sum()) / k**2


def measure(
    model: torch.nn.Module,
    grads: Sequence[Vec],
    b: int,
    hess_batch: tuple[torch.Tensor, torch.Tensor],
    autocast=None,
    precond: Vec | None = None,
) -> CurvaturePoint:
    """B_noise from the ``k`` micro-batch gradients ``grads`` of ``b`` sequences each (from
    :func:`oasl.train.gns.micro_grads`) and the Hessian of ``model``'s loss on ``hess_batch``, a batch
    drawn independently of them. ``precond`` (per-parameter tensors, e.g. :func:`adam_preconditioner`)
    adds the preconditioned variant. Returns a :class:`CurvaturePoint`."""
    if len(grads) < 2:
        raise ValueError("B_noise needs at least 2 micro-batch gradients")
    k = len(grads)
    hvp = hvp_on(model, hess_batch, autocast)
    small_q, big_q = quad_forms(grads, hvp)
    ghg, s_h, b_noise = estimate(small_q, big_q, b, k * b)
    point = CurvaturePoint(small_q, big_q, b, k * b, ghg, s_h, b_noise)
    if precond is not None:
        pg = [[p * g for p, g in zip(precond, gs, strict=True)] for gs in grads]
        point.small_qp, point.big_qp = quad_forms(pg, hvp)
        point.ghg_p, point.s_hp, point.b_noise_adam = estimate(point.small_qp, point.big_qp, b, k * b)
    return point


def adam_preconditioner(opt: torch.optim.Optimizer, params: Sequence[torch.Tensor]) -> list | None:
    """Adam's diagonal preconditioner ``lr_mult / (sqrt(v / (1 - beta2^t)) + eps)`` for each of ``params``
    from ``opt``'s state (read only), or None when some parameter has no second moment (SGD, Lion, Muon's
    matrices, or before the first step)."""
    group_of = {id(p): g for g in opt.param_groups for p in g["params"]}
    out = []
    for p in params:
        st, g = opt.state.get(p, {}), group_of.get(id(p))
        if g is None or "exp_avg_sq" not in st or "betas" not in g:
            return None
        t = float(st["step"])
        if t < 1:
            return None
        v_hat = st["exp_avg_sq"].float() / (1.0 - g["betas"][1] ** t)
        out.append(g.get("lr_mult", 1.0) / (v_hat.sqrt() + g["eps"]))
    return out


def hessian_batch(data, seed: int, step: int, b: int, seq_len: int, device):
    """The independent batch of ``b`` sequences the Hessian is taken on at evaluation ``step``, from an RNG
    of its own (seeded by the run's seed and the step): neither the training batches nor the noise
    measurement's micro-batches change."""
    rng = np.random.default_rng([seed, step, _RNG_TAG_H])
    x, y = data.batch(rng, b, seq_len)
    return x.to(device), y.to(device)


def record(stepper, data, spec, point: dict, step: int, grads: Sequence[Vec]) -> None:
    """Add the B_noise fields (:meth:`CurvaturePoint.curve_fields`) to the curve ``point`` of evaluation
    ``step``, from the micro-batch gradients ``grads`` B_simple was measured on (single-run path)."""
    b = int(point["gns_b_small"])
    batch = hessian_batch(data, spec.seed, step, b, spec.shape.seq_len, stepper.device)
    params = [p for p in stepper.model.parameters() if p.requires_grad]
    opt = getattr(stepper, "opt", None)
    precond = adam_preconditioner(opt, params) if opt is not None else None
    point.update(measure(stepper.model, grads, b, batch, stepper.autocast, precond).curve_fields())
