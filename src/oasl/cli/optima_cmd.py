"""``oasl optima`` and ``oasl import``."""

from __future__ import annotations

import math
from pathlib import Path

import typer
from rich.table import Table

from oasl.cli.common import console


def register(app: typer.Typer) -> None:
    @app.command("optima")
    def optima_cmd(
        store: str = typer.Option(None, "--store", help="Store of runs."),
        csv: Path = typer.Option(None, "--csv", help="Or a CSV of runs."),
        over: str = typer.Option("lr", "--over", help="The swept HP to locate the optimum of."),
        group_by: str = typer.Option("optimizer,n_params,tokens", "--group-by", help="Comma-separated columns."),
        eps: float = typer.Option(0.0025, "--eps", help="Near-optimal band: relative loss within eps of the best."),
        out: Path = typer.Option(Path("optima.csv"), "--out", help="CSV of optima to write."),
        plot: Path = typer.Option(None, "--plot", help="PNG of loss vs HP per group."),
    ) -> None:
        """Locate the optimum of a swept HP per group, with its CI, band and flags."""
        from oasl.cli.laws_cmd import _runs_frame
        from oasl.optima import locate_optima

        df = _runs_frame(store, csv)
        groups = [g.strip() for g in group_by.split(",") if g.strip()]
        opt = locate_optima(df, over=over, group_by=groups, eps=eps)
        opt.to_csv(out, index=False)
        table = Table(title=f"optimum of {over} per {', '.join(groups)} -> {out}")
        for c in [*groups, "grid argmin", "optimum", "90% CI", f"band ({eps:.2%})", "points"]:
            table.add_column(c)
        for _, r in opt.iterrows():
            ci = f"{r['ci_low']:.3g} - {r['ci_high']:.3g}" if math.isfinite(r["ci_low"]) else "-"
            band = f"{r['band_low']:.3g} - {r['band_high']:.3g}" if math.isfinite(r["band_low"]) else "-"
            table.add_row(*[f"{r[g]:.4g}" if isinstance(r[g], float) else str(r[g]) for g in groups],
                          f"{r['grid_argmin']:.3g}", f"{r['opt']:.3g}", ci, band, f"{r['n_points']} (+{r['n_diverged']} div.)")
        console.print(table)
        for _, r in opt.iterrows():
            if r["note"]:
                console.print(f"[yellow]{', '.join(str(r[g]) for g in groups)}[/yellow]: {r['note']}")
        if plot is not None:
            from oasl.report.plots import plot_optima

            plot_optima(df, opt, plot, over=over, group_by=groups)
            console.print(f"plot written to {plot}")

    @app.command("import")
    def import_cmd(
        csv: Path = typer.Argument(..., help="CSV of runs from your own training code."),
        store: str = typer.Option("runs.db", "--store"),
    ) -> None:
        """Import runs (one per CSV row; needs a loss column: final_val_loss or loss) into a store."""
        import pandas as pd

        from oasl.errors import DataError
        from oasl.store import open_store

        if not csv.is_file():
            raise DataError(f"CSV file {csv} does not exist")
        try:
            df = pd.read_csv(csv)
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot parse {csv} as CSV: {exc}") from None
        if "final_val_loss" not in df and "loss" not in df:
            raise DataError(f"{csv} has no loss column: name it final_val_loss or loss")
        n = open_store(store).import_frame(df, source=f"import:{csv.name}")
        console.print(f"imported {n} new run(s) from {csv} into {store} ({len(df) - n} already there)")
