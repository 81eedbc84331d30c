"""Plots of optima: they render every kind of group (refined, edge, too few, all diverged) to a PNG."""

import math

import numpy as np
import pandas as pd
import pytest

from oasl.errors import DataError
from oasl.optima import locate_joint_optima, locate_optima
from oasl.report.plots_optima import plot_joint_optima, plot_optima


def _runs():
    rng = np.random.default_rng(0)
    rows = []
    lrs = np.geomspace(1e-4, 1.6e-2, 8)
    for n, best in ((1e5, 2e-3), (2e5, 1.0)):
        for lr in lrs:
            rows.append(
                {
                    "n_params": n,
                    "lr": lr,
                    "final_val_loss": 3 + 0.05 * math.log(lr / best) ** 2 + rng.normal(0, 0.003),
                    "diverged": False,
                }
            )
    rows += [{"n_params": 4e5, "lr": lr, "final_val_loss": 3.0, "diverged": False} for lr in lrs[:2]]
    rows += [{"n_params": 8e5, "lr": lr, "final_val_loss": np.nan, "diverged": True} for lr in lrs[:3]]
    rows.append({"n_params": 1e5, "lr": 3.2e-2, "final_val_loss": np.nan, "diverged": True})
    return pd.DataFrame(rows)


def test_plot_optima_renders_every_kind_of_group(tmp_path):
    runs = _runs()
    opt = locate_optima(runs, over="lr", group_by=["n_params"], n_boot=30)
    assert opt["too_few"].tolist() == [False, False, True, True]
    path = plot_optima(runs, opt, "lr", ["n_params"], tmp_path / "sub" / "optima.png")
    assert path.exists() and path.stat().st_size > 20_000
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_plot_joint_optima_renders(tmp_path):
    rng = np.random.default_rng(1)
    rows = [
        {
            "lr": lr,
            "bs": bs,
            "final_val_loss": 2.5
            + 0.04 * math.log(lr / 2e-3) ** 2
            + 0.03 * math.log(bs / 64) ** 2
            + rng.normal(0, 5e-4),
            "g": g,
        }
        for g in ("a", "b")
        for lr in np.geomspace(1e-4, 3.2e-2, 9)
        for bs in (8, 16, 32, 64, 128, 256)
    ]
    runs = pd.DataFrame(rows)
    joint = locate_joint_optima(runs, over=("lr", "bs"), group_by=["g"], n_boot=20)
    path = plot_joint_optima(runs, joint, ("lr", "bs"), ["g"], tmp_path / "joint.png")
    assert path.stat().st_size > 20_000


def test_plot_errors_name_the_fault(tmp_path):
    runs = _runs()
    with pytest.raises(DataError, match="empty"):
        plot_optima(runs, pd.DataFrame(), "lr", ["n_params"], tmp_path / "x.png")
    opt = locate_optima(runs, over="lr", group_by=["n_params"], n_boot=0)
    with pytest.raises(DataError, match="no column 'width'"):
        plot_optima(runs, opt, "lr", ["width"], tmp_path / "x.png")
