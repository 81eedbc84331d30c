"""One default store for every command (runs.db), with an older oasl.db still read where runs.db is absent."""

import typer.main

from oasl.cli import app
from oasl.cli.common import resolve_store
from oasl.store import open_store
from oasl.testing import run_cli


def _store_defaults():
    cmd = typer.main.get_command(app)
    out = {}

    def walk(c, path):
        for p in getattr(c, "params", []):
            if p.name == "store":
                out[path] = (p.default, p.help or "")
        for name, sub in getattr(c, "commands", {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(cmd, "")
    return out


def test_every_command_defaults_to_runs_db():
    found = _store_defaults()
    for path in ("train", "runs", "runs drop", "sweep run", "import", "report", "validate"):
        default, help_ = found[path]
        assert default == "runs.db" or (default is None and "default runs.db" in help_), (path, default)


def test_an_old_oasl_db_is_still_read(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert resolve_store(None) == "runs.db"
    open_store("oasl.db")  # a store an older oasl wrote by default
    assert resolve_store(None) == "oasl.db"
    code, out, err = run_cli(["runs"], capsys)
    assert code == 0 and "store oasl.db holds no runs" in out and "rename it to runs.db" in err
    open_store("runs.db")
    assert resolve_store(None) == "runs.db" and resolve_store("x.db") == "x.db"
