"""A miniature of the demo and of the validation harness, end to end (tiny ladder, few steps)."""

import json
import math

import numpy as np
import pytest

from oasl.validate import load_validate, load_validation, validate
from oasl.validate.curves import card_line
from oasl.validate.demo import demo_spec
from oasl.workflows import demo as run_demo

MINI_SWEEP = {
    "name": "mini",
    "ladder": {"widths": [16, 24, 32], "depth": 1},
    "shape_defaults": {"seq_len": 32},
    "optimizers": {"adamw": {"lr": {"log_range": [2e-3, 3.2e-2], "num": 5}}},
    "batch_seqs": 8,
    "tokens": 8 * 32 * 50,
    "schedule": {"name": "cosine", "warmup_frac": 0.05},
    "run": {"eval_interval": 25, "eval_tokens": 2048, "device": "cpu"},
}


def _check(result, methods):
    assert len(result.optimizers) == 1
    ov = result.optimizers[0]
    assert ov.extrapolation_ratio >= 8
    names = [m.method for m in ov.methods]
    assert names[:2] == ["oasl", "oracle"] and set(methods) <= set(names)
    grid_losses = [g["final_val_loss"] for g in ov.oracle_grid if g["final_val_loss"] is not None]
    assert grid_losses and all(math.isfinite(v) for v in ov.oracle_losses)
    # the oracle is the best lr measured on every seed: no method's mean loss is below it
    oracle = next(m for m in ov.methods if m.method == "oracle")
    assert oracle.losses == ov.oracle_losses and oracle.regret_mean == 0
    for m in ov.methods:
        assert math.isfinite(m.lr) and m.lr > 0 and m.tuning_flops >= 0
        assert len(m.losses) == len(result.seeds) == len(m.regrets)
        if m.method not in ("oasl", "oracle"):
            assert m.verdict in ("better than oasl", "indistinguishable", "worse than oasl") or (
                len(result.seeds) == 1 and m.verdict == "one seed: no verdict"
            )
        if m.method != "mup" and all(math.isfinite(v) for v in m.losses):  # muP trains another model
            assert np.mean(m.losses) >= np.mean(ov.oracle_losses) - 1e-12, m.method
    assert ov.oracle_flops >= 3 * ov.target_run_flops * 0.99 and ov.sweep_flops > 0
    return ov


def clip_sizes(val):
    return val["optimizers"][0]["clipping"]["sizes"]


def _law_formulas(out):
    """The law of lr as laws.json, validation.json and the report's HTML name it."""
    from oasl.laws import load_laws

    laws, _ = load_laws(out / "laws.json")
    val = json.loads((out / "validation.json").read_text())
    return laws["lr"], val


