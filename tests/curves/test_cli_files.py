"""`oasl schedules fit --curves` / `eval` on curve files, size transfer, the shape prior from a user's law,
and the input checks of `schedules fit|predict|rank` (issue 12)."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from oasl.curves import Curve, MultiPowerLaw, transfer_law
from oasl.curves.curve import check_curve_set
from oasl.curves.io import read_curve_file
from oasl.errors import DataError, FitError
from oasl.testing import run_cli

TRUE = {"L0": 3.0, "A": 0.5, "alpha": 0.5, "B": 300.0, "C": 2.0, "beta": 0.6, "gamma": 0.6}
PEAK, WARM, T = 3e-4, 100, 1500


def schedule(kind: str) -> np.ndarray:
    t = np.arange(T, dtype=float)
    lrs = np.full(T, PEAK)
    lrs[:WARM] = np.linspace(0, PEAK, WARM)
    if kind == "cosine":
        s = (t[WARM:] - WARM) / (T - WARM)
        lrs[WARM:] = 3e-5 + 0.5 * (PEAK - 3e-5) * (1 + np.cos(np.pi * s))
    elif kind == "wsd":
        lrs[1100:] = np.linspace(PEAK, 3e-5, T - 1100)
    return lrs


def write_curve(path, kind: str, params=TRUE, every: int = 60) -> Curve:
    """A noiseless curve of the true law, logged every ``every`` steps from the end of warmup (the
    paper's CSV layout: step, lr, loss)."""
    lrs = schedule(kind)
    steps = np.arange(WARM, T, every)
    loss = MultiPowerLaw.from_params(params).predict(lrs, steps)
    pd.DataFrame({"step": steps, "lr": lrs[steps], "loss": loss}).to_csv(path, index=False)
    return Curve(steps, lrs, loss, name=kind)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("curves")
    return {k: (d / f"{k}.csv", write_curve(d / f"{k}.csv", k)) for k in ("constant", "cosine", "wsd")}


def test_curve_file_rebuilds_the_schedule(files):
    path, truth = files["cosine"]
    c = read_curve_file(path, n_params=25e6)
    assert c.name == "cosine" and c.n_params == 25e6 and len(c.lrs) == truth.steps[-1] + 1
    assert np.array_equal(c.steps, truth.steps)
    # linear interpolation of a cosine logged every 60 steps; the warmup rebuilt from 0 reaches the peak
    # at the first logged step (one step after the true one)
    gap = np.abs(c.lrs - truth.lrs[: len(c.lrs)])
    assert gap[WARM:].max() < 2e-3 * PEAK and gap[:WARM].max() < 0.02 * PEAK
    err = np.abs(MultiPowerLaw.from_params(TRUE).predict(c.lrs, c.steps) / truth.loss - 1)
    assert err.max() < 3e-3 and err.mean() < 1e-3  # worst at the first points, just after the warmup


def test_curve_file_errors_name_the_fix(tmp_path):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"step": [1, 2], "loss": [3.0, 2.9]}).to_csv(bad, index=False)
    with pytest.raises(DataError, match="lacks column.*lr"):
        read_curve_file(bad)
    pd.DataFrame({"step": [2, 1], "lr": [1e-3, 1e-3], "loss": [3.0, 2.9]}).to_csv(bad, index=False)
    with pytest.raises(DataError, match="strictly increasing"):
        read_curve_file(bad)


def test_curve_set_needs_constant_and_decay_of_one_model(files):
    c = {k: v[1] for k, v in files.items()}
    with pytest.raises(DataError, match="lack a constant-LR schedule"):
        check_curve_set([c["cosine"], c["wsd"]])
    with pytest.raises(DataError, match="lack a schedule whose LR decays"):
        check_curve_set([c["constant"]])
    with pytest.raises(DataError, match="mix optimizers \\(adamw, sgd\\)"):
        check_curve_set([c["constant"], c["cosine"]], optimizers=["adamw", "sgd"])
    other = Curve(c["cosine"].steps, c["cosine"].lrs, c["cosine"].loss, "cos", n_params=2e6)
    with pytest.raises(DataError, match="2 model sizes"):
        check_curve_set([Curve(c["constant"].steps, c["constant"].lrs, c["constant"].loss, "k", 1e6), other])
    check_curve_set([c["constant"], c["cosine"]])


