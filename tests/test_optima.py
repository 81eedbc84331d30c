import math

import numpy as np
import pandas as pd
import pytest

from oasl.errors import FitError
from oasl.optima import fit_surface, locate_joint_optima, locate_one, locate_optima
from oasl.testing import shared_data


def bowl(h0, lrs, noise, rng, curvature=0.05, floor=3.0, seeds=1):
    rows = []
    for s in range(seeds):
        for lr in lrs:
            loss = floor + curvature * (math.log(lr) - math.log(h0)) ** 2 + rng.normal(0, noise)
            rows.append({"lr": lr, "final_val_loss": loss, "seed": s})
    return pd.DataFrame(rows)


def test_quadratic_optimum_recovers_known_minimum_within_ci():
    rng = np.random.default_rng(0)
    lrs = np.geomspace(1e-4, 1e-1, 10)
    covered = 0
    for trial in range(20):
        h0 = float(np.exp(rng.uniform(np.log(5e-4), np.log(2e-2))))
        df = bowl(h0, lrs, 0.01, rng, seeds=2).assign(optimizer="adamw")
        o = locate_optima(df, over="lr", group_by=["optimizer"], n_boot=150, seed=trial).iloc[0]
        assert o["refined"] and not o["at_edge"]
        assert abs(math.log(o["opt"] / h0)) < 0.5
        covered += o["ci_low"] <= h0 <= o["ci_high"]
        assert o["band_low"] <= o["grid_argmin"] <= o["band_high"]
    assert covered >= 14  # a 90% interval: most of 20 draws


def test_refined_beats_grid_argmin_on_coarse_grid():
    rng = np.random.default_rng(1)
    lrs = np.geomspace(1e-4, 1e-1, 7)  # coarse grid: ~3.2x steps
    err_grid, err_opt = [], []
    for _ in range(10):
        h0 = float(np.exp(rng.uniform(np.log(5e-4), np.log(2e-2))))
        o = locate_one(lrs, bowl(h0, lrs, 0.002, rng)["final_val_loss"].to_numpy())
        err_grid.append(abs(math.log(o.grid_argmin / h0)))
        err_opt.append(abs(math.log(o.opt / h0)))
    assert np.mean(err_opt) < 0.5 * np.mean(err_grid)


@pytest.mark.parametrize("h0, edge, word", [(1e-1, "high", "extend lr above"), (1e-5, "low", "extend lr below")])
def test_edge_of_grid_is_flagged_with_direction(h0, edge, word):
    lrs = np.geomspace(1e-4, 1e-2, 5)
    o = locate_one(lrs, bowl(h0, lrs, 0.0, np.random.default_rng(0))["final_val_loss"].to_numpy())
    assert o.at_edge == edge and word in o.note


def test_too_few_and_diverged_flags():
    lrs = np.array([1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2])
    o = locate_one(lrs[:2], np.array([3.0, 2.9]))
    assert o.too_few and "fewer than 3" in o.note
    o = locate_one(lrs, np.array([3.2, 3.0, 2.95, np.nan, np.nan]))
    assert o.diverged_near and o.n_diverged == 2 and "diverged" in o.note
    assert o.at_edge == "high"  # the best finite point is the last finite one


def test_groups_and_bad_input():
    rng = np.random.default_rng(2)
    lrs = np.geomspace(1e-4, 1e-1, 8)
    df = pd.concat([bowl(1e-3, lrs, 0.005, rng).assign(n_params=1e5),
                    bowl(3e-3, lrs, 0.005, rng).assign(n_params=1e6, diverged=False)])
    out = locate_optima(df, over="lr", group_by=["n_params"])
    assert list(out["n_params"]) == [1e5, 1e6]
    assert out["opt"].iloc[0] < out["opt"].iloc[1]
    with pytest.raises(FitError, match="no column batch_size"):
        locate_optima(df, over="batch_size", group_by=["n_params"])
    with pytest.raises(FitError, match="empty"):
        locate_optima(df.iloc[:0])
    with pytest.raises(FitError, match="positive"):
        locate_one(np.array([-1.0, 1.0, 2.0]), np.array([1.0, 1.0, 1.0]))


def test_joint_optimum_recovers_a_correlated_bowl():
    rng = np.random.default_rng(3)
    rows = []
    for lr in np.geomspace(1e-4, 1e-1, 9):
        for bs in [16, 32, 64, 128, 256, 512]:
            u, v = math.log(lr / 3e-3), math.log(bs / 96)
            loss = 2.5 + 0.04 * u * u + 0.03 * v * v - 0.02 * u * v + rng.normal(0, 0.001)
            rows.append({"lr": lr, "batch_size": bs, "final_val_loss": loss, "g": 0})
    df = pd.DataFrame(rows)
    surf = fit_surface(df, near=0.05)
    lr, bs = surf.argmin()
    assert surf.positive_definite_
    assert abs(math.log(lr / 3e-3)) < 0.2 and abs(math.log(bs / 96)) < 0.2
    out = locate_joint_optima(df, group_by=["g"], near=0.05, n_boot=50).iloc[0]
    assert out["ci_low_lr"] <= 3e-3 <= out["ci_high_lr"] and out["ci_low_batch_size"] <= 96 <= out["ci_high_batch_size"]
    assert out["refined"] and out["at_edge"] == ""


def test_steplaw_joint_optima_lie_inside_the_grid_near_the_best_rows():
    path = shared_data("steplaw") / "dense_lr_bs_loss.csv"
    if not path.exists():
        pytest.skip(f"Step Law data not found at {path}")
    df = pd.read_csv(path).rename(columns={"bs": "batch_size", "loss": "final_val_loss"})
    out = locate_joint_optima(df, over=("lr", "batch_size"), group_by=["N", "D"], n_boot=20)
    assert len(out) == df.groupby(["N", "D"]).ngroups
    for _, r in out.iterrows():
        g = df[(df["N"] == r["N"]) & (df["D"] == r["D"])]
        assert g["lr"].min() <= r["opt_lr"] <= g["lr"].max()
        assert g["batch_size"].min() <= r["opt_batch_size"] <= g["batch_size"].max()
        assert r["loss_at_opt"] <= r["best_loss"] * 1.01
    assert out["refined"].mean() >= 0.5
