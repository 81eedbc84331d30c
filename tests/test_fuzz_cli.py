"""Fuzzing the CLI's inputs with hypothesis: sweep and validate YAML, runs CSVs, numeric flags.

Each test feeds at least 500 generated inputs through the in-process ``oasl`` command and asserts what a
user must always get: success, or one line on stderr and exit code 2; never a traceback. Nothing trains:
sweeps are planned without timing, validation is stopped where it would start training, and ``train``
gets a token budget below one batch.
"""

import itertools
import math
import os
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oasl.errors import ConfigError
from oasl.testing import run_cli

FUZZ = settings(
    max_examples=500,
    deadline=None,
    derandomize=True,  # the same inputs on every run: a failure in CI reproduces locally
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_COUNTER = itertools.count()
WORK = Path(tempfile.mkdtemp(prefix="oasl-fuzz-"))


def _path(suffix: str) -> Path:
    return WORK / f"{next(_COUNTER)}{suffix}"


def _ok_or_one_line(code, out, err):
    """The contract of every command: exit 0, or exit 2 with exactly one line on stderr."""
    assert code in (0, 2), (code, err[-500:])
    assert "Traceback" not in err and "Traceback" not in out
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
        assert "No such option" not in err  # the fuzzed command lines themselves must stay valid


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "nan", "inf", "-1", "1e9", "adamw", "sgd", "cosine", "wsd", "log_range", "x"]),
    st.text(max_size=6),
)
SWEEP_KEYS = [
    "name", "shapes", "ladder", "widths", "depth", "pairs", "shape_defaults", "seq_len", "parametrization",
    "base_width", "optimizers", "adamw", "sgd", "lr", "log_range", "range", "num", "momentum", "batch_seqs",
    "tokens", "ratio", "schedule", "warmup_frac", "schedules", "seeds", "corpus", "run", "device",
    "eval_interval", "pruning", "enabled", "early_warn",
]  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(SWEEP_KEYS), st.text(max_size=5)), inner, max_size=4),
    ),
    max_leaves=8,
)

BASE_SWEEP = {
    "name": "fuzz",
    "ladder": {"widths": [16, 32], "depth": 1},
    "shape_defaults": {"seq_len": 32},
    "optimizers": {"adamw": {"lr": {"log_range": [1e-3, 1e-2], "num": 3}}},
    "batch_seqs": 8,
    "tokens": 20000,
    "schedule": {"name": "cosine", "warmup_frac": 0.05},
    "run": {"eval_interval": 10, "device": "cpu"},
}


def _mutate(base: dict, data) -> dict:
    """``base`` with a few keys (at any depth) replaced, dropped or added."""
    spec = yaml.safe_load(yaml.safe_dump(base))
    for _ in range(data.draw(st.integers(1, 3))):
        node = spec
        while isinstance(node, dict) and node and data.draw(st.booleans()):
            key = data.draw(st.sampled_from(sorted(node, key=str)))
            if not isinstance(node[key], dict):
                break
            node = node[key]
        if not isinstance(node, dict):
            continue
        key = data.draw(
            st.one_of(st.sampled_from(sorted(node, key=str) or ["name"]), st.sampled_from(SWEEP_KEYS))
        )
        if data.draw(st.integers(0, 4)) == 0:
            node.pop(key, None)
        else:
            node[key] = data.draw(values)
    return spec


def _yaml_text(spec, data) -> str:
    text = yaml.safe_dump(spec, allow_unicode=True)
    if data.draw(st.integers(0, 9)) == 0:  # sometimes broken YAML: cut, or garbage appended
        cut = data.draw(st.integers(0, len(text)))
        text = text[:cut] + data.draw(st.sampled_from(["", ": [", "\t- {", "\x00", "'"]))
    return text


@FUZZ
@given(data=st.data())
def test_fuzz_sweep_yaml_plan(data, capsys):
    path = _path(".yaml")
    path.write_text(_yaml_text(_mutate(BASE_SWEEP, data), data), encoding="utf-8")
    _ok_or_one_line(*run_cli(["sweep", "plan", str(path), "--no-measure"], capsys))


@pytest.fixture
def no_training(monkeypatch):
    """Validation stops where it would start training (a ConfigError: one line, exit 2)."""

    def stop(*args, **kwargs):
        raise ConfigError("fuzz: stopped before training")

    monkeypatch.setattr("oasl.validate.harness.run_sweep", stop)


@FUZZ
@given(data=st.data())
def test_fuzz_validate_yaml(data, capsys, no_training):
    base = {
        "sweep": BASE_SWEEP,
        "target": {"width": 96},
        "seeds": [0],
        "oracle_mode": "neighbours",
        "baselines": ["naive"],
    }
    path = _path(".yaml")
    path.write_text(_yaml_text(_mutate(base, data), data), encoding="utf-8")
    _ok_or_one_line(
        *run_cli(["validate", str(path), "--store", str(_path(".db")), "--out", str(WORK)], capsys)
    )


