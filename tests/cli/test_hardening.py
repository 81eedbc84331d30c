"""The cases of issue 27, replayed on a fresh copy of a small real store: corrupt stores, files that are
not UTF-8 or nest thousands deep, unbounded counts, bad output paths, user data as markup, an imported
key clashing with a trained run's, failing commands that write, and a full disk."""

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from oasl.store import open_store
from oasl.testing import run_cli
from oasl.testing_fuzz import HUGE, make_inputs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("inputs"))


@pytest.fixture
def copy(inputs, tmp_path):
    """copy(name): a fresh copy of one of the fuzz's stores in this test's folder."""

    def make(name: str) -> str:
        dst = tmp_path / name
        shutil.copy(inputs[name], dst)
        return str(dst)

    return make


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _one_line(code, err, *needles):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "internal error" not in err and "Traceback" not in err
    for n in needles:
        assert n in err, err


@pytest.mark.parametrize(
    "db, needle",
    [
        ("noshape.db", "spec has no shape"),
        ("resultlist.db", "result is a list"),
        ("nullspec.db", "spec is a NoneType"),
        ("badjson.db", "malformed JSON"),
        ("badversion.db", "not a number"),
        ("nocols.db", "no column error, attempts"),
        ("foreign.db", "not an oasl store"),
        ("truncated.db", "not a readable oasl store"),
        ("random.db", "not a readable oasl store"),
    ],
)
@pytest.mark.parametrize("cmd", [["runs"], ["runs", "drop", "--yes", "--where", "status=done"], ["optima"]])
def test_a_corrupt_store_is_one_line_and_untouched(db, needle, cmd, copy, tmp_path, capsys):
    path = copy(db)
    before = _sha(path)
    extra = ["--out", str(tmp_path / "o.csv")] if cmd == ["optima"] else []
    code, _, err = run_cli([*cmd, "--store", path, *extra], capsys)
    _one_line(code, err, needle)
    assert _sha(path) == before
    if err.startswith("error: run "):  # the row's key and the fix, which works
        fix = err.split("`oasl ")[1].split("`")[0].split()
        code, out, err = run_cli([*fix, "--yes", "--store", path], capsys)
        assert code == 0 and "dropped 1" in out, err
        code, _, err = run_cli(["runs", "--store", path], capsys)
        assert code == 0, err


def test_a_foreign_sqlite_file_gets_no_tables_and_keeps_its_journal_mode(copy, inputs, capsys):
    path = copy("foreign.db")
    code, _, err = run_cli(["runs", "--store", path], capsys)
    _one_line(code, err, "not an oasl store", "invoices")
    code, _, err = run_cli(["import", inputs["runs.csv"], "--store", path], capsys)
    _one_line(code, err, "not an oasl store")
    con = sqlite3.connect(path)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    mode = con.execute("PRAGMA journal_mode").fetchone()[0]
    con.close()
    assert tables == {"invoices"} and mode == "delete"


def test_dev_null_and_a_missing_store_are_refused_without_creating_anything(tmp_path, capsys):
    code, _, err = run_cli(["runs", "--store", "/dev/null"], capsys)
    _one_line(code, err, "not a regular file")
    assert not shutil.os.path.exists("/dev/null-journal")
    code, _, err = run_cli(
        [
            "schedules",
            "fit",
            "--store",
            str(tmp_path / "new" / "dir" / "x.db"),
            "--out",
            str(tmp_path / "s.json"),
        ],
        capsys,
    )
    _one_line(code, err, "does not exist")
    assert not (tmp_path / "new").exists()


def test_read_only_commands_open_the_store_read_only(copy, tmp_path, capsys):
    path = copy("good.db")
    before = _sha(path)
    for args in (["runs"], ["optima", "--out", str(tmp_path / "o.csv"), "--n-boot", "0"]):
        code, _, err = run_cli([*args, "--store", path], capsys)
        assert code == 0, err
    assert _sha(path) == before
    st = open_store(path, readonly=True)
    with pytest.raises(Exception, match="read-only"):
        st.delete(["x"])


