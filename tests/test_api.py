"""The package face: ``import oasl`` gives the workflows and the types a user touches, stays light, and
keeps its functions when the same-named subpackages are imported; docs/api.md's example runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import oasl
from oasl.errors import ConfigError, StoreError
from oasl.testing import REPO_ROOT, run_cli

SRC = str(REPO_ROOT / "src")
API = ("sweep", "plan_sweep", "fit", "recommend", "validate", "write_report", "optima", "import_runs", "demo")


def _python(code: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout
    )


def test_import_oasl_is_light():
    """No torch, numpy, pandas or pydantic at import time, and well under half a second (the stdlib-only
    helpers under oasl, such as the trainers' reporter, import the package first)."""
    code = (
        "import json, sys, time\n"
        "t = time.perf_counter()\n"
        "import oasl\n"
        "dt = time.perf_counter() - t\n"
        "heavy = [m for m in ('torch', 'numpy', 'pandas', 'pydantic', 'yaml', 'scipy') if m in sys.modules]\n"
        "print(json.dumps({'s': dt, 'heavy': heavy, 'all': sorted(oasl.__all__)}))\n"
    )
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["heavy"] == []
    assert got["s"] < 0.5, got["s"]
    assert set(API) | {"OaslError", "SweepSpec", "RunSpec", "Recommendation", "open_store"} <= set(got["all"])


def test_face_functions_survive_every_submodule_import():
    """Python sets ``oasl.sweep`` to the subpackage when it is first imported; the face keeps the
    function, before and after, and its attributes reach the subpackage."""
    code = (
        "import importlib, pkgutil, sys\n"
        "import oasl.sweep.ray_executor, oasl.validate.baselines, oasl.recommend\n"  # before the face is used
        "import oasl\n"
        "for m in pkgutil.walk_packages(oasl.__path__, 'oasl.'):\n"
        "    if m.name != 'oasl.__main__':\n"
        "        importlib.import_module(m.name)\n"
        f"bad = [n for n in {API!r} if type(getattr(oasl, n)).__name__ != '_Workflow' or not callable(getattr(oasl, n))]\n"
        "assert not bad, bad\n"
        "assert oasl.sweep.expand is sys.modules['oasl.sweep'].expand\n"
        "assert oasl.validate.harness is sys.modules['oasl.validate.harness']\n"
        "assert oasl.recommend.Recommendation is oasl.Recommendation\n"
        "import oasl.sweep as s\n"
        "from oasl.sweep import SweepSpec\n"
        "assert s.SweepSpec is SweepSpec is oasl.SweepSpec\n"
        "import inspect\n"
        "assert 'trainer' in inspect.signature(oasl.sweep).parameters\n"
        "print('ok')\n"
    )
    proc = _python(code, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_face_exports():
    from oasl.laws import fit_laws
    from oasl.laws.pipeline import fit_laws as pipeline_fit_laws

    assert fit_laws is pipeline_fit_laws is oasl.fit_laws
    assert issubclass(oasl.OaslError, Exception)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        oasl.nope  # noqa: B018
    with pytest.raises(AttributeError):
        oasl.fit.nope  # noqa: B018  (no oasl.fit subpackage to forward to)


def test_recommend_is_what_the_cli_prints(capsys):
    rec = oasl.recommend("adamw", params=1e9, tokens=2e10, published="step-law")
    assert isinstance(rec, oasl.Recommendation)
    code, out, _ = run_cli(
        ["recommend", "--params", "1e9", "--tokens", "2e10", "--published", "step-law", "--format", "json"],
        capsys,
    )
    assert code == 0
    assert json.loads(out) == json.loads(json.dumps(rec.to_dict(), default=str))


def test_bad_input_is_one_oasl_error(tmp_path):
    with pytest.raises(ConfigError, match="give --laws laws.json"):
        oasl.recommend("adamw", params=1e9, tokens=2e10)
    with pytest.raises(ConfigError, match="give both --width and --depth"):
        oasl.recommend("adamw", width=256, tokens=2e10, published="step-law")
    with pytest.raises(StoreError, match="does not exist"):
        oasl.fit(str(tmp_path / "absent.db"))
    with pytest.raises(StoreError, match="does not exist"):
        oasl.write_report(str(tmp_path / "absent.db"), tmp_path / "report")
    with pytest.raises(ConfigError, match="--over takes one HP or two"):
        oasl.optima(str(tmp_path / "absent.db"), over="lr,beta1,beta2")


def test_docs_api_example_runs(tmp_path):
    """docs/api.md's example, as written: sweep a tiny ladder, locate the optima, fit, recommend."""
    text = (REPO_ROOT / "docs" / "api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1
    (tmp_path / "example.py").write_text(blocks[0])
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "example.py"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "15 runs trained, 0 already in the store" in proc.stdout
    law = re.search(r"lr = ([\d.]+) N\^-([\d.]+)", proc.stdout)
    assert law and 0 < float(law.group(2)) < 2, proc.stdout  # lr* falls with N on this ladder
    lr = re.search(r"^lr ([\d.e-]+) \(90% interval ([\d.e-]+)-([\d.e-]+)\)", proc.stdout, flags=re.M)
    assert lr and float(lr.group(2)) <= float(lr.group(1)) <= float(lr.group(3)), proc.stdout
    assert (tmp_path / "laws.json").is_file() and (tmp_path / "tiny.db").is_file()
    from oasl.laws import load_laws

    laws, meta = load_laws(tmp_path / "laws.json")  # the file `oasl recommend --laws` reads
    assert "lr" in laws and meta["n_runs"] == 15
