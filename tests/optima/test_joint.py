"""The joint optimum of two HPs: the quadratic surface, its honest checks, groups and Step Law data."""

import math

import numpy as np
import pandas as pd
import pytest

from oasl.errors import FitError
from oasl.optima import QuadraticSurface, fit_surface, locate_joint_optima
from oasl.testing import shared_data

LR0, BS0 = 3e-3, 96.0
A11, A22, A12 = 0.04, 0.03, -0.03  # loss = 2.5 + a11 u^2 + a12 u v + a22 v^2 (u, v: log offsets)


def bowl2d(
    rng, noise=0.001, lrs=np.geomspace(1e-4, 1e-1, 11), bss=(8, 16, 32, 64, 128, 256, 512, 1024), **cols
):
    rows = []
    for lr in lrs:
        for bs in bss:
            u, v = math.log(lr / LR0), math.log(bs / BS0)
            loss = 2.5 + A11 * u * u + A12 * u * v + A22 * v * v + rng.normal(0, noise)
            rows.append({"lr": lr, "batch_size": bs, "final_val_loss": loss, **cols})
    return pd.DataFrame(rows)


def test_surface_recovers_a_correlated_bowl():
    df = bowl2d(np.random.default_rng(0))
    surf = fit_surface(df, near=0.05)
    assert isinstance(surf, QuadraticSurface) and surf.positive_definite_
    lr, bs = surf.argmin()
    assert abs(math.log(lr / LR0)) < 0.1 and abs(math.log(bs / BS0)) < 0.1
    np.testing.assert_allclose(surf.hessian_, [[2 * A11, A12], [A12, 2 * A22]], atol=0.006)
    # coef_ is in z = log(raw): recompute the loss from it by hand at one point
    c, b1, b2, a11, a12, a22 = surf.coef_
    z1, z2 = math.log(2e-3), math.log(50.0)
    by_hand = c + b1 * z1 + b2 * z2 + a11 * z1 * z1 + a12 * z1 * z2 + a22 * z2 * z2
    assert surf.predict([[2e-3, 50.0]])[0] == pytest.approx(by_hand, rel=1e-9)
    truth = (
        2.5
        + A11 * math.log(2e-3 / LR0) ** 2
        + A12 * math.log(2e-3 / LR0) * math.log(50 / BS0)
        + A22 * math.log(50 / BS0) ** 2
    )
    assert surf.predict(pd.DataFrame({"lr": [2e-3], "batch_size": [50.0]}))[0] == pytest.approx(
        truth, abs=0.003
    )
    d = surf.diagnostics()
    assert d["positive_definite"] and d["vertex_inside"] and d["rmse"] < 0.003


def test_joint_optimum_ci_bands_and_columns():
    df = bowl2d(np.random.default_rng(1), noise=0.002, g="a")
    out = locate_joint_optima(df, group_by=["g"], n_boot=60)
    r = out.iloc[0]
    assert r["refined"] and r["positive_definite"] and r["at_edge"] == "" and not r["too_few"]
    for h, truth in (("lr", LR0), ("batch_size", BS0)):
        assert r[f"ci_low_{h}"] <= truth <= r[f"ci_high_{h}"]
        assert r[f"ci_low_{h}"] <= r[f"opt_{h}"] <= r[f"ci_high_{h}"]
        assert r[f"band_low_fit_{h}"] < r[f"opt_{h}"] < r[f"band_high_fit_{h}"]
        assert r[f"band_low_{h}"] <= r[f"argmin_{h}"] <= r[f"band_high_{h}"]
    assert r["loss_at_opt"] == pytest.approx(2.5, abs=0.003) and r["n_points"] == len(df)


def test_edges_too_few_and_diverged_groups():
    rng = np.random.default_rng(2)
    inner = bowl2d(rng, g="inner")
    # batch sizes only above the optimum: the best run sits at the lower bs edge
    edge = bowl2d(rng, bss=(256, 512, 1024, 2048), g="edge")
    few = bowl2d(rng, lrs=[1e-3, 3e-3], bss=(64, 128), g="few")
    dead = bowl2d(rng, lrs=[1e-3, 3e-3, 1e-2], bss=(64, 128, 256), g="dead").assign(final_val_loss=np.nan)
    cliff = bowl2d(rng, g="cliff")
    cliff.loc[cliff["lr"] > 4e-3, "diverged"] = True
    cliff["diverged"] = cliff["diverged"].fillna(False).astype(bool)
    df = pd.concat([inner, edge, few, dead, cliff])
    out = locate_joint_optima(df, group_by=["g"], n_boot=20).set_index("g")
    assert out.loc["edge", "at_edge_batch_size"] == "low" and out.loc["edge", "at_edge_lr"] == ""
    assert "extend batch_size below 256" in out.loc["edge", "note"] and math.isnan(
        out.loc["edge", "ci_low_batch_size"]
    )
    assert out.loc["few", "too_few"] and "too few finite runs" in out.loc["few", "note"]
    assert (
        out.loc["dead", "too_few"]
        and out.loc["dead", "n_diverged"] == 9
        and "no finite run" in out.loc["dead", "note"]
    )
    assert out.loc["cliff", "diverged_near"] and "stability edge" in out.loc["cliff", "note"]
    assert out.loc["cliff", "at_edge_lr"] == ""
    assert not out.loc["inner", "diverged_near"] and out.loc["inner", "note"] == ""


