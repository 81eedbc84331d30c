"""The README's five-minute tour runs as written: every line of its tour block, in order, exits 0.

The lines run with bash in a fresh folder holding a copy of ``examples/`` (as a clone's root does), with
an ``oasl`` on PATH that runs this checkout's package under the test's interpreter (what
``source .venv/bin/activate`` gives after ``make setup``). The tour's inputs are tiny (a 15-run sweep of
12,800 tokens per run, a target of width 48), so the whole tour takes about a minute on 2 cores.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import oasl

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SRC = Path(oasl.__file__).resolve().parents[1]

# Tour lines known to fail, by a substring of the line -> the issue and item that fix it. The test of such a
# line is a strict xfail: when the fix lands the line passes, the strict marker makes that visible, and the
# entry is removed. Empty since issue 26's fixes landed (items 3-6 held 8 lines and the Python example).
KNOWN_FAILURES: dict[str, str] = {}


def _block_after(marker: str, lang: str) -> str:
    text = README.read_text()
    m = re.search(re.escape(marker) + r"\s*```" + lang + r"\n(.*?)```", text, re.S)
    assert m, f"README.md has no ```{lang} block after {marker}"
    return m.group(1)


def tour_lines() -> list[str]:
    """The tour's commands: the shell block after ``<!-- tour -->``, comments and blank lines dropped,
    backslash continuations joined."""
    lines, cur = [], ""
    for raw in _block_after("<!-- tour -->", "bash").splitlines():
        line = raw.rstrip()
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        lines.append(cur + line)
        cur = ""
    assert not cur, "the tour ends in a backslash continuation"
    return lines


def python_snippet() -> str:
    """The README's Python example: the first ```python block after '## Using it from Python'."""
    text = README.read_text()
    m = re.search(r"```python\n(.*?)```", text[text.index("## Using it from Python") :], re.S)
    assert m, "README.md has no ```python block under '## Using it from Python'"
    return m.group(1)


def _known(line: str) -> str | None:
    """Why ``line`` is expected to fail until issue 26 is fixed (every matching reason), else None."""
    return "; ".join(why for key, why in KNOWN_FAILURES.items() if key in line) or None


LINES = tour_lines()


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    """Run every tour line in order in one folder; {index: (exit code, output)}."""
    work = tmp_path_factory.mktemp("tour")
    shutil.copytree(ROOT / "examples", work / "examples")
    bindir = work / ".bin"
    bindir.mkdir()
    shim = bindir / "oasl"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m oasl "$@"\n')
    shim.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p),
        "COLUMNS": "120",
    }
    results = {}
    for i, line in enumerate(LINES):
        p = subprocess.run(
            ["bash", "-c", line],
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
        )
        results[i] = (p.returncode, p.stdout + p.stderr)
    return work, results


def test_tour_is_short_and_uses_shipped_inputs():
    assert 10 <= len(LINES) <= 25
    for line in LINES:
        assert line.startswith("oasl "), f"a tour line that is not an oasl command: {line}"
        for path in re.findall(r"examples/\S+", line):
            assert (ROOT / path).is_file(), f"{line}: {path} does not ship"
    assert len(README.read_text().splitlines()) <= 160


@pytest.mark.parametrize(
    "i",
    [
        pytest.param(i, marks=pytest.mark.xfail(strict=True, reason=_known(line)) if _known(line) else ())
        for i, line in enumerate(LINES)
    ],
    ids=[re.sub(r"[^\w.-]+", "_", line)[:60] for line in LINES],
)
def test_tour_line_runs(tour, i):
    _, results = tour
    rc, output = results[i]
    assert rc == 0, f"`{LINES[i]}` exited {rc}:\n{output[-3000:]}"
    assert "Traceback" not in output


def test_tour_outputs(tour):
    """What the tour says it writes is there."""
    work, _ = tour
    for name in ("tour.db", "optima.png", "validation/validation.json", "report/index.html", "wandb.db"):
        assert (work / name).is_file(), name


def test_python_snippet_runs(tour):
    """The README's Python example, in the folder the tour left (its runs are reused)."""
    work, _ = tour
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p),
    }
    (work / "example.py").write_text(python_snippet())  # a script, as a user would save it
    p = subprocess.run(
        [sys.executable, "example.py"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "oasl" in p.stdout and "naive" in p.stdout


def test_examples_agree(tmp_path):
    """examples/spec.yaml validates the ladder of examples/sweep.yaml (so `oasl validate` reuses the tour's
    sweep runs), and examples/wandb_runs.csv is what examples/make_wandb_csv.py writes."""
    import importlib.util

    from oasl.sweep import expand, load_sweep
    from oasl.validate import load_validate

    sweep = load_sweep(ROOT / "examples" / "sweep.yaml")
    spec = load_validate(ROOT / "examples" / "spec.yaml")
    assert {r.key() for r in expand(sweep)} == {r.key() for r in expand(spec.sweep)}

    mod_spec = importlib.util.spec_from_file_location(
        "make_wandb_csv", ROOT / "examples" / "make_wandb_csv.py"
    )
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    mod.main(tmp_path / "wandb_runs.csv")
    assert (tmp_path / "wandb_runs.csv").read_text() == (ROOT / "examples" / "wandb_runs.csv").read_text()
