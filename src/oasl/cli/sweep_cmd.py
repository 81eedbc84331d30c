"""``oasl sweep plan`` and ``oasl sweep run``."""

from __future__ import annotations

import math
from pathlib import Path

import typer
from rich.table import Table

from oasl.cli.common import console, progress_bar


def _fmt_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    h, rem = divmod(int(s), 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{sec:02d}s"


def register(app: typer.Typer) -> None:
    sweep = typer.Typer(no_args_is_help=True, help="Declare, plan and run sweeps of small models.")
    app.add_typer(sweep, name="sweep")

    @sweep.command("plan")
    def plan_cmd(
        spec_path: Path = typer.Argument(..., help="Sweep spec (YAML)."),
        store: str = typer.Option(None, "--store", help="Store: finished runs are not counted again."),
        executor: str = typer.Option(
            None, "--executor", help="Executor to estimate for (auto, local, batched; ray counts as local)."
        ),
        workers: int = typer.Option(
            None, "--workers", help="Worker processes assumed (default: the spec's, else 1)."
        ),
        members: int = typer.Option(None, "--members", help="Most runs per batch (batched)."),
        threads: int = typer.Option(
            None,
            "--threads",
            help="Torch threads per worker process (default $OASL_THREADS, else cores // workers; "
            "give fewer on a machine other jobs share).",
        ),
        measure: bool = typer.Option(
            True, help="Time a few real steps of each shape (and batch) on this machine."
        ),
    ) -> None:
        """Print how many runs a sweep has, their FLOPs and an estimate of their wall time."""
        from oasl.workflows import load_sweep_spec, plan_sweep

        spec = load_sweep_spec(spec_path)
        p = plan_sweep(
            spec,
            store=store,
            executor=executor,
            workers=workers,
            members=members,
            threads=threads,
            measure=measure,
        )
        table = Table(title=f"sweep {spec.name}: {p.n_runs} runs ({p.n_todo} to do)")
        for c in ("optimizer", "width", "depth", "N", "runs", "to do", "FLOPs", "time (1 run at a time)"):
            table.add_column(c, justify="right")
        for _, r in p.table.iterrows():
            table.add_row(
                r["optimizer"],
                str(r["width"]),
                str(r["depth"]),
                f"{r['n_params']:,}",
                str(r["runs"]),
                str(int(r["todo"])),
                f"{r['flops']:.3g}",
                _fmt_seconds(r["seconds"]),
            )
        console.print(table)
        extra = ""
        if spec.pruning.enabled:
            extra = f"; pruning at {', '.join(f'{c:.0%}' for c in spec.pruning.checkpoints)} can cut this"
        how = f"{p.executor} executor, {p.workers} worker(s)"
        if p.batches:
            how += f", batches of {', '.join(map(str, sorted(p.batches, reverse=True)))} runs"
        console.print(
            f"total {p.flops:.3g} FLOPs ({p.flops_todo:.3g} to do); estimated wall time ({how}): "
            f"{_fmt_seconds(p.est_seconds)}{extra}"
        )
        console.print(f"[dim]{p.load_note()}[/dim]", highlight=False)

    @sweep.command("run")
    def run_cmd(
        spec_path: Path = typer.Argument(..., help="Sweep spec (YAML)."),
        store: str = typer.Option("runs.db", "--store", help="SQLite store (resumable; shared by sweeps)."),
        executor: str = typer.Option(
            None,
            "--executor",
            help="auto (batched on a GPU where >= 2 runs share a shape and use adamw/sgd/lion, else local), local "
            "(one run per process), batched (K runs per process as one stacked model) or ray. "
            "Default: the spec's `execution.executor`, else auto.",
        ),
        workers: int = typer.Option(
            None, "--workers", help="Worker processes (default 1; Ray: least tasks in flight)."
        ),
        members: int = typer.Option(
            None, "--members", help="Most runs per batch (batched; default: what memory allows)."
        ),
        runs_per_gpu: int = typer.Option(None, "--runs-per-gpu", help="Worker processes per visible GPU."),
        threads: int = typer.Option(
            None,
            "--threads",
            help="Torch threads per worker process (default $OASL_THREADS, else cores // workers; "
            "give fewer on a machine other jobs share).",
        ),
        gpus_per_run: float = typer.Option(
            None,
            "--gpus-per-run",
            help="GPUs each Ray task requests (fractions pack runs; default 1 on a GPU cluster).",
        ),
        backend: str = typer.Option(
            None, "--backend", help="Old name of --executor (local or ray).", hidden=True
        ),
        ray_address: str = typer.Option(None, "--ray-address", help="'auto' joins a running Ray cluster."),
        wait: bool = typer.Option(
            True, help="Wait for runs another live sweep is training (take them over if it dies)."
        ),
    ) -> None:
        """Run every run of a sweep not yet in the store (killed sweeps resume where they stopped).

        Flags override the spec's `execution:` block. Sweeps sharing a store claim runs, so each run trains once."""
        from oasl.sweep import expand
        from oasl.workflows import load_sweep_spec, sweep, sweep_execution

        spec = load_sweep_spec(spec_path)
        execution = sweep_execution(
            spec,
            executor=executor,
            backend=backend,
            workers=workers,
            members=members,
            ray_address=ray_address,
            runs_per_gpu=runs_per_gpu,
            gpus_per_run=gpus_per_run,
            threads=threads,
        )
        with progress_bar() as bar:
            task = bar.add_task(f"sweep {spec.name}", total=len(expand(spec)), status="")

            def on_update(summary, total) -> None:
                best = "  ".join(f"{g}: {v:.3f}" for g, v in sorted(summary.best.items())[:4])
                bar.update(task, completed=summary.finished, status=best)

            summary = sweep(spec, store=store, execution=execution, wait=wait, progress=on_update)
            bar.update(task, completed=summary.finished)
        table = Table(title=f"sweep {spec.name} -> {store} ({summary.executor} executor)", show_header=False)
        for name, value in [
            ("planned", summary.planned),
            ("already in store", summary.skipped),
            ("done", summary.done),
            ("diverged", summary.diverged),
            ("stopped early (pruned)", summary.stopped),
            ("failed", summary.failed),
            ("failed twice, given up", summary.gave_up),
            ("left to other live sweeps", summary.busy),
            ("FLOPs spent", f"{summary.flops_spent:.3g}"),
            ("FLOPs saved by pruning", f"{summary.flops_saved:.3g}"),
            ("wall time", _fmt_seconds(summary.wall_s)),
        ]:
            table.add_row(name, str(value))
        console.print(table)
        for note in summary.notes:
            console.print(note)
        for e in summary.errors[:5]:
            console.print(f"[red]failed[/red] {e}")
