"""The command trainer: a ladder through a user's script to the store, its faults stored as failed runs,
one error line before any run for a bad template, the child's process group ended with oasl."""

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from oasl.errors import ConfigError
from oasl.store import open_store
from oasl.sweep import expand, load_sweep, run_sweep

HERE = Path(__file__).parent
SRC = str(Path(__file__).resolve().parents[2] / "src")


def _sweep(tmp_path, command, **extra) -> Path:
    spec = {
        "name": "cmd",
        "trainer": {"command": command, "version": "v1", **extra},
        "ladder": [{"name": "s", "d_model": 32, "n_layers": 2}, {"name": "m", "d_model": 64, "n_layers": 2}],
        "optimizers": {"adamw": {"lr": [1e-3, 3e-3]}},
        "tokens": 40 * 8 * 128,
        "batch_seqs": 8,
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(json.dumps(spec))
    (tmp_path / "fake_train.py").write_text((HERE / "fake_train.py").read_text())
    return path


@pytest.fixture(autouse=True)
def _pythonpath(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))


def test_command_ladder_reaches_the_store_with_reported_n_params(tmp_path):
    spec = load_sweep(
        _sweep(tmp_path, f"{sys.executable} fake_train.py --lr {{lr}} --steps {{steps}} --width {{d_model}}")
    )
    runs = expand(spec)
    assert len(runs) == 4 and all(r.trainer is not None and r.model["name"] in "sm" for r in runs)
    summary = run_sweep(runs, tmp_path / "s.db")
    assert summary.done == 4 and summary.failed == 0
    df = open_store(tmp_path / "s.db").to_dataframe()
    # n_params is what the script reported (12 w^2 L), not oasl's count of its own GPT
    assert sorted(df["n_params"].unique()) == [12 * 32**2 * 2, 12 * 64**2 * 2]
    assert df["final_val_loss"].notna().all()
    # the curve reported through the file is stored
    curve = open_store(tmp_path / "s.db").curve(runs[0].key())
    assert list(curve["step"]) == [10, 20, 30, 40]
    # resume: nothing trained twice
    again = run_sweep(runs, tmp_path / "s.db")
    assert again.skipped == 4 and again.done == 0


def test_key_holds_trainer_identity_and_builtin_keys_are_unchanged(tmp_path):
    from oasl.config import RunSpec

    # keys computed by main before trainers existed: old stores resume
    a = RunSpec(shape={"width": 32, "depth": 2}, lr=1e-3, tokens=100000)
    b = RunSpec(
        shape={"width": 64, "depth": 3, "seq_len": 64},
        parametrization="mup",
        lr=3e-3,
        tokens=200000,
        hps={"beta2": 0.99},
        batch_seqs=8,
        gns=True,
        seed=3,
    )
    assert (a.key(), b.key()) == ("0cfda32b0677ccf8", "6dd6544c39a5a655")
    path = _sweep(tmp_path, "python fake_train.py --lr {lr} --steps {steps} --width {d_model}")
    k1 = expand(load_sweep(path))[0].key()
    spec = json.loads(path.read_text())
    spec["trainer"]["version"] = "v2"
    path.write_text(json.dumps(spec))
    k2 = expand(load_sweep(path))[0].key()
    spec["trainer"]["timeout_s"] = 99  # not part of the identity
    path.write_text(json.dumps(spec))
    k3 = expand(load_sweep(path))[0].key()
    assert k1 != k2 == k3


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("crash", "exited with code 3"),
        ("silent", "wrote nothing"),
        ("nofinal", "no final loss"),
        ("nan", "final loss of nan"),
        ("badjson", "not JSON"),
    ],
)
def test_faults_are_failed_runs_with_reason_and_stderr(tmp_path, mode, reason):
    cmd = f"{sys.executable} fake_train.py --lr {{lr}} --steps {{steps}} --width {{d_model}} --mode {mode}"
    runs = expand(load_sweep(_sweep(tmp_path, cmd)))[:2]
    summary = run_sweep(runs, tmp_path / "s.db")
    assert summary.failed == 2 and summary.done == 0  # the sweep went on past the first
    assert reason in summary.errors[0]
    row = open_store(tmp_path / "s.db").get(runs[0].key())
    assert row["status"] == "failed" and reason in row["error"]
    if mode == "crash":
        assert "bad thing in the user's script" in row["error"]


