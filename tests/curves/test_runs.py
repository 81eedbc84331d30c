"""Schedule laws on oasl's own runs: curves out of a store, the `oasl schedules` commands, bad input."""

import json

import numpy as np
import pytest

from oasl.config import build
from oasl.curves import MultiPowerLaw
from oasl.curves.io import load_schedule_law
from oasl.curves.ranking import candidate_schedules, rank_candidates
from oasl.curves.runs import (
    schedule_label,
    store_curves,
)
from oasl.errors import ConfigError, DataError
from oasl.optim.schedules import lr_curve, parse_schedule
from oasl.store import open_store
from oasl.sweep import SweepSpec, expand, run_sweep
from oasl.testing import run_cli

SCHEDS = ["constant", "cosine", "wsd:0.3", "linear"]


@pytest.fixture(scope="module")
def sched_store(tmp_path_factory):
    """Four schedules of one tiny model (150 steps, same data order) plus one run of a second width."""
    db = tmp_path_factory.mktemp("sched") / "runs.db"
    spec = build(
        SweepSpec,
        {
            "shapes": [{"width": 32, "depth": 1, "seq_len": 32}],
            "optimizers": {"adamw": {"lr": [4e-3]}},
            "schedules": SCHEDS,
            "schedule": {"name": "cosine", "warmup_frac": 0.05},
            "batch_seqs": 8,
            "tokens": 8 * 32 * 150,
            "run": {"eval_interval": 10, "eval_tokens": 2048, "device": "cpu"},
        },
    )
    runs = expand(spec)
    other = build(
        SweepSpec,
        {
            **spec.model_dump(),
            "shapes": [{"width": 16, "depth": 1, "seq_len": 32}],
            "schedules": ["constant"],
        },
    )
    run_sweep(runs + expand(other), db, workers=1)
    return str(db)


def test_schedules_axis_and_labels():
    assert [schedule_label(parse_schedule(s)) for s in SCHEDS] == SCHEDS
    assert schedule_label(parse_schedule("cosine:0")) == "cosine:0"
    assert schedule_label(parse_schedule("cosine:0.1")) == "cosine"


def test_store_curves_rebuild_schedule_and_bin(sched_store):
    rcs = store_curves(sched_store, {"width": 32}, source="train")
    assert sorted(rc.schedule for rc in rcs) == sorted(SCHEDS)
    st = open_store(sched_store)
    for rc in rcs:
        spec = st.get(rc.key)["spec"]
        assert rc.steps == 150 and len(rc.curve.lrs) == 150
        # the LR array is the run's own schedule, and matches what training logged
        logged = st.curve(rc.key)["lr"].to_numpy()
        np.testing.assert_allclose(rc.curve.lrs, logged, rtol=1e-6)
        assert rc.curve.lrs.max() == pytest.approx(spec["lr"])
        # binned: fewer points than steps, last point near the end, every loss a mean of logged losses
        assert 8 <= len(rc.curve) < 150 and rc.curve.steps[-1] >= 145
        raw = st.curve(rc.key)["train_loss"].to_numpy()
        assert raw.min() <= rc.curve.loss.min() and rc.curve.loss.max() <= raw.max()
    assert len(store_curves(sched_store, {"width": 32, "schedule": "wsd"})) == 1
    assert len(store_curves(sched_store, {"width": 32, "schedule": "constant,wsd"})) == 2
    assert len(store_curves(sched_store, {"width": [32, 16], "schedule": "constant"})) == 2
    assert [rc.key for rc in store_curves(sched_store, keys=[rcs[0].key])] == [rcs[0].key]
    val = store_curves(sched_store, {"width": 32})  # auto: 15 evaluations per run are enough
    assert all(rc.source == "val" and len(rc.curve) == 15 for rc in val)
    assert all(rc.curve.loss[-1] == pytest.approx(rc.final_val_loss) for rc in val)
    assert store_curves(sched_store, {"width": 32}, min_points=20)[0].source == "train"


def test_law_fitted_on_three_schedules_predicts_the_fourth(sched_store):
    rcs = {rc.schedule: rc for rc in store_curves(sched_store, {"width": 32})}
    law = MultiPowerLaw(n_boot=5).fit([rcs[s].curve for s in ("constant", "cosine", "wsd:0.3")])
    held = rcs["linear"].curve
    err = law.score(held)
    assert err["mean_rel"] < 0.015 and err["final_rel"] < 0.02
    # At this tiny scale and lr, long decays cost more LR area than their annealing gains back: the
    # observed two best schedules are constant and the short WSD decay, and the law ranks them so.
    rk = rank_candidates(law, list(rcs), 150, 4e-3, warmup_steps=8)
    observed = sorted(rcs, key=lambda s: rcs[s].final_val_loss)
    assert set(rk["schedule"].iloc[:2]) == set(observed[:2])
    assert (rk["gap_to_best"] >= 0).all() and rk["gap_to_best"].iloc[0] == 0
    tuned = rank_candidates(law, ["wsd:0.3"], 150, 4e-3, warmup_steps=8, tune=True)
    assert tuned["tuned"].sum() == 1
    # the tuned WSD fraction is the best of its grid by the law's own prediction
    best = tuned[tuned["tuned"]]["final_loss"].iloc[0]
    for frac in (0.05, 0.2, 0.5):
        lrs = candidate_schedules([f"wsd:{frac}"], 150, 4e-3, warmup_steps=8)[f"wsd:{frac}"]
        assert best <= law.predict(lrs, [149])[0] + 1e-12


