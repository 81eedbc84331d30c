"""The ``oasl`` command: a thin typer layer over the API (parse, call, print).

Errors raised on purpose (:class:`~oasl.errors.OaslError`) are printed on one line and exit with code
2, as do usage errors (a bad flag value); ``--debug`` (or ``OASL_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
import typing

import typer
import typer.main

from oasl.cli.common import one_line
from oasl.errors import OaslError

app = typer.Typer(
    name="oasl",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Optimization-aware scaling laws: hyperparameters for a large run from sweeps of small models.",
)
# typer >= 0.25 vendors click: take its exception classes from where typer's own come from
_click_exc = sys.modules[typer.BadParameter.__module__]
_STATE = {"debug": bool(os.environ.get("OASL_DEBUG"))}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors.")) -> None:
    if debug:
        _STATE["debug"] = True


# Each command module registers itself on `app`; a module that is not there yet is skipped so the
# CLI keeps working while features land one by one.
for _mod in (
    "train_cmd",
    "runs_cmd",
    "sweep_cmd",
    "optima_cmd",
    "laws_cmd",
    "recommend_cmd",
    "schedules_cmd",
    "earlywarn_cmd",
    "validate_cmd",
    "report_cmd",
    "transfer_cmd",
    "batch_cmd",
    "refine_cmd",
):
    try:
        _m = importlib.import_module(f"oasl.cli.{_mod}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"oasl.cli.{_mod}":
            raise
        continue
    _m.register(app)


def _finite_floats(cmd) -> None:
    """Make every float option and argument of ``cmd`` (recursively) refuse nan and inf.

    Typer parses ``--lr nan`` into a float nan, which range checks downstream then report as "should be
    greater than 0"; checking here names the real fault, for every command at once (those added later too).
    """
    if isinstance(getattr(cmd, "commands", None), dict):
        for sub in cmd.commands.values():
            _finite_floats(sub)
    for param in getattr(cmd, "params", []):
        desc = getattr(param, "type_descriptor", None)
        ann = getattr(desc, "annotation", None)
        if ann is not float and not (
            typing.get_origin(ann) in (list, tuple) and float in typing.get_args(ann)
        ):
            continue

        def process_value(ctx, value, _orig=param.process_value, _param=param):
            value = _orig(ctx, value)
            for v in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(v, float) and not math.isfinite(v):
                    raise typer.BadParameter(f"{v} is not a finite number: give a finite value", ctx, _param)
            return value

        param.process_value = process_value


# Largest value of each count option (typer gives no bound): a huge --boot or --workers must be refused
# at once, not hang or overflow deep inside. Options not named here accept |value| <= INT_MAX.
INT_MAX = 10**15
COUNT_MAX = {
    "workers": 4096, "members": 4096, "threads": 4096, "runs_per_gpu": 1024, "boot": 10_000,
    "n_boot": 100_000, "folds": 1000, "limit": 10**9, "steps": 10**7, "warmup_steps": 10**7,
    "world_size": 10**6, "grad_accum": 10**6, "seed": 2**32 - 1, "width": 2**20, "depth": 10**4,
    "n_heads": 2**16, "seq_len": 2**24, "batch_seqs": 2**24, "base_width": 2**20,
}  # fmt: skip


def _bounded_ints(cmd) -> None:
    """Make every int option of ``cmd`` (recursively) refuse values above its :data:`COUNT_MAX` (or
    :data:`INT_MAX`) in one usage line, before the command runs."""
    if isinstance(getattr(cmd, "commands", None), dict):
        for sub in cmd.commands.values():
            _bounded_ints(sub)
    for param in getattr(cmd, "params", []):
        ann = getattr(getattr(param, "type_descriptor", None), "annotation", None)
        if ann is not int and int not in typing.get_args(ann):
            continue
        top = COUNT_MAX.get(param.name, INT_MAX)

        def process_value(ctx, value, _orig=param.process_value, _param=param, _top=top):
            value = _orig(ctx, value)
            for v in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(v, int) and not -INT_MAX <= v <= _top:
                    shown = str(v) if len(str(v)) <= 20 else f"{str(v)[:8]}...({len(str(v))} digits)"
                    raise typer.BadParameter(f"{shown} is out of range: give at most {_top}", ctx, _param)
            return value

        param.process_value = process_value


def _checked_paths(cmd) -> None:
    """Make every ``--out`` and ``--plot`` option of ``cmd`` (recursively) check its path before the
    command runs (:func:`oasl.cli.common.check_out_path`): a folder when its help says "Folder" (a
    report folder when it names index.html), a plot file for ``--plot``, else a file."""
    from oasl.cli.common import check_out_path

    if isinstance(getattr(cmd, "commands", None), dict):
        for sub in cmd.commands.values():
            _checked_paths(sub)
    for param in getattr(cmd, "params", []):
        if param.name not in ("out", "plot") or not getattr(param, "opts", None):
            continue
        help_ = (getattr(param, "help", None) or "").lower()
        kind = "plot" if param.name == "plot" else "file"
        if param.name == "out" and help_.startswith("folder"):
            kind = "report" if "index.html" in help_ else "dir"

        def process_value(ctx, value, _orig=param.process_value, _param=param, _kind=kind):
            if isinstance(value, str) and not value.strip():
                raise typer.BadParameter("the path is empty: give a path", ctx, _param)
            value = _orig(ctx, value)
            try:
                check_out_path(value, _param.opts[0], _kind)
            except OaslError as exc:
                raise typer.BadParameter(str(exc).removeprefix(f"{_param.opts[0]} "), ctx, _param) from None
            return value

        param.process_value = process_value


def _internal_line(exc: BaseException) -> str:
    """One line for an exception oasl did not raise on purpose: the faults a user's input or machine can
    cause named as such (a full disk, a file that is not UTF-8, nesting too deep), anything else as an
    internal error to report."""
    import errno
    import sqlite3

    if isinstance(exc, UnicodeDecodeError):
        return "error: an input file is not UTF-8 text: save it as UTF-8"
    if isinstance(exc, RecursionError):
        return "error: an input is nested too deeply to read: flatten it"
    if isinstance(exc, MemoryError):
        return "error: out of memory: use smaller inputs (fewer runs, steps or bootstrap samples)"
    if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or (
        isinstance(exc, sqlite3.OperationalError) and "full" in str(exc)
    ):
        return f"error: the disk is full ({exc}): free some space and run the command again"
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"error: {exc.strerror}: {exc.filename}: choose a writable place"
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"error: {exc.strerror or exc}: {exc.filename}: check the path"
    return f"error: internal error: {type(exc).__name__}: {exc}: rerun with --debug and report it"


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning oasl raised, as one ``warning: ...`` line on stderr (no file and source line)."""
    typer.secho(one_line(f"warning: {message}"), err=True, fg="yellow")


