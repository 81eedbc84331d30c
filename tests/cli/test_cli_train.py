import os
import subprocess
import sys

import pytest

from oasl.cli import main


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as info:
        main(args)
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--optimizer", "adamz"], "unknown optimizer 'adamz'"),
        (["train", "--width", "-64"], "shape.width: Input should be greater than 0"),
        (["train", "--hp", "momentum=0.9"], "adamw has no hyperparameter momentum"),
        (["train", "--hp", "beta1"], "not of the form name=value"),
        (["train", "--output-mult", "4"], "output_mult is muP's output multiplier: leave it unset under SP"),
        (
            ["train", "--parametrization", "mup", "--output-mult", "0"],
            "output_mult: Input should be greater than 0",
        ),
        (["runs", "--store", "/nonexistent/x.db"], "does not exist"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(args, message, capsys, tmp_path):
    code, out, err = run_cli(
        [*args, "--store", str(tmp_path / "s.db")] if args[0] == "train" else args, capsys
    )
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_malformed_yaml_and_unknown_key(capsys, tmp_path):
    bad = tmp_path / "run.yaml"
    bad.write_text("shape: {width: 32, depth: 2\nlr: [")
    code, _, err = run_cli(["train", "--config", str(bad), "--store", str(tmp_path / "s.db")], capsys)
    assert code == 2 and "malformed YAML" in err and "line" in err
    bad.write_text("shape: {width: 32, depth: 2}\nlr: 0.01\nlearning_rate: 0.1\n")
    code, _, err = run_cli(["train", "--config", str(bad), "--store", str(tmp_path / "s.db")], capsys)
    assert code == 2 and "learning_rate: unknown key" in err


def test_unwritable_store(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "s.db").write_bytes(b"")
    os.chmod(ro / "s.db", 0o444)
    os.chmod(ro, 0o555)
    try:
        if os.access(ro / "s.db", os.W_OK):
            pytest.skip("running as a user who can write read-only files (root)")
        code, _, err = run_cli(["train", "--store", str(ro / "s.db"), "--tokens", "100000"], capsys)
        assert code == 2 and "store" in err
    finally:
        os.chmod(ro, 0o755)


def test_unwritable_store_path_is_a_clear_error(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(
        ["train", "--store", str(tmp_path / "file" / "s.db"), "--tokens", "100000"], capsys
    )
    assert code == 2 and "store" in err and len(err.strip().splitlines()) == 1


def test_train_then_runs_end_to_end(tmp_path):
    db = tmp_path / "s.db"
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "shape: {width: 32, depth: 1, seq_len: 32}\nlr: 0.01\nbatch_seqs: 4\ntokens: 4096\n"
        "eval_tokens: 1024\ndevice: cpu\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "oasl", "train", "--config", str(cfg), "--seed", "1", "--store", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert out.returncode == 0, out.stderr
    assert "final val loss" in out.stdout
    # stdout is a pipe: plain progress lines (count, elapsed, estimate), no live-bar escapes
    progress = [line for line in out.stdout.splitlines() if line.startswith("train adamw w32d1:")]
    assert (
        progress and progress[-1].startswith("train adamw w32d1: 32/32, elapsed") and "done" in progress[-1]
    )
    assert "\r" not in out.stdout and "\x1b[" not in out.stdout
    listed = subprocess.run(
        [sys.executable, "-m", "oasl", "runs", "--store", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert listed.returncode == 0 and "showing 1 of 1 runs" in listed.stdout and "adamw" in listed.stdout
