"""``oasl refine``: k runs of the target model around the law's recommendation, the local valley fitted,
the lr with an interval (:mod:`oasl.validate.refine`)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer
from rich.table import Table

from oasl.cli.common import STORE_HELP, console, resolve_store


def register(app: typer.Typer) -> None:
    @app.command("refine")
    def refine_cmd(
        laws: Path = typer.Option(None, "--laws", help="laws.json from `oasl fit`: the centre and interval."),
        lr: float = typer.Option(None, "--lr", help="Centre lr (instead of --laws)."),
        low: float = typer.Option(None, "--low", help="Low end of the centre's 90% interval (with --lr)."),
        high: float = typer.Option(None, "--high", help="High end of the centre's 90% interval (with --lr)."),
        k: int = typer.Option(2, "-k", "--runs", help="Target runs to spend (1-8)."),
        config: Path = typer.Option(None, "--config", help="YAML run spec of the target run."),
        width: int = typer.Option(None, help="Target model width."),
        depth: int = typer.Option(None, help="Target number of blocks."),
        seq_len: int = typer.Option(None, help="Sequence length in tokens."),
        optimizer: str = typer.Option(None, help="Optimizer of the target run."),
        batch_seqs: int = typer.Option(None, help="Batch size in sequences."),
        tokens: int = typer.Option(None, help="Training tokens D of the target run."),
        seed: int = typer.Option(None, help="Seed of the target runs."),
        device: str = typer.Option(None, help="auto, cpu, cuda."),
        store: str = typer.Option(
            None,
            "--store",
            help="Store: the ladder's runs (valley shape) and the target runs " + STORE_HELP + ".",
        ),
        workers: int = typer.Option(1, help="Runs trained at once."),
        out: Path = typer.Option(None, "--json", help="Write the result as JSON here."),
    ) -> None:
        """Train k runs of the target around the law's lr and return the refined lr with an interval."""
        from oasl.cli.train_cmd import run_spec_from_options
        from oasl.errors import ConfigError
        from oasl.workflows import law_at_target, refine_in_store

        if not 1 <= k <= 8:
            raise ConfigError(f"-k {k}: give between 1 and 8 target runs")
        spec = run_spec_from_options(
            config,
            width=width,
            depth=depth,
            seq_len=seq_len,
            optimizer=optimizer,
            batch_seqs=batch_seqs,
            tokens=tokens,
            seed=seed,
            device=device,
        )
        given = [v for v in (low, high) if v is not None]
        if (laws is None) == (lr is None):
            raise ConfigError("give the centre either as --laws laws.json or as --lr (with --low and --high)")
        formula = ""
        if laws is not None:
            center, iv, formula = law_at_target(laws, spec)
        else:
            center = float(lr)
            if given and not (len(given) == 2 and 0 < given[0] < center < given[1]):
                raise ConfigError(f"--low/--high {given}: give both, with 0 < --low < --lr < --high")
            iv = tuple(given) if given else None
        if not (math.isfinite(center) and center > 0):
            raise ConfigError(
                f"the law predicts lr {center!r} at this target: check the target and the laws file"
            )
        r = refine_in_store(spec, center, iv, k, resolve_store(store), workers=workers)
        if formula:
            console.print(f"law: {formula}")
        prior = f"{center:.3g}" + (f" [{iv[0]:.3g}, {iv[1]:.3g}]" if iv else " (no interval: sd 1 in log lr)")
        console.print(f"centre: {prior}; valley: {r.valley['source']}")
        table = Table(title=f"{k} target run(s) of {spec.optimizer} w{spec.shape.width}d{spec.shape.depth}")
        table.add_column("lr")
        table.add_column("final val loss")
        for v, loss in zip(r.lrs, r.losses, strict=True):
            table.add_row(f"{v:.4g}", f"{loss:.4f}" if math.isfinite(loss) else "diverged")
        console.print(table)
        console.print(f"refined lr: {r.lr:.4g} (90% interval {r.interval[0]:.3g} - {r.interval[1]:.3g})")
        if r.rule:
            console.print(f"  rule: {r.rule}")
        if r.risk:
            div = r.risk.get("diverge_at")
            console.print(
                "  the lr of least expected regret on the ladder's valley (curvature "
                f"{r.risk['curv_below']:.3g} below, {r.risk['curv_above']:.3g} above the optimum"
                + (
                    f"; runs diverge from x{math.exp(div):.2f} above it)"
                    if div and math.isfinite(div)
                    else ")"
                )
            )
        for msg in r.messages:
            console.print(f"[yellow]warning:[/yellow] {msg}")
        if out is not None:
            Path(out).write_text(json.dumps(r.to_dict(), indent=2))
