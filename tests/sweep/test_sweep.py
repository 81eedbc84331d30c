import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from oasl.config import build
from oasl.errors import ConfigError
from oasl.store import SQLiteStore
from oasl.sweep import SweepSpec, expand, load_sweep, plan, run_sweep

TINY = {
    "name": "tiny",
    "shape_defaults": {"seq_len": 32},
    "run": {"eval_interval": 10, "eval_tokens": 1024, "device": "cpu"},
    "schedule": {"name": "cosine", "warmup_frac": 0.1},
}


def tiny_sweep(**kw) -> SweepSpec:
    data = {
        **TINY,
        "ladder": {"widths": [32], "depth": 1},
        "optimizers": {"adamw": {"lr": {"log_range": [1e-3, 1e-2], "num": 2}}},
        "batch_seqs": 4,
        "tokens": 4 * 32 * 30,
    }
    data.update(kw)
    return build(SweepSpec, data)


def test_expansion_counts_and_axes():
    spec = build(
        SweepSpec,
        {
            **TINY,
            "ladder": {"widths": [32, 64], "depth": 2},
            "shapes": [{"width": 48, "depth": 1}],
            "optimizers": {
                "adamw": {
                    "lr": {"log_range": [1e-4, 1e-2], "num": 3},
                    "beta2": [0.95, 0.99],
                    "warmup_frac": [0.0, 0.1],
                },
                "sgd": {"lr": [0.1, 0.3], "momentum": 0.9},
            },
            "batch_seqs": [4, 8],
            "tokens": {"ratio": 20},
            "seeds": [0, 1],
        },
    )
    runs = expand(spec)
    assert len(runs) == 3 * (3 * 2 * 2 + 2) * 2 * 2
    assert len({r.key() for r in runs}) == len(runs)
    lrs = sorted({r.lr for r in runs if r.optimizer == "adamw"})
    assert lrs == pytest.approx([1e-4, 1e-3, 1e-2])
    assert {r.schedule.warmup_frac for r in runs if r.optimizer == "adamw"} == {0.0, 0.1}
    from oasl.models import count_params

    r = runs[0]
    assert r.tokens == int(20 * count_params(r.shape).n_params)
    assert expand(spec) == runs  # deterministic


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"bogus": 1}, "bogus: unknown key"),
        ({"optimizers": {"adamw": {"lr": []}}}, "grid is empty"),
        ({"optimizers": {"adamw": {"lr": {"log_range": [1e-3, 1e-2], "num": 0}}}}, "positive integer"),
        ({"optimizers": {"sgd": {"lr": [0.1], "beta1": [0.9]}}}, "sgd has no hyperparameter beta1"),
        ({"optimizers": {"adamz": {"lr": [0.1]}}}, "unknown optimizer 'adamz'"),
        ({"optimizers": {"adamw": {"lr": {"log_range": [-1, 1e-2], "num": 3}}}}, "bounds must be positive"),
        ({"ladder": {"widths": [-32], "depth": 1}}, "greater than 0"),
    ],
)
def test_bad_specs_give_one_clear_error(patch, message, tmp_path):
    data = {**TINY, "ladder": {"widths": [32], "depth": 1}, "optimizers": {"adamw": {"lr": [1e-3]}}}
    data.update(patch)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message) as info:
        expand(load_sweep(path))
    assert "\n" not in str(info.value)


def test_two_worker_sweep_and_skip_on_rerun(tmp_path):
    spec = tiny_sweep(
        optimizers={"adamw": {"lr": {"log_range": [1e-3, 1e-2], "num": 2}}, "sgd": {"lr": [0.3]}}, seeds=[0]
    )
    runs = expand(spec)
    db = tmp_path / "runs.db"
    s = run_sweep(runs, db, workers=2)
    assert s.done + s.diverged == 3 and s.failed == 0
    df = SQLiteStore(db).to_dataframe()
    assert sorted(df["key"]) == sorted(r.key() for r in runs)
    assert (df["final_val_loss"] < df["initial_val_loss"]).all()
    again = run_sweep(runs, db, workers=2)
    assert again.skipped == 3 and again.done == 0
    p = plan(runs, SQLiteStore(db), measure=False)
    assert p.n_todo == 0 and p.flops > 0


def test_sweep_resumes_after_sigkill(tmp_path):
    spec = {
        **TINY,
        "ladder": {"widths": [32], "depth": 1},
        "optimizers": {"adamw": {"lr": {"log_range": [1e-3, 1e-2], "num": 5}}},
        "batch_seqs": 4,
        "tokens": 4 * 32 * 40,
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    db = tmp_path / "runs.db"
    # one run at a time, so the kill lands between finished runs (a batch is written when it ends)
    cmd = [sys.executable, "-m", "oasl", "sweep", "run", str(path), "--store", str(db), "--executor", "local"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if db.exists() and sum(v == "done" for v in SQLiteStore(db).statuses().values()) >= 2:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # mid-run: the third run is in flight
    proc.wait()
    before = SQLiteStore(db).statuses()
    assert 2 <= sum(v == "done" for v in before.values()) < 5
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    runs = expand(load_sweep(path))
    df = SQLiteStore(db).to_dataframe()
    assert sorted(df["key"]) == sorted(r.key() for r in runs) and df["key"].is_unique
    assert set(df["status"]) <= {"done", "diverged"}
    assert len(SQLiteStore(db).curves()) == sum(SQLiteStore(db).curve(k).shape[0] for k in df["key"])


def test_pruning_stops_hopeless_runs_and_counts_saved_compute(tmp_path):
    spec = tiny_sweep(
        optimizers={"adamw": {"lr": [3e-3, 5e-3, 1e-5, 2e-5]}},
        pruning={"enabled": True, "checkpoints": [0.34], "margin": 0.02, "min_runs": 1},
    )
    runs = expand(spec)
    s = run_sweep(runs, tmp_path / "runs.db", pruning=spec.pruning)
    df = SQLiteStore(tmp_path / "runs.db").to_dataframe().set_index("lr")
    assert df.loc[1e-5, "status"] == "stopped" and "pruned" in df.loc[1e-5, "stop_reason"]
    assert s.stopped >= 1 and s.flops_saved > 0
    assert df.loc[5e-3, "status"] == "done"


def test_failed_runs_are_recorded_and_retried_once(tmp_path):
    spec = tiny_sweep(
        optimizers={"adamw": {"lr": [1e-3]}}, corpus={"source": "files", "paths": [str(tmp_path / "x.txt")]}
    )
    runs = expand(spec)
    db = tmp_path / "runs.db"
    s = run_sweep(runs, db)
    assert s.failed == 1 and "not a readable file" in s.errors[0]
    s2 = run_sweep(runs, db)
    assert s2.failed == 1  # retried once
    s3 = run_sweep(runs, db)
    assert s3.gave_up == 1 and s3.failed == 0
