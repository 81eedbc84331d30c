"""The examples run end to end: a user's script through the command trainer and the same model through
a Python function, each a 3-size ladder to a law of the optimal lr and a recommendation."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = str(ROOT / "src")


@pytest.fixture
def env(monkeypatch):
    # `python` in the example's command is this interpreter, with this checkout's oasl importable
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv("PYTHONPATH", SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return dict(os.environ)


def _oasl(*args, env, cwd):
    out = subprocess.run(
        [sys.executable, "-m", "oasl", *args], capture_output=True, text=True, env=env, cwd=cwd
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_torch_script_through_the_command_trainer(tmp_path, env):
    sweep = ROOT / "examples" / "torch_script" / "sweep.yaml"
    _oasl("sweep", "run", str(sweep), "--store", "runs.db", env=env, cwd=tmp_path)
    from oasl.store import open_store

    df = open_store(tmp_path / "runs.db").to_dataframe()
    assert (df["status"] == "done").sum() == 15
    # the script's own count of non-embedding parameters equals oasl's for this GPT: no warning, same N
    assert sorted(df["n_params"].unique()) == [24736, 55536, 98624]
    _oasl("fit", "--store", "runs.db", "--out", "laws.json", "--hp", "lr", env=env, cwd=tmp_path)
    laws = json.loads((tmp_path / "laws.json").read_text())
    assert "lr" in laws["laws"]
    out = _oasl(
        "recommend",
        "--laws",
        "laws.json",
        "--params",
        "1e6",
        "--tokens",
        "2e7",
        "--optimizer",
        "adamw",
        "--format",
        "json",
        env=env,
        cwd=tmp_path,
    )
    rec = json.loads(out)
    lr = rec["items"]["lr"]
    assert 1e-4 < lr["value"] < 0.1 and lr["source"] != "default"


def test_same_ladder_through_a_python_function(tmp_path, env, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sys.path.insert(0, str(ROOT / "examples" / "python_function"))
    try:
        import run as example
    finally:
        sys.path.pop(0)
    out = example.main(["--store", str(tmp_path / "runs.db")])
    assert out["summary"].done == 15
    lr = out["recommendation"].items["lr"]
    assert 1e-4 < float(lr.value) < 0.1
