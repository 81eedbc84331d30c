"""`oasl laws list`, on an app built here from the laws command module alone."""

import json

import typer
from typer.testing import CliRunner

from oasl.cli.laws_cmd import register


def app() -> typer.Typer:
    a = typer.Typer()
    register(a)
    return a


def test_laws_list_shows_every_published_law(monkeypatch):
    from oasl.cli.common import console

    # the shared console fixes its width when first created; widen it so formulas are not wrapped
    monkeypatch.setattr(console, "width", 250)
    res = CliRunner().invoke(app(), ["laws", "list"])
    assert res.exit_code == 0, res.output
    for text in (
        "step-law",
        "deepseek",
        "kaplan",
        "1.79 N^-0.713 D^0.307",
        "2503.04715",
        "C is DeepSeek's M D",
    ):
        assert text in res.output, text


def test_laws_list_json_and_filter():
    res = CliRunner().invoke(app(), ["laws", "list", "--name", "deepseek", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert {r["name"] for r in rows} == {"deepseek"} and {r["target"] for r in rows} == {"lr", "batch_tokens"}
    bad = CliRunner().invoke(app(), ["laws", "list", "--name", "gpt5"])
    assert bad.exit_code != 0 and "choose one of" in str(bad.exception)
