"""`oasl optima` and `oasl import`, called through a small typer app with `register(app)`."""

import math

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from oasl.cli.optima_cmd import register
from oasl.errors import ConfigError, DataError, StoreError


@pytest.fixture
def app():
    a = typer.Typer()
    register(a)
    return a


def run(app, args):
    return CliRunner().invoke(app, [str(x) for x in args])


def text(res) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(res.output.split())


@pytest.fixture
def runs_csv(tmp_path):
    """lr* = 3e-3 at n_params 1e5 and 1.5e-3 at 4e5 (lr grid factor 2); one group's optimum past the grid."""
    rng = np.random.default_rng(0)
    rows = []
    for n, best in ((1e5, 3e-3), (4e5, 1.5e-3), (1.6e6, 0.5)):
        for lr in np.geomspace(1.25e-4, 3.2e-2, 9):
            loss = 3.0 + 0.05 * math.log(lr / best) ** 2 + rng.normal(0, 0.002)
            rows.append(
                {
                    "optimizer": "adamw",
                    "n_params": n,
                    "tokens": 20 * n,
                    "lr": lr,
                    "loss": loss,
                    "diverged": False,
                }
            )
    rows.append(
        {
            "optimizer": "adamw",
            "n_params": 1e5,
            "tokens": 2e6,
            "lr": 6.4e-2,
            "loss": float("nan"),
            "diverged": True,
        }
    )
    path = tmp_path / "runs.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_optima_from_csv_writes_csv_plot_and_notes(app, runs_csv, tmp_path):
    out, png = tmp_path / "o.csv", tmp_path / "o.png"
    res = run(app, ["optima", "--csv", runs_csv, "--out", out, "--plot", png, "--n-boot", 50])
    assert res.exit_code == 0, res.output
    assert "optimum of lr per optimizer, n_params, tokens" in text(res)
    assert "extend lr above 0.032" in text(res)  # the note of the edge group is printed
    opt = pd.read_csv(out).set_index("n_params")
    assert (
        abs(math.log(opt.loc[1e5, "opt"] / 3e-3)) < 0.15
        and abs(math.log(opt.loc[4e5, "opt"] / 1.5e-3)) < 0.15
    )
    assert opt.loc[1e5, "n_diverged"] == 1 and opt.loc[1.6e6, "at_edge"] == "high"
    assert png.stat().st_size > 20_000


def test_joint_optimum_from_the_command_line(app, tmp_path):
    rng = np.random.default_rng(1)
    rows = [
        {
            "lr": lr,
            "batch_seqs": bs,
            "final_val_loss": 2.5
            + 0.04 * math.log(lr / 2e-3) ** 2
            + 0.03 * math.log(bs / 64) ** 2
            - 0.02 * math.log(lr / 2e-3) * math.log(bs / 64)
            + rng.normal(0, 5e-4),
            "g": "x",
        }
        for lr in np.geomspace(1e-4, 3.2e-2, 9)
        for bs in (8, 16, 32, 64, 128, 256, 512)
    ]
    path = tmp_path / "runs.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    out = tmp_path / "joint.csv"
    res = run(
        app,
        [
            "optima",
            "--csv",
            path,
            "--over",
            "lr,batch_seqs",
            "--group-by",
            "g",
            "--out",
            out,
            "--n-boot",
            40,
            "--plot",
            tmp_path / "j.png",
        ],
    )
    assert res.exit_code == 0, res.output
    r = pd.read_csv(out).iloc[0]
    assert abs(math.log(r["opt_lr"] / 2e-3)) < 0.2 and abs(math.log(r["opt_batch_seqs"] / 64)) < 0.2
    assert "joint optimum of lr x batch_seqs" in text(res) and (tmp_path / "j.png").stat().st_size > 20_000


def test_optima_warns_when_other_hps_vary_within_groups(app, runs_csv, tmp_path):
    df = pd.read_csv(runs_csv)
    mixed = pd.concat([df.assign(batch_seqs=32), df.assign(batch_seqs=64, loss=df["loss"] + 0.01)])
    path = tmp_path / "mixed.csv"
    mixed.to_csv(path, index=False)
    res = run(app, ["optima", "--csv", path, "--out", tmp_path / "o.csv", "--n-boot", 0])
    assert res.exit_code == 0 and "batch_seqs vary within groups" in text(res)
    assert "--group-by (optimizer,n_params,tokens,batch_seqs)" in text(res)
    res = run(
        app,
        [
            "optima",
            "--csv",
            path,
            "--out",
            tmp_path / "o.csv",
            "--n-boot",
            0,
            "--group-by",
            "optimizer,n_params,tokens,batch_seqs",
        ],
    )
    assert res.exit_code == 0 and "vary within groups" not in text(res)
    assert len(pd.read_csv(tmp_path / "o.csv")) == 6


