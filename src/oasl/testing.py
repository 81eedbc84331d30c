"""Helpers shared by tests and benchmarks: external data location, tiny specs."""

from __future__ import annotations

from oasl.data.shared import REPO_ROOT, shared_data  # noqa: F401 (tests and benchmarks import them here)


def tiny_run(**overrides):
    """A RunSpec small enough for a unit test on CPU (width 32, depth 2, seq 32, ~60 steps)."""
    from oasl.config import RunSpec, build

    data = {
        "shape": {"width": 32, "depth": 2, "seq_len": 32},
        "optimizer": "adamw",
        "lr": 3e-3,
        "batch_seqs": 8,
        "tokens": 8 * 32 * 60,
        "schedule": {"name": "cosine", "warmup_frac": 0.1},
        "eval_interval": 20,
        "eval_tokens": 8 * 32 * 4,
        "device": "cpu",
    }
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(data.get(k), dict):
            data[k] = {**data[k], **v}
        else:
            data[k] = v
    return build(RunSpec, data)


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run the ``oasl`` command in-process with pytest's ``capsys``; returns (exit code, stdout, stderr)."""
    from oasl.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err