@pytest.mark.parametrize("name", ["utf16.yaml", "binary.yaml"])
def test_files_that_are_not_utf8(name, inputs, capsys):
    code, _, err = run_cli(["sweep", "plan", inputs[name], "--no-measure"], capsys)
    _one_line(code, err, "not UTF-8 text: save it as UTF-8")


@pytest.mark.parametrize(
    "args",
    [
        ["sweep", "plan", "{deep_yaml}", "--no-measure"],
        ["recommend", "--laws", "{deep_json}", "--params", "1e9", "--tokens", "2e10"],
        ["recommend", "--laws", "{utf16_json}", "--params", "1e9", "--tokens", "2e10"],
        ["schedules", "predict", "--law", "{deep_json}", "--steps", "100"],
        ["schedules", "predict", "--law", "{binary_json}", "--steps", "100"],
        ["earlywarn", "eval", "{null_json}", "--store", "{good_db}"],
        ["earlywarn", "eval", "{list_json}", "--store", "{good_db}"],
        ["earlywarn", "eval", "{predictor_null_json}", "--store", "{good_db}"],
        ["report", "--store", "{good_db}", "--validation", "{utf16_json}", "--out", "{tmp}/r"],
        ["report", "--store", "{good_db}", "--validation", "{validation_nodraws_json}", "--out", "{tmp}/r"],
    ],
)
def test_malformed_input_files_are_one_line(args, inputs, tmp_path, capsys):
    fmt = {k.replace(".", "_"): v for k, v in inputs.items()}
    argv = [a.format(tmp=tmp_path, **fmt) for a in args]
    code, _, err = run_cli(argv, capsys)
    _one_line(code, err)
    assert not (tmp_path / "r").exists()  # the report folder is made only once its inputs are read


@pytest.mark.parametrize(
    "args",
    [
        ["sweep", "plan", "{sweep}", "--no-measure", "--workers", HUGE],
        ["schedules", "fit", "--store", "{good}", "--boot", HUGE],
        ["schedules", "fit", "--store", "{good}", "--boot", "1000000"],
        ["runs", "--store", "{good}", "--limit", HUGE],
        ["optima", "--store", "{good}", "--n-boot", HUGE],
    ],
)
def test_counts_are_bounded(args, inputs, capsys):
    argv = [a.format(sweep=inputs["sweep.yaml"], good=inputs["good.db"]) for a in args]
    code, _, err = run_cli(argv, capsys)
    _one_line(code, err, "out of range: give at most")


@pytest.mark.parametrize("out", ["", "/", "{folder}", "{tmp}/missing/x.out"])
@pytest.mark.parametrize(
    "cmd",
    [
        ["fit", "--store", "{good}"],
        ["optima", "--store", "{good}"],
        ["schedules", "fit", "--store", "{good}"],
        ["earlywarn", "fit", "--store", "{good}"],
    ],
)
def test_bad_output_paths(cmd, out, inputs, tmp_path, capsys):
    fmt = {"good": inputs["good.db"], "folder": inputs["folder"], "tmp": tmp_path}
    argv = [a.format(**fmt) for a in cmd] + ["--out", out.format(**fmt)]
    code, _, err = run_cli(argv, capsys)
    _one_line(code, err, "--out")
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("plot", ["x.x", "noext", "{folder}"])
@pytest.mark.parametrize(
    "cmd",
    [
        ["fit", "--store", "{good}", "--out", "{tmp}/l.json"],
        ["schedules", "predict", "--law", "{good}", "--steps", "100"],
        ["schedules", "rank", "--law", "{good}", "--steps", "100"],
    ],
)
def test_bad_plot_paths(cmd, plot, inputs, tmp_path, capsys):
    fmt = {"good": inputs["good.db"], "folder": inputs["folder"], "tmp": tmp_path}
    p = plot.format(**fmt) if plot.startswith("{") else str(tmp_path / plot)
    code, _, err = run_cli([a.format(**fmt) for a in cmd] + ["--plot", p], capsys)
    _one_line(code, err, "--plot")
    assert not list(tmp_path.glob("*.png"))


