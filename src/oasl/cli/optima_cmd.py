"""``oasl optima`` (the optimum of swept HPs per group, with CI, band and flags) and ``oasl import``
(runs from other training code into a store). Thin: parse, call :mod:`oasl.workflows`, print."""

from __future__ import annotations

import math
from pathlib import Path

import typer
from rich.table import Table

from oasl.cli.common import console


def _num(v) -> str:
    if isinstance(v, float):
        return "-" if not math.isfinite(v) else f"{v:.3g}"
    return str(v)


def _ci(lo, hi) -> str:
    if not (math.isfinite(lo) or math.isfinite(hi)):
        return "-"
    return f"{_num(lo) if math.isfinite(lo) else '?'} - {_num(hi) if math.isfinite(hi) else '?'}"


def _flags(r) -> str:
    out = []
    if r.get("at_edge"):
        out.append(f"edge {r['at_edge']}")
    if r.get("too_few"):
        out.append("too few")
    if r.get("diverged_near"):
        out.append("diverged near")
    if "refined" in r and not r["refined"] and not r.get("too_few"):
        out.append("argmin")
    return ", ".join(out)


def _print_single(opt, groups, over, eps, level, out) -> None:
    table = Table(title=f"optimum of {over} per {', '.join(groups) or 'all runs'} -> {out}")
    for c in [
        *groups,
        "grid argmin",
        "optimum",
        f"{level:.0%} CI",
        f"band ({eps:.2%})",
        "runs (+div.)",
        "flags",
    ]:
        table.add_column(c)
    for _, r in opt.iterrows():
        table.add_row(
            *[_num(r[g]) for g in groups],
            _num(r["grid_argmin"]),
            _num(r["opt"]),
            _ci(r["ci_low"], r["ci_high"]),
            _ci(r["band_low"], r["band_high"]),
            f"{r['n_points']} (+{r['n_diverged']})",
            _flags(r),
        )
    console.print(table)


def _print_joint(opt, groups, over, eps, level, out) -> None:
    table = Table(title=f"joint optimum of {' x '.join(over)} per {', '.join(groups) or 'all runs'} -> {out}")
    cols = [*groups]
    for h in over:
        cols += [f"{h} argmin", f"{h} optimum [{level:.0%} CI]", f"{h} band ({eps:.2%})"]
    for c in [*cols, "runs (+div.)", "flags"]:
        table.add_column(c)
    for _, r in opt.iterrows():
        cells = [_num(r[g]) for g in groups]
        for h in over:
            cells += [
                _num(r[f"argmin_{h}"]),
                f"{_num(r[f'opt_{h}'])} [{_ci(r[f'ci_low_{h}'], r[f'ci_high_{h}'])}]",
                _ci(r[f"band_low_{h}"], r[f"band_high_{h}"]),
            ]
        table.add_row(*cells, f"{r['n_points']} (+{r['n_diverged']})", _flags(r))
    console.print(table)


