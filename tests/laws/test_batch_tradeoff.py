"""The empirical critical batch from the steps/tokens trade-off (McCandlish et al. 2018, Eq. 2.11)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from oasl.errors import FitError
from oasl.laws.batch_tradeoff import (
    b_simple_at_loss,
    critical_batch_by_loss,
    fit_tradeoff,
    reach_table,
    tokens_to_loss,
)


def loss_of_tokens(e):
    """A loss curve in tokens seen at the most data-efficient (smallest) batch: 2 + 40 / sqrt(E)."""
    return 2.0 + 40.0 / np.sqrt(e)


def test_tokens_to_loss_inverts_a_curve_and_ignores_a_noise_bump():
    e = np.linspace(1000, 64000, 64)
    loss = loss_of_tokens(e)
    targets = [2.5, 2.3, 2.2]
    truth = (40.0 / (np.array(targets) - 2.0)) ** 2
    assert tokens_to_loss(e, loss, targets) == pytest.approx(truth, rel=0.01)
    bumped = loss.copy()
    bumped[20:23] += 0.3  # a noisy evaluation after the curve already reached the target
    assert tokens_to_loss(e, bumped, [loss[19]])[0] == pytest.approx(e[19])
    out = tokens_to_loss(e, loss, [1.0, 10.0])
    assert np.isnan(out).all()  # never reached; already below at the first evaluation (crossing unknown)


def test_fit_recovers_e_min_s_min_and_b_crit():
    rng = np.random.default_rng(0)
    e_min, s_min = 20000.0, 40.0  # B_crit = 500 tokens
    b = np.array([128, 256, 512, 1024, 2048, 4096.0])
    e = (e_min + s_min * b) * np.exp(0.03 * rng.standard_normal(len(b)))
    t = fit_tradeoff(b, e)
    assert t.b_crit == pytest.approx(500, rel=0.2)
    assert t.b_crit_low <= 500 <= t.b_crit_high
    assert t.e_min == pytest.approx(e_min, rel=0.1) and t.rms_rel < 0.05
    assert t.n_batches == 6 and t.batch_range == (128, 4096)
    # tokens flat in the batch: every batch is below critical (B_crit infinite)
    assert fit_tradeoff(b, np.full(len(b), 1e4)).b_crit == math.inf
    # tokens in proportion to the batch: a fixed number of steps, B_crit 0
    assert fit_tradeoff(b, 30 * b).b_crit == pytest.approx(0, abs=1e-6)
    with pytest.raises(FitError, match="3"):
        fit_tradeoff(b[:2], e[:2])


def test_critical_batch_is_read_off_curves_simulated_from_the_model():
    """Runs at each batch whose loss follows the smallest-batch curve in E_min = E / (1 + B / B_crit)
    (McCandlish et al. 2018, Eq. 2.11), a worse lr at each batch as a distractor: B_crit comes back."""
    b_crit = 1000.0
    runs, curves = [], {}
    for bt in (256, 512, 1024, 2048, 4096):
        e = np.arange(1, 33) * 4096.0
        for lr_penalty in (0.0, 0.2):
            key = f"{bt}-{lr_penalty}"
            runs.append({"key": key, "batch_tokens": bt})
            curves[key] = pd.DataFrame(
                {"tokens": e, "val_loss": loss_of_tokens(e / (1 + bt / b_crit)) + lr_penalty}
            )
    reach = reach_table(pd.DataFrame(runs), curves, [3.2, 2.7, 2.4, 2.22])
    assert reach.loc[2.22].notna().sum() < 5  # the largest batches never get there
    fits = critical_batch_by_loss(reach)
    # 3.2: most batches are below it at their first evaluation (crossing unknown): too few to fit
    assert reach.loc[3.2].notna().sum() < 3
    assert list(fits["loss"]) == [2.7, 2.4, 2.22]
    assert fits["b_crit"].to_numpy() == pytest.approx(b_crit, rel=0.05)
    # crossings within the first two evaluations dropped: at 2.7 only the two largest batches remain
    assert list(critical_batch_by_loss(reach, min_tokens=2 * 4096)["loss"]) == [2.4, 2.22]


def test_b_simple_at_loss_averages_numerator_and_denominator_separately():
    """Noisy unbiased |G|^2 and tr(Sigma) estimates (some |G|^2 estimates negative): the ratio of their
    means comes back close to the truth (McCandlish et al. 2018, App. A.1)."""
    rng = np.random.default_rng(1)
    n = 4000
    g2 = 1.0 + 0.5 * rng.standard_normal(n)  # |G|^2 = 1, noisy
    s = 10.0 + 2.0 * rng.standard_normal(n)  # tr(Sigma) = 10 per sequence
    pts = pd.DataFrame({"loss": 3.0 + 0.01 * rng.standard_normal(n), "g2": g2, "s": s, "seq_len": 64})
    far = pd.DataFrame({"loss": 4.0, "g2": 1e-3, "s": 1e3, "seq_len": 64}, index=range(100))
    b, used = b_simple_at_loss(pd.concat([pts, far]), 3.0, rel_window=0.02)
    assert used == n and b == pytest.approx(640, rel=0.03)  # the points at loss 4 are outside the window
    assert math.isnan(b_simple_at_loss(pts, 5.0)[0])  # nothing near that loss


def test_reach_table_averages_seed_replicates_before_choosing_the_lr():
    """Two seeds of the same (batch, lr): the batch's tokens come from their mean curve, not from the
    luckier seed; a second lr that is better only on one lucky seed does not win."""
    e = np.arange(1, 33) * 1024.0
    base = loss_of_tokens(e)
    runs, curves = [], {}

    def add(key, lr, seed, loss):
        runs.append({"key": key, "batch_tokens": 1024, "lr": lr, "seed": seed})
        curves[key] = pd.DataFrame({"step": np.arange(1, 33), "tokens": e, "val_loss": loss})

    add("a0", 1e-3, 0, base - 0.05)  # lr 1e-3: seeds straddle the base curve, mean = base
    add("a1", 1e-3, 1, base + 0.05)
    add("b0", 2e-3, 0, base - 0.08)  # lr 2e-3: one lucky seed, one bad one, mean = base + 0.1
    add("b1", 2e-3, 1, base + 0.28)
    target = float(base[15])
    reach = reach_table(pd.DataFrame(runs), curves, [target])
    assert reach.loc[target, 1024.0] == pytest.approx(e[15], rel=1e-6)  # lr 1e-3's seed mean
    # without the seed column every run stands alone: the luckiest seed (b0) sets the figure, earlier
    alone = reach_table(pd.DataFrame(runs).drop(columns="seed"), curves, [target])
    assert alone.loc[target, 1024.0] < e[15]
