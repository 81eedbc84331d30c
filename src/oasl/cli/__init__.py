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
        _COMMAND.append(cmd)
    return _COMMAND[0]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``oasl`` console script."""
    cmd = _command()
    try:
        code = cmd.main(args=argv, prog_name="oasl", standalone_mode=False)
    except _click_exc.NoArgsIsHelpError as exc:  # `oasl sweep` alone: show its help
        typer.echo(exc.ctx.get_help(), err=True)
        sys.exit(exc.exit_code)
    except _click_exc.UsageError as exc:  # typer would draw a multi-line box
        typer.secho(_usage_line(exc), err=True, fg="red")
        sys.exit(2)
    except _click_exc.ClickException as exc:
        typer.secho(f"error: {exc.format_message()}", err=True, fg="red")
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.secho("aborted", err=True)
        sys.exit(1)
    except OaslError as exc:
        if _STATE["debug"]:
            raise
        typer.secho(f"error: {' '.join(str(exc).split())}", err=True, fg="red")
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho(
            "interrupted: finished runs are in the store; run the same command again to resume", err=True
        )
        sys.exit(130)
    if isinstance(code, int) and code:
        sys.exit(code)
