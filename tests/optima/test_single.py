"""The optimum of one HP per group: recovery, calibration, flags, notes and input errors."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oasl.errors import FitError
from oasl.optima import locate_one, locate_optima
from oasl.optima.single import auto_window


def bowl(h0, hs, noise, rng, curvature=0.05, floor=3.0, seeds=1):
    """Runs of loss = floor + curvature (log h - log h0)^2 + noise, ``seeds`` per h."""
    rows = []
    for s in range(seeds):
        for h in hs:
            loss = floor + curvature * (math.log(h) - math.log(h0)) ** 2 + rng.normal(0, noise)
            rows.append({"lr": h, "final_val_loss": loss, "seed": s, "optimizer": "adamw"})
    return pd.DataFrame(rows)


LRS = np.geomspace(1e-4, 1e-1, 11)  # factor 2 steps


def test_recovers_known_minimum_of_noisy_bowl():
    rng = np.random.default_rng(0)
    h0 = 2.2e-3  # between grid points
    o = locate_optima(bowl(h0, LRS, 0.005, rng), over="lr", group_by=["optimizer"]).iloc[0]
    assert o["refined"] and o["at_edge"] == "" and not o["too_few"]
    assert o["ci_low"] <= h0 <= o["ci_high"]
    assert abs(math.log(o["opt"] / h0)) < 0.15
    assert o["loss_at_opt"] == pytest.approx(3.0, abs=0.01)
    assert o["n_points"] == len(LRS) and o["n_diverged"] == 0


@pytest.mark.parametrize("seeds", [1, 3])
def test_ci_is_roughly_calibrated_over_20_draws(seeds):
    rng = np.random.default_rng(1)
    covered, widths = 0, []
    for trial in range(20):
        h0 = float(np.exp(rng.uniform(np.log(1e-3), np.log(1e-2))))
        o = locate_one(
            LRS[np.repeat(np.arange(len(LRS)), seeds)],
            bowl(h0, LRS, 0.01, rng, seeds=seeds)["final_val_loss"].to_numpy().reshape(seeds, -1).T.ravel(),
            n_boot=150,
            seed=trial,
        )
        covered += o.ci_low <= h0 <= o.ci_high
        widths.append(math.log(o.ci_high / o.ci_low))
    assert covered >= 14  # a 90% interval covers most of 20 draws
    assert covered < 20 or np.median(widths) < 0.6  # and not by being uninformative (grid step: 0.69)
    assert np.median(widths) < 1.0


def test_refined_beats_grid_argmin_on_coarse_grid():
    rng = np.random.default_rng(2)
    coarse = np.geomspace(1e-4, 1e-1, 7)  # ~3.2x steps
    err_grid, err_opt = [], []
    for _ in range(10):
        h0 = float(np.exp(rng.uniform(np.log(5e-4), np.log(2e-2))))
        o = locate_one(coarse, bowl(h0, coarse, 0.002, rng)["final_val_loss"].to_numpy(), n_boot=0)
        err_grid.append(abs(math.log(o.grid_argmin / h0)))
        err_opt.append(abs(math.log(o.opt / h0)))
    assert np.mean(err_opt) < 0.5 * np.mean(err_grid)


@pytest.mark.parametrize(
    "h0, edge, words",
    [
        (1.0, "high", ("upper edge", "extend lr above 0.01")),
        (1e-6, "low", ("lower edge", "extend lr below 0.0001")),
    ],
)
def test_edge_of_grid_is_a_bound_with_the_direction_to_extend(h0, edge, words):
    lrs = np.geomspace(1e-4, 1e-2, 5)
    o = locate_one(lrs, bowl(h0, lrs, 0.0, np.random.default_rng(0))["final_val_loss"].to_numpy(), n_boot=50)
    assert o.at_edge == edge
    assert all(w in o.note for w in words), o.note
    # the open side of the interval is unknown, the other side is a bound
    assert math.isnan(o.ci_high if edge == "high" else o.ci_low)
    assert math.isfinite(o.ci_low if edge == "high" else o.ci_high)


def test_diverged_runs_above_make_a_stability_edge_not_a_grid_edge():
    lrs = np.array([1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2])
    o = locate_one(lrs, np.array([3.2, 3.0, 2.95, 2.93, np.nan, np.nan]), n_boot=20)
    assert o.diverged_near and o.n_diverged == 2 and o.n_points == 4
    assert o.at_edge == ""  # extending the grid above would only add diverged runs
    assert "diverged" in o.note and "stability edge" in o.note
    # a `diverged` flag with a finite loss counts the same
    o2 = locate_one(lrs, np.array([3.2, 3.0, 2.95, 2.93, 2.9, 5.0]), diverged=[0, 0, 0, 0, 1, 1], n_boot=20)
    assert o2.n_diverged == 2 and o2.grid_argmin == o.grid_argmin


def test_too_few_points_and_all_diverged_groups_are_rows_not_errors():
    o = locate_one(np.array([1e-3, 2e-3]), np.array([3.0, 2.9]))
    assert o.too_few and "fewer than 3" in o.note and o.opt == 2e-3 and math.isnan(o.ci_low)
    df = pd.DataFrame(
        {
            "lr": [1e-3, 2e-3, 4e-3] * 2,
            "final_val_loss": [3.1, 3.0, 3.2, np.nan, np.inf, np.nan],
            "n_params": [1] * 3 + [2] * 3,
        }
    )
    out = locate_optima(df, group_by=["n_params"], n_boot=20)
    assert list(out["too_few"]) == [False, True]
    bad = out.iloc[1]
    assert math.isnan(bad["opt"]) and bad["n_diverged"] == 3 and "no finite run" in bad["note"]


def test_seeds_are_all_used_and_resampled_within_each_h():
    rng = np.random.default_rng(3)
    df = bowl(3e-3, LRS, 0.01, rng, seeds=4)
    o = locate_optima(df, group_by=["optimizer"], n_boot=100).iloc[0]
    assert o["n_points"] == 4 * len(LRS) and o["n_fit"] == 4 * 3  # factor-2 grid: 3 points fitted
    one = locate_optima(df[df["seed"] == 0], group_by=["optimizer"], n_boot=100).iloc[0]
    # four seeds shrink the interval
    assert math.log(o["ci_high"] / o["ci_low"]) < math.log(one["ci_high"] / one["ci_low"])
    assert abs(math.log(o["opt"] / 3e-3)) < 0.2


def test_several_groups_status_and_diverged_columns():
    rng = np.random.default_rng(4)
    a = bowl(1e-3, LRS, 0.003, rng).assign(n_params=1e5, diverged=False, status="done")
    b = bowl(8e-3, LRS, 0.003, rng).assign(n_params=1e6, diverged=False, status="done")
    b.loc[b["lr"] > 5e-2, ["diverged", "status"]] = [True, "diverged"]
    pruned = a.iloc[:2].assign(final_val_loss=2.0, status="stopped")  # partial budget: must be ignored
    out = locate_optima(pd.concat([a, b, pruned]), over="lr", group_by=["n_params"], n_boot=50)
    assert list(out["n_params"]) == [1e5, 1e6]
    assert abs(math.log(out["opt"].iloc[0] / 1e-3)) < 0.2 and abs(math.log(out["opt"].iloc[1] / 8e-3)) < 0.2
    assert out["n_diverged"].tolist() == [0, 2] and out["n_points"].tolist() == [len(LRS), len(LRS) - 2]


def test_runs_pruned_above_the_best_mean_it_is_not_at_the_grid_edge():
    lrs = np.geomspace(1e-4, 1.6e-3, 5)
    df = pd.DataFrame(
        {"lr": lrs, "final_val_loss": 3 + 0.05 * np.log(lrs / 3e-3) ** 2, "status": "done", "g": 0}
    )
    alone = locate_optima(df, group_by=["g"], n_boot=0).iloc[0]
    assert alone["at_edge"] == "high" and "extend lr above 0.0016" in alone["note"]
    # the sweep stopped two higher-lr runs early because they were losing: evidence, not a gap
    stopped = pd.DataFrame(
        {"lr": [3.2e-3, 6.4e-3], "final_val_loss": [3.5, 3.9], "status": "stopped", "g": 0}
    )
    both = locate_optima(pd.concat([df, stopped]), group_by=["g"], n_boot=0).iloc[0]
    assert both["at_edge"] == "" and both["n_points"] == 5 and both["best_loss"] == alone["best_loss"]
    only = locate_optima(stopped.assign(g=1), group_by=["g"], n_boot=0).iloc[0]
    assert only["too_few"] and "stopped early" in only["note"]


def test_nearly_equal_values_are_one_grid_point():
    # Step Law writes the same lr as 3.45e-4 and 3.453e-4 in different runs
    lrs = np.array([1.725e-4, 3.45e-4, 3.453e-4, 6.9e-4, 6.905e-4, 1.38e-3])
    loss = np.array([3.10, 3.02, 3.04, 3.00, 3.02, 3.08])
    o = locate_one(lrs, loss, n_boot=0)
    # 4 grid points, factor 2 apart: window of 1 either side of 6.9e-4 holds 2 + 2 + 1 runs
    assert o.grid_argmin == 6.9e-4 and o.best_loss == pytest.approx(3.01) and o.n_fit == 5
    assert o.fit_low == pytest.approx(math.sqrt(3.45e-4 * 3.453e-4)) and o.fit_high == pytest.approx(1.38e-3)
    raw = locate_one(lrs, loss, n_boot=0, grid_tol=0.0)  # without snapping: 6 "grid points"
    assert raw.best_loss == 3.00 and raw.n_fit != 5


def test_band_observed_and_fitted():
    hs = np.geomspace(1e-3, 1.6e-2, 5)
    loss = 3.0 + 0.05 * np.log(hs / 4e-3) ** 2
    o = locate_one(hs, loss, eps=0.0025, n_boot=0)
    # observed band: grid values within 0.25% of the best (3.0 at 4e-3; neighbours at +0.024 = 0.8%)
    assert o.band_low == pytest.approx(4e-3) and o.band_high == pytest.approx(4e-3)
    # fitted band: |log h - log h0| <= sqrt(eps * 3 / 0.05)
    half = math.sqrt(0.0025 * 3.0 / 0.05)
    assert o.band_low_fit == pytest.approx(4e-3 * math.exp(-half), rel=1e-6)
    assert o.band_high_fit == pytest.approx(4e-3 * math.exp(half), rel=1e-6)
    wide = locate_one(hs, loss, eps=0.01, n_boot=0)
    assert wide.band_low < o.band_low and wide.band_high > o.band_high


def test_non_convex_fit_falls_back_to_grid_argmin_and_says_so():
    hs = np.geomspace(1e-3, 6.4e-2, 7)
    loss = np.array([3.3, 2.905, 2.95, 2.90, 2.95, 2.905, 3.3])  # flat, noisy bottom: concave over 5 points
    o = locate_one(hs, loss, window=2, n_boot=0)
    assert not o.refined and o.opt == o.grid_argmin == hs[3] and o.curvature < 0
    assert "not convex" in o.note and "grid argmin is used" in o.note


def test_auto_window_spans_a_factor_two():
    assert auto_window(np.log(np.geomspace(1e-4, 1e-2, 7))) == 1  # factor 2.15
    assert auto_window(np.log(1e-4 * np.sqrt(2) ** np.arange(12))) == 2
    assert auto_window(np.log(np.geomspace(1e-4, 1, 5))) == 1  # factor 10


def test_input_errors_name_the_problem():
    df = bowl(1e-3, LRS, 0.0, np.random.default_rng(0))
    with pytest.raises(FitError, match="no column 'batch_size'"):
        locate_optima(df, over="batch_size", group_by=["optimizer"])
    with pytest.raises(FitError, match="no column 'n_params'"):
        locate_optima(df)  # default group_by names n_params and tokens
    with pytest.raises(FitError, match="empty"):
        locate_optima(df.iloc[:0], group_by=["optimizer"])
    with pytest.raises(FitError, match="positive"):
        locate_optima(df.assign(lr=-df["lr"]), group_by=["optimizer"])
    with pytest.raises(FitError, match="level"):
        locate_optima(df, group_by=["optimizer"], level=90)
    with pytest.raises(FitError, match="window"):
        locate_one(LRS, np.ones(len(LRS)), window=0)


@settings(max_examples=25, deadline=None)
@given(v=st.floats(0.5, 8.5), a=st.floats(0.01, 1.0), c=st.floats(1.0, 5.0))
def test_noise_free_parabola_vertex_is_exact(v, a, c):
    x = np.arange(10.0)  # log2 grid
    hs = 2.0**x * 1e-5
    loss = c + a * (x - v) ** 2
    o = locate_one(hs, loss, n_boot=0)
    assert o.refined
    assert math.log2(o.opt / 1e-5) == pytest.approx(v, abs=1e-6)
    assert o.loss_at_opt == pytest.approx(c, rel=1e-9)
