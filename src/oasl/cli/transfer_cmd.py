"""``oasl transfer diagnose``: does the small-scale optimum transfer, or must one tune at the target?
Thin: parse, call :func:`oasl.laws.transfer.diagnose_transfer`, print, write JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer
from rich.table import Table

from oasl.cli.common import console
from oasl.config import parse_count


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _ci(v: float, ci) -> str:
    lo, hi = ci
    return f"{v:.2f} ({lo:.2f}-{hi:.2f})" if math.isfinite(lo) else f"{v:.2f}"


def register(app: typer.Typer) -> None:
    tr = typer.Typer(no_args_is_help=True, help="Fast-transfer diagnostics of a ladder's optima.")
    app.add_typer(tr, name="transfer")

    @tr.command("diagnose")
    def diagnose_cmd(
        store: str = typer.Option(None, "--store", help="Store of a ladder's sweep runs."),
        csv: Path = typer.Option(None, "--csv", help="Or a CSV of runs (n_params, the HP, final_val_loss)."),
        over: str = typer.Option("lr", "--over", help="The swept HP."),
        group_by: str = typer.Option(
            "optimizer,parametrization", "--group-by", help="Columns that define a ladder, comma-separated."
        ),
        target_params: float = typer.Option(
            None,
            "--target-params",
            parser=parse_count,
            help="Target non-embedding parameters N for the naive-transfer cost.",
        ),
        target_tokens: float = typer.Option(
            None,
            "--target-tokens",
            parser=parse_count,
            help="Target tokens D (default: the ladder's largest budget).",
        ),
        n_boot: int = typer.Option(200, "--n-boot", help="Bootstrap resamples for the intervals."),
        level: float = typer.Option(0.9, "--level", help="Interval level."),
        out: Path = typer.Option(None, "--out", help="Write the diagnostics as JSON here."),
        as_json: bool = typer.Option(False, "--json", help="Print the JSON instead of the table."),
        plot: Path = typer.Option(None, "--plot", help="Write the two log-log fits here (PNG)."),
        role: str = typer.Option(
            "sweep", "--role", help="Use runs of this role only: sweep (default), target, baseline or all."
        ),
    ) -> None:
        """Fit h*(N) and L*(N) on a ladder's optima; verdict fast/borderline/slow (beta vs alpha/2)."""
        from oasl.errors import ConfigError
        from oasl.laws.transfer import diagnose_transfer

        for name, v in (("--target-params", target_params), ("--target-tokens", target_tokens)):
            if v is not None and not (math.isfinite(v) and v > 0):
                raise ConfigError(f"{name} must be a positive finite number, got {v}")
        if n_boot < 0:
            raise ConfigError(f"--n-boot must be >= 0, got {n_boot}")
        from oasl.store import load_runs

        # a validated store's target and baseline runs are not rungs of the ladder
        df = load_runs(store, csv, finished_only=True, role=role)
        res = diagnose_transfer(
            df,
            over=over,
            group_by=_split(group_by),
            target_params=target_params,
            target_tokens=target_tokens,
            level=level,
            n_boot=n_boot,
        )
        payload = json.dumps(res.to_dict(), indent=2)
        if out is not None:
            out.write_text(payload + "\n")
        if plot is not None:
            from oasl.report.transfer import plot_transfer

            plot_transfer(res, plot)
        if as_json:
            typer.echo(payload)
            return
        table = Table(title=f"transfer of {over}: beta vs alpha/2 ({res.citation.split(';')[0]})")
        for c in (
            "group",
            "sizes",
            "alpha",
            "beta",
            "beta - alpha/2",
            "verdict",
            "naive cost",
            "direct runs",
        ):
            table.add_column(c, overflow="fold")
        for g in res.groups:
            cost = (
                f"{g.predicted_cost:.3g} ({g.predicted_cost_rel:.2%})"
                if math.isfinite(g.predicted_cost)
                else "-"
            )
            runs = f"{g.direct_runs:.0f}" if math.isfinite(g.direct_runs) else "-"
            table.add_row(
                " ".join(f"{k}={v}" for k, v in g.group.items()),
                str(len(g.n_params)),
                _ci(g.alpha, g.alpha_ci),
                _ci(g.beta, g.beta_ci),
                _ci(g.margin, g.margin_ci),
                g.verdict,
                cost,
                runs,
            )
        console.print(table)
        for g in res.groups:
            for note in g.notes:
                console.print(f"[yellow]{' '.join(map(str, g.group.values()))}[/yellow]: {note}")
        if out is not None:
            console.print(f"diagnostics written to {out}")
