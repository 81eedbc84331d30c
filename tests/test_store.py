import math
import sqlite3

import pandas as pd
import pytest

from oasl.errors import StoreError
from oasl.store import SCHEMA_VERSION, SQLiteStore, open_store
from oasl.testing import tiny_run
from oasl.train import RunResult


def fake_result(spec, loss=3.0, status="done", n=5):
    curve = [
        {
            "step": i + 1,
            "tokens": (i + 1) * spec.batch_tokens,
            "lr": spec.lr,
            "train_loss": 5.0 - i * 0.1,
            "grad_norm": 1.0,
            "val_loss": (4.0 if i == n - 1 else None),
            "update_ratio": 0.01,
        }
        for i in range(n)
    ]
    return RunResult(
        spec=spec,
        status=status,
        final_val_loss=loss if status != "diverged" else math.nan,
        curve=curve,
        n_params=1000,
        n_params_total=1500,
        flops=1e9,
        tokens_trained=n * spec.batch_tokens,
        steps_done=n,
        tokens_per_s=1e4,
        wall_s=1.0,
        initial_val_loss=5.5,
        diverged=status == "diverged",
        diverge_reason="x" if status == "diverged" else None,
        corpus_hash="abc",
    )


def test_round_trip(tmp_path):
    st = open_store(tmp_path / "runs.db")
    a, b = tiny_run(lr=1e-3), tiny_run(lr=1e-2, optimizer="sgd", hps={"momentum": 0.8})
    st.mark_running(a)
    assert st.status(a.key()) == "running"
    st.put(fake_result(a, 3.1))
    st.put(fake_result(b, status="diverged"))
    df = st.to_dataframe()
    assert set(df["status"]) == {"done", "diverged"}
    row = df.set_index("key").loc[a.key()]
    assert row["final_val_loss"] == pytest.approx(3.1) and row["optimizer"] == "adamw" and row["beta1"] == 0.9
    assert row["batch_tokens"] == a.batch_tokens and row["n_params"] == 1000
    assert df.set_index("key").loc[b.key(), "momentum"] == 0.8
    assert bool(df.set_index("key").loc[b.key(), "diverged"])
    curve = st.curve(a.key())
    assert list(curve["step"]) == [1, 2, 3, 4, 5] and curve["update_ratio"].iloc[0] == 0.01
    assert math.isnan(curve["val_loss"].iloc[0]) and curve["val_loss"].iloc[-1] == 4.0
    # reopening sees the same; a finished run is not downgraded by a late mark_running
    st2 = SQLiteStore(tmp_path / "runs.db")
    st2.mark_running(a)
    assert st2.status(a.key()) == "done" and st2.is_finished(b.key())


_WRITER = """
import sys
from oasl.store import SQLiteStore
from oasl.testing import tiny_run
sys.path.insert(0, sys.argv[3])
from test_store import fake_result
st = SQLiteStore(sys.argv[1])
for i in range(15):
    spec = tiny_run(lr=10 ** (-4 + 0.01 * i + int(sys.argv[2])))
    st.mark_running(spec)
    st.put(fake_result(spec, n=200))
"""


def test_two_writer_processes(tmp_path):
    """Two processes writing at once lose nothing and duplicate nothing (WAL + one transaction per result)."""
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "runs.db"
    SQLiteStore(path)
    here = str(Path(__file__).parent)
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(j), here]) for j in (0, 1)]
    assert [p.wait(120) for p in procs] == [0, 0]
    df = SQLiteStore(path).to_dataframe()
    assert len(df) == 30 and df["key"].is_unique
    assert len(SQLiteStore(path).curves()) == 30 * 200


def test_bad_stores(tmp_path):
    bad = tmp_path / "corrupt.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a readable oasl store"):
        open_store(bad)
    assert bad.read_bytes().startswith(b"this is not sqlite")  # nothing overwritten
    newer = tmp_path / "newer.db"
    SQLiteStore(newer)
    con = sqlite3.connect(newer)
    con.execute("UPDATE meta SET value=? WHERE name='schema_version'", (str(SCHEMA_VERSION + 1),))
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="newer than this oasl"):
        open_store(newer)
    with pytest.raises(StoreError, match="is a directory"):
        open_store(tmp_path)
    with pytest.raises(StoreError, match="not supported"):
        open_store("postgresql://host/db")


def test_import_frame_is_idempotent(tmp_path):
    st = open_store(tmp_path / "runs.db")
    df = pd.DataFrame({"lr": [1e-3, 2e-3, 4e-3], "N": [1e6] * 3, "loss": [3.0, 2.9, float("nan")]})
    assert st.import_frame(df) == 3
    assert st.import_frame(df) == 0
    out = st.to_dataframe()
    assert sorted(out["status"]) == ["diverged", "done", "done"]
    assert out["final_val_loss"].notna().sum() == 2
