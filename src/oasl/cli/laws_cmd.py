"""``oasl fit``, ``oasl laws list`` and ``oasl recommend``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer
from rich.table import Table

from oasl.cli.common import console, require_positive
from oasl.config import parse_count


def register(app: typer.Typer) -> None:
    laws = typer.Typer(no_args_is_help=True, help="Published scaling laws shipped with oasl.")
    app.add_typer(laws, name="laws")

    @laws.command("list")
    def list_cmd(
        name: str = typer.Option(None, "--name", help="Only this law set (step-law, deepseek, kaplan)."),
        as_json: bool = typer.Option(False, "--json", help="Print the table as JSON records instead."),
    ) -> None:
        """Show the published laws and the law sets shipped with oasl (e.g. marin: 11 optimizers):
        formula, optimizer, fitted range, citation."""
        import pandas as pd

        from oasl.laws import describe_published, get_published
        from oasl.laws.catalog import catalog_name, describe_catalog

        df = pd.concat([describe_published(), describe_catalog()], ignore_index=True)
        if name is not None:
            df = df[df["name"] == (catalog_name(name) or get_published(name).name)]
        if as_json:
            typer.echo(df.to_json(orient="records", indent=2))
            return
        cols = ("name", "target", "formula", "optimizer", "range", "citation")
        table = Table(title="published laws (use with `oasl recommend --published NAME`)")
        for c in cols:
            table.add_column(c, overflow="fold")
        for _, r in df.iterrows():
            table.add_row(*(str(r[c]) for c in cols))
        console.print(table)
        for n in dict.fromkeys(df["name"]):
            if catalog_name(n):
                from oasl.laws.catalog import get_catalog

                meta = get_catalog(n).meta
                console.print(
                    f"[dim]{n}: {meta.get('setup', '')} Fitted by oasl: {meta.get('fitted_by', '')}[/dim]"
                )
                continue
            s = get_published(n)
            if s.notes:
                console.print(f"[dim]{s.name}: {s.notes}[/dim]")

    @app.command("fit")
    def fit_cmd(
        store: str = typer.Option(None, "--store", help="Store of sweep runs."),
        csv: Path = typer.Option(
            None, "--csv", help="Or a CSV of runs (columns optimizer, n_params, tokens, HPs, loss)."
        ),
        out: Path = typer.Option(Path("laws.json"), "--out", help="Laws file to write."),
        hp: list[str] = typer.Option(None, "--hp", help="HPs to fit (default: every swept one)."),
        plot: Path = typer.Option(None, "--plot", help="Write log-log plots of each law here (PNG)."),
        role: str = typer.Option(
            "sweep", "--role", help="Fit runs of this role only: sweep (default), target, baseline or all."
        ),
    ) -> None:
        """Locate optima and fit a law for each swept HP; write them to a laws file."""
        from oasl.workflows import fit

        # validation's target and baseline runs are not sweep optima
        res = fit(store, csv=csv, hps=hp, role=role, out=out)
        if res.coordinate is not None:  # coordinate-descent sweeps (Marin's): docs/marin.md
            lawset = res.coordinate
            console.print(
                f"coordinate laws of {len(lawset.laws)} HPs for {len(lawset.optimizers)} optimizers -> {out} "
                f"(selected: {', '.join(f'{h} {v}' for h, v in lawset.meta['selected'].items())})"
            )
            return
        report = res.report
        table = Table(title=f"fitted laws -> {out}")
        for c in (
            "target",
            "optimizer",
            "form",
            "sharing",
            "formula",
            "R^2",
            "RMSE(log)",
            "held-out MAPE",
            "n",
            "range",
        ):
            table.add_column(c, overflow="fold")
        for _, r in report.table().iterrows():
            table.add_row(
                r["target"],
                r["optimizer"],
                r["form"],
                r["sharing"],
                r["formula"],
                f"{r['r2']:.3f}",
                f"{r['rmse_log']:.3f}",
                f"{r['loo_mape']:.1%}" if math.isfinite(r["loo_mape"]) else "-",
                str(r["n"]),
                r["range"],
            )
        console.print(table)
        from oasl.laws.prior import prior_line

        for h, info in report.priors.items():
            line = prior_line(h, info)
            if line:
                console.print(line, highlight=False, markup=False)
        if report.loss_law is not None:
            p = report.loss_law.params_
            console.print("loss law: L = {E:.3f} + {A:.3g}/N^{alpha:.3f} + {B:.3g}/D^{beta:.3f}".format(**p))
        for k, why in report.skipped.items():
            if k in report.laws or (k == "loss_law" and report.loss_law is not None):  # fitted, with a note
                console.print(f"[yellow]warning[/yellow]: {why}", highlight=False)
            else:
                console.print(f"[yellow]skipped {k}[/yellow]: {why}", highlight=False)
        if plot is not None:
            from oasl.report.plots import plot_laws

            plot_laws(report, plot)
            console.print(f"plot written to {plot}")

    @app.command("recommend")
    def recommend_cmd(
        params: float = typer.Option(
            None,
            "--params",
            parser=parse_count,
            help="Target N: NON-embedding parameters (the N of scaling laws), e.g. 7B, 350M, 1.2e9. From a "
            "total count use --params-total with --vocab and --width.",
        ),
        params_total: float = typer.Option(
            None,
            "--params-total",
            parser=parse_count,
            help="Or the target's total parameters (with --vocab and --width): N = total - vocab x width "
            "(tied embeddings; --untied subtracts the readout too).",
        ),
        vocab: int = typer.Option(None, "--vocab", help="Vocabulary size, for --params-total."),
        untied: bool = typer.Option(False, "--untied", help="With --params-total: the readout is not tied."),
        tokens: float = typer.Option(
            ..., "--tokens", parser=parse_count, help="Target training tokens D (the whole budget), e.g. 2T."
        ),
        optimizer: str = typer.Option(
            "adamw",
            "--optimizer",
            help="adamw, sgd, adafactor, lion or muon (the optimizer of the target run); with --published marin "
            "any of Marin's 11 (adamw, nadamw, muon, soape, cautious, kron, lion, mars, mini, scion, sophia).",
        ),
        width: int = typer.Option(None, "--width", help="Target width (with --depth, instead of --params)."),
        depth: int = typer.Option(None, "--depth", help="Target number of blocks (with --width)."),
        seq_len: int = typer.Option(
            None,
            "--seq-len",
            help="Sequence length of the target, for --params and --width/--depth alike (default 2048).",
        ),
        laws: Path = typer.Option(None, "--laws", help="Laws file from `oasl fit`."),
        published: str = typer.Option(
            None,
            "--published",
            help="Published law set: step-law, deepseek, kaplan, or marin (shipped, 11 optimizers).",
        ),
        force: bool = typer.Option(
            False, "--force", help="Use a published law fitted on another optimizer (with a warning)."
        ),
        fmt: str = typer.Option(
            "table",
            "--format",
            help="table, json, hf (TrainingArguments kwargs), torch (optimizer + LambdaLR schedule, "
            "steps, batch and a snippet) or optax (schedule + optimizer and a snippet).",
        ),
        world_size: int = typer.Option(
            1, "--world-size", help="With --format hf: data-parallel processes (GPUs) sharing the batch."
        ),
        grad_accum: int = typer.Option(
            1, "--grad-accum", help="With --format hf: gradient accumulation steps per optimizer step."
        ),
        exact_batch: bool = typer.Option(
            False,
            "--exact-batch",
            help="With --format hf: refuse (exit 2) instead of rounding a global batch that does not divide "
            "by --world-size x --grad-accum to the nearest multiple (the rounding is printed).",
        ),
        warn_ratio: float = typer.Option(4.0, "--warn-ratio", help="Warn beyond this extrapolation ratio."),
        gns_store: str = typer.Option(
            None,
            "--gns-store",
            help="Store of runs with gradient-noise measurements: adds B_crit(L) for the batch.",
        ),
        risk: bool = typer.Option(
            False,
            "--risk/--no-risk",
            help="Coordinate laws (--published marin): move lr and batch from the law's centre by the "
            "asymmetric-risk rule (off by default: it raised the regret in the training-only check; "
            "docs/marin.md).",
        ),
    ) -> None:
        """Recommend a full HP configuration for a target model, with intervals and sources."""
        from oasl.errors import ConfigError
        from oasl.workflows import coordinate_laws, recommend

        if fmt not in ("table", "json", "hf", "torch", "optax"):
            raise ConfigError(f"unknown --format {fmt!r}: use table, json, hf, torch or optax")
        for flag, v in (
            ("--params", params),
            ("--params-total", params_total),
            ("--tokens", tokens),
            ("--warn-ratio", warn_ratio),
        ):
            require_positive(v, flag)
        if params_total is not None:
            from oasl.models.counting import non_embedding_params

            if params is not None or vocab is None or width is None:
                raise ConfigError("give --params-total with --vocab and --width (and without --params)")
            params = non_embedding_params(params_total, vocab, width, tied=not untied)
            typer.secho(f"N = {params:.4g} non-embedding parameters (from --params-total)", err=True)
            width = None if depth is None else width
        coordinate = coordinate_laws(laws, published) is not None
        if coordinate and (fmt in ("hf", "torch", "optax") or params is None):
            raise ConfigError("coordinate laws take --params and --tokens and print --format table or json")
        if not coordinate and (world_size < 1 or grad_accum < 1):
            raise ConfigError(
                f"--world-size and --grad-accum must be >= 1, got {world_size} and {grad_accum}"
            )
        rec = recommend(
            optimizer,
            tokens=tokens,
            params=params,
            width=width,
            depth=depth,
            seq_len=seq_len,
            laws=laws,
            published=published,
            force=force,
            warn_ratio=warn_ratio,
            gns_store=gns_store,
            risk=risk,
        )
        if coordinate:
            for w in rec.warnings:
                typer.secho(f"warning: {w}", err=True, fg="yellow")
            if fmt == "json":
                typer.echo(json.dumps(rec.to_dict(), indent=2, default=str))
                return
            table = Table(
                title=f"recommendation for {rec.optimizer}, N={rec.n_params:.3g}, D={rec.tokens:.3g}, seq_len {rec.seq_len}"
            )
            for c in ("hyperparameter", "value", "90% interval", "source"):
                table.add_column(c, overflow="fold")
            for it in rec.items.values():
                val = f"{it.value:.4g}" if isinstance(it.value, float) else str(it.value)
                ci = f"[{it.low:.3g}, {it.high:.3g}]" if it.low is not None else "-"
                table.add_row(it.name, val, ci, it.source)
            console.print(table)
            return
        if gns_store is not None and "batch_tokens_gns" not in rec.items:
            typer.secho(
                f"warning: {gns_store} has no gradient-noise measurements (train with gns: true)", err=True
            )
        from oasl import export

        exported = {  # built before any warning is printed: a failing export stays one line
            "json": lambda: rec.to_dict(),
            "hf": lambda: rec.hf_training_arguments(world_size, grad_accum, round_batch=not exact_batch),
            "torch": lambda: export.torch_config(rec),
            "optax": lambda: export.optax_config(rec),
        }.get(fmt, lambda: None)()
        for w in rec.warnings:  # on stderr, so that json/hf/torch/optax output stays parseable
            typer.secho(f"warning: {w}", err=True, fg="yellow")
        if exported is not None:
            typer.echo(json.dumps(exported, indent=2, default=str))
            return
        table = Table(
            title=f"recommendation for {rec.optimizer}, N={rec.n_params:.3g}, D={rec.tokens:.3g}, "
            f"seq_len {rec.seq_len}"
        )
        for c in ("hyperparameter", "value", "90% interval", "source", "extrapolation"):
            table.add_column(c, overflow="fold")
        for it in rec.items.values():
            val = f"{it.value:.4g}" if isinstance(it.value, float) else str(it.value)
            ci = f"[{it.low:.3g}, {it.high:.3g}]" if it.low is not None else "-"
            ex = f"{it.extrapolation:.1f}x" if it.extrapolation else "-"
            table.add_row(it.name, val, ci, it.source, ex)
        console.print(table)
