"""Optima from coordinate-descent valleys on synthetic x2 grids with known optima."""

import math

import numpy as np
import pandas as pd
import pytest

from oasl.errors import FitError
from oasl.optima.coordinate import coordinate_optima, locate_valley, space_of, valley_points


def quad(x, x0, a=0.05, base=3.0):
    return base + a * np.log(np.asarray(x) / x0) ** 2


def test_parabola_finds_an_off_grid_optimum_inside_its_neighbours():
    x = 0.001 * 2.0 ** np.arange(5)  # 1e-3 ... 1.6e-2
    r = locate_valley(x, quad(x, 0.005), name="lr")
    assert r["refined"] and r["opt"] == pytest.approx(0.005, rel=1e-6)
    assert r["grid_argmin"] == 0.004 and (r["ci_low"], r["ci_high"]) == (0.002, 0.008)
    assert r["low_bound"] == r["high_bound"] == "finite" and r["at_edge"] == "" and r["note"] == ""
    assert r["step_log"] == pytest.approx(math.log(2))


def test_a_diverged_neighbour_bounds_the_optimum_from_above():
    x = np.array([0.002, 0.004, 0.008, 0.016])
    y = np.array([3.05, 3.01, 3.00, np.nan])  # lr 0.016 blew up
    r = locate_valley(x, y, name="lr")
    assert r["grid_argmin"] == 0.008 and r["ci_high"] == 0.016 and r["high_bound"] == "diverged"
    assert "bounded above by a diverged run at lr=0.016" in r["note"] and r["at_edge"] == ""
    assert r["n_diverged"] == 1 and r["n_points"] == 3
    # a flag marks a finite but blown-up run as diverged too
    r2 = locate_valley(x, np.array([3.05, 3.01, 3.00, 7.5]), [False, False, False, True], name="lr")
    assert r2["high_bound"] == "diverged"


def test_an_optimum_at_the_edge_is_an_open_bound_and_warned():
    x = np.array([0.004, 0.008])
    r = locate_valley(x, quad(x, 0.05), name="lr")  # still falling at the largest value tried
    assert r["grid_argmin"] == 0.008 and r["at_edge"] == "high" and math.isnan(r["ci_high"])
    assert (
        r["ci_low"] == 0.004
        and not r["refined"]
        and "upper edge" in r["note"]
        and "try lr above 0.008" in r["note"]
    )


def test_betas_are_located_in_one_minus_beta():
    assert (
        space_of("beta2") == space_of("momentum") == space_of("shampoo_beta") == "log1m"
        and space_of("lr") == "log"
    )
    b = np.array([0.8, 0.9, 0.95, 0.98])
    y = 3.0 + 0.04 * np.log((1 - b) / 0.06) ** 2
    r = locate_valley(b, y, name="beta1")
    assert r["refined"] and 1 - r["opt"] == pytest.approx(0.06, rel=1e-6)
    assert r["ci_low"] < r["opt"] < r["ci_high"] and (r["ci_low"], r["ci_high"]) == (0.9, 0.98)
    # best at the largest beta: the open side is above in beta
    r = locate_valley(b, 3.0 - 0.01 * np.arange(4), name="beta1")
    assert r["at_edge"] == "high" and math.isnan(r["ci_high"]) and r["ci_low"] == 0.95


def test_zero_is_a_lower_bound_and_can_be_the_optimum():
    x = np.array([0.0, 0.1, 0.2])
    r = locate_valley(x, [3.01, 3.00, 3.02], name="weight_decay")
    assert r["opt"] == 0.1 and r["low_bound"] == "zero" and r["ci_low"] == 0.0
    r = locate_valley(x, [2.99, 3.00, 3.02], name="weight_decay")
    assert r["opt"] == 0.0 and "not in log space" in r["note"]
    with pytest.raises(FitError, match="no finite run"):
        locate_valley([0.1, 0.2], [np.nan, np.inf], name="lr")


def coordinate_frame():
    """Two sweeps: lr ablated on a x2 grid around the best, batch ablated once, one diverged lr."""
    rows = []
    for n, lr0 in ((1e8, 0.01), (3e8, 0.005)):
        sweep = f"adamw/{n:.0e}/1"
        common = {"optimizer": "adamw", "n_params": n, "tokens": 20 * n, "sweep": sweep, "batch_seqs": 128}
        rows.append({**common, "ablated": "baseline", "lr": lr0, "final_val_loss": 3.0, "status": "done"})
        for f in (0.5, 2.0, 4.0):
            loss, status = (7.5, "diverged") if f == 4.0 else (float(quad(f, 1.0, 0.03)), "done")
            rows.append(
                {
                    **common,
                    "ablated": "learning_rate",
                    "lr": lr0 * f,
                    "final_val_loss": loss,
                    "status": status,
                }
            )
        rows.append(
            {
                **common,
                "ablated": "train_batch_size",
                "lr": lr0,
                "batch_seqs": 256,
                "final_val_loss": 3.02,
                "status": "done",
            }
        )
        rows.append(
            {
                **common,
                "ablated": "train_batch_size",
                "lr": lr0,
                "batch_seqs": 512,
                "final_val_loss": None,
                "status": "failed",
            }
        )
    return pd.DataFrame(rows)


def test_coordinate_optima_and_valley_points_per_sweep():
    df = coordinate_frame()
    o = coordinate_optima(df)
    assert set(o["hp"]) == {"lr", "batch_seqs"} and len(o) == 4
    lr = o[o["hp"] == "lr"].set_index("sweep")
    assert lr.loc["adamw/1e+08/1", "opt"] == pytest.approx(0.01, rel=1e-6) and lr["refined"].all()
    assert (lr["best_config"] == lr["grid_argmin"]).all()
    bs = o[o["hp"] == "batch_seqs"].iloc[0]
    assert (
        bs["opt"] == 128 and bs["at_edge"] == "low" and bs["n_points"] == 2
    )  # the failed 512 run is left out
    v = valley_points(df, "lr", optima=o)
    assert len(v) == 6 and v["diverged"].sum() == 2
    assert sorted(v["log_dist"].round(6).unique()) == pytest.approx([-math.log(2), math.log(2), math.log(4)])
    up = v[(v["log_dist"] > 0) & ~v["diverged"]]
    assert up["dloss"].to_numpy() == pytest.approx(0.03 * math.log(2) ** 2)
    with pytest.raises(FitError, match="'sweep' column"):
        coordinate_optima(df.drop(columns="sweep"))
