"""The empirical critical batch size, read off the steps/tokens trade-off of training curves.

Source: McCandlish et al. 2018, "An Empirical Model of Large-Batch Training" (arXiv 1812.06162), Sec. 2.3,
Eq. 2.11: to reach a given loss, training at batch size B takes S steps and E = B S examples with
``(S / S_min - 1) (E / E_min - 1) = 1``, and the critical batch is ``B_crit = E_min / S_min``; Kaplan et
al. 2020 (arXiv 2001.08361), Sec. 5.1 (Eq. 5.4), fit it the same way on LMs, per target loss, and relate
it to the noise scale: B_crit(L) ~ B_noise(L). The relation is equivalent to ``E(B) = E_min + S_min B``
(and ``S(B) = S_min + E_min / B``): the tokens needed to reach a loss grow linearly with the batch, with
intercept E_min and slope S_min. So per target loss this module

- reads, from each run's validation-loss curve, the tokens at which it first reaches the loss
  (:func:`tokens_to_loss`); the paper tunes the lr per batch size, so per batch the best lr's run counts,
  with replicate seeds of one lr averaged first (:func:`reach_table`);
- fits E(B) = E_min + S_min B by non-negative least squares in relative error (:func:`fit_tradeoff`),
  with a bootstrap over the batch sizes for the interval;
- pools the gradient-noise measurements near that loss into B_simple(L), averaging |G|^2 and tr(Sigma)
  separately before the ratio (McCandlish et al. 2018, App. A.1) (:func:`b_simple_at_loss`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from oasl.errors import FitError


def tokens_to_loss(tokens: Sequence[float], loss: Sequence[float], targets: Sequence[float]) -> np.ndarray:
    """Tokens at which a loss curve (``loss`` at ``tokens``, evaluations in training order) first reaches
    each of ``targets`` (nats/token). The curve's running minimum is used (an evaluation's noise must not
    undo a loss already reached) and the crossing is interpolated linearly in tokens between evaluations.
    Returns one value per target: NaN when the curve never reaches it, and NaN when it is already below
    the target at its first evaluation (the crossing happened earlier, at an unknown point)."""
    t, y = np.asarray(tokens, float), np.asarray(loss, float)
    ok = np.isfinite(t) & np.isfinite(y)
    t, y = t[ok], np.minimum.accumulate(y[ok]) if ok.any() else y[ok]
    out = np.full(len(targets), math.nan)
    for j, target in enumerate(targets):
        hit = np.flatnonzero(y <= target)
        if not len(hit):
            continue
        i = hit[0]
        if i == 0:
            continue
        frac = (y[i - 1] - target) / (y[i - 1] - y[i])
        out[j] = t[i - 1] + frac * (t[i] - t[i - 1])
    return out


@dataclass
class Tradeoff:
    """E(B) = E_min + S_min B fitted at one loss: ``e_min`` (tokens), ``s_min`` (steps), ``b_crit`` =
    e_min / s_min (tokens; inf when the tokens do not grow with the batch, 0 when they grow in proportion),
    its bootstrap interval ``b_crit_low``/``b_crit_high``, ``n_batches`` fitted, ``batch_range`` (the
    smallest and largest batch, tokens) and ``rms_rel`` (root-mean-square relative residual of E)."""

    e_min: float
    s_min: float
    b_crit: float
    b_crit_low: float
    b_crit_high: float
    n_batches: int
    batch_range: tuple[float, float]
    rms_rel: float

    def to_dict(self) -> dict:
        return asdict(self)


def nnls_tradeoff(b: np.ndarray, e: np.ndarray) -> tuple[float, float]:
    """(E_min, S_min) of E(B) = E_min + S_min B fitted to ``e`` at ``b`` (any consistent units), both >= 0."""
    # minimise sum ((E_i - e_min - s_min B_i) / E_i)^2 with e_min, s_min >= 0: relative errors, because
    # the tokens to reach a loss span an order of magnitude across batch sizes
    coef, _ = nnls(np.column_stack([1.0 / e, b / e]), np.ones(len(e)))
    return float(coef[0]), float(coef[1])


def _ratio(e_min: float, s_min: float) -> float:
    return e_min / s_min if s_min > 0 else math.inf


def fit_tradeoff(
    batch_tokens: Sequence[float],
    tokens: Sequence[float],
    n_boot: int = 200,
    level: float = 0.9,
    seed: int = 0,
) -> Tradeoff:
    """Fit E(B) = E_min + S_min B (McCandlish et al. 2018, Eq. 2.11) to the tokens ``tokens`` needed to reach
    one loss at batch sizes ``batch_tokens`` (one value per batch size, the best lr's). The interval on
    B_crit is a percentile bootstrap over the batch sizes (resamples with fewer than 2 distinct batches
    are skipped). FitError with fewer than 3 finite points."""
    b, e = np.asarray(batch_tokens, float), np.asarray(tokens, float)
    ok = np.isfinite(b) & np.isfinite(e) & (b > 0) & (e > 0)
    b, e = b[ok], e[ok]
    if len(b) < 3 or len(np.unique(b)) < 3:
        raise FitError(
            f"{len(np.unique(b))} batch size(s) reach this loss: the steps/tokens trade-off needs 3 "
            "(choose a higher target loss or train the large batches longer)"
        )
    e_min, s_min = nnls_tradeoff(b, e)
    pred = e_min + s_min * b
    rms = float(np.sqrt(np.mean((e / pred - 1.0) ** 2))) if np.all(pred > 0) else math.inf
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(b), len(b))
        if len(np.unique(b[idx])) < 2:
            continue
        boot.append(_ratio(*nnls_tradeoff(b[idx], e[idx])))
    q = ((1 - level) / 2, 1 - (1 - level) / 2)
    # no interpolation between order statistics: a resample with flat tokens gives B_crit = inf
    lo, hi = (
        (float(v) for v in np.quantile(boot, q, method="inverted_cdf"))
        if len(boot) >= 10
        else (math.nan,) * 2
    )
    return Tradeoff(e_min, s_min, _ratio(e_min, s_min), lo, hi, len(b), (float(b.min()), float(b.max())), rms)


def seed_mean_curve(curves: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The mean validation loss of replicate runs (the same run trained on several seeds), step by step over
    the evaluation steps they share: columns step, tokens, val_loss. One curve comes back as it is (its
    evaluations with a loss)."""
    cs = [c.dropna(subset=["val_loss"]) for c in curves]
    if len(cs) == 1:
        return cs[0]
    cs = [c.drop_duplicates("step").set_index("step") for c in cs]
    steps = sorted(set.intersection(*(set(c.index) for c in cs)))
    loss = np.mean([c.loc[steps, "val_loss"].to_numpy(float) for c in cs], axis=0)
    return pd.DataFrame(
        {"step": steps, "tokens": cs[0].loc[steps, "tokens"].to_numpy(float), "val_loss": loss}
    )


def reach_table(
    runs: pd.DataFrame, curves: dict[str, pd.DataFrame], targets: Sequence[float]
) -> pd.DataFrame:
    """Tokens to reach each target loss, per batch size, taking the best lr at each batch.

    ``runs``: one row per run with columns key and batch_tokens, and lr where the batch has several;
    ``curves``: key -> its curve (columns step, tokens, val_loss). Runs that differ only in their seed
    (same batch and lr; a ``seed`` column marks them) are replicates: their curves are averaged step by step
    (:func:`seed_mean_curve`) before the tokens are read, so the best lr is chosen on the seed mean and the
    luckiest seed does not set the batch's figure. Returns a DataFrame indexed by target loss, one column
    per batch size (tokens), NaN where no lr of that batch reached the loss."""
    cols = {}
    # each lr's replicates as one mean curve; without lr and seed columns every run stands alone
    by = "lr" if {"lr", "seed"} <= set(runs.columns) else "key"
    for bt, grp in runs.groupby("batch_tokens"):
        reach = []
        for _, rep in grp.groupby(by, dropna=False):
            c = seed_mean_curve([curves[k] for k in rep["key"]])
            reach.append(tokens_to_loss(c["tokens"], c["val_loss"], targets))
        with np.errstate(all="ignore"):
            cols[float(bt)] = np.fmin.reduce(np.array(reach), axis=0)
    return pd.DataFrame(cols, index=pd.Index(np.asarray(targets, float), name="loss"))


def critical_batch_by_loss(
    reach: pd.DataFrame, min_batches: int = 3, min_tokens: float = 0.0, **kw
) -> pd.DataFrame:
    """:func:`fit_tradeoff` at every target loss of ``reach`` (from :func:`reach_table`) that at least
    ``min_batches`` batch sizes reached after ``min_tokens`` tokens (earlier crossings are dropped: with
    evaluations every D/k tokens, a crossing within the first evaluations is poorly resolved). Returns one
    row per fitted loss: loss, e_min, s_min, b_crit, b_crit_low, b_crit_high, n_batches, batch_min,
    batch_max, rms_rel."""
    rows = []
    for loss, r in reach.iterrows():
        r = r[r >= min_tokens].dropna()
        if len(r) < max(3, min_batches):
            continue
        t = fit_tradeoff(r.index.to_numpy(float), r.to_numpy(float), **kw)
        d = t.to_dict()
        lo, hi = d.pop("batch_range")
        rows.append({"loss": float(loss), **d, "batch_min": lo, "batch_max": hi})
    return pd.DataFrame(rows)


def b_simple_at_loss(
    points: pd.DataFrame, loss: float, rel_window: float = 0.02, g2: str = "g2", s: str = "s"
) -> tuple[float, int]:
    """B_simple (tokens) at ``loss`` from the raw noise measurements of ``points`` (columns loss, g2, s
    per sequence, seq_len) whose loss lies within ``rel_window`` (relative) of it: tr(Sigma) and |G|^2
    are averaged separately over them before the ratio (McCandlish et al. 2018, App. A.1; a mean of
    per-measurement ratios is biased by the noise in |G|^2). Returns (B_simple in tokens, number of
    measurements pooled); NaN when none lies in the window or the pooled |G|^2 is not positive. With
    ``g2="g2_h", s="s_h"`` (G^T H G and tr(H Sigma) of :func:`oasl.laws.critical_batch.noise_points`) it
    pools B_noise the same way (``g2_p``/``s_p``: Adam's preconditioned B_noise)."""
    if g2 not in points.columns:
        return math.nan, 0
    near = points[np.abs(points["loss"] / loss - 1.0) <= rel_window]
    near = near[np.isfinite(near[g2]) & np.isfinite(near[s])]
    if near.empty:
        return math.nan, 0
    seq = near["seq_len"].to_numpy(float)
    g2, s = float(near[g2].mean()), float((near[s] * seq).mean())
    return (s / g2 if g2 > 0 else math.nan), len(near)
