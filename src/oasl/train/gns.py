"""The gradient noise scale B_simple, measured from gradient norms at two batch sizes.

Source: McCandlish et al. 2018, "An Empirical Model of Large-Batch Training" (arXiv 1812.06162). The
noise scale ``B_simple = tr(Sigma) / |G|^2`` (Sigma the per-example gradient covariance, G the true
gradient) approximates the critical batch size B_crit (their Sec. 2.2, 3). Their Appendix A.1 gives the
unbiased estimators from the squared norms of gradients averaged over ``B_small`` and ``B_big`` examples,
``E|G_B|^2 = |G|^2 + tr(Sigma) / B``::

    |G|^2  ~  (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small)
    S      ~  (|G_small|^2 - |G_big|^2) / (1 / B_small - 1 / B_big)

and recommends averaging S and |G|^2 separately over many measurements before taking their ratio
(the ratio of two noisy unbiased estimates is biased): :func:`smoothed_b_simple`.

Here ``k`` micro-batches of ``b`` sequences each give ``|G_small|^2`` (the mean of their squared norms,
B_small = b) and ``|G_big|^2`` (the squared norm of their mean, B_big = k b), as in the paper's
data-parallel recipe. An "example" is one sequence (its tokens are correlated, so counting tokens would
overstate the independent samples); multiply by ``seq_len`` for tokens. The gradients are taken with
:func:`torch.autograd.grad`, so ``.grad`` and the optimizer state are untouched, and the batches come
from their own RNG: measuring does not change the training trajectory.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

GNS_MICRO = 8  # micro-batches per measurement (B_big = GNS_MICRO x B_small)
_RNG_TAG = 0x6E5  # separates the measurement's RNG stream from the training batches'


@dataclass
class NoisePoint:
    """One measurement: squared gradient norms at ``b_small``/``b_big`` sequences and the estimates.

    ``g2``: unbiased |G|^2; ``s``: unbiased tr(Sigma) (per sequence); ``b_simple``: s / g2 in
    sequences (NaN when g2 <= 0: the true gradient is lost in the noise at this batch size)."""

    small_sq: float
    big_sq: float
    b_small: int
    b_big: int
    g2: float
    s: float
    b_simple: float

    def curve_fields(self) -> dict[str, float]:
        """The keys stored in a run's curve at an evaluation step."""
        return {
            "gns_small_sq": self.small_sq,
            "gns_big_sq": self.big_sq,
            "gns_b_small": float(self.b_small),
            "gns_b_big": float(self.b_big),
            "b_simple": self.b_simple,
        }

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def estimate(small_sq: float, big_sq: float, b_small: float, b_big: float) -> tuple[float, float, float]:
    """(|G|^2, tr(Sigma), B_simple) from mean squared norms at two batch sizes (McCandlish et al. 2018,
    App. A.1). B_simple is NaN when the |G|^2 estimate is not positive."""
    if not b_big > b_small > 0:
        raise ValueError(f"need b_big > b_small > 0, got {b_small} and {b_big}")
    g2 = (b_big * big_sq - b_small * small_sq) / (b_big - b_small)
    s = (small_sq - big_sq) / (1.0 / b_small - 1.0 / b_big)
    return g2, s, s / g2 if g2 > 0 else math.nan


def iter_grads(
    model: torch.nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]], autocast=None
) -> Iterator[list[torch.Tensor]]:
    """The float32 gradients of the trainable parameters of ``model`` (called as ``model(x, y) -> (_, mean
    loss)``) on each of ``batches`` (``k >= 2`` micro-batches of one size), one list per micro-batch,
    computed as the iterator is consumed (so a streaming consumer holds one at a time) and taken with
    :func:`torch.autograd.grad` so ``.grad`` is untouched."""
    if len(batches) < 2:
        raise ValueError("the noise scale needs at least 2 micro-batches")
    sizes = {int(x.shape[0]) for x, _ in batches}
    if len(sizes) != 1:
        raise ValueError(f"micro-batches must have one size, got {sorted(sizes)}")
    params = [p for p in model.parameters() if p.requires_grad]

    def gen():
        for x, y in batches:
            with autocast() if autocast is not None else contextlib.nullcontext():
                _, loss = model(x, y)
            yield [g.float() for g in torch.autograd.grad(loss, params)]

    return gen()


def micro_grads(model, batches, autocast=None) -> list[list[torch.Tensor]]:
    """:func:`iter_grads` kept in memory (k gradient copies), for measurements that reuse them
    (:mod:`oasl.train.gns_hessian`)."""
    return list(iter_grads(model, batches, autocast))