def test_demo_miniature_writes_artefacts(tmp_path, capsys):
    spec = demo_spec(sweep=MINI_SWEEP, target={"width": 96})
    result, report, page = run_demo(tmp_path / "demo", workers=2, spec=spec)
    ov = _check(result, ["naive"])
    assert math.isfinite(ov.methods[0].regret_mean)
    for name in (
        "runs.db",
        "laws.json",
        "validation.json",
        "report/index.html",
        "report/optima.png",
        "report/laws.png",
        "report/validation.png",
    ):
        assert (tmp_path / "demo" / name).is_file(), name
    # one law: laws.json, validation.json and the report name the same law of lr, and `oasl fit` on the
    # store (sweep runs only, the default) writes it again
    law, val = _law_formulas(tmp_path / "demo")
    assert val["law_formula"] == law.formula() == result.law_formula
    assert val["law"]["form"] == law.form and set(val) >= {"noise_floor", "law", "seeds"}
    for m in val["optimizers"][0]["methods"]:
        assert {"regret_ci", "verdict", "regrets"} <= set(m)
    # the cost-to-regret curves, read off the target's runs: the law at 0, the searches at 1..8, the
    # refinement at 1..4 (every point flagged replayed or trained), the card's line and the plot
    curves = val["optimizers"][0]["curves"]
    assert [p["k"] for p in curves["random"]] == list(range(1, 9)) == [p["k"] for p in curves["gp"]]
    assert [p["k"] for p in curves["oasl-refine"]] == [1, 2, 3, 4] and curves["oasl"][0]["k"] == 0
    assert {p["source"] for pts in curves.values() for p in pts} <= {"trained", "replayed"}
    assert ov.cost_to_regret["law"] == pytest.approx(ov.methods[0].regret_mean)
    # the ladder's own check of its zero-run point (largest rung held out), on the card's line
    check = val["optimizers"][0]["cost_to_regret"]["zero_run_check"]
    assert check["prefer"] in ("centre", "risk")
    if len(MINI_SWEEP["ladder"]["widths"]) >= 3:
        assert check["held_out_n_params"] == max(s["n_params"] for s in clip_sizes(val))
    assert "Zero-run point" in card_line(ov.cost_to_regret)
    assert (tmp_path / "demo" / "report" / "cost_regret.png").is_file()
    # the clipping regime: the ladder's gradient norms per size, extrapolated and measured at the target
    clip = val["optimizers"][0]["clipping"]
    assert len(clip["sizes"]) == len(MINI_SWEEP["ladder"]["widths"]) and clip["grad_clip"] == 1.0
    assert all(s["median_grad_norm"] > 0 for s in clip["sizes"]) and clip["measured_norm"] > 0
    from oasl.laws import load_laws
    from oasl.testing import run_cli

    refit = tmp_path / "refit.json"
    code, _, err = run_cli(
        ["fit", "--store", str(tmp_path / "demo" / "runs.db"), "--out", str(refit)], capsys
    )
    assert code == 0, err
    assert load_laws(refit)[0]["lr"].formula() == law.formula()
    again = load_validation(tmp_path / "demo" / "validation.json")
    assert again.optimizers[0].recommended_lr == pytest.approx(ov.recommended_lr)
    html = page.read_text()
    assert f"{ov.recommended_lr:.4g}" in html and "data:image/png;base64" in html
    assert "The law alone: " in html and "Cost to regret" in html
    for sub in law.laws_.values():  # the report's law table shows the validated law
        assert sub.formula() in html
    # resuming re-trains nothing: every run is already in the store
    from oasl.store import open_store

    n = len(open_store(tmp_path / "demo" / "runs.db").to_dataframe())
    run_demo(tmp_path / "demo", workers=1, spec=spec)
    assert len(open_store(tmp_path / "demo" / "runs.db").to_dataframe()) == n


def test_harness_with_baselines_from_yaml(tmp_path):
    import yaml

    path = tmp_path / "v.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "sweep": MINI_SWEEP,
                "target": {"width": 96},
                "seeds": [0],
                "oracle_num": 4,
                "oracle_max_extend": 0,
                "oracle_refine": False,  # refinement is tested on a synthetic landscape (test_oracle.py)
                "baselines": ["naive", "defaults", "step-law", "random:2", "tpe:2"],
            }
        )
    )
    pytest.importorskip("optuna")
    result = validate(load_validate(path), tmp_path / "runs.db", workers=2, out=tmp_path)
    ov = _check(result, ["naive", "defaults", "step-law", "random:2", "tpe:2"])
    assert ov.efficiency["oasl_spend_flops"] > 0
    assert (tmp_path / "validation.json").is_file()
    assert set(result.table()["method"]) >= {"oasl", "oracle", "tpe:2"}
    # random search is also scored over draws of the search, read off the runs at the target; the oracle
    # is the best lr trained, so no draw can do better than it
    rnd = {m.method: m for m in ov.methods}
    e = rnd["random:2"].expected
    assert e["k"] == 2 and 0.0 <= e["range90"][0] <= e["mean"] <= e["range90"][1]
    assert all(not m.expected for name, m in rnd.items() if name != "random:2")
    from oasl.validate.results import load_validation

    # and the regret at the ends of oasl's interval, read off the same runs
    assert [e["lr"] for e in ov.interval_regret.values()] == list(ov.recommended_interval)
    assert all(e["regret"] >= 0.0 for e in ov.interval_regret.values())
    back = load_validation(tmp_path / "validation.json")
    assert next(m for o in back.optimizers for m in o.methods if m.method == "random:2").expected == e


def test_target_must_extrapolate(tmp_path):
    from oasl.errors import SweepError

    spec = demo_spec(sweep=MINI_SWEEP, target={"width": 48})
    with pytest.raises(SweepError, match="enlarge `target`"):
        validate(spec, tmp_path / "runs.db")
