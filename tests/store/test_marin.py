"""Importing Marin's optimizer-sweep result.json trees: columns, diverged and failed runs, idempotency."""

import json

import pytest

from oasl.store import open_store
from oasl.store.marin import DIVERGED_EXCESS, import_marin, non_embedding_params, read_marin_tree
from oasl.testing import run_cli, shared_data


def write_sweep(root, optimizer="muon", size="130m", multiple=1, ablations=(), baseline=3.5, **best):
    config = {
        "learning_rate": 0.008,
        "train_batch_size": 128,
        "weight_decay": 0.1,
        "warmup": 0,
        "beta1": 0.8,
        **best,
    }
    d = {
        "best_config": config,
        "min_loss": baseline,
        "baseline": {"loss": baseline, "wandb_id": "b"},
        "ablations": [
            {"param": p, "value": v, "loss": loss, "wandb_id": f"{p}={v}"} for p, v, loss in ablations
        ],
    }
    path = root / optimizer / size / str(multiple)
    path.mkdir(parents=True)
    (path / "result.json").write_text(json.dumps(d))


def test_synthetic_tree_statuses_columns_and_idempotent_reimport(tmp_path, capsys):
    tree = tmp_path / "Results"
    write_sweep(
        tree,
        ablations=[
            ("learning_rate", 0.004, 3.52),
            ("learning_rate", 0.016, 3.5 + DIVERGED_EXCESS + 3.0),  # blown up: loss ~7
            ("learning_rate", 0.032, "NaN"),  # non-finite: diverged
            ("train_batch_size", 256, None),  # nothing logged: failed, not diverged
        ],
    )
    df, keys, statuses = read_marin_tree(tree)
    assert len(df) == 5 and len(set(keys)) == 5 and all(k.startswith("marin-") for k in keys)
    by = {
        (r.ablated, r.ablated_value if r.ablated != "baseline" else None): s
        for r, s in zip(df.itertuples(), statuses, strict=True)
    }
    assert by[("baseline", None)] == "done" and by[("learning_rate", 0.004)] == "done"
    assert by[("learning_rate", 0.016)] == "diverged" and by[("learning_rate", 0.032)] == "diverged"
    assert by[("train_batch_size", 256)] == "failed"
    n = non_embedding_params("130m")
    assert n == 32 * (3 * 512 * 2048 + 4 * 512**2) == 134_217_728
    row = df[df["ablated"] == "train_batch_size"].iloc[0]
    assert row["tokens"] == 20 * n and row["seq_len"] == 4096 and row["batch_seqs"] == 256
    assert row["batch_tokens"] == 256 * 4096 and row["steps"] == 20 * n // (4096 * 256)
    base = df[df["ablated"] == "baseline"].iloc[0]
    assert base["lr"] == 0.008 and base["weight_decay"] == 0.1 and base["optimizer"] == "muon"

    db = str(tmp_path / "runs.db")
    code, out, err = run_cli(["import", str(tree), "--store", db], capsys)  # detected as Marin
    assert code == 0, err
    assert "imported 5 new run(s)" in out and "2 run(s) diverged" in out and "1 run(s) logged no loss" in out
    code, out, _ = run_cli(["import", str(tree), "--store", db, "--format", "marin"], capsys)
    assert code == 0 and "imported 0 new run(s)" in out and "(5 already there)" in out
    stored = open_store(db).to_dataframe()
    assert len(stored) == 5 and sorted(stored["status"]) == ["diverged", "diverged", "done", "done", "failed"]
    code, _, err = run_cli(["import", str(tree), "--store", db, "--format", "parquet"], capsys)
    assert code == 2 and "use auto, csv or marin" in err


def test_bad_trees_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(
        ["import", str(tmp_path / "empty"), "--store", str(tmp_path / "s.db"), "--format", "marin"], capsys
    )
    assert code == 2 and "no <optimizer>/<size>/<multiple>/result.json" in err
    bad = tmp_path / "bad" / "muon" / "130m" / "1"
    bad.mkdir(parents=True)
    (bad / "result.json").write_text("{not json")
    code, _, err = run_cli(
        ["import", str(tmp_path / "bad"), "--store", str(tmp_path / "s.db"), "--format", "marin"], capsys
    )
    assert code == 2 and "is not a Marin result file" in err and not (tmp_path / "s.db").exists()


@pytest.fixture(scope="module")
def marin_tree():
    path = shared_data("marin_optimizer_sweep") / "Results"
    if not path.is_dir():
        pytest.skip(f"Marin sweeps not found at {path} (see ../shared/data/marin_optimizer_sweep/NOTES.md)")
    return path


def test_real_tree_import_is_idempotent_and_flags_divergence(marin_tree, tmp_path):
    db = tmp_path / "marin.db"
    first = import_marin(marin_tree, db)
    assert first.n_new == first.n_rows > 1500
    again = import_marin(marin_tree, db)
    assert again.n_new == 0 and again.n_rows == first.n_rows
    df = open_store(db).to_dataframe()
    assert len(df) == first.n_rows and df["key"].is_unique and df["key"].str.startswith("marin-").all()
    assert df["optimizer"].nunique() == 11 and set(df["model_size"]) == {"130m", "300m", "520m"}
    # AdamW 130m 1x: lr 0.032 blew up (loss 7.78); the baseline at lr 0.008 is fine (3.529)
    s = df[df["sweep"] == "adamw/130m/1"]
    blown = s[(s["ablated"] == "learning_rate") & (s["lr"] == 0.032)].iloc[0]
    assert blown["status"] == "diverged" and blown["final_val_loss"] > 7
    base = s[s["ablated"] == "baseline"].iloc[0]
    assert base["status"] == "done" and base["final_val_loss"] == pytest.approx(3.5291, abs=1e-4)
    assert (
        base["n_params"] == 134_217_728
        and base["tokens"] == 20 * 134_217_728
        and base["batch_tokens"] == 128 * 4096
    )
    # every diverged run is non-finite or far above its sweep's best; no done run is
    done = df[df["status"] == "done"]
    best = done.groupby("sweep")["final_val_loss"].min()
    assert (done["final_val_loss"] - done["sweep"].map(best)).max() < DIVERGED_EXCESS
    div = df[df["status"] == "diverged"]
    excess = div["final_val_loss"] - div["sweep"].map(best)
    assert ((excess > DIVERGED_EXCESS) | excess.isna()).all() and len(div) > 100
    assert (df["status"] == "failed").sum() > 0 and df.loc[
        df["status"] == "failed", "final_val_loss"
    ].isna().all()


def test_optima_command_reads_coordinate_valleys(tmp_path, capsys):
    import pandas as pd

    tree = tmp_path / "Results"
    write_sweep(tree, ablations=[("learning_rate", 0.004, 3.52), ("learning_rate", 0.016, 7.9)])
    db = str(tmp_path / "runs.db")
    assert run_cli(["import", str(tree), "--store", db], capsys)[0] == 0
    code, out, err = run_cli(["optima", "--store", db, "--out", str(tmp_path / "o.csv")], capsys)
    assert code == 0, err
    o = pd.read_csv(tmp_path / "o.csv")
    assert len(o) == 1 and o["opt"].iloc[0] == 0.008 and o["high_bound"].iloc[0] == "diverged"
    assert "bounded above by a diverged run at lr=0.016" in out