CSV_COLUMNS = [
    "optimizer", "n_params", "tokens", "lr", "loss", "final_val_loss", "batch_seqs", "batch_size", "width",
    "depth", "seed", "beta1", "momentum", "weight_decay", "diverged", "flops", "smooth loss", "x",
]  # fmt: skip
cells = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(
        ["", "nan", "NaN", "inf", "-inf", "true", "false", "yes", "adamw", "1e-3", "-5", "0", '"', "a,b"]
    ),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6),
)


@FUZZ
@given(
    columns=st.lists(st.sampled_from(CSV_COLUMNS), min_size=0, max_size=7),
    rows=st.lists(st.lists(cells, min_size=0, max_size=8), max_size=6),
    sep=st.sampled_from([",", ",", ",", ";", "\t"]),
)
def test_fuzz_csv_import(columns, rows, sep, capsys):
    lines = [sep.join(columns)] + [sep.join(r) for r in rows]
    path = _path(".csv")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _ok_or_one_line(*run_cli(["import", str(path), "--store", str(_path(".db"))], capsys))


numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(
        ["0", "-0", "1e9", "1e-300", "1e400", "0x10", "1_000", "", " ", "nan", "-inf", "3.5", "2**8"]
    ),
)
COMMANDS = {
    # command line with {} where fuzzed values go; none of these trains
    "recommend": (
        ["recommend", "--published", "step-law", "--format", "hf"],
        ["--params", "--tokens", "--seq-len", "--warn-ratio", "--world-size", "--grad-accum", "--width", "--depth"],
    ),
    "train": (["train", "--tokens", "1", "--store", "STORE"], ["--lr", "--width", "--depth", "--batch-seqs",
              "--warmup-frac", "--grad-clip", "--seq-len", "--seed", "--n-heads", "--eval-interval"]),
    "optima": (["optima", "--csv", "CSV", "--out", "OUT", "--n-boot", "0"], ["--eps", "--level", "--seed"]),
    "runs": (["runs", "--store", "DB"], ["--limit"]),
}  # fmt: skip


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    import pandas as pd

    from oasl.store import open_store

    d = tmp_path_factory.mktemp("flags")
    csv = d / "runs.csv"
    pd.DataFrame(
        {"optimizer": "adamw", "n_params": 1e4, "tokens": 2e5, "lr": [1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2],
         "loss": [3.2, 3.05, 3.0, 3.04, 3.3]}
    ).to_csv(csv, index=False)  # fmt: skip
    open_store(d / "runs.db").import_frame(pd.read_csv(csv))
    return {"CSV": str(csv), "DB": str(d / "runs.db"), "STORE": str(d / "t.db"), "OUT": str(d / "o.csv")}


@FUZZ
@given(data=st.data())
def test_fuzz_numeric_flags(data, inputs, capsys):
    name = data.draw(st.sampled_from(sorted(COMMANDS)))
    base, flags = COMMANDS[name]
    args = [inputs.get(a, a) for a in base]
    chosen = data.draw(st.lists(st.sampled_from(flags), min_size=1, max_size=4, unique=True))
    for flag in chosen:
        args += [flag, data.draw(numbers)]
    if name == "optima":  # keep the bootstrap cheap
        args = [
            a if not (a.isdigit() and len(a) > 3 and args[args.index(a) - 1] == "--n-boot") else "50"
            for a in args
        ]
    if name == "recommend" and "--params" not in chosen and "--width" not in chosen:
        args += ["--params", "1e9"]
    if name == "recommend" and "--tokens" not in chosen:
        args += ["--tokens", "2e10"]
    code, out, err = run_cli(args, capsys)
    _ok_or_one_line(code, out, err)
    if name == "train":
        assert code == 2 and not Path(inputs["STORE"]).exists()  # refused before anything is stored
    if code == 2 and any(v in ("nan", "inf", "-inf") for v in args[len(base) :][1::2]):
        assert "should be greater" not in err  # a non-finite number is named as such
    assert math.isfinite(len(out))


# -- a seeded fuzz of every subcommand (oasl.testing_fuzz): corrupt stores, files that are not UTF-8 or nest
# thousands deep, huge/negative/nan numbers, names with markup and ESC, bad paths. OASL_FUZZ_N sets how
# many invocations (default 500, about 45 s); benchmarks/fuzz_cli.py runs a longer profile.
FUZZ_N = int(os.environ.get("OASL_FUZZ_N", "500"))


def test_seeded_fuzz_of_every_subcommand(tmp_path):
    from oasl.testing_fuzz import invocations, run_fuzz

    outcomes = run_fuzz(tmp_path, FUZZ_N, seed=0, timeout_s=30.0)
    assert len(outcomes) == FUZZ_N >= 1
    commands = {" ".join(a for a in o.args[:2] if not a.startswith("-")) for o in outcomes}
    assert len(commands) >= 15  # every subcommand is reached
    faults = [f"{' '.join(o.args)[-200:]}: {o.faults}" for o in outcomes if o.faults]
    assert not faults, "\n".join(faults[:20])
    assert sum(o.code == 2 for o in outcomes) > FUZZ_N // 2  # most are malformed, and refused
    assert invocations({"trained_key": "k", "folder": "f"}, 5, seed=0) == invocations(
        {"trained_key": "k", "folder": "f"}, 5, seed=0
    )  # the same command lines on every run: a failure in CI reproduces locally
