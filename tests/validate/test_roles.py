"""Run roles: the store's migration, marking, and `oasl fit` fitting sweep runs only unless told otherwise."""

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest

from oasl.store import _SCHEMA, SQLiteStore


def test_old_store_gains_a_role_column_once(tmp_path):
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.executescript(_SCHEMA)  # the schema before roles: no role column
    con.execute(
        "INSERT INTO runs (key, status, spec_json, created_at, updated_at) VALUES ('k1', 'done', '{}', 0, 0)"
    )
    con.commit()
    con.close()
    store = SQLiteStore(path)
    SQLiteStore(path)  # idempotent
    assert store.roles() == {"k1": "sweep"}
    assert store.set_role(["k1"], "target") == 1
    assert store.set_role(["k1"], "sweep") == 0 and store.set_role(["k1"], "baseline") == 0
    assert store.roles() == {"k1": "target"}
    from oasl.errors import StoreError

    with pytest.raises(StoreError, match="unknown run role"):
        store.set_role(["k1"], "oracle")


def _valley(n_params, lr_star, tag):
    lrs = lr_star * np.exp(np.linspace(-1.5, 1.5, 7))
    return pd.DataFrame(
        {
            "optimizer": "adamw",
            "n_params": n_params,
            "tokens": 1_000_000,
            "lr": lrs,
            "final_val_loss": 3.0 + 0.1 * np.log(lrs / lr_star) ** 2,
            "tag": tag,
        }
    )


def test_fit_uses_sweep_runs_unless_told_otherwise(tmp_path, capsys):
    from oasl.laws import load_laws
    from oasl.testing import run_cli

    store = SQLiteStore(tmp_path / "runs.db")
    sweep = pd.concat([_valley(n, 10.0 * n**-0.5, "sweep") for n in (1e4, 4e4, 1.6e5)])
    target = _valley(1.5e6, 0.1, "target")  # a target far off the sweep's law
    store.import_frame(pd.concat([sweep, target]))
    keys = [r["key"] for r in store.rows() if r["spec"]["tag"] == "target"]
    store.set_role(keys, "target")

    def fit(*extra):
        out = tmp_path / f"laws{len(extra)}.json"
        code, _, err = run_cli(
            ["fit", "--store", str(store.path), "--out", str(out), "--hp", "lr", *extra], capsys
        )
        assert code == 0, err
        return load_laws(out)[0]["lr"], json.loads(out.read_text())["meta"]

    law, meta = fit()
    assert meta["n_runs"] == len(sweep)
    assert law.exponents("adamw")["N"] == pytest.approx(-0.5, abs=0.02)
    law_all, meta_all = fit("--role", "all")
    assert meta_all["n_runs"] == len(sweep) + len(target)
    assert law_all.formula() != law.formula()
    code, _, err = run_cli(["fit", "--store", str(store.path), "--role", "oracle"], capsys)
    assert code == 2 and "unknown --role" in err


def test_transfer_diagnose_reads_the_ladder_not_the_validation_runs(tmp_path, capsys):
    """On a validated store the target's runs are not a rung of the ladder: `oasl transfer diagnose`
    uses sweep runs unless told otherwise (as `oasl fit` does)."""
    from oasl.testing import run_cli

    store = SQLiteStore(tmp_path / "runs.db")
    sweep = pd.concat([_valley(n, 10.0 * n**-0.5, "sweep") for n in (1e4, 4e4, 1.6e5)])
    store.import_frame(pd.concat([sweep, _valley(1.5e6, 0.1, "target")]))
    store.set_role([r["key"] for r in store.rows() if r["spec"]["tag"] == "target"], "target")

    def sizes(*extra):
        out = tmp_path / f"diag{len(extra)}.json"
        args = ["transfer", "diagnose", "--store", str(store.path), "--group-by", "optimizer"]
        args += ["--n-boot", "0", "--out", str(out)]
        code, _, err = run_cli([*args, *extra], capsys)
        assert code == 0, err
        (group,) = json.loads(out.read_text())["groups"]
        return sorted(group["n_params"])

    assert sizes() == [1e4, 4e4, 1.6e5]
    assert sizes("--role", "all") == [1e4, 4e4, 1.6e5, 1.5e6]
    code, _, err = run_cli(["transfer", "diagnose", "--store", str(store.path), "--role", "oracle"], capsys)
    assert code == 2 and "unknown --role 'oracle'" in err and err.strip().count("\n") == 0