def test_not_convex_surface_is_honest():
    rng = np.random.default_rng(3)
    rows = [
        {
            "lr": lr,
            "batch_size": bs,
            "final_val_loss": 3 + 0.02 * math.log(lr / 1e-3) * math.log(bs / 64) + rng.normal(0, 1e-4),
        }
        for lr in np.geomspace(1e-4, 1e-2, 5)
        for bs in (16, 32, 64, 128, 256)
    ]
    surf = fit_surface(pd.DataFrame(rows), near=1.0)  # a saddle
    assert not surf.positive_definite_ and surf.eigenvalues_[0] < 0 < surf.eigenvalues_[1]
    with pytest.raises(FitError, match="not convex"):
        surf.argmin()
    lr, bs = surf.argmin(bounded=True)  # a corner of the box, where u v is most negative
    assert (math.isclose(lr, 1e-4) and math.isclose(bs, 256)) or (
        math.isclose(lr, 1e-2) and math.isclose(bs, 16)
    )
    assert not surf.diagnostics()["vertex_inside"]


def test_surface_input_errors():
    df = bowl2d(np.random.default_rng(4))
    with pytest.raises(FitError, match="no column 'bs'"):
        fit_surface(df, over=("lr", "bs"))
    with pytest.raises(FitError, match="exactly two"):
        fit_surface(df, over=("lr",))
    with pytest.raises(FitError, match="positive"):
        fit_surface(df.assign(batch_size=0))
    with pytest.raises(FitError, match="needs more finite runs"):
        fit_surface(df.iloc[:5])
    surf = fit_surface(df)
    with pytest.raises(FitError, match="shape"):
        surf.predict(np.ones((3, 3)))
    with pytest.raises(FitError, match="positive"):
        surf.predict([[-1e-3, 64]])


def _steplaw():
    path = shared_data("steplaw") / "dense_lr_bs_loss.csv"
    if not path.exists():
        pytest.skip(f"Step Law data not found at {path} (see ../shared/data/steplaw/NOTES.md)")
    return pd.read_csv(path)


def test_steplaw_joint_optima_lie_in_the_grid_near_the_best_rows():
    df = _steplaw()
    out = locate_joint_optima(df, over=("lr", "bs"), group_by=["N", "D"], loss="smooth loss", n_boot=20)
    assert len(out) == df.groupby(["N", "D"]).ngroups
    for _, r in out.iterrows():
        g = df[(df["N"] == r["N"]) & (df["D"] == r["D"])]
        for h in ("lr", "bs"):
            assert g[h].min() <= r[f"opt_{h}"] <= g[h].max()
            # within about a factor 2 (one octave) of the best row: the grid steps are sqrt(2) in lr
            assert abs(math.log2(r[f"opt_{h}"] / r[f"argmin_{h}"])) <= 1.5
        assert r["loss_at_opt"] <= r["best_loss"] * 1.003
    assert out["refined"].mean() >= 0.8


def test_steplaw_surface_predicts_held_out_rows_near_the_optimum():
    df = _steplaw()
    errors = []
    for _, g in df.groupby(["N", "D"]):
        g = g.reset_index(drop=True)
        bottom = g.index[g["smooth loss"] <= g["smooth loss"].min() * 1.01]
        for i in bottom[::3]:
            surf = fit_surface(g.drop(index=i), over=("lr", "bs"), loss="smooth loss")
            pred = surf.predict(g.loc[[i], ["lr", "bs"]].to_numpy())[0]
            errors.append(pred / g.loc[i, "smooth loss"] - 1)
    assert len(errors) > 50
    assert np.sqrt(np.mean(np.square(errors))) < 0.004  # held-out error well under 0.4% of the loss