def from_grads(grads: Iterable[Sequence[torch.Tensor]], b: int) -> NoisePoint:
    """The :class:`NoisePoint` of ``k`` micro-batch gradients of ``b`` sequences each (a list from
    :func:`micro_grads`, or :func:`iter_grads` consumed one at a time)."""
    total: list[torch.Tensor] | None = None
    small, k = 0.0, 0
    for gs in grads:
        total = [torch.zeros_like(g) for g in gs] if total is None else total
        small += sum(float(g.pow(2).sum()) for g in gs)
        for t, g in zip(total, gs, strict=True):
            t.add_(g)
        k += 1
    if total is None or k < 2:
        raise ValueError("the noise scale needs at least 2 micro-batches")
    small_sq = small / k
    big_sq = sum(float(t.pow(2).sum()) for t in total) / k**2
    g2, s, b_simple = estimate(small_sq, big_sq, b, k * b)
    return NoisePoint(small_sq, big_sq, b, k * b, g2, s, b_simple)


def measure(
    model: torch.nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]], autocast=None
) -> NoisePoint:
    """Measure the noise scale of ``model`` (called as ``model(x, y) -> (_, mean loss)``) on ``batches``:
    ``k >= 2`` micro-batches of equal size ``b`` sequences (already on the model's device). Gradients of
    the trainable parameters are taken without touching ``.grad``, one at a time. Returns a
    :class:`NoisePoint`."""
    return from_grads(iter_grads(model, batches, autocast), int(batches[0][0].shape[0]))


def measurement_batches(
    data, seed: int, step: int, batch_seqs: int, seq_len: int, device, k: int = GNS_MICRO
):
    """``k`` training-distribution micro-batches of ``max(1, batch_seqs // 2)`` sequences drawn from an RNG
    of their own (seeded by the run's seed and the step), so the training batches are not disturbed."""
    rng = np.random.default_rng([seed, step, _RNG_TAG])
    b = max(1, batch_seqs // 2)
    out = []
    for _ in range(k):
        x, y = data.batch(rng, b, seq_len)
        out.append((x.to(device), y.to(device)))
    return out


def smoothed_b_simple(g2: Sequence[float], s: Sequence[float], decay: float = 0.5) -> np.ndarray:
    """B_simple from exponential moving averages of |G|^2 and tr(Sigma) taken separately, then divided
    (McCandlish et al. 2018, App. A.1); ``decay`` is the weight kept per measurement. Non-finite inputs
    are skipped. Returns one value per measurement (NaN while the averaged |G|^2 is not positive)."""
    if not 0 <= decay < 1:
        raise ValueError(f"decay must be in [0, 1), got {decay}")
    out = np.full(len(g2), math.nan)
    mg = ms = w = 0.0
    for i, (a, c) in enumerate(zip(g2, s, strict=True)):
        if math.isfinite(a) and math.isfinite(c):
            mg, ms, w = decay * mg + a, decay * ms + c, decay * w + 1.0
        if w > 0 and mg > 0:
            out[i] = ms / mg
    return out


def curve_noise(
    curve, small: str = "gns_small_sq", big: str = "gns_big_sq"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(|G|^2, tr(Sigma), val_loss) at the measured points of a run's curve (a DataFrame or list of dicts
    with the keys of :meth:`NoisePoint.curve_fields`); empty arrays when the run was not measured. With
    ``small="gnsh_small_q", big="gnsh_big_q"`` (or ``gnsp_...``) it reads the Hessian-weighted forms of
    :mod:`oasl.train.gns_hessian` instead: (G^T H G, tr(H Sigma), val_loss)."""
    import pandas as pd

    df = curve if isinstance(curve, pd.DataFrame) else pd.DataFrame(list(curve))
    need = (small, big, "gns_b_small", "gns_b_big")
    if not set(need) <= set(df.columns):
        return np.zeros(0), np.zeros(0), np.zeros(0)
    df = df.dropna(subset=list(need))
    g2, s = [], []
    for a_small, a_big, b_small, b_big in zip(*(df[c] for c in need), strict=True):
        a, c, _ = estimate(a_small, a_big, b_small, b_big)
        g2.append(a)
        s.append(c)
    loss = df["val_loss"].to_numpy(float) if "val_loss" in df.columns else np.full(len(df), math.nan)
    return np.array(g2), np.array(s), loss
