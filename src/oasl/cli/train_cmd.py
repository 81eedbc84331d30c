"""``oasl train`` and ``oasl runs``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from oasl.cli.common import STORE_HELP, console, parse_kv, progress_bar, resolve_store


def _set(d: dict[str, Any], path: str, value: Any) -> None:
    if value is None:
        return
    *parents, last = path.split(".")
    for p in parents:
        d = d.setdefault(p, {})
    d[last] = value


def run_spec_from_options(config: Path | None, **opts: Any):
    """Merge a YAML run config with explicit CLI options (options win) into a validated RunSpec."""
    from oasl.config import RunSpec, build, read_yaml

    data: dict[str, Any] = {}
    if config is not None:
        loaded = read_yaml(config)
        if not isinstance(loaded, dict):
            from oasl.errors import ConfigError

            raise ConfigError(f"{config}: expected a mapping of run settings at the top level")
        data = loaded
    mapping = {
        "width": "shape.width",
        "depth": "shape.depth",
        "n_heads": "shape.n_heads",
        "seq_len": "shape.seq_len",
        "optimizer": "optimizer",
        "lr": "lr",
        "batch_seqs": "batch_seqs",
        "tokens": "tokens",
        "schedule": "schedule.name",
        "warmup_frac": "schedule.warmup_frac",
        "seed": "seed",
        "device": "device",
        "parametrization": "parametrization",
        "base_width": "base_width",
        "output_mult": "output_mult",
        "eval_interval": "eval_interval",
        "grad_clip": "grad_clip",
    }
    for opt, path in mapping.items():
        _set(data, path, opts.get(opt))
    if opts.get("hp"):
        data.setdefault("hps", {}).update(parse_kv(opts["hp"]))
    data.setdefault("shape", {}).setdefault("width", 64)
    data["shape"].setdefault("depth", 2)
    data.setdefault("lr", 3e-3)
    data.setdefault("tokens", 2_000_000)
    return build(RunSpec, data, what="run spec" + (f" in {config}" if config else ""))


def run_with_progress(spec, store=None):
    """Train ``spec`` showing a rich progress bar; write the result to ``store`` if given."""
    from oasl.train import train

    if store is not None:
        store.mark_running(spec)
    with progress_bar() as bar:
        task = bar.add_task(
            f"train {spec.optimizer} w{spec.shape.width}d{spec.shape.depth}", total=spec.steps, status=""
        )

        def on_step(p: dict[str, float]) -> None:
            status = f"loss {p['train_loss']:.3f}  {p['tokens_per_s']:,.0f} tok/s"
            bar.update(task, completed=p["step"], status=status)

        try:
            result = train(spec, progress=on_step)
        except Exception as exc:
            if store is not None:
                store.mark_failed(spec, f"{type(exc).__name__}: {exc}")
            raise
    if store is not None:
        store.put(result)
    return result


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        config: Path = typer.Option(None, "--config", help="YAML run spec; flags override its values."),
        width: int = typer.Option(None, help="Model width (d_model)."),
        depth: int = typer.Option(None, help="Number of transformer blocks."),
        n_heads: int = typer.Option(None, help="Attention heads (default width // 32)."),
        seq_len: int = typer.Option(None, help="Sequence length in tokens."),
        optimizer: str = typer.Option(None, help="adamw, sgd, adafactor, lion or muon."),
        lr: float = typer.Option(None, help="Peak learning rate."),
        hp: list[str] = typer.Option(None, "--hp", help="Optimizer HP as name=value (repeatable)."),
        batch_seqs: int = typer.Option(None, help="Batch size in sequences."),
        tokens: int = typer.Option(None, help="Training tokens D."),
        schedule: str = typer.Option(None, help="constant, cosine, linear, wsd, inverse_sqrt or step."),
        warmup_frac: float = typer.Option(None, help="Warmup as a fraction of steps."),
        parametrization: str = typer.Option(None, help="sp or mup."),
        base_width: int = typer.Option(None, help="muP base width."),
        output_mult: float = typer.Option(None, help="muP output multiplier a_out (default 8)."),
        grad_clip: float = typer.Option(None, help="Gradient-norm clip."),
        eval_interval: int = typer.Option(None, help="Steps between validation evaluations."),
        seed: int = typer.Option(None, help="Random seed."),
        device: str = typer.Option(None, help="auto, cpu, cuda."),
        store: str = typer.Option(None, "--store", help=f"SQLite store to write the run to {STORE_HELP}."),
    ) -> None:
        """Train one model and record it in the store."""
        from oasl.store import open_store
        from oasl.train import check_fits_memory

        spec = run_spec_from_options(
            config,
            width=width,
            depth=depth,
            n_heads=n_heads,
            seq_len=seq_len,
            optimizer=optimizer,
            lr=lr,
            hp=hp,
            batch_seqs=batch_seqs,
            tokens=tokens,
            schedule=schedule,
            warmup_frac=warmup_frac,
            parametrization=parametrization,
            base_width=base_width,
            output_mult=output_mult,
            grad_clip=grad_clip,
            eval_interval=eval_interval,
            seed=seed,
            device=device,
        )
        check_fits_memory(spec)  # before the store: a refused run leaves no `failed` row
        store = resolve_store(store)
        st = open_store(store)
        result = run_with_progress(spec, st)
        table = Table(title=f"run {spec.key()} ({result.status})", show_header=False)
        for name, value in [
            (
                "final val loss",
                f"{result.final_val_loss:.4f}" if math.isfinite(result.final_val_loss) else "nan",
            ),
            ("initial val loss", f"{result.initial_val_loss:.4f}"),
            ("N (non-embedding)", f"{result.n_params:,}"),
            ("N (total)", f"{result.n_params_total:,}"),
            ("steps", f"{result.steps_done}/{spec.steps}"),
            ("tokens", f"{result.tokens_trained:,}"),
            ("FLOPs", f"{result.flops:.3g}"),
            ("tokens/s", f"{result.tokens_per_s:,.0f}"),
            ("wall time", f"{result.wall_s:.1f} s"),
            ("device", result.device),
            ("diverged", result.diverge_reason or "no"),
            ("store", store),
        ]:
            table.add_row(name, value)
        console.print(table)