def test_fit_and_eval_from_files(files, tmp_path, capsys):
    law = tmp_path / "law.json"
    args = ["schedules", "fit", "--curves", str(files["constant"][0]), "--curves", str(files["cosine"][0])]
    # the annealing law keeps the test fast; the multi-power law on files: benchmarks/schedules_mpl.py
    code, out, err = run_cli([*args, "--law", "annealing", "--boot", "0", "--out", str(law)], capsys)
    assert code == 0, err
    ctx = json.loads(law.read_text())["context"]
    assert ctx["steps"] == files["cosine"][1].steps[-1] + 1 and ctx["curves"] == ["constant", "cosine"]
    code, out, err = run_cli(
        ["schedules", "eval", "--law", str(law), "--curves", str(files["wsd"][0]), "--format", "json"], capsys
    )
    assert code == 0, err
    res = json.loads(out)
    e = res["curves"]["wsd"]
    assert set(e) == {"points", "mean_rel", "worst_rel", "final_rel"} and e["points"] == len(files["wsd"][1])
    assert (
        e["mean_rel"] < 1e-2 and e["worst_rel"] >= e["mean_rel"] and res["mean"]["mean_rel"] == e["mean_rel"]
    )


def test_fit_from_files_refuses_a_set_without_a_constant(files, tmp_path, capsys):
    code, _, err = run_cli(
        ["schedules", "fit", "--curves", str(files["cosine"][0]), "--curves", str(files["wsd"][0])], capsys
    )
    assert code == 2 and "lack a constant-LR schedule" in err and len(err.strip().splitlines()) == 1


def test_transfer_refits_the_power_law_from_one_constant_run(files, tmp_path):
    small = MultiPowerLaw.from_params(TRUE)
    big = {**TRUE, "L0": 2.7, "A": 0.6, "alpha": 0.45}
    const = write_curve(tmp_path / "c.csv", "constant", big)
    law = transfer_law(small, [const])
    assert law.params_["L0"] == pytest.approx(2.7, rel=0.02) and law.params_["B"] == pytest.approx(TRUE["B"])
    cos = write_curve(tmp_path / "k.csv", "cosine", big)
    assert law.score(cos)["mean_rel"] < 2e-3
    with pytest.raises(FitError, match="free must name"):
        transfer_law(small, [const], free=("L1",))


def test_shape_prior_comes_only_from_a_supplied_law(files):
    assert MultiPowerLaw()._penalty_fn() is None  # no prior unless one is given
    with pytest.raises(FitError, match="give its centre"):
        MultiPowerLaw(shape_prior=0.25)._penalty(np.zeros(7))
    with pytest.raises(FitError, match="missing"):
        MultiPowerLaw(prior={"C": 1.0, "beta": 0.5})
    law = MultiPowerLaw(prior={"C": 2.0, "beta": 0.6, "gamma": 0.6, "lr": PEAK})
    assert law._penalty_fn() is not None
    d = MultiPowerLaw.from_dict(MultiPowerLaw.from_params(TRUE, prior=law.prior).to_dict())
    assert d.prior == law.prior


@pytest.mark.parametrize(
    "args, words",
    [
        (["predict", "--schedule", "cosine", "--steps", "0"], "--steps must be at least 2"),
        (["predict", "--schedule", "cosine", "--lr", "nan"], "'--lr': nan is not a finite number"),
        (["predict", "--schedule", "cosine", "--level", "1.5"], "--level must lie"),
        (["rank", "--candidates", "cosine,wsdd:0.2"], "unknown candidate schedule(s): 'wsdd:0.2'"),
    ],
)
def test_predict_and_rank_check_inputs_first(files, tmp_path, capsys, args, words):
    # the law file does not exist: the checks must fire before it (or any fit, bootstrap) is read
    code, _, err = run_cli(["schedules", *args, "--law", str(tmp_path / "none.json")], capsys)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1


def test_far_horizons_warn_and_intervals_print_as_brackets(files, tmp_path, capsys):
    law = tmp_path / "law.json"
    args = ["schedules", "fit", "--curves", str(files["constant"][0]), "--curves", str(files["cosine"][0])]
    code, _, err = run_cli([*args, "--law", "annealing", "--boot", "5", "--out", str(law)], capsys)
    assert code == 0, err
    steps = str(100 * (files["cosine"][1].steps[-1] + 1))
    code, out, err = run_cli(
        ["schedules", "predict", "--law", str(law), "--schedule", "cosine", "--steps", steps], capsys
    )
    assert code == 0 and "100x the fitted runs'" in err, err
    assert re.search(r"interval \[\d\.\d{4}, \d\.\d{4}\]", out), out
    code, out, err = run_cli(
        ["schedules", "rank", "--law", str(law), "--candidates", "cosine,constant"], capsys
    )
    assert code == 0 and re.search(r"\[\d\.\d{4}, \d\.\d{4}\]", out) and "fitted runs'" not in err, (out, err)
