"""``oasl validate``, ``oasl demo`` and ``oasl report``."""

from __future__ import annotations

import math
import time
from pathlib import Path

import typer
from rich.table import Table

from oasl.cli.common import console
from oasl.config import parse_count


def _print_validation(result) -> None:
    if getattr(result, "law_formula", ""):
        console.print(f"validated law: {result.law_formula}")
    for ov in result.optimizers:
        floor = f"{ov.noise_floor:.2%}" if math.isfinite(ov.noise_floor) else "- (one seed)"
        table = Table(
            title=f"{ov.optimizer}: target N={ov.target_n_params:,} ({ov.extrapolation_ratio:.1f}x the "
            f"largest swept), recommended lr {ov.recommended_lr:.3g} "
            f"[{ov.recommended_interval[0]:.3g}, {ov.recommended_interval[1]:.3g}]; noise floor {floor}"
        )
        for c in (
            "method",
            "lr",
            "regret vs oracle",
            "90% interval",
            "verdict",
            "tuning compute (target runs)",
        ):
            table.add_column(c)
        for m in ov.methods:
            reg = f"{m.regret_mean:+.2%}" if math.isfinite(m.regret_mean) else "diverged"
            lo, hi = m.regret_ci
            ci = f"[{lo:+.2%}, {hi:+.2%}]" if math.isfinite(lo) and math.isfinite(hi) else "-"
            table.add_row(m.method, f"{m.lr:.3g}", reg, ci, m.verdict or "-", f"{m.tuning_runs:.2f}")
        console.print(table)
        if ov.oracle_note:
            console.print(f"  oracle: {ov.oracle_note}")
        from oasl.validate.curves import card_line

        cost = card_line(getattr(ov, "cost_to_regret", None) or {})
        if cost:
            console.print(f"  {cost}")
        eff = {k: v for k, v in ov.efficiency.items() if "gain" in k or "runs_to_match" in k}
        if eff:
            console.print(
                "  " + ", ".join(f"{k}: {v if isinstance(v, str) else f'{v:.3g}'}" for k, v in eff.items())
            )


def _print_laws(report) -> None:
    table = Table(title="fitted laws of the optimal learning rate")
    for c in ("optimizer", "formula", "exponent 90% interval", "R^2", "held-out MAPE"):
        table.add_column(c)
    for target, law in report.laws.items():
        sel = report.selection[target].iloc[0]
        for key, sub in law.laws_.items():
            lo, hi = sub.exponent_interval("N", 0.9) if "N" in sub.features else (math.nan, math.nan)
            table.add_row(
                key,
                sub.formula(),
                f"[{lo:+.3f}, {hi:+.3f}]",
                f"{sub.r2_:.3f}",
                f"{sel['loo_mape']:.1%}" if math.isfinite(sel["loo_mape"]) else "-",
            )
    console.print(table)


def _progress_factory(bar):
    """progress(label, total) for the harness: one task per phase, not per batch. The sweep (labels
    ``sweep ...``) is one phase; every later batch (oracle, the recommendation, baselines, their seeds)
    adds its runs to one "target runs" count, so the count and its ETA never restart."""
    phases: dict[str, dict] = {}

    def factory(label: str, total: int):
        phase = label if label.startswith("sweep") else "target runs (oracle, oasl, baselines)"
        p = phases.get(phase)
        if p is None:
            p = phases[phase] = {"task": bar.add_task(phase, total=0, status=""), "total": 0, "base": 0}
        else:
            p["base"] = p["completed"]  # the batches before this one are finished
        p["total"] += total
        p["completed"] = p["base"]
        bar.update(p["task"], total=p["total"], completed=p["completed"])

        def on_update(summary, _pending) -> None:
            done = (
                summary.skipped
                + summary.done
                + summary.diverged
                + summary.stopped
                + summary.failed
                + summary.gave_up
            )
            p["completed"] = p["base"] + done
            best = "  ".join(f"{g}: {v:.3f}" for g, v in sorted(summary.best.items())[:3])
            bar.update(p["task"], completed=p["completed"], status=best)

        return on_update

    return factory


def register(app: typer.Typer) -> None:
    @app.command("validate")
    def validate_cmd(
        spec_path: Path = typer.Argument(
            ..., help="Validation spec (YAML): sweep, target, seeds, baselines."
        ),
        store: str = typer.Option(
            "runs.db", "--store", help="SQLite store for every run (resumable: finished runs are reused)."
        ),
        workers: int = typer.Option(1, "--workers", help="Parallel training processes."),
        out: Path = typer.Option(Path("validation"), "--out", help="Folder for validation.json."),
    ) -> None:
        """Recommend at a larger target and compare with an oracle grid and baselines there."""
        from oasl.cli.common import progress_bar
        from oasl.validate import load_validate
        from oasl.workflows import validate

        spec = load_validate(spec_path)
        with progress_bar() as bar:
            result = validate(
                spec,
                store=store,
                workers=workers,
                log=bar.log,
                out=out,
                progress=_progress_factory(bar),
            )
        _print_validation(result)
        console.print(f"results in {out / 'validation.json'} and the store {store}")

    @app.command("demo")
    def demo_cmd(
        out: Path = typer.Option(Path("oasl-demo"), "--out", help="Folder for the store, laws and report."),
        workers: int = typer.Option(2, "--workers", help="Parallel training processes."),
    ) -> None:
        """The whole pipeline on built-in defaults: sweep, optima, laws, recommend ~9x larger, verify, report."""
        from oasl.workflows import demo

        t0 = time.perf_counter()
        console.rule(
            "oasl demo: sweep a width ladder x {adamw, sgd} -> fit lr*(N) -> recommend at width 192 -> verify"
        )
        from oasl.cli.common import progress_bar

        with progress_bar() as bar:
            result, report, page = demo(
                out,
                workers=workers,
                log=bar.log,
                progress=_progress_factory(bar),
            )
        _print_laws(report)
        _print_validation(result)
        console.print(f"done in {time.perf_counter() - t0:.0f} s; report: {page}; laws: {out / 'laws.json'}")

    @app.command("report")
    def report_cmd(
        store: str = typer.Option("runs.db", "--store", help="SQLite store of the runs to report on."),
        out: Path = typer.Option(Path("report"), "--out", help="Folder for index.html and its images."),
        validation: Path = typer.Option(None, "--validation", help="validation.json to include (optional)."),
        schedule_law: Path = typer.Option(
            None, "--schedule-law", help="A file from `oasl schedules fit` to include (optional)."
        ),
        target_params: float = typer.Option(
            None,
            "--target-params",
            parser=parse_count,
            help="Without --validation: a target N (non-embedding; 7B, 350M) for a recommendation card.",
        ),
        target_tokens: float = typer.Option(
            None, "--target-tokens", parser=parse_count, help="The target's training tokens D (e.g. 20B)."
        ),
        target_width: int = typer.Option(
            None, "--target-width", help="Or a target shape: width (with --target-depth)."
        ),
        target_depth: int = typer.Option(None, "--target-depth", help="The target shape's number of blocks."),
        laws: Path = typer.Option(
            None, "--laws", help="With a target: laws.json to use (default: fit the store)."
        ),
    ) -> None:
        """Write a self-contained HTML report (plots embedded) from a store; with --target-params and
        --target-tokens (or a --target-width/--target-depth shape) it opens on a recommendation card."""
        from oasl.workflows import report

        page = report(
            store,
            out,
            validation=validation,
            schedule_law=schedule_law,
            target_params=target_params,
            target_tokens=target_tokens,
            target_width=target_width,
            target_depth=target_depth,
            laws=laws,
        )
        console.print(f"report written to {page}")