def test_candidate_schedules_match_training_schedule():
    got = candidate_schedules(["wsd:0.2"], 100, 1e-3, warmup_frac=0.1)["wsd:0.2"]
    want = lr_curve(parse_schedule("wsd:0.2", warmup_frac=0.1), 100, 1e-3)
    np.testing.assert_allclose(got, want)
    with pytest.raises(ConfigError, match="cosin"):
        candidate_schedules(["cosin"], 100, 1e-3)
    with pytest.raises(ConfigError, match="too short"):
        candidate_schedules(["cosine"], 1, 1e-3)


def test_cli_fit_predict_rank(sched_store, tmp_path, capsys):
    law_file = tmp_path / "law.json"
    code, out, err = run_cli(
        [
            "schedules",
            "fit",
            "--store",
            sched_store,
            "--where",
            "width=32",
            "--boot",
            "4",
            "--out",
            str(law_file),
        ],
        capsys,
    )
    assert code == 0, err
    assert "4 curves" in out and law_file.is_file()
    law, ctx = load_schedule_law(law_file)
    assert ctx["steps"] == 150 and ctx["lr"] == pytest.approx(4e-3) and len(law.boot_thetas_) == 4
    d = json.loads(law_file.read_text())
    assert d["law"]["kind"] == "multi_power"

    png = tmp_path / "p.png"
    code, out, err = run_cli(
        ["schedules", "predict", "--law", str(law_file), "--schedule", "cosine", "--plot", str(png)], capsys
    )
    assert code == 0, err
    assert "predicted final loss" in out and "interval" in out and png.stat().st_size > 5000
    final = float(out.split("predicted final loss")[1].split()[0])
    obs = {rc.schedule: rc for rc in store_curves(sched_store, {"width": 32})}["cosine"].curve.loss[-1]
    assert abs(final - obs) / obs < 0.03

    code, out, err = run_cli(
        [
            "schedules",
            "rank",
            "--law",
            str(law_file),
            "--candidates",
            "constant,cosine,wsd:0.2",
            "--tune",
            "--plot",
            str(tmp_path / "r.png"),
        ],
        capsys,
    )
    assert code == 0, err
    for name in ("constant", "cosine", "wsd:0.2", "interval"):
        assert name in out
    assert (tmp_path / "r.png").is_file()

    # the report gains the schedule section: fit figure, per-curve errors, ranking figure and table
    code, out, err = run_cli(
        ["report", "--store", sched_store, "--schedule-law", str(law_file), "--out", str(tmp_path / "rep")],
        capsys,
    )
    assert code == 0, err
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "observed vs predicted" in html and "ranking by predicted final loss" in html
    for alt in ("observed vs predicted loss curves", "predicted loss curves per schedule"):
        assert f'<img alt="{alt}" src="data:image/png;base64,' in html
    for name in ("wsd:0.1", "cosine:0", "linear lr=0.004", "final_loss_lo"):
        assert name in html


def test_cli_bad_input(sched_store, tmp_path, capsys):
    code, _, err = run_cli(
        ["schedules", "fit", "--store", sched_store, "--out", str(tmp_path / "x.json")], capsys
    )
    assert code == 2 and "2 model sizes" in err and "--scaled" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(["schedules", "fit", "--store", sched_store, "--where", "colour=red"], capsys)
    assert code == 2 and "colour" in err
    code, _, err = run_cli(["schedules", "fit", "--store", sched_store, "--law", "exp"], capsys)
    assert code == 2 and "mpl" in err
    code, _, err = run_cli(
        [
            "schedules",
            "rank",
            "--store",
            sched_store,
            "--where",
            "width=32",
            "--candidates",
            "cosine,warmdown",
        ],
        capsys,
    )
    assert code == 2 and "warmdown" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(
        ["schedules", "predict", "--law", str(tmp_path / "none.json"), "--schedule", "cosine"], capsys
    )
    assert code == 2 and "oasl schedules fit" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, _, err = run_cli(["schedules", "predict", "--law", str(bad), "--schedule", "cosine"], capsys)
    assert code == 2 and "schedule-law file" in err and "not valid JSON" in err
    with pytest.raises(DataError, match="no finished"):
        store_curves(sched_store, {"width": 999})


def test_scaled_fit_from_two_sizes_needs_both(sched_store, tmp_path, capsys):
    # one curve of the second size is enough for the CLI to fit across sizes with --scaled
    code, out, err = run_cli(
        [
            "schedules",
            "fit",
            "--store",
            sched_store,
            "--scaled",
            "--boot",
            "0",
            "--out",
            str(tmp_path / "s.json"),
        ],
        capsys,
    )
    assert code == 0, err
    assert "slopes" in out
    law, ctx = load_schedule_law(tmp_path / "s.json")
    assert len(ctx["sizes"]) == 2
    lrs = candidate_schedules(["cosine"], 150, 4e-3, warmup_steps=8)["cosine"]
    small, big = (law.predict_final(lrs, n_params=n) for n in ctx["sizes"])
    assert np.isfinite(small) and np.isfinite(big)