def test_report_fits_sweep_runs_and_flags_a_law_that_is_not_the_validated_one(tmp_path):
    from types import SimpleNamespace

    from oasl.report.html import write_report

    store = SQLiteStore(tmp_path / "runs.db")
    sweep = pd.concat([_valley(n, 10.0 * n**-0.5, "sweep") for n in (1e4, 4e4, 1.6e5)])
    target = _valley(1.5e6, 0.1, "target")  # far off the sweep's law: fitting it would bend the law
    store.import_frame(pd.concat([sweep, target]))
    store.set_role([r["key"] for r in store.rows() if r["spec"]["tag"] == "target"], "target")

    html = write_report(store.path, tmp_path / "r1").read_text()
    assert "N^-0.5" in html  # the sweep's exponent, not one bent by the target's runs
    assert "is not the validated law" not in html

    other = SimpleNamespace(optimizers=[], law_formula="lr = 1 N^-0.1", noise_floor=float("nan"), table=None)
    row = {"optimizer": "adamw", "method": "oasl", "lr": 0.01, "regret_mean": 0.0, "regret_std": 0.0}
    other.table = lambda: pd.DataFrame([{**row, "tuning_runs": 1.0, "tuning_flops": 1.0}])
    html = write_report(store.path, tmp_path / "r2", validation=other).read_text()
    assert "is not the validated law" in html and "lr = 1 N^-0.1" in html


def test_a_failed_target_run_is_an_error_not_a_divergence(tmp_path):
    """A run that raised (here: its corpus is missing) stops the harness with its error; it is not
    scored as diverged (which would read as an infinite regret of the method that proposed it)."""
    from oasl.config import RunSpec
    from oasl.errors import SweepError
    from oasl.validate import harness

    corpus = {"source": "files", "paths": [str(tmp_path / "missing.txt")]}
    spec = RunSpec(
        shape={"width": 16, "depth": 1, "seq_len": 16}, optimizer="adamw", lr=1e-3, tokens=4096, corpus=corpus
    )
    runner = harness.Runner(str(tmp_path / "runs.db"), 1, lambda m: None)
    with pytest.raises(SweepError, match=r"is failed: DataError: corpus path .* not a readable file; fix"):
        runner.losses([spec])
    assert runner.store.get(spec.key())["status"] == "failed"  # kept in the store, trained again on a rerun


def test_a_validation_killed_midway_leaves_its_finished_runs_marked(tmp_path):
    """The harness marks each run's role as it lands: when validation stops after the first of two
    target runs (here a progress callback raises, as a kill would stop it), that run already reads
    "target", so `oasl fit` does not take it for a sweep run."""
    from oasl.config import RunSpec
    from oasl.validate import harness

    specs = [
        RunSpec(
            shape={"width": 16, "depth": 1, "seq_len": 16},
            optimizer="adamw",
            lr=lr,
            tokens=2048,
            eval_tokens=512,
        )
        for lr in (1e-3, 2e-3)
    ]

    class Killed(Exception):
        pass

    def progress(label, total):
        def update(summary, pending):
            if summary.done + summary.diverged >= 1:
                raise Killed

        return update

    runner = harness.Runner(str(tmp_path / "runs.db"), 1, lambda m: None, progress=progress)
    with pytest.raises(Killed):
        runner.run(specs, role="target")
    roles = runner.store.roles()
    assert len(roles) >= 1 and set(roles.values()) == {"target"}
