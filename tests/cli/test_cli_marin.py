"""`oasl recommend --published marin` / `--laws` for Marin's optimizers, and `oasl laws list` showing the set."""

import json
import os

import pytest

from oasl.store.marin import OPTIMIZERS  # noqa: E402
from oasl.testing import run_cli, shared_data

TARGET = ["--params", "1.2e9", "--tokens", "2.4e10", "--seq-len", "4096"]


def recommend(capsys, *extra):
    code, out, err = run_cli(["recommend", *TARGET, "--format", "json", *extra], capsys)
    assert code == 0, err
    return json.loads(out)


def test_recommend_muon_full_configuration(capsys):
    rec = recommend(capsys, "--published", "marin", "--optimizer", "muon")
    c = rec["config"]
    for k in (
        "lr",
        "batch_seqs",
        "batch_tokens",
        "weight_decay",
        "warmup_steps",
        "beta1",
        "beta2",
        "momentum",
        "muon_to_adam_lr",
        "total_steps",
    ):
        assert k in c, k
    assert 1e-4 < c["lr"] < 0.05 and c["batch_seqs"] == round(c["batch_tokens"] / 4096)
    assert c["total_steps"] == int(2.4e10 // (c["batch_seqs"] * 4096)) and 0 < c["beta2"] < 1
    lr = rec["items"]["lr"]
    # the default is the law's centre; the risk-adjusted value is named in the source and is what --risk gives
    assert lr["low"] < lr["high"] and "Wen" not in lr["source"] and "risk-adjusted (--risk)" in lr["source"]
    risky = recommend(capsys, "--published", "marin", "--optimizer", "muon", "--risk")
    assert risky["config"]["lr"] <= c["lr"] and risky["config"]["batch_tokens"] <= c["batch_tokens"]
    assert "risk-adjusted x" in risky["items"]["lr"]["source"]
    named = float(lr["source"].split("risk-adjusted (--risk): ")[1].split()[0].rstrip(";"))
    assert named == pytest.approx(risky["config"]["lr"], rel=1e-3)
    assert recommend(capsys, "--published", "marin", "--optimizer", "muon", "--no-risk")["config"] == c


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_every_marin_optimizer_gets_lr_and_batch(opt, capsys):
    c = recommend(capsys, "--published", "marin", "--optimizer", opt)["config"]
    assert c["lr"] > 0 and c["batch_seqs"] >= 1 and "weight_decay" in c and "warmup_steps" in c


def test_unknown_optimizer_and_unusable_format_are_one_line_errors(capsys):
    code, _, err = run_cli(["recommend", *TARGET, "--published", "marin", "--optimizer", "adam"], capsys)
    assert code == 2 and "choose one of adamw" in err and "Traceback" not in err
    code, _, err = run_cli(
        ["recommend", *TARGET, "--published", "marin", "--optimizer", "muon", "--format", "hf"], capsys
    )
    assert code == 2 and "table or json" in err


def test_laws_list_shows_the_marin_set(capsys):
    code, out, err = run_cli(["laws", "list", "--name", "marin", "--json"], capsys)
    assert code == 0, err
    rows = json.loads(out)
    assert {r["name"] for r in rows} == {"marin"} and {r["optimizer"] for r in rows} == set(OPTIMIZERS)
    assert {"lr", "batch_tokens"} <= {r["target"] for r in rows if r["optimizer"] == "muon"}
    assert all("2509.02046" in r["citation"] and "4096" in r["setup"] for r in rows)
    code, out, _ = run_cli(["laws", "list"], capsys)
    assert code == 0 and "marin" in out and "step-law" in out


def test_import_fit_recommend_on_the_real_sweeps(tmp_path, capsys):
    src = shared_data("marin_optimizer_sweep") / "Results"
    if not src.is_dir():
        pytest.skip(f"Marin sweeps not found at {src} (see ../shared/data/marin_optimizer_sweep/NOTES.md)")
    tree = tmp_path / "tree"
    for opt in ("muon", "adamw"):
        (tree / opt).mkdir(parents=True)
        for size in ("130m", "300m"):
            os.symlink(src / opt / size, tree / opt / size)
    db, laws = str(tmp_path / "runs.db"), tmp_path / "laws.json"
    assert run_cli(["import", str(tree), "--store", db], capsys)[0] == 0
    code, out, err = run_cli(["fit", "--store", db, "--out", str(laws)], capsys)
    assert code == 0, err
    assert "coordinate laws" in out
    c = recommend(capsys, "--laws", str(laws), "--optimizer", "muon")["config"]
    assert (
        1e-4 < c["lr"] < 0.05 and c["batch_seqs"] >= 32 and c["warmup_steps"] == 0
    )  # Muon ran without warmup
    code, _, err = run_cli(["recommend", *TARGET, "--laws", str(laws), "--optimizer", "lion"], capsys)
    assert code == 2 and "choose one of adamw, muon" in err