def test_report_refuses_a_folder_that_is_not_a_report(inputs, capsys):
    for out in ("/", inputs["folder"]):
        code, _, err = run_cli(["report", "--store", inputs["good.db"], "--out", out], capsys)
        _one_line(code, err, "no report (index.html)")
    assert not shutil.os.path.exists("/index.html")


def test_user_data_is_printed_and_drawn_literally(copy, inputs, tmp_path, capsys, monkeypatch):
    from oasl.cli.common import console

    # a table as wide as the data, whatever width the test process was given (pytest-xdist's workers get
    # COLUMNS=80, which rich reads once): no cell cut short with an ellipsis
    monkeypatch.setattr(console, "width", 400)
    path = copy("markup.db")
    for args in (
        ["runs", "--store", path],
        ["runs", "--store", path, "--all"],
        ["optima", "--store", path, "--n-boot", "0", "--out", str(tmp_path / "o.csv"), "--plot", str(tmp_path / "o.png")],
        ["fit", "--store", path, "--out", str(tmp_path / "l.json"), "--plot", str(tmp_path / "l.png")],
        ["report", "--store", path, "--out", str(tmp_path / "rep")],
        ["sweep", "plan", inputs["sweep_markup.yaml"], "--no-measure"],
        ["sweep", "plan", inputs["sweep_esc.yaml"], "--no-measure"],
    ):  # fmt: skip
        code, out, err = run_cli(args, capsys)
        assert code in (0, 2) and "internal error" not in err and "Traceback" not in err, (args, err)
        assert "\x1b" not in out + err and "\x07" not in out + err, args
        if args[0] == "runs":
            assert code == 0 and "[/bogus][link=https://example.com]" in out and "\\x1b]8;;" in out
    code, out, _ = run_cli(["sweep", "plan", inputs["sweep_markup.yaml"], "--no-measure"], capsys)
    assert code == 0 and "[/x]" in out


def test_csv_exports_neutralise_formulas(inputs, tmp_path, capsys):
    out = tmp_path / "o.csv"
    code, _, err = run_cli(
        ["optima", "--csv", inputs["formula.csv"], "--n-boot", "0", "--out", str(out)], capsys
    )
    assert code == 0, err
    df = pd.read_csv(out)
    assert set(df["optimizer"]) == {"'=1+1"}
    assert (df["opt"] > 0).all()  # numbers stay numbers


def test_an_imported_key_never_takes_over_a_trained_run(copy, inputs, capsys):
    path = copy("good.db")
    trained = inputs["trained_key"]
    code, _, err = run_cli(["import", inputs["key_clash.csv"], "--store", path], capsys)
    assert code == 0, err
    code, out, err = run_cli(
        ["runs", "drop", "--where", "final_val_loss=9.99", "--yes", "--store", path], capsys
    )
    assert code == 0 and "dropped 1" in out, out + err
    keys = {r["key"]: r for r in open_store(path).rows()}
    assert trained in keys and keys[trained]["source"] == "oasl"
    assert not any(r["spec"].get("final_val_loss") == 9.99 for r in keys.values())
    df = open_store(path).to_dataframe()
    assert df["key"].is_unique


def test_a_failing_validate_creates_no_store(inputs, tmp_path, capsys):
    db = tmp_path / "v" / "new.db"
    code, _, err = run_cli(
        ["validate", inputs["validate_nan.yaml"], "--store", str(db), "--out", str(tmp_path / "val")], capsys
    )
    _one_line(code, err)
    assert not db.exists() and not db.parent.exists()


# -- a full disk: SQLite's page limit set on every connection to the store makes any growth fail with
# SQLITE_FULL ("database or disk is full"), the error a full disk gives, through the real write path


@pytest.fixture
def full_disk(monkeypatch):
    """full_disk(path): from now on, every connection to ``path`` may not grow the file."""
    real = sqlite3.connect
    targets: set[str] = set()

    def connect(database, *args, **kwargs):
        con = real(database, *args, **kwargs)
        name = str(database)
        if any(t in name for t in targets):
            pages = con.execute("PRAGMA page_count").fetchone()[0]
            con.execute(f"PRAGMA max_page_count={max(pages, 1)}")
        return con

    monkeypatch.setattr(sqlite3, "connect", connect)
    return targets.add


