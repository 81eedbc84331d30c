"""The divergence early warning: features see only the window, the predictor separates doomed runs
from healthy ones on unseen groups, it round-trips, stops runs in a sweep, and refuses bad input."""

import math

import numpy as np
import pandas as pd
import pytest

from oasl.config import build
from oasl.errors import DataError, FitError
from oasl.store import open_store
from oasl.sweep import SweepSpec, expand, run_sweep
from oasl.testing import run_cli
from oasl.train.earlywarn import (
    FEATURES,
    DivergencePredictor,
    EarlyWarnStopper,
    cross_validate,
    curve_features,
    label_runs,
)
from oasl.workflows import training_table

LRS = [1e-3, 3e-3, 1e-2, 3e-2, 0.3, 3.0]


def _sweep(widths, lrs=LRS, **extra):
    return build(
        SweepSpec,
        {
            "name": "ew",
            "shapes": [{"width": w, "depth": 1, "seq_len": 32} for w in widths],
            "optimizers": {"adamw": {"lr": lrs}},
            "batch_seqs": 8,
            "tokens": 8 * 32 * 80,
            "schedule": {"name": "cosine", "warmup_frac": 0.05},
            "run": {"eval_interval": 8, "eval_tokens": 1024, "device": "cpu"},
            **extra,
        },
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    db = tmp_path_factory.mktemp("ew") / "runs.db"
    run_sweep(expand(_sweep([16, 24, 32])), db, workers=2)
    return str(db)


def test_features_read_only_the_window():
    rng = np.random.default_rng(0)
    steps = np.arange(1, 101)
    curve = pd.DataFrame(
        {
            "step": steps,
            "train_loss": 5 * steps**-0.2 + rng.normal(0, 0.01, 100),
            "grad_norm": 1 + rng.random(100),
        }
    )
    f = curve_features(curve, 100, 0.2)
    later = curve.copy()
    later.loc[later["step"] > 20, ["train_loss", "grad_norm"]] = [np.nan, 1e9]
    assert curve_features(later, 100, 0.2) == f
    assert set(f) == set(FEATURES) and f["nonfinite"] == 0 and f["loss_drop"] > 0
    # a run that blew up inside the window shows it
    bad = curve.copy()
    bad.loc[bad["step"] > 15, "train_loss"] = np.inf
    assert curve_features(bad, 100, 0.2)["nonfinite"] == pytest.approx(5 / 20)
    stopped = curve[curve["step"] <= 10]  # diverged and stopped at step 10
    assert curve_features(stopped, 100, 0.2)["nonfinite"] == pytest.approx(0.5)


def test_labels():
    frame = pd.DataFrame(
        {
            "status": ["done", "done", "diverged", "stopped", "done"],
            "final_val_loss": [2.0, 2.2, np.nan, 2.5, 3.0],
            "group": ["a", "a", "a", "a", "b"],
        }
    )
    assert label_runs(frame, 0.05).tolist()[:3] == [0.0, 1.0, 1.0]
    lab = label_runs(frame, 0.05)
    assert math.isnan(lab[3]) and lab[4] == 0.0


def test_predictor_learns_on_some_groups_and_flags_others(store, tmp_path):
    # "far" = 20% above the group's best: at 80 steps the too-small and diverging lrs
    table = training_table(store, frac=0.25, far=0.2)
    assert len(table) == 18 and table["label"].sum() >= 4 and (table["label"] == 0).sum() >= 8
    cv = cross_validate(table, folds=3, frac=0.25, far=0.2)
    pred = cv["predictions"]
    # held-out groups: doomed runs get a higher probability than healthy ones, and most are caught
    assert pred.loc[pred["label"] == 1, "p"].mean() > pred.loc[pred["label"] == 0, "p"].mean() + 0.25
    assert cv["all"]["recall"] >= 0.5 and cv["all"]["precision"] >= 0.6
    p = DivergencePredictor(frac=0.25, far=0.2).fit(table)
    again = DivergencePredictor.load(p.save(tmp_path / "ew.json"))
    np.testing.assert_allclose(again.predict_proba(table), p.predict_proba(table))
    assert again.evaluate(table)["f1"] == p.evaluate(table)["f1"]


def test_stopper_and_sweep_early_stop(store, tmp_path):
    p = DivergencePredictor(frac=0.25, far=0.2).fit(training_table(store, frac=0.25, far=0.2))
    path = p.save(tmp_path / "ew.json")
    # a too-small lr ends far from the best: the warning (threshold 0.42; healthy lrs score <= 0.40 on
    # the training sweep, lr 1e-3 0.44-0.48) stops it at the end of its window; a good lr runs to the end
    spec = _sweep([20], lrs=[1e-2, 5e-4], early_warn={"predictor": str(path), "threshold": 0.42})
    summary = run_sweep(expand(spec), tmp_path / "new.db", workers=1, early_warn=spec.early_warn)
    rows = {r["spec"]["lr"]: r for r in open_store(tmp_path / "new.db").rows()}
    assert rows[1e-2]["status"] == "done"
    assert (
        rows[5e-4]["status"] == "stopped"
        and "early warning at step 24/80" in rows[5e-4]["result"]["stop_reason"]
    )
    assert summary.stopped == 1 and summary.flops_saved > 0
    # the group reference a live sweep reads: the other run's mean log train loss over steps (18, 20]
    from oasl.config import RunSpec
    from oasl.sweep.execute import group_reference

    st = open_store(tmp_path / "new.db")
    c = st.curve(rows[1e-2]["key"])
    want = float(np.log(c[(c["step"] > 18) & (c["step"] <= 20)]["train_loss"]).mean())
    ref = group_reference(tmp_path / "new.db", RunSpec.model_validate(rows[5e-4]["spec"]), 20)
    assert ref == pytest.approx(want)
    slow = curve_features(st.curve(rows[5e-4]["key"]), 80, 0.25, reference=ref)
    assert slow["loss_vs_group"] == pytest.approx(slow["loss_end"] - want) and slow["loss_vs_group"] > 0.1
    # the stopper looks once, at the first evaluation at or after its window
    stop = EarlyWarnStopper(80, p)
    assert stop(8, 3.0, []) is None and stop.due == 20


def test_bad_input(tmp_path, capsys):
    empty = tmp_path / "empty.db"
    open_store(empty)
    with pytest.raises(DataError, match="no runs"):
        training_table(empty)
    one = pd.DataFrame(
        {**{f: np.zeros(8) for f in FEATURES}, "label": np.zeros(8), "group": list("aabbccdd")}
    )
    with pytest.raises(FitError, match="same label"):
        DivergencePredictor().fit(one)
    with pytest.raises(FitError, match="too few"):
        DivergencePredictor().fit(one.iloc[:3])
    with pytest.raises(FitError, match="not fitted"):
        DivergencePredictor().predict_proba(one)
    code, _, err = run_cli(["earlywarn", "fit", "--store", str(tmp_path / "missing.db")], capsys)
    assert code == 2
    assert "does not exist" in err and len(err.strip().splitlines()) == 1


def test_cli_fit_and_eval(store, tmp_path, capsys):
    out = tmp_path / "ew.json"
    args = ["earlywarn", "fit", "--store", store, "--out", str(out), "--frac", "0.25", "--folds", "3"]
    code, text, err = run_cli(args, capsys)
    assert code == 0, err
    assert "held out" in text and "F1" in text and out.is_file()
    code, text, err = run_cli(["earlywarn", "eval", "--store", store, "--predictor", str(out)], capsys)
    assert code == 0 and "precision" in text