def _print_coordinate(opt, over: str, out: Path) -> None:
    """Coordinate-descent runs: the optimum of ``over`` on each sweep's 1-D valley (oasl.optima.coordinate)."""
    table = Table(title=f"optimum of {over} on each sweep's valley (coordinate descent) -> {out}")
    for c in ("sweep", "chosen", "optimum", "interval (bounded by)", "runs (+div.)", "flags"):
        table.add_column(c)
    for _, r in opt.iterrows():
        bounds = f"{_ci(r['ci_low'], r['ci_high'])} ({r['low_bound']}, {r['high_bound']})"
        flags = ", ".join([f"edge {r['at_edge']}"] if r["at_edge"] else []) or (
            "parabola" if r["refined"] else ""
        )
        table.add_row(
            str(r["sweep"]),
            _num(r["best_config"]),
            _num(r["opt"]),
            bounds,
            f"{r['n_points']} (+{r['n_diverged']})",
            flags,
        )
    console.print(table)
    for _, r in opt.iterrows():
        if r["note"]:
            console.print(f"[yellow]{r['sweep']}[/yellow]: {r['note']}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``optima`` and ``import`` commands to ``app``."""

    @app.command("optima")
    def optima_cmd(
        store: str = typer.Option(None, "--store", help="Store of runs (SQLite path)."),
        csv: Path = typer.Option(None, "--csv", help="Or a CSV of runs, one row per run."),
        over: str = typer.Option(
            "lr", "--over", help="The swept HP, or two comma-separated HPs for a joint optimum."
        ),
        group_by: str = typer.Option(
            "optimizer,n_params,tokens", "--group-by", help="Comma-separated columns."
        ),
        loss: str = typer.Option("final_val_loss", "--loss", help="Loss column (lower is better)."),
        eps: float = typer.Option(
            0.0025, "--eps", help="Near-optimal band: loss within eps (relative) of the best."
        ),
        level: float = typer.Option(0.9, "--level", help="Confidence level of the bootstrap interval."),
        n_boot: int = typer.Option(200, "--n-boot", help="Bootstrap refits per group."),
        seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
        out: Path = typer.Option(Path("optima.csv"), "--out", help="CSV of optima to write."),
        plot: Path = typer.Option(None, "--plot", help="PNG of loss vs HP (or the loss surface) per group."),
    ) -> None:
        """Locate the optimum of a swept HP per group, with its CI, near-optimal band and flags."""
        from oasl.workflows import optima

        res = optima(
            store,
            csv=csv,
            over=over,
            group_by=group_by,
            loss=loss,
            eps=eps,
            level=level,
            n_boot=n_boot,
            seed=seed,
            out=out,
        )
        opt, hps, groups, df = res.table, res.over, res.groups, res.runs
        if res.coordinate:  # coordinate-descent sweeps (Marin's): docs/marin.md
            _print_coordinate(opt, hps[0], out)
            return
        if res.mixed:
            console.print(
                f"[yellow]warning[/yellow]: {', '.join(res.mixed)} vary within groups: the optimum mixes "
                f"their settings; add them to --group-by ({','.join([*groups, *res.mixed])})",
                highlight=False,
            )
        (_print_single if len(hps) == 1 else _print_joint)(
            opt, groups, hps[0] if len(hps) == 1 else hps, eps, level, out
        )
        for _, r in opt.iterrows():
            if r["note"]:
                label = ", ".join(f"{g}={_num(r[g])}" for g in groups) or "all runs"
                console.print(f"[yellow]{label}[/yellow]: {r['note']}", highlight=False)
        if plot is not None:
            from oasl.report.plots_optima import plot_joint_optima, plot_optima

            if len(hps) == 1:
                plot_optima(df, opt, hps[0], groups, plot, loss=loss)
            else:
                plot_joint_optima(df, opt, tuple(hps), groups, plot, loss=loss, eps=eps)
            console.print(f"plot written to {plot}")

    @app.command("import")
    def import_cmd(
        csv: Path = typer.Argument(
            ..., help="CSV of runs from your own training code, one row per run (or a Marin results folder)."
        ),
        store: str = typer.Option("runs.db", "--store", help="Store to add them to (created if absent)."),
        loss_column: str = typer.Option(
            None,
            "--loss-column",
            help="Column holding the loss to optimize (default final_val_loss, else loss), e.g. 'smooth loss'.",
        ),
        column_map: str = typer.Option(
            None,
            "--column-map",
            help="Rename columns to oasl's names: OLD=NEW,... (e.g. N=n_params,D=tokens,bs=batch_seqs).",
        ),
        constants: str = typer.Option(
            None,
            "--set",
            help="Columns the CSV lacks, one value for every row: NAME=VALUE,... (e.g. optimizer=adamw,seq_len=2048).",
        ),
        replace: bool = typer.Option(
            False,
            "--replace",
            help="Replace the runs an earlier import of a file of this name added (after correcting it).",
        ),
        fmt: str = typer.Option(
            "auto",
            "--format",
            help="auto, csv, or marin (a folder of Marin optimizer-sweep result.json files; auto-detected).",
        ),
    ) -> None:
        """Import runs into a store (needs a loss column; NaN/inf = diverged). batch_tokens is derived
        from batch_seqs x seq_len when absent. A folder of Marin sweep results (docs/marin.md) is read
        as such."""
        from oasl.store import parse_pairs
        from oasl.workflows import import_runs

        res = import_runs(
            csv,
            store,
            loss_column=loss_column,
            column_map=parse_pairs(column_map, "--column-map"),
            constants=parse_pairs(constants, "--set"),
            fmt=fmt,
            replace=replace,
        )
        for w in res.warnings:
            console.print(f"[yellow]warning[/yellow]: {w}", highlight=False, soft_wrap=True)
        n_rep = getattr(res, "n_replaced", 0)
        swapped = f"; replaced {n_rep} run(s) of an earlier import" if n_rep else ""
        console.print(
            f"imported {res.n_new} new run(s) from {csv} into {store} ({res.n_rows - res.n_new} already "
            f"there{swapped})",
            highlight=False,
            soft_wrap=True,
        )
