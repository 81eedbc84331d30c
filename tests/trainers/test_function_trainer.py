"""The function trainer: trial.params, report() feeding pruning, metrics into the store, faults."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from oasl.errors import ConfigError
from oasl.store import open_store
from oasl.sweep import Pruning, SweepSpec, expand, run_sweep

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import fake_fn  # noqa: E402


def _spec(**extra) -> SweepSpec:
    return SweepSpec.model_validate(
        {
            "name": "fn",
            "trainer": {"function": "fake_fn:quadratic", "version": "1"},
            "ladder": [
                {"name": "s", "d_model": 32, "n_layers": 2},
                {"name": "m", "d_model": 64, "n_layers": 2},
            ],
            "optimizers": {"adamw": {"lr": {"log_range": [1e-4, 1e-1], "num": 5}}},
            "tokens": 40 * 8 * 128,
            "batch_seqs": 8,
            **extra,
        }
    )


def test_function_by_name_with_pruning_from_reported_curves(tmp_path):
    runs = expand(_spec())
    summary = run_sweep(runs, tmp_path / "s.db", pruning=Pruning(enabled=True, checkpoints=(0.25, 0.5)))
    assert summary.done + summary.stopped == 10 and summary.failed == 0
    assert summary.stopped >= 4  # the far lrs are stopped from the curves the function reported
    df = open_store(tmp_path / "s.db").to_dataframe()
    done = df[df["status"] == "done"]
    assert set(done["n_params"]) == {12 * 32**2 * 2, 12 * 64**2 * 2}
    assert (done["my_metric"] == 1.5).all()  # extra metrics are kept beside the run
    stopped = df[df["status"] == "stopped"]
    assert stopped["stop_reason"].str.contains("pruned").all()


def test_callable_object_runs_in_process_when_not_importable(tmp_path):
    # runs with the rung's model fields but no trainer yet: trainer= names it
    runs = [r.model_copy(update={"trainer": None}) for r in expand(_spec())[:2]]
    seen = []

    def local_train(trial):  # a closure: pool workers could not import it
        seen.append(trial.params["lr"])
        return fake_fn.quadratic(trial)

    summary = run_sweep(runs, tmp_path / "s.db", trainer=local_train, trainer_version="a", workers=2)
    assert summary.done == 2 and len(seen) == 2
    assert any("cannot be imported by other processes" in n for n in summary.notes)
    keys = {r.key() for r in runs}
    stored = set(open_store(tmp_path / "s.db").statuses())
    assert stored.isdisjoint(keys)  # the trainer's identity is in the key: not the built-in runs' keys


def test_function_in_a_pool_of_workers(tmp_path):
    summary = run_sweep(expand(_spec())[:4], tmp_path / "s.db", workers=2, executor="local")
    assert summary.done == 4


def test_diverged_and_empty_functions(tmp_path):
    runs = expand(_spec(trainer={"function": "fake_fn:diverges"}))[:1]
    assert run_sweep(runs, tmp_path / "a.db").diverged == 1
    runs = expand(_spec(trainer={"function": "fake_fn:returns_nothing"}))[:1]
    s = run_sweep(runs, tmp_path / "b.db")
    assert s.failed == 1 and "no final loss" in s.errors[0]


def test_unimportable_function_is_one_error_before_any_run(tmp_path):
    runs = expand(_spec(trainer={"function": "no_such_pkg.mod:train"}))
    with pytest.raises(ConfigError, match="cannot import module 'no_such_pkg.mod'"):
        run_sweep(runs, tmp_path / "s.db")
    runs = expand(_spec(trainer={"function": "fake_fn:nope"}))
    with pytest.raises(ConfigError, match="has no 'nope'"):
        run_sweep(runs, tmp_path / "s.db")


def test_rung_without_width_needs_n_params_for_a_token_ratio():
    spec = _spec(ladder=[{"name": "x", "hidden": 8}], tokens={"ratio": 20})
    with pytest.raises(ConfigError, match="add `n_params:` to the rung"):
        expand(spec)
    runs = expand(_spec(ladder=[{"name": "x", "hidden": 8, "n_params": 1000}], tokens={"ratio": 2048}))
    assert runs[0].tokens == 2048 * 1000


def test_reporter_imports_fast_without_torch_or_numpy():
    src = str(Path(__file__).resolve().parents[2] / "src")
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "from oasl.integrations import reporter"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": src},
        check=True,
    )
    mods = [line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if "|" in line]
    assert not [m for m in mods if m.split(".")[0] in ("torch", "numpy", "pandas", "pydantic")]
    cumulative_us = [int(line.split("|")[1]) for line in out.stderr.splitlines()[1:] if "|" in line]
    assert max(cumulative_us) < 500_000


def test_reporter_writes_what_the_command_trainer_reads(tmp_path, monkeypatch):
    from oasl.integrations import reporter

    monkeypatch.setenv("OASL_REPORT_FILE", str(tmp_path / "r.jsonl"))
    assert reporter.log(step=1, loss=2.5, tokens=10) is False
    reporter.final(loss=2.0, n_params=7, tokens=10, acc=0.5)
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert lines == [
        {"step": 1, "loss": 2.5, "tokens": 10},
        {"final": True, "loss": 2.0, "n_params": 7, "tokens": 10, "acc": 0.5},
    ]


def test_early_warning_reads_the_reported_curves(tmp_path):
    from oasl.sweep.spec import EarlyWarn
    from oasl.train.earlywarn import FEATURES

    # a predictor that flags every run (intercept +10): what is tested is that the function's reported,
    # sparse curve reaches the early warning and stops the run there
    k = len(FEATURES)
    pred = {
        "kind": "oasl-early-warning",
        "frac": 0.25,
        "threshold": 0.5,
        "far": 0.05,
        "l2": 1.0,
        "features": list(FEATURES),
        "mean": [0.0] * k,
        "scale": [1.0] * k,
        "coef": [0.0] * k,
        "intercept": 10.0,
        "impute": [0.0] * k,
        "n_train": 10,
        "n_pos": 5,
    }
    (tmp_path / "ew.json").write_text(json.dumps(pred))
    runs = expand(_spec())[:2]
    s = run_sweep(runs, tmp_path / "s.db", early_warn=EarlyWarn(predictor=str(tmp_path / "ew.json")))
    assert s.stopped == 2
    df = open_store(tmp_path / "s.db").to_dataframe()
    assert df["stop_reason"].str.contains("early warning at step 10/40").all()
    assert (df["steps_done"] == 10).all()
