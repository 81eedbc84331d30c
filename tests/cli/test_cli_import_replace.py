"""Re-importing a corrected CSV: a warning names the earlier, unusable rows and the fix; --replace swaps them."""

import numpy as np
import pandas as pd

from oasl.store import open_store
from oasl.testing import run_cli


def _csv(path, with_optimizer):
    lr = np.geomspace(1e-3, 1e-2, 5)
    df = pd.DataFrame({"n_params": 1e5, "tokens": 2e6, "lr": lr, "loss": 3 + np.log(lr / 3e-3) ** 2})
    if with_optimizer:
        df["optimizer"] = "adamw"
    df.to_csv(path, index=False)


def test_reimport_warns_then_replace_swaps(tmp_path, capsys):
    csv, db = tmp_path / "runs.csv", str(tmp_path / "runs.db")
    _csv(csv, with_optimizer=False)
    code, out, _ = run_cli(["import", str(csv), "--store", db], capsys)
    assert code == 0 and "no optimizer column" in out
    _csv(csv, with_optimizer=True)  # the corrected file
    code, out, _ = run_cli(["import", str(csv), "--store", db], capsys)
    assert code == 0 and "imported 5 new run(s)" in out
    assert "already held 5 run(s) from an earlier import of runs.csv (5 of them without optimizer" in out
    assert "--replace" in out and "oasl runs drop --where source=import:runs.csv" in out
    code, out, _ = run_cli(["import", str(csv), "--store", db, "--replace"], capsys)
    assert code == 0 and "replaced 10 run(s) of an earlier import" in out
    df = open_store(db).to_dataframe()
    assert len(df) == 5 and (df["optimizer"] == "adamw").all()
    code, out, err = run_cli(
        ["runs", "drop", "--store", db, "--where", "source=import:runs.csv", "-y"], capsys
    )
    assert code == 0 and "dropped 5 of 5 runs" in out, err


def test_rows_with_an_empty_optimizer_are_counted(tmp_path, capsys):
    csv = tmp_path / "part.csv"
    _csv(csv, with_optimizer=True)
    df = pd.read_csv(csv)
    df.loc[:1, "optimizer"] = None
    df.to_csv(csv, index=False)
    code, out, _ = run_cli(["import", str(csv), "--store", str(tmp_path / "r.db")], capsys)
    assert code == 0 and "2 of 5 row(s) have no optimizer" in " ".join(out.split())
