"""A miniature of the demo and of the validation harness, end to end (tiny ladder, few steps)."""

import json
import math

import pytest

from oasl.validate import load_validate
from oasl.validate.demo import demo_spec, run_demo
from oasl.validate.harness import load_validation, validate

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
    # the oracle (the better of the refined optimum and the grid's best run, on the same seed) is no
    # worse than any run at the target
    assert min(ov.oracle_losses) <= min(grid_losses) + 1e-12
    others = [v for m in ov.methods for v in m.losses if math.isfinite(v) and m.method != "oracle"]
    assert (
        ov.methods[1].losses == ov.oracle_losses and min(ov.oracle_losses) <= min(grid_losses + others) + 0.05
    )
    assert ov.oracle_flops >= 3 * ov.target_run_flops * 0.99 and ov.sweep_flops > 0
    for m in ov.methods:
        assert math.isfinite(m.lr) and m.lr > 0 and m.tuning_flops >= 0
    return ov


def test_demo_miniature_writes_artefacts(tmp_path):
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
    laws = json.loads((tmp_path / "demo" / "laws.json").read_text())["laws"]
    assert "lr" in laws
    again = load_validation(tmp_path / "demo" / "validation.json")
    assert again.optimizers[0].recommended_lr == pytest.approx(ov.recommended_lr)
    html = page.read_text()
    assert f"{ov.recommended_lr:.4g}" in html and "data:image/png;base64" in html
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


def test_target_must_extrapolate(tmp_path):
    from oasl.errors import SweepError

    spec = demo_spec(sweep=MINI_SWEEP, target={"width": 48})
    with pytest.raises(SweepError, match="enlarge `target`"):
        validate(spec, tmp_path / "runs.db")


def test_lr_law_falls_back_to_a_constant_without_a_trend():
    import numpy as np
    import pandas as pd

    from oasl.validate.harness import fit_lr_law

    n = np.array([2e4, 4e4, 8e4, 1.6e5])
    trend = pd.DataFrame(
        {"n_params": n, "tokens": 1e6, "opt": 3.0 * n**-0.5 * np.exp([0.02, -0.02, 0.01, -0.01])}
    )
    law = fit_lr_law(trend, ("N",))
    assert law.kind == "power" and law.exponents_["N"] == pytest.approx(-0.5, abs=0.05)
    flat = trend.assign(opt=0.1 * np.exp([0.2, -0.15, 0.1, -0.1]))
    const = fit_lr_law(flat, ("N",))
    assert const.kind == "constant"
    assert const.predict(pd.DataFrame({"N": [1e7]}))[0] == pytest.approx(
        0.1 * np.exp(np.mean([0.2, -0.15, 0.1, -0.1]))
    )