def test_import_then_optima_from_the_store(app, runs_csv, tmp_path):
    db = tmp_path / "runs.db"
    res = run(app, ["import", runs_csv, "--store", db])
    assert res.exit_code == 0, res.output
    assert "imported 28 new run(s)" in text(res)
    res = run(app, ["import", runs_csv, "--store", db])
    assert "imported 0 new run(s)" in text(res) and "(28 already there)" in text(res)
    out = tmp_path / "o.csv"
    res = run(app, ["optima", "--store", db, "--out", out, "--n-boot", 30])
    assert res.exit_code == 0, res.output
    opt = pd.read_csv(out)
    assert len(opt) == 3 and opt["n_diverged"].sum() == 1


@pytest.mark.parametrize(
    "args, error, words",
    [
        (["optima"], ConfigError, "exactly one of --store"),
        (["optima", "--csv", "nope.csv"], DataError, "does not exist"),
        (["optima", "--store", "nope.db"], StoreError, "oasl import"),
        (["optima", "--csv", "RUNS", "--over", "a,b,c"], ConfigError, "one HP or two"),
        (["optima", "--csv", "RUNS", "--over", "momentum"], ConfigError, "no column 'momentum'"),
        (["optima", "--csv", "RUNS", "--group-by", "optimizer,width"], ConfigError, "no column 'width'"),
    ],
)
def test_optima_errors_are_oasl_errors_naming_the_fix(app, runs_csv, tmp_path, args, error, words):
    args = [str(runs_csv) if a == "RUNS" else a for a in args]
    res = run(app, [*args, "--out", tmp_path / "o.csv"])
    assert isinstance(res.exception, error), res.output
    assert words in str(res.exception)


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda d: d.drop(columns="loss"), "no loss column"),
        (lambda d: d.assign(lr=d["lr"].astype(object).where(d.index != 3, "fast")), "column lr of"),
        (lambda d: d.assign(lr=-d["lr"]), "must be positive"),
        (lambda d: d.assign(diverged="maybe"), "true/false"),
        (lambda d: d.iloc[:0], "no rows"),
    ],
)
def test_import_validates_columns(app, runs_csv, tmp_path, change, words):
    bad = tmp_path / "bad.csv"
    change(pd.read_csv(runs_csv)).to_csv(bad, index=False)
    res = run(app, ["import", bad, "--store", tmp_path / "r.db"])
    assert isinstance(res.exception, DataError), res.output
    assert words in str(res.exception)
    assert "imported" not in text(res)


def test_import_warns_about_missing_grouping_columns(app, runs_csv, tmp_path):
    slim = tmp_path / "slim.csv"
    pd.read_csv(runs_csv).drop(columns=["optimizer"]).to_csv(slim, index=False)
    res = run(app, ["import", slim, "--store", tmp_path / "r.db"])
    assert res.exit_code == 0 and "no optimizer column" in text(res) and "imported 28 new run(s)" in text(res)


def test_import_names_a_negative_count_as_the_user_wrote_it(app, runs_csv, tmp_path):
    bad = tmp_path / "neg.csv"
    d = pd.read_csv(runs_csv)
    d["n_params"] = d["n_params"].astype(int)
    d.loc[2, "n_params"] = -5
    d.to_csv(bad, index=False)
    res = run(app, ["import", bad, "--store", tmp_path / "r.db"])
    msg = str(res.exception)
    assert isinstance(res.exception, DataError) and "data row 3 has -5" in msg and "np." not in msg


def test_import_chooses_the_loss_column_and_maps_names(app, runs_csv, tmp_path):
    """Step Law's layout: N, D, bs (sequences), two loss columns; no optimizer column."""
    d = pd.read_csv(runs_csv).rename(columns={"n_params": "N", "tokens": "D"}).drop(columns="optimizer")
    d["bs"] = 4
    d["smooth loss"] = d["loss"] - 1.0
    path = tmp_path / "steplaw_like.csv"
    d.to_csv(path, index=False)
    db = tmp_path / "r.db"
    args = ["import", path, "--store", db, "--loss-column", "smooth loss"]
    args += ["--column-map", "N=n_params,D=tokens,bs=batch_seqs", "--set", "optimizer=adamw,seq_len=2048"]
    res = run(app, args)
    assert res.exit_code == 0, res.output
    from oasl.store import open_store

    got = open_store(db).to_dataframe()
    fin = got["final_val_loss"].notna()
    assert np.allclose(got.loc[fin, "final_val_loss"], got.loc[fin, "loss"] - 1.0)
    assert set(got["optimizer"]) == {"adamw"} and set(got["batch_tokens"]) == {4 * 2048}
    assert {"n_params", "tokens"} <= set(got.columns)


@pytest.mark.parametrize(
    "extra, error, words",
    [
        (["--loss-column", "smooth"], DataError, "--loss-column 'smooth' is not a column"),
        (["--column-map", "X=n_params"], DataError, "--column-map names 'X'"),
        (["--column-map", "n_params"], ConfigError, "NAME=VALUE pairs"),
        (["--set", "lr=1"], DataError, "already has a column lr"),
    ],
)
def test_import_option_errors_name_the_fix(app, runs_csv, tmp_path, extra, error, words):
    res = run(app, ["import", runs_csv, "--store", tmp_path / "r.db", *extra])
    assert isinstance(res.exception, error), res.output
    assert words in str(res.exception)
