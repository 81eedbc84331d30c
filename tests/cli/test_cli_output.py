"""What the CLI prints without a terminal: `oasl runs` in 80 columns, plain progress lines, no source tags."""

import os
import re
import subprocess
import sys
import time

import numpy as np
import pandas as pd
from rich.console import Console

from oasl.cli.common import PlainProgress
from oasl.store import open_store
from oasl.testing import run_cli


def _store(tmp_path, n=66):
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "optimizer": rng.choice(["adamw", "adafactor", "sgd"], n),
            "n_params": rng.choice([12384.0, 1.2345e9], n),
            "width": 1024,
            "depth": 12,
            "tokens": 2.5e11,
            "lr": 10 ** rng.uniform(-4, -1, n),
            "seed": np.arange(n),
            "final_val_loss": rng.uniform(2, 4, n),
        }
    )
    df.loc[3, "lr"] = np.nan  # the kind of row `train --lr inf` used to leave
    db = tmp_path / "runs.db"
    open_store(db).import_frame(df)
    return db


def test_runs_fits_80_columns_and_says_how_many_it_shows(tmp_path, capsys):
    db = _store(tmp_path)
    code, out, _ = run_cli(["runs", "--store", str(db)], capsys)
    assert code == 0
    lines = out.splitlines()
    assert max(len(line) for line in lines if not line.startswith("showing")) <= 80 and "…" not in out
    assert "showing 50 of 66 runs" in out and "--limit 0" in out
    header = next(line for line in lines if "status" in line)
    assert header.split() == ["key", "status", "optimizer", "shape", "N", "lr", "tokens", "loss"]
    assert "w1024d12" in out and "1.23e9" in out
    code, out, _ = run_cli(["runs", "--store", str(db), "--limit", "0", "--all"], capsys)
    assert "showing 66 of 66 runs" in out and "seed" in out and "source" in out


def test_runs_drop_removes_matching_rows_after_confirmation(tmp_path, capsys, monkeypatch):
    db = _store(tmp_path)
    store = open_store(db)
    code, out, _ = run_cli(["runs", "drop", "--where", "lr=nan", "--store", str(db), "--yes"], capsys)
    assert code == 0 and "dropped 1 of 66 runs" in out and "65 left" in out
    assert len(store.to_dataframe()) == 65 and store.to_dataframe()["lr"].notna().all()
    # without --yes it asks, and "n" keeps everything
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("n\n"))
    code, out, _ = run_cli(["runs", "drop", "--where", "optimizer=sgd,adafactor", "--store", str(db)], capsys)
    n_match = int(re.search(r"drop these (\d+) of 65 runs", out).group(1))
    assert n_match > 0 and "nothing dropped" in out and len(store.to_dataframe()) == 65
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("y\n"))
    run_cli(["runs", "drop", "--where", "optimizer=sgd,adafactor", "--store", str(db)], capsys)
    left = store.to_dataframe()
    assert len(left) == 65 - n_match and set(left["optimizer"]) == {"adamw"}
    key = left["key"].iloc[0]
    code, out, _ = run_cli(["runs", "drop", "--where", f"key={key[:8]}", "--store", str(db), "-y"], capsys)
    assert "dropped 1 of" in out and key not in set(store.to_dataframe()["key"])


def test_plain_progress_prints_count_elapsed_and_estimate_without_a_terminal():
    con = Console(record=True, width=40, force_terminal=False)
    with PlainProgress(con, every_s=0.2) as bar:
        task = bar.add_task("sweep ladder with a long name that must not be cut", total=4, status="")
        time.sleep(0.5)  # no update: the heartbeat still prints
        bar.update(task, completed=1, status="adamw: 3.412")
        bar.log("[adamw] recommended lr 0.003")
        time.sleep(0.3)
        bar.update(task, completed=4)
    text = con.export_text()
    lines = [line for line in text.splitlines() if line.startswith("sweep ladder")]
    assert len(lines) >= 4  # first line, >= 1 heartbeat, the change, the end
    assert all("sweep ladder with a long name that must not be cut:" in line for line in lines)
    assert any(re.search(r"1/4, elapsed \d+s, ETA \d+s  adamw: 3.412", line) for line in lines)
    assert lines[-1].split(": ")[1].startswith("4/4") and "done" in lines[-1]
    assert "recommended lr 0.003" in text and ".py:" not in text and "…" not in text


def test_tables_written_to_a_file_are_not_cut(tmp_path, capsys):
    csv = tmp_path / "runs.csv"
    pd.DataFrame(
        {
            "optimizer": "adamw",
            "n_params": 123456789.0,
            "tokens": 2.5e11,
            "lr": [1.234e-3, 2.345e-3, 4.567e-3, 8.912e-3],
            "loss": [3.1, 3.0, 3.05, 3.2],
        }
    ).to_csv(csv, index=False)
    # a real pipe, as a user's `oasl optima ... > file` (in-process, pytest-xdist's COLUMNS=80 would apply)
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    cmd = [sys.executable, "-m", "oasl", "optima", "--csv", str(csv), "--out", str(tmp_path / "o.csv")]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "…" not in res.stdout and "1.23e+08" in res.stdout