def test_timeout_kills_and_fails(tmp_path):
    cmd = f"{sys.executable} fake_train.py --lr {{lr}} --steps {{steps}} --width {{d_model}} --mode sleep"
    runs = expand(load_sweep(_sweep(tmp_path, cmd, timeout_s=1)))[:1]
    t0 = time.monotonic()
    summary = run_sweep(runs, tmp_path / "s.db")
    assert time.monotonic() - t0 < 15
    assert summary.failed == 1 and "timeout_s" in summary.errors[0]


def test_unknown_template_field_is_one_error_before_any_run(tmp_path):
    runs = expand(load_sweep(_sweep(tmp_path, "python fake_train.py --lr {lr} --lr2 {learning_rate}")))
    with pytest.raises(ConfigError, match=r"\{learning_rate\}.*use one of .*batch_seqs"):
        run_sweep(runs, tmp_path / "s.db")
    assert not (tmp_path / "s.db").exists() or open_store(tmp_path / "s.db").statuses() == {}


def test_cli_prints_one_line_for_an_unknown_field(tmp_path):
    path = _sweep(tmp_path, "python fake_train.py --lr {lr} --x {nope}")
    out = subprocess.run(
        [sys.executable, "-m", "oasl", "sweep", "run", str(path), "--store", str(tmp_path / "s.db")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "{nope}" in out.stderr and "Traceback" not in out.stderr


def test_killing_oasl_kills_the_command_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    script = tmp_path / "hang.py"
    script.write_text(
        f"import os, time\nopen({str(pidfile)!r}, 'w').write(str(os.getpid()))\ntime.sleep(120)\n"
    )
    path = _sweep(tmp_path, f"{sys.executable} hang.py --lr {{lr}}")
    driver = textwrap.dedent(
        f"""
        from oasl.sweep import expand, load_sweep, run_sweep
        run_sweep(expand(load_sweep({str(path)!r}))[:1], {str(tmp_path / "s.db")!r})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", driver])
    for _ in range(200):
        if pidfile.exists() and pidfile.read_text():
            break
        time.sleep(0.1)
    child = int(pidfile.read_text())
    os.kill(proc.pid, signal.SIGKILL)  # no clean-up in oasl: the watchdog ends the group
    proc.wait()
    for _ in range(50):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the command outlived the sweep that started it")


def test_command_on_ray_workers(tmp_path):
    pytest.importorskip(
        "ray", reason="ray is not installed: `pip install 'oasl[ray]'` to test the Ray executor"
    )
    cmd = f"{sys.executable} fake_train.py --lr {{lr}} --steps {{steps}} --width {{d_model}}"
    runs = expand(load_sweep(_sweep(tmp_path, cmd)))
    summary = run_sweep(runs, tmp_path / "s.db", executor="ray", workers=2)
    assert summary.executor == "ray" and summary.done == 4
    df = open_store(tmp_path / "s.db").to_dataframe()
    assert sorted(df["n_params"].unique()) == [12 * 32**2 * 2, 12 * 64**2 * 2]


def test_children_left_behind_are_ended_with_the_run(tmp_path):
    pidfile = tmp_path / "orphan.pid"
    script = tmp_path / "leaves_child.py"
    script.write_text(
        "import subprocess, sys\n"
        f"p = subprocess.Popen(['sleep', '100'])\nopen({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "from oasl.integrations import reporter\nreporter.final(loss=1.0, n_params=10)\n"
    )
    runs = expand(load_sweep(_sweep(tmp_path, f"{sys.executable} leaves_child.py {{lr}}")))[:1]
    assert run_sweep(runs, tmp_path / "s.db").done == 1
    orphan = int(pidfile.read_text())
    time.sleep(0.2)
    alive = _alive(orphan)
    if alive:
        os.kill(orphan, signal.SIGKILL)
    assert not alive


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie awaiting its reaper counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_script_that_only_prints_is_read_through_loss_pattern(tmp_path):
    base = f"{sys.executable} fake_train.py --lr {{lr}} --steps {{steps}} --width {{d_model}}"
    pattern = r"step (?P<step>\d+): train loss [0-9.]+, val loss (?P<loss>[0-9.]+)"
    path = _sweep(tmp_path, base + " --mode print", loss_pattern=pattern)
    runs = expand(load_sweep(path))
    summary = run_sweep(runs, tmp_path / "s.db")
    assert summary.done == 4 and summary.failed == 0
    store = open_store(tmp_path / "s.db")
    df = store.to_dataframe().set_index("key")
    row = df.loc[runs[0].key()]
    n = 12 * 32**2 * 2
    want = 3 + (math.log10(runs[0].lr) + 2.5) ** 2 + 100 / n**0.3 / 40**0.2  # the last val loss printed
    assert row["final_val_loss"] == pytest.approx(want, abs=1e-4)
    assert list(store.curve(runs[0].key())["step"]) == [10, 20, 30, 40]  # steps became the curve
    # no n_params reported: oasl's own count of the rung (it names d_model and n_layers)
    from oasl.models import count_params

    assert row["n_params"] == count_params(runs[0].shape).n_params != n
    # the pattern is part of the run's identity; a report-file trainer's keys are unchanged by the field
    plain = expand(load_sweep(_sweep(tmp_path, base + " --mode print")))[0].key()
    assert plain != runs[0].key()


def test_loss_pattern_reads_stderr_logging_and_the_rungs_n_params(tmp_path):
    cmd = f"{sys.executable} fake_train.py --lr {{lr}} --steps {{steps}} --width {{d_model}} --mode logging"
    path = _sweep(tmp_path, cmd, loss_pattern=r"val_loss=(?P<loss>\S+)")
    spec = json.loads(path.read_text())
    spec["ladder"] = [{"name": "s", "d_model": 32, "n_layers": 2, "n_params": 12345}]
    path.write_text(json.dumps(spec))
    runs = expand(load_sweep(path))
    with pytest.warns(UserWarning, match=r"n_params is 12,345 \(reported, or the ladder rung's\)"):
        summary = run_sweep(runs, tmp_path / "s.db")  # far from oasl's count of that shape: a note
    assert summary.done == 2
    row = open_store(tmp_path / "s.db").to_dataframe().set_index("key").loc[runs[0].key()]
    assert row["n_params"] == 12345 and math.isfinite(row["final_val_loss"])


def test_loss_pattern_faults_are_one_clear_line(tmp_path):
    cmd = f"{sys.executable} fake_train.py --lr {{lr}} --steps {{steps}} --width {{d_model}} --mode print"
    runs = expand(load_sweep(_sweep(tmp_path, cmd, loss_pattern=r"validation loss (?P<loss>\S+)")))[:1]
    summary = run_sweep(runs, tmp_path / "s.db")
    assert summary.failed == 1 and "matched trainer.loss_pattern" in summary.errors[0]
    row = open_store(tmp_path / "s.db").get(runs[0].key())
    assert "val loss" in row["error"]  # the output's tail is kept, to compare the pattern with
    with pytest.raises(ConfigError, match="no group named loss"):
        load_sweep(_sweep(tmp_path, cmd, loss_pattern=r"val loss ([0-9.]+)"))
    with pytest.raises(ConfigError, match="not a regular expression"):
        load_sweep(_sweep(tmp_path, cmd, loss_pattern=r"val loss (?P<loss>[0-9.]+"))
