"""A seeded fuzz of the ``oasl`` command: malformed invocations of every subcommand, run in-process.

Shared by ``tests/test_fuzz_cli.py`` (a fast profile) and ``benchmarks/fuzz_cli.py`` (a longer one).
:func:`make_inputs` builds, once, a small real store (one run trained by oasl, with its curve, and a
synthetic sweep imported from a CSV), corrupt copies of it (a spec without shape, a result that is a
list, a non-numeric schema version, a runs table missing columns, truncated or foreign files), and input
files of every kind oasl reads (sweep and validation YAML, laws, schedule laws, predictors, validation
JSON, runs CSVs) in good, non-UTF-8, deeply nested and markup-laden variants. :func:`invocations`
draws command lines from them with a seeded generator; :func:`check` runs one in a fresh folder and
returns what broke the contract:

- exit 0, or exit 2 with exactly one line on stderr starting ``error:``; no traceback and no
  ``internal error`` line (the CLI's last line of defence must never be what a user sees);
- no hang (a per-call timeout);
- no raw control character (ESC, BEL, ...) printed from user data;
- a command that fails changes no file that existed before it (sha256 before and after) and creates
  no store.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import random
import shutil
import signal
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

MARKUP_NAMES = (
    "[/bogus]",
    "[link=https://example.com]click[/link]",
    "\x1b]8;;https://example.com\x1b\\osc\x1b]8;;\x1b\\",
    "\x1b[31mred\x1b[0m",
    "$\\undefinedmacro{x}$",
    '=HYPERLINK("http://x")',
    "[bold]b",
)
HUGE = "99999999999999999999999"
NUMBERS = (HUGE, "-" + HUGE, "-1", "0", "nan", "inf", "-inf", "1e400", "", "abc", "1.5", "0x10", "3")
COUNT_FLAGS = {  # base command line -> its numeric options
    ("sweep", "plan", "sweep.yaml", "--no-measure"): ["--workers", "--members", "--threads"],
    ("schedules", "fit", "--store", "good.db", "--out", "@s.json"): ["--boot"],
    ("optima", "--store", "good.db", "--out", "@o.csv"): ["--n-boot", "--seed", "--eps", "--level"],
    ("runs", "--store", "good.db"): ["--limit"],
    ("earlywarn", "fit", "--store", "good.db", "--out", "@e.json"): ["--folds", "--frac", "--far", "--threshold"],
    ("schedules", "predict", "--law", "null.json"): ["--steps", "--warmup-steps", "--lr", "--n-params", "--level"],
    ("recommend", "--published", "step-law"): ["--params", "--tokens", "--world-size", "--grad-accum", "--seq-len",
                                              "--warn-ratio"],
    ("train", "--tokens", "1", "--store", "@t.db"): ["--width", "--depth", "--lr", "--seq-len", "--batch-seqs",
                                                    "--seed", "--eval-interval"],
}  # fmt: skip


class Hang(BaseException):
    """Raised in the main thread when an invocation runs past its timeout (a BaseException, so that
    the CLI's last line of defence cannot turn it into an error line)."""


@dataclass
class Outcome:
    """What one invocation did, and the contract faults found (empty: it held)."""

    args: list[str]
    code: int | None
    out: str
    err: str
    seconds: float
    faults: list[str] = field(default_factory=list)


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _write(p: Path, text: str | bytes) -> str:
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return str(p)


def _deep(n: int, kind: str) -> str:
    return ("[" * n + "]" * n) if kind == "json" else ("- " * 1 + "[" * n + "]" * n)


SWEEP = {
    "name": "fuzz",
    "ladder": {"widths": [16], "depth": 1},
    "shape_defaults": {"seq_len": 16},
    "optimizers": {"adamw": {"lr": {"log_range": [1e-3, 1e-2], "num": 2}}},
    "batch_seqs": 4,
    "tokens": 2048,
    "schedule": {"name": "cosine", "warmup_frac": 0.05},
    "run": {"eval_interval": 8, "device": "cpu"},
}


def _synthetic_runs() -> list[dict]:
    """A sweep whose optimum follows lr* = 5 N^-0.35, 3 sizes x 5 lrs (enough for optima and a law)."""
    rng = random.Random(0)
    rows = []
    for n in (2e4, 5e4, 1e5):
        best = 5.0 * n**-0.35
        for f in (1 / 8, 1 / 3, 1, 3, 8):
            lr = best * f
            loss = 3.0 + 0.05 * math.log(f) ** 2 + rng.gauss(0, 0.002)
            rows.append({"optimizer": "adamw", "n_params": n, "tokens": 20 * n, "lr": lr, "loss": loss})
    return rows


def make_inputs(root: Path) -> dict[str, str]:
    """Build the fuzz's stores and files under ``root`` (once; about 10 s, most of it one tiny training
    run). Returns name -> path."""
    import pandas as pd

    from oasl.cli import main
    from oasl.store import open_store

    root.mkdir(parents=True, exist_ok=True)
    f: dict[str, str] = {}
    good = root / "good.db"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            main(["train", "--width", "16", "--depth", "1", "--seq-len", "16", "--batch-seqs", "4",
                  "--tokens", "1024", "--lr", "1e-3", "--eval-interval", "8", "--device", "cpu",
                  "--store", str(good)])  # fmt: skip
        except SystemExit as exc:
            assert not exc.code, "the fuzz's training run failed"
    runs_csv = root / "runs.csv"
    pd.DataFrame(_synthetic_runs()).to_csv(runs_csv, index=False)
    open_store(good).import_frame(pd.read_csv(runs_csv), source="import:runs.csv")
    f["good.db"] = str(good)
    f["runs.csv"] = str(runs_csv)
    trained = [r["key"] for r in open_store(good).rows() if r["source"] == "oasl"][0]

    def corrupt(name: str, sql: str, params=()) -> None:
        p = root / name
        shutil.copy(good, p)
        con = sqlite3.connect(p)
        con.executescript(sql) if not params else con.execute(sql, params)
        con.commit()
        con.close()
        f[name] = str(p)

    corrupt("noshape.db", "UPDATE runs SET spec_json=json_remove(spec_json, '$.shape') WHERE source='oasl'")
    corrupt("resultlist.db", "UPDATE runs SET result_json='[1, 2]' WHERE source='oasl'")
    corrupt("badjson.db", "UPDATE runs SET spec_json='{not json' WHERE source='oasl'")
    corrupt("badversion.db", "UPDATE meta SET value='one' WHERE name='schema_version'")
    corrupt("newversion.db", "UPDATE meta SET value='99' WHERE name='schema_version'")
    corrupt(
        "nocols.db",
        "CREATE TABLE r2 AS SELECT key, status, source, spec_json, result_json FROM runs; DROP TABLE curves; "
        "DROP TABLE runs; ALTER TABLE r2 RENAME TO runs;",
    )
    corrupt("markup.db", "UPDATE runs SET spec_json=json_set(spec_json, '$.optimizer', ?) WHERE source!='oasl'",
            (MARKUP_NAMES[0] + MARKUP_NAMES[1] + MARKUP_NAMES[2] + MARKUP_NAMES[4],))  # fmt: skip
    corrupt("nullspec.db", "UPDATE runs SET spec_json='null' WHERE source='oasl'")
    foreign = root / "foreign.db"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE invoices (id INTEGER, total REAL)")
    con.execute("INSERT INTO invoices VALUES (1, 9.5)")
    con.commit()
    con.close()
    f["foreign.db"] = str(foreign)
    data = good.read_bytes()
    f["truncated.db"] = _write(root / "truncated.db", data[: len(data) // 3])
    f["random.db"] = _write(root / "random.db", random.Random(1).randbytes(4096))
    f["empty.db"] = _write(root / "empty.db", b"")
    f["trained_key"] = trained

    # a laws file and a schedule law written by oasl itself, then broken variants
    laws = root / "laws.json"
    quiet = (contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()))
    with quiet[0], quiet[1], contextlib.suppress(SystemExit):
        main(["fit", "--store", str(good), "--out", str(laws)])
    f["laws.json"] = str(laws) if laws.exists() else _write(laws, "{}")
    import yaml

    sweep_text = yaml.safe_dump(SWEEP)
    f["sweep.yaml"] = _write(root / "sweep.yaml", sweep_text)
    f["sweep_markup.yaml"] = _write(root / "sweep_markup.yaml", yaml.safe_dump({**SWEEP, "name": "[/x]"}))
    f["sweep_esc.yaml"] = _write(
        root / "sweep_esc.yaml", yaml.safe_dump({**SWEEP, "name": "\x1b]0;pwn\x07[link=http://x]y"})
    )
    f["sweep_huge.yaml"] = _write(
        root / "sweep_huge.yaml",
        yaml.safe_dump({**SWEEP, "seeds": int(HUGE), "ladder": {"widths": [10**30], "depth": 1}}),
    )
    f["sweep_tag.yaml"] = _write(root / "sweep_tag.yaml", "!!python/object/apply:os.system ['echo pwned']\n")
    val = {"sweep": SWEEP, "target": {"width": 32}, "seeds": [0], "baselines": ["naive"]}
    f["validate.yaml"] = _write(root / "validate.yaml", yaml.safe_dump(val))
    f["validate_nan.yaml"] = _write(
        root / "validate_nan.yaml", yaml.safe_dump({**val, "target": {"width": float("nan")}})
    )
    for stem, text in (("yaml", sweep_text), ("json", json.dumps({"kind": "x"}))):
        f[f"utf16.{stem}"] = _write(root / f"utf16.{stem}", text.encode("utf-16"))
        f[f"binary.{stem}"] = _write(root / f"binary.{stem}", random.Random(2).randbytes(600))
        f[f"deep.{stem}"] = _write(root / f"deep.{stem}", _deep(5000, stem))
    f["null.json"] = _write(root / "null.json", "null")
    f["list.json"] = _write(root / "list.json", "[1, 2, 3]")
    f["predictor_null.json"] = _write(
        root / "predictor_null.json", json.dumps({"features": None, "kind": None})
    )
    f["validation_nodraws.json"] = _write(
        root / "validation_nodraws.json",
        json.dumps(
            {
                "name": "v",
                "optimizers": [
                    {
                        "optimizer": "adamw",
                        "recommended_interval": [1e-3, 2e-3],
                        "methods": [{"method": "random", "losses": [3.0], "expected": {"mean": 0.1, "k": 3}}],
                    }
                ],
            }
        ),
    )
    f["key_clash.csv"] = _write(
        root / "key_clash.csv",
        f"key,optimizer,n_params,tokens,lr,final_val_loss\n{trained},adamw,1e4,2e5,1e-3,9.99\n",
    )
    f["formula.csv"] = _write(
        root / "formula.csv",
        "optimizer,n_params,tokens,lr,loss\n" + "".join(
            f"=1+1,{n},{20 * n},{lr},{3 + abs(math.log(lr * 100)) / 10}\n"
            for n in (2e4, 5e4, 1e5) for lr in (1e-3, 3e-3, 1e-2, 3e-2)
        ),
    )  # fmt: skip
    f["strloss.csv"] = _write(
        root / "strloss.csv",
        "optimizer,n_params,tokens,lr,loss\nadamw,1e4,2e5,1e-3,abc\nadamw,1e4,2e5,2e-3,3.0\n",
    )
    markup_rows = "".join(f'"{n}",1e4,2e5,{1e-3 * (i + 1)},3.{i}\n' for i, n in enumerate(MARKUP_NAMES))
    f["markup.csv"] = _write(root / "markup.csv", "optimizer,n_params,tokens,lr,loss\n" + markup_rows)
    f["utf16.csv"] = _write(root / "utf16.csv", "optimizer,loss\nadamw,3\n".encode("utf-16"))
    f["binary.csv"] = _write(root / "binary.csv", random.Random(3).randbytes(500))
    f["folder"] = str(root / "folder")
    _write(root / "folder" / "other.txt", "not a report")
    return f


STORES = ("good.db", "noshape.db", "resultlist.db", "badjson.db", "badversion.db", "newversion.db", "nocols.db",
          "markup.db", "nullspec.db", "foreign.db", "truncated.db", "random.db", "empty.db", "@/dev/null",
          "@missing/dir/x.db", "@folder")  # fmt: skip
BAD_FILES = ("utf16.yaml", "binary.yaml", "deep.yaml", "utf16.json", "binary.json", "deep.json", "null.json",
             "list.json", "@missing.json", "@folder")  # fmt: skip
OUTS = ("@", "@/", "@folder", "@nope/x.out", "@/proc/x.out", "@ok.out")
PLOTS = ("@x.x", "@folder", "@plot", "@nope/p.png", "@p.png", "@p.pdf")


def invocations(inputs: dict[str, str], n: int, seed: int = 0) -> list[list[str]]:
    """``n`` command lines drawn with ``random.Random(seed)``: the listed cases of the issue first, then
    mutations of every subcommand's options. ``@NAME`` stands for a path inside the invocation's own
    folder, ``NAME`` for one of ``inputs``."""
    rng = random.Random(seed)
    store = lambda: rng.choice(STORES)  # noqa: E731
    bad = lambda: rng.choice(BAD_FILES)  # noqa: E731
    num = lambda: rng.choice(NUMBERS)  # noqa: E731
    gens = {
        "runs": lambda: ["runs", "--store", store()] + (["--limit", num()] if rng.random() < 0.3 else [])
        + (["--all"] if rng.random() < 0.3 else []),
        "runs drop": lambda: ["runs", "drop", "--store", store(), "--yes", "--where",
                              rng.choice(["status=failed", "final_val_loss=9.99", "lr=nan", "x=1", "=", "key=",
                                          "optimizer=[/bogus]", "key=zzz"])],
        "optima": lambda: ["optima", "--store", store(), "--n-boot", rng.choice(["0", "20", num()]),
                           "--out", rng.choice(OUTS)] + (["--plot", rng.choice(PLOTS)] if rng.random() < 0.4 else []),
        "optima csv": lambda: ["optima", "--csv", rng.choice(["runs.csv", "formula.csv", "strloss.csv", "markup.csv",
                                                             "utf16.csv", "binary.csv", "@nope.csv"]),
                               "--n-boot", "0", "--out", rng.choice(OUTS)],
        "fit": lambda: ["fit", rng.choice(["--store", "--csv"]), rng.choice([store(), "runs.csv", "strloss.csv",
                        "markup.csv", "formula.csv"]), "--out", rng.choice(OUTS)]
        + (["--plot", rng.choice(PLOTS)] if rng.random() < 0.4 else []),
        "import": lambda: ["import", rng.choice(["runs.csv", "key_clash.csv", "strloss.csv", "markup.csv", "utf16.csv",
                           "binary.csv", "formula.csv", "@nope.csv", "@folder"]), "--store", store()],
        "report": lambda: ["report", "--store", store(), "--out", rng.choice(["@", "@/", "@folder", "@rep", "@nope/rep"])]
        + (["--validation", rng.choice(["validation_nodraws.json", bad()])] if rng.random() < 0.5 else []),
        "recommend": lambda: ["recommend", "--laws", rng.choice(["laws.json", bad()]), "--params",
                              rng.choice(["1e9", num()]), "--tokens", rng.choice(["2e10", num()]), "--format",
                              rng.choice(["json", "hf", "table", "x"])],
        "sweep plan": lambda: ["sweep", "plan", rng.choice(["sweep.yaml", "sweep_markup.yaml", "sweep_esc.yaml",
                               "sweep_huge.yaml", "sweep_tag.yaml", bad()]), "--no-measure"]
        + (["--workers", num()] if rng.random() < 0.5 else []),
        "sweep plan store": lambda: ["sweep", "plan", "sweep.yaml", "--no-measure", "--store", store()],
        "validate": lambda: ["validate", rng.choice(["validate_nan.yaml", "sweep_tag.yaml", bad()]), "--store",
                             "@new.db", "--out", rng.choice(["@val", "@/", "@folder/other.txt"])],
        "schedules fit": lambda: ["schedules", "fit", "--store", rng.choice([*STORES, "@new/dir/x.db"]), "--out",
                                  rng.choice(OUTS), "--boot", rng.choice(["0", HUGE, "-1", "5"])],
        "schedules predict": lambda: ["schedules", "predict", "--law", bad(), "--steps", num(), "--plot",
                                      rng.choice(PLOTS)],
        "schedules rank": lambda: ["schedules", "rank", "--law", bad(), "--steps", "100", "--plot", rng.choice(PLOTS)],
        "earlywarn fit": lambda: ["earlywarn", "fit", "--store", store(), "--out", rng.choice(OUTS), "--folds", num()],
        "earlywarn eval": lambda: ["earlywarn", "eval", rng.choice(["predictor_null.json", bad()]), "--store", store()],
        "transfer": lambda: ["transfer", "diagnose", "--store", store(), "--n-boot", rng.choice(["10", num()])],
        "batch": lambda: ["batch", "critical", "--store", store(), "--n-boot", rng.choice(["10", num()])],
        "laws list": lambda: ["laws", "list", "--name", rng.choice(MARKUP_NAMES)],
        "numbers": lambda: (lambda base: [*base, *sum(([k, num()] for k in rng.sample(COUNT_FLAGS[base],
                                                      min(2, len(COUNT_FLAGS[base])))), [])])(
            rng.choice(sorted(COUNT_FLAGS))),
    }  # fmt: skip
    out: list[list[str]] = []
    for name in sorted(gens):  # every generator at least once, then at random
        out.append(gens[name]())
    names = sorted(gens)
    while len(out) < n:
        out.append(gens[rng.choice(names)]())
    return out[:n]


def _resolve(args: list[str], inputs: dict[str, str], here: Path) -> list[str]:
    """Replace input names by copies in ``here`` (stores: each invocation gets its own) and ``@NAME``
    by ``here/NAME``."""
    out = []
    for a in args:
        if a.startswith("@/") or a == "@":
            out.append(a[1:])
        elif a.startswith("@"):
            out.append(str(here / a[1:]) if a != "@folder" else inputs["folder"])
        elif a in inputs and a.endswith(".db"):
            dst = here / a
            shutil.copy(inputs[a], dst)
            out.append(str(dst))
        elif a in inputs:
            out.append(inputs[a])
        else:
            out.append(a)
    return out


def _snapshot(paths: list[Path]) -> dict[Path, str]:
    return {p: _sha(p) for p in paths if p.is_file()}


@contextlib.contextmanager
def _deadline(seconds: float):
    def boom(signum, frame):
        raise Hang()

    old = signal.signal(signal.SIGALRM, boom)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def check(args: list[str], inputs: dict[str, str], here: Path, timeout_s: float = 20.0) -> Outcome:
    """Run ``oasl args`` in-process in the fresh folder ``here`` and check the contract (module doc)."""
    from oasl.cli import main

    here.mkdir(parents=True, exist_ok=True)
    argv = _resolve(args, inputs, here)
    watched = [p for p in here.iterdir()] + [Path(v) for k, v in inputs.items() if Path(v).is_file()]
    watched += [Path(inputs["folder"]) / "other.txt"]
    before = _snapshot(watched)
    listing = {p.name for p in here.iterdir()}
    out, err = io.StringIO(), io.StringIO()
    code: int | None = 0
    t0 = time.perf_counter()
    faults: list[str] = []
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            with _deadline(timeout_s):
                main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        except Hang:
            code = None
            faults.append(f"hang: no answer in {timeout_s:g} s")
        except BaseException as exc:  # noqa: BLE001 - anything escaping main is a fault
            code = None
            faults.append(f"escaped main: {type(exc).__name__}: {exc}")
    o, e = out.getvalue(), err.getvalue()
    dt = time.perf_counter() - t0
    if code not in (0, 2, None):
        faults.append(f"exit code {code}")
    if "Traceback" in o + e:
        faults.append("traceback")
    if "internal error" in e:
        faults.append("internal error: " + e.strip()[:300])
    if "\x1b" in o + e or "\x07" in o + e:
        faults.append("raw control character printed")
    if code == 2:
        lines = e.strip().splitlines()
        if len(lines) != 1 or not lines[0].startswith("error: "):
            faults.append(f"{len(lines)} stderr lines: {e.strip()[:300]!r}")
        after = _snapshot(list(before))
        changed = [p.name for p in before if after.get(p) != before[p]]
        if changed:
            faults.append(f"failing command changed {', '.join(changed)}")
        made = {
            p.name
            for p in here.iterdir()
            if p.name not in listing and not p.name.endswith(("-wal", "-shm")) and p.suffix == ".db"
        }
        if made:
            faults.append(f"failing command created {', '.join(sorted(made))}")
    return Outcome(argv, code, o, e, dt, faults)


def run_fuzz(root: Path, n: int, seed: int = 0, timeout_s: float = 20.0) -> list[Outcome]:
    """Build the inputs under ``root`` and run ``n`` invocations; returns every outcome."""
    os.environ.setdefault("COLUMNS", "120")
    inputs = make_inputs(root / "inputs")
    outcomes = []
    for i, args in enumerate(invocations(inputs, n, seed)):
        outcomes.append(check(args, inputs, root / f"call{i:04d}", timeout_s))
        shutil.rmtree(root / f"call{i:04d}", ignore_errors=True)
    return outcomes