def _usage_line(exc) -> str:
    """A click usage error as one line: the command, the fault, where to read the options."""
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "oasl"
    msg = " ".join(line.strip() for line in exc.format_message().splitlines() if line.strip())
    return f"error: {where}: {msg} (see `{where} --help`)"


_COMMAND: list = []


def _command():
    """The click command of ``app``, built once per process (building it walks every signature)."""
    if not _COMMAND:
        cmd = typer.main.get_command(app)
        _finite_floats(cmd)
        _bounded_ints(cmd)
        _checked_paths(cmd)
        _COMMAND.append(cmd)
    return _COMMAND[0]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``oasl`` console script."""
    import warnings

    cmd = _command()
    try:
        with warnings.catch_warnings():
            if not _STATE["debug"]:  # library warnings (numpy, matplotlib) are not messages for users;
                # oasl's own are, on one line each
                warnings.simplefilter("ignore")
                warnings.filterwarnings("default", module=r"oasl(\.|$)")
                warnings.showwarning = _warning_line
            code = cmd.main(args=argv, prog_name="oasl", standalone_mode=False)
    except _click_exc.NoArgsIsHelpError as exc:  # `oasl sweep` alone: show its help
        typer.echo(exc.ctx.get_help(), err=True)
        sys.exit(exc.exit_code)
    except _click_exc.UsageError as exc:  # typer would draw a multi-line box
        typer.secho(one_line(_usage_line(exc)), err=True, fg="red")
        sys.exit(2)
    except _click_exc.ClickException as exc:
        typer.secho(one_line(f"error: {exc.format_message()}"), err=True, fg="red")
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.secho("aborted", err=True)
        sys.exit(1)
    except OaslError as exc:
        if _STATE["debug"]:
            raise
        typer.secho(one_line(f"error: {exc}"), err=True, fg="red")
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho(
            "interrupted: finished runs are in the store; run the same command again to resume", err=True
        )
        sys.exit(130)
    except Exception as exc:  # the last line of defence: one line, never a traceback (--debug shows it)
        if _STATE["debug"]:
            raise
        typer.secho(one_line(_internal_line(exc)), err=True, fg="red")
        sys.exit(2)
    if isinstance(code, int) and code:
        sys.exit(code)
