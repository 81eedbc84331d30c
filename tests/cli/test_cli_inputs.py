"""Bad CLI input gives one line and exit 2 (never a traceback), and every option documents itself."""

import math

import pandas as pd
import pytest
import typer.main

from oasl.cli import app
from oasl.testing import run_cli


def _one_line_exit_2(code, err):
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "╭" not in err, err


def _walk(cmd, path=()):
    subs = getattr(cmd, "commands", None)
    if isinstance(subs, dict):
        for name, sub in subs.items():
            yield from _walk(sub, (*path, name))
    yield path, cmd


def test_every_option_of_every_command_has_help():
    cmd = typer.main.get_command(app)
    missing = [
        f"oasl {' '.join(path)} {p.opts[0] if getattr(p, 'opts', None) else p.name}"
        for path, c in _walk(cmd)
        for p in c.params
        if not (getattr(p, "help", None) or "").strip()
    ]
    assert not missing, "options without help text: " + ", ".join(missing)
    # and the check sees real commands: a command that surely has options
    assert any(path == ("recommend",) and len(c.params) > 5 for path, c in _walk(cmd))


def test_every_float_option_refuses_nan_and_inf(capsys):
    cmd = typer.main.get_command(app)
    floats = [
        (path, p.opts[0])
        for path, c in _walk(cmd)
        for p in c.params
        if getattr(getattr(p, "type_descriptor", None), "annotation", None) is float
        and getattr(p, "opts", None)
    ]
    assert len(floats) >= 10  # the walk finds the float options (there are more than ten)
    for path, opt in floats:
        for bad in ("nan", "inf"):
            code, _, err = run_cli([*path, opt, bad, "x.yaml"], capsys)
            _one_line_exit_2(code, err)
            assert f"'{opt}': {bad} is not a finite number" in err, (path, opt, err)


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--lr", "nan"], "'--lr': nan is not a finite number"),
        (["train", "--lr", "inf"], "'--lr': inf is not a finite number"),
        (["train", "--lr", "-inf"], "'--lr': -inf is not a finite number"),
        (["train", "--warmup-frac", "nan"], "'--warmup-frac': nan is not a finite number"),
        (["train", "--hp", "beta1=nan"], "'beta1=nan': nan is not a finite number"),
        (["train", "--width", "1e9"], "Invalid value for '--width'"),
        (["train", "--width", "100000"], "needs at least"),
        (["train", "--bogus"], "No such option: --bogus"),
        (["recommend", "--params", "nan", "--tokens", "1e9", "--published", "step-law"], "'--params': nan"),
        (
            ["recommend", "--params", "-5", "--tokens", "1e9", "--published", "step-law"],
            "--params must be positive",
        ),
        (["recommend", "--params", "1e8", "--tokens", "inf", "--published", "step-law"], "'--tokens': inf"),
        (
            [
                "recommend",
                "--optimizer",
                "sgd",
                "--published",
                "step-law",
                "--params",
                "1e8",
                "--tokens",
                "1e10",
            ],
            "fitted on adamw, not sgd",
        ),
        (
            [
                "recommend",
                "--params",
                "1e9",
                "--tokens",
                "1e11",
                "--published",
                "step-law",
                "--format",
                "hf",
                "--world-size",
                "8",
                "--grad-accum",
                "4",
                "--exact-batch",  # without it the batch is rounded (tests/test_export.py)
            ],
            "not divisible by --world-size 8 x --grad-accum 4",
        ),
        (["optima", "--eps", "nan", "--csv", "CSV"], "'--eps': nan is not a finite number"),
        (["optima", "--eps", "-1", "--csv", "CSV"], "--eps is a relative loss gap"),
        (["optima", "--over", "lrr", "--csv", "CSV"], "no column 'lrr'"),
        (["optima", "--over", "lr,lr", "--csv", "CSV"], "names lr twice"),
        (["runs", "drop", "--where", "nocolumn=3", "--store", "DB"], "no column 'nocolumn'"),
        (["runs", "drop", "--where", "status", "--store", "DB"], "not of the form column=value"),
        (["runs", "--limit", "-1", "--store", "DB"], "--limit must be >= 0"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, message, tmp_path, capsys):
    csv = tmp_path / "runs.csv"
    pd.DataFrame(
        {
            "optimizer": "adamw",
            "n_params": 1e4,
            "tokens": 2e5,
            "lr": [1e-3, 2e-3, 4e-3, 8e-3],
            "loss": [3.1, 3.0, 3.05, 3.2],
        }
    ).to_csv(csv, index=False)
    db = tmp_path / "runs.db"
    run_cli(["import", str(csv), "--store", str(db)], capsys)
    args = [str(csv) if a == "CSV" else str(db) if a == "DB" else a for a in args]
    if args[0] == "train":
        args += ["--store", str(tmp_path / "t.db")]
    code, out, err = run_cli(args, capsys)
    _one_line_exit_2(code, err)
    assert message in err
    assert not (tmp_path / "t.db").exists()  # a refused run leaves no row (and no store) behind


