"""The ``oasl`` command: a thin typer layer over the API (parse, call, print).

Errors raised on purpose (:class:`~oasl.errors.OaslError`) are printed on one line and exit with code
2; ``--debug`` (or ``OASL_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from oasl.errors import OaslError

app = typer.Typer(
    name="oasl",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Optimization-aware scaling laws: hyperparameters for a large run from sweeps of small models.",
)
_STATE = {"debug": bool(os.environ.get("OASL_DEBUG"))}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors.")) -> None:
    if debug:
        _STATE["debug"] = True


# Each command module registers itself on `app`; a module that is not there yet is skipped so the
# CLI keeps working while features land one by one.
for _mod in (
    "train_cmd",
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
):
    try:
        _m = importlib.import_module(f"oasl.cli.{_mod}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"oasl.cli.{_mod}":
            raise
        continue
    _m.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``oasl`` console script."""
    try:
        app(args=argv, prog_name="oasl")
    except OaslError as exc:
        if _STATE["debug"]:
            raise
        typer.secho(f"error: {exc}", err=True, fg="red")
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho(
            "interrupted: finished runs are in the store; run the same command again to resume", err=True
        )
        sys.exit(130)