def test_import_into_a_new_store_on_a_full_disk_leaves_no_file(inputs, tmp_path, full_disk, capsys):
    db = tmp_path / "new.db"
    full_disk(str(db))
    code, _, err = run_cli(["import", inputs["runs.csv"], "--store", str(db)], capsys)
    _one_line(code, err, "full")
    assert not list(tmp_path.glob("new.db*"))


def test_import_into_a_full_store_keeps_what_it_held(copy, tmp_path, full_disk, capsys):
    path = copy("good.db")
    n = len(open_store(path).rows())
    many = tmp_path / "many.csv"
    pd.DataFrame({"optimizer": "adamw", "n_params": 1e4, "tokens": 2e5, "lr": [1e-4 * (1 + i) for i in range(400)],
                  "loss": 3.0}).to_csv(many, index=False)  # fmt: skip
    full_disk(path)
    code, _, err = run_cli(["import", str(many), "--store", path], capsys)
    _one_line(code, err, "disk holding store", "is full")
    assert len(open_store(path).rows()) == n


def test_train_on_a_full_disk_is_one_line_and_releases_its_run(copy, full_disk, capsys):
    path = copy("good.db")
    before = {r["key"]: r["status"] for r in open_store(path).rows()}
    full_disk(path)
    code, _, err = run_cli(
        ["train", "--width", "16", "--depth", "1", "--seq-len", "16", "--batch-seqs", "4", "--tokens", "2048",
         "--lr", "2e-3", "--eval-interval", "8", "--device", "cpu", "--store", path],
        capsys,
    )  # fmt: skip
    _one_line(code, err, "is full")
    after = {r["key"]: r["status"] for r in open_store(path).rows()}
    assert all(after[k] == v for k, v in before.items())  # stored results intact
    assert "running" not in set(after.values()) - set(before.values())


def test_sweep_run_on_a_full_disk_is_one_line_and_releases_its_claim(copy, inputs, full_disk, capsys):
    path = copy("good.db")
    before = {r["key"]: r["status"] for r in open_store(path).rows()}
    full_disk(path)
    code, _, err = run_cli(["sweep", "run", inputs["sweep.yaml"], "--store", path, "--workers", "1"], capsys)
    _one_line(code, err, "is full")
    st = open_store(path)
    after = {r["key"]: r["status"] for r in st.rows()}
    assert all(after[k] == v for k, v in before.items())
    assert not st.live_claims()  # released, or lapsed with this owner gone (as a killed run's)


def test_sweep_named_as_markup_runs_and_reports(inputs, tmp_path, capsys):
    import yaml

    spec = yaml.safe_load(Path(inputs["sweep_markup.yaml"]).read_text())
    spec["optimizers"]["adamw"]["lr"]["num"] = 1
    spec["tokens"] = 1024
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    code, out, err = run_cli(["sweep", "run", str(path), "--store", str(tmp_path / "s.db")], capsys)
    assert code == 0, err
    assert "[/x]" in out + err and "internal error" not in err


def test_the_clis_own_style_tags_render_and_only_those(tmp_path):
    """The CLI's messages style with OWN_TAGS, each closed by name: a bare ``[/]`` is escaped like user
    text (so `oasl refine` once printed ``warning:[/]``); no CLI module may use one."""
    import io
    import re

    from oasl.cli.common import OWN_TAGS, SafeConsole

    buf = io.StringIO()
    SafeConsole(file=buf, width=200).print("[yellow]warning:[/yellow] run [/x] at [bold]lr[/bold]")
    assert buf.getvalue().strip() == "warning: run [/x] at lr"
    cli = Path(__file__).resolve().parents[2] / "src" / "oasl" / "cli"
    for path in sorted(set(cli.glob("*.py")) - {cli / "common.py"}):  # common.py defines them
        text = path.read_text()
        assert "[/]" not in text, f"{path.name}: close a style tag by its name, not [/]"
        for tag in re.findall(r"(?<![\\\w])\[/([a-z ]+)\]", text):
            assert tag in OWN_TAGS, f"{path.name}: [/{tag}] is not one of OWN_TAGS"