def test_published_law_of_another_optimizer_with_force_warns(capsys):
    args = [
        "recommend",
        "--optimizer",
        "sgd",
        "--published",
        "step-law",
        "--params",
        "1e8",
        "--tokens",
        "1e10",
    ]
    code, out, err = run_cli([*args, "--force", "--format", "json"], capsys)
    assert code == 0 and "adamw law applied to sgd" in err
    import json

    assert json.loads(out)["optimizer"] == "sgd"  # warnings on stderr keep stdout parseable


def test_hf_export_splits_the_global_batch(capsys):
    base = ["recommend", "--params", "1e9", "--tokens", "1e11", "--published", "step-law", "--format"]
    code, out, _ = run_cli([*base, "json"], capsys)
    import json

    batch = json.loads(out)["items"]["batch_seqs"]["value"]
    world = next(w for w in (2, 3, 5, 7, 11, 13, 541) if batch % w == 0)
    code, out, _ = run_cli([*base, "hf", "--world-size", str(world)], capsys)
    hf = json.loads(out)
    assert code == 0
    assert hf["per_device_train_batch_size"] * world * hf["gradient_accumulation_steps"] == batch


def test_one_seq_len_rule_for_params_and_shape(capsys):
    import json

    from oasl.config import ModelShape
    from oasl.models import count_params

    n = count_params(ModelShape(width=512, depth=8, seq_len=2048)).n_params
    common = ["recommend", "--tokens", "1e10", "--published", "step-law", "--format", "json"]
    _, by_shape, _ = run_cli([*common, "--width", "512", "--depth", "8"], capsys)
    _, by_params, _ = run_cli([*common, "--params", str(n)], capsys)
    a, b = json.loads(by_shape), json.loads(by_params)
    assert a["seq_len"] == b["seq_len"] == 2048
    assert a["items"]["batch_seqs"]["value"] == b["items"]["batch_seqs"]["value"]
    _, short, _ = run_cli([*common, "--width", "512", "--depth", "8", "--seq-len", "256"], capsys)
    assert json.loads(short)["seq_len"] == 256


def test_implausible_token_budgets_warn(capsys):
    common = ["recommend", "--published", "step-law", "--params", "1e9", "--format", "json"]
    _, _, err = run_cli([*common, "--tokens", "10"], capsys)
    assert "step(s)" in err and "tokens per parameter" in err
    _, _, err = run_cli([*common, "--tokens", "2e10"], capsys)
    assert "warning: tokens" not in err


def test_usage_errors_are_one_line_for_every_command(capsys):
    cmd = typer.main.get_command(app)
    for path, c in _walk(cmd):
        if getattr(c, "commands", None):
            continue
        code, _, err = run_cli([*path, "--no-such-flag"], capsys)
        _one_line_exit_2(code, err)
        assert math.isfinite(code)
