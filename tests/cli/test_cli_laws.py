import json
import math

import numpy as np
import pandas as pd
import pytest

from oasl.testing import run_cli


@pytest.fixture
def runs_csv(tmp_path):
    """A synthetic sweep: lr* = 5 N^-0.35 (adamw) and 60 N^-0.35 (sgd) at 20 tokens per parameter."""
    rng = np.random.default_rng(0)
    rows = []
    for opt, c in (("adamw", 5.0), ("sgd", 60.0)):
        for n in (2e4, 5e4, 1e5, 2e5):
            best = c * n**-0.35
            for lr in best * np.geomspace(1 / 8, 8, 7):
                loss = 3.0 + 0.05 * math.log(lr / best) ** 2 + rng.normal(0, 0.002)
                rows.append({"optimizer": opt, "n_params": n, "tokens": 20 * n, "lr": lr, "loss": loss})
    path = tmp_path / "runs.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_import_optima_fit_recommend(runs_csv, tmp_path, capsys):
    db = str(tmp_path / "runs.db")
    code, out, _ = run_cli(["import", str(runs_csv), "--store", db], capsys)
    assert code == 0 and "imported 56 new run(s)" in out
    code, out, err = run_cli(
        ["optima", "--store", db, "--out", str(tmp_path / "o.csv"), "--plot", str(tmp_path / "o.png")], capsys
    )
    assert code == 0, err
    opt = pd.read_csv(tmp_path / "o.csv")
    assert len(opt) == 8 and (tmp_path / "o.png").stat().st_size > 10_000
    for _, r in opt.iterrows():
        truth = (5.0 if r["optimizer"] == "adamw" else 60.0) * r["n_params"] ** -0.35
        assert abs(math.log(r["opt"] / truth)) < 0.15
    laws = tmp_path / "laws.json"
    code, out, err = run_cli(
        ["fit", "--store", db, "--out", str(laws), "--plot", str(tmp_path / "l.png")], capsys
    )
    assert code == 0, err
    saved = json.loads(laws.read_text())["laws"]["lr"]
    exps = [v["exponents"]["N"] for v in saved["laws"].values()]
    assert all(abs(e + 0.35) < 0.05 for e in exps)
    code, out, err = run_cli(
        [
            "recommend",
            "--params",
            "2e6",
            "--tokens",
            "4e7",
            "--optimizer",
            "sgd",
            "--laws",
            str(laws),
            "--format",
            "json",
        ],
        capsys,
    )
    assert code == 0, err
    rec = json.loads(out)
    assert rec["items"]["lr"]["value"] == pytest.approx(60 * 2e6**-0.35, rel=0.2)
    assert "extrapolates 10x" in rec["items"]["lr"]["warning"]
    assert rec["items"]["momentum"]["source"].startswith("sgd default")
    code, out, _ = run_cli(
        ["recommend", "--params", "7e9", "--tokens", "2e12", "--published", "step-law", "--format", "hf"],
        capsys,
    )
    assert code == 0 and json.loads(out)["learning_rate"] == pytest.approx(1.79 * 7e9**-0.713 * 2e12**0.307)


@pytest.mark.parametrize(
    "args, message",
    [
        (["recommend", "--params", "-5", "--tokens", "1e9", "--published", "step-law"], "must be positive"),
        (["recommend", "--params", "1e9", "--tokens", "1e9"], "give --laws"),
        (
            ["recommend", "--params", "1e9", "--tokens", "1e9", "--published", "chinchilla2"],
            "unknown published law",
        ),
        (
            [
                "recommend",
                "--params",
                "1e9",
                "--tokens",
                "1e9",
                "--optimizer",
                "rmsprop",
                "--published",
                "step-law",
            ],
            "unknown optimizer",
        ),
        (["fit", "--csv", "nope.csv"], "does not exist"),
    ],
)
def test_bad_input(args, message, capsys):
    code, _, err = run_cli(args, capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_too_few_points_to_fit(tmp_path, capsys):
    path = tmp_path / "r.csv"
    pd.DataFrame(
        {
            "optimizer": ["adamw"] * 3,
            "n_params": [1e5] * 3,
            "tokens": [1e6] * 3,
            "lr": [1e-3, 2e-3, 4e-3],
            "loss": [3.1, 3.0, 3.2],
        }
    ).to_csv(path, index=False)
    code, _, err = run_cli(["fit", "--csv", str(path)], capsys)
    assert code == 2 and "no law" in err


def test_laws_list(capsys):
    code, out, _ = run_cli(["laws", "list"], capsys)
    assert code == 0 and "step-law" in out and "deepseek" in out and "kaplan" in out
