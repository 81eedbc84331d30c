"""``oasl schedules fit|eval|predict|rank``: schedule-aware loss laws on a store's curves or on curve
files (CSV with columns step, lr, loss: :func:`oasl.curves.io.read_curve_file`). Thin: parse, call
:mod:`oasl.curves`, print."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from oasl.cli.common import console
from oasl.config import parse_count


def _where(items: list[str] | None) -> dict[str, object]:
    from oasl.errors import ConfigError

    out: dict[str, object] = {}
    for item in items or []:
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise ConfigError(f"--where {item!r} is not of the form column=value (e.g. optimizer=adamw)")
        out[k.strip()] = v.strip()
    return out


def _check_positive(**values) -> None:
    """ConfigError naming the option when a given number is not finite and positive."""
    import math

    from oasl.errors import ConfigError

    for name, v in values.items():
        if v is not None and not (math.isfinite(v) and v > 0):
            raise ConfigError(f"--{name.replace('_', '-')} must be a finite number > 0, got {v}")


def _check_level(level: float) -> None:
    import math

    from oasl.errors import ConfigError

    if not (math.isfinite(level) and 0 < level < 1):
        raise ConfigError(f"--level must lie strictly between 0 and 1 (e.g. 0.9), got {level}")


HORIZON_WARN = 4.0  # predicting further than this many times the fitted runs' length earns a warning


def _warn_horizon(ctx: dict, steps: int) -> None:
    """A warning on stderr when ``steps`` lies more than HORIZON_WARN x beyond the fitted runs' length."""
    fitted = ctx.get("steps")
    if fitted and steps > HORIZON_WARN * float(fitted):
        typer.secho(
            f"warning: {steps} steps is {steps / float(fitted):.0f}x the fitted runs' {int(fitted)} steps: "
            "the law extrapolates far beyond its curves; trust the prediction less",
            err=True,
            fg="yellow",
        )


def _check_steps(steps: int | None, warmup_steps: int | None) -> None:
    from oasl.errors import ConfigError

    if steps is not None and steps < 2:
        raise ConfigError(f"--steps must be at least 2 (a run length in optimizer steps), got {steps}")
    if warmup_steps is not None and warmup_steps < 0:
        raise ConfigError(f"--warmup-steps must be >= 0, got {warmup_steps}")
    if steps is not None and warmup_steps is not None and warmup_steps >= steps:
        raise ConfigError(f"--warmup-steps {warmup_steps} must be shorter than --steps {steps}")


def check_candidate_names(names: list[str]) -> None:
    """ConfigError naming the unknown schedule names (none given is an error too)."""
    from oasl.errors import ConfigError, OaslError
    from oasl.optim.schedules import parse_schedule

    if not names:
        raise ConfigError("no candidate schedules: pass e.g. --candidates cosine,wsd:0.1,wsd:0.2,constant")
    bad = []
    for n in names:
        try:
            parse_schedule(n)
        except OaslError as exc:
            bad.append(f"{n!r} ({exc})")
    if bad:
        raise ConfigError("unknown candidate schedule(s): " + "; ".join(bad))


def register(app: typer.Typer) -> None:
    sched = typer.Typer(
        no_args_is_help=True, help="Schedule-aware loss laws: fit on curves, predict any schedule, rank."
    )
    app.add_typer(sched, name="schedules")

    @sched.command("fit")
    def fit_cmd(
        store: str = typer.Option(None, "--store", help="Store with the runs' curves (or give --curves)."),
        curves: list[Path] = typer.Option(
            None, "--curves", help="Curve CSV files with columns step, lr, loss (repeatable)."
        ),
        where: list[str] = typer.Option(
            None, "--where", help="Keep runs with column=value (repeatable; value a,b matches either)."
        ),
        law: str = typer.Option("mpl", "--law", help="mpl (multi-power law) or annealing."),
        source: str = typer.Option(
            "auto",
            "--source",
            help="val (eval points), train (binned per-step loss) or auto (val if dense enough).",
        ),
        scaled: bool = typer.Option(
            False, "--scaled", help="Fit across model sizes (parameters as powers of N)."
        ),
        n_params: float = typer.Option(
            None, "--n-params", parser=parse_count, help="With --curves: the model's parameter count."
        ),
        prior: Path = typer.Option(
            None,
            "--prior",
            help="A schedule-law file (mpl) whose loss-drop shape centres a prior (default: none).",
        ),
        transfer_from: Path = typer.Option(
            None,
            "--transfer-from",
            help="With --curves: a law of another model size; refit only L0, A, alpha on these curves "
            "(one constant-LR run of the new size is enough).",
        ),
        boot: int = typer.Option(20, "--boot", help="Bootstrap refits for intervals (0: none)."),
        out: Path = typer.Option(Path("schedule_law.json"), "--out", help="Where to write the fitted law."),
    ) -> None:
        """Fit a schedule law on a store's training curves or on curve files, and save it."""
        from oasl.curves.fit import fit_from_files, fit_from_store
        from oasl.curves.io import save_schedule_law
        from oasl.errors import ConfigError

        if (store is None) == (not curves):
            raise ConfigError("give exactly one of --store PATH or --curves FILE (repeatable)")
        if boot < 0:
            raise ConfigError(f"--boot must be >= 0, got {boot}")
        if store is not None and (n_params is not None or transfer_from is not None):
            raise ConfigError(
                "--n-params and --transfer-from go with --curves (a store knows its runs' sizes)"
            )
        with console.status(f"fitting {law} on the curves"):
            if store is not None:
                fitted, context, rcs = fit_from_store(store, _where(where), law, source, scaled, boot, prior)
                fitted_curves = [rc.curve for rc in rcs]
            else:
                if scaled:
                    raise ConfigError("--scaled fits a store's runs of several sizes: use --store")
                fitted, context, fitted_curves = fit_from_files(
                    curves, law, n_params, boot, prior, transfer_from
                )
        table = Table(title=f"{fitted!r}" if not scaled else "scaled schedule law", show_lines=False)
        for col in ("curve", "points", "mean err", "worst err", "final err"):
            table.add_column(col, justify="left" if col == "curve" else "right")
        for name, e in fitted.train_errors_.items():
            n = next((len(c) for c in fitted_curves if name.startswith(c.name)), 0)
            table.add_row(
                name, str(n), f"{e['mean_rel']:.3%}", f"{e['worst_rel']:.3%}", f"{e['final_rel']:.3%}"
            )
        console.print(table)
        if scaled:
            console.print(
                "slopes d log p / d log N: " + ", ".join(f"{k} {v:+.3f}" for k, v in fitted.slopes_.items())
            )
        at = getattr(fitted, "at_bounds_", [])
        if at:
            typer.secho(
                f"warning: {', '.join(at)} sit(s) at a bound of the fit's range: not estimates; fit on more "
                "or longer curves with different schedules",
                err=True,
                fg="yellow",
            )
        path = save_schedule_law(out, fitted, context)
        console.print(f"{len(fitted_curves)} curves; law written to {path}")

    @sched.command("eval")
    def eval_cmd(
        law_file: Path = typer.Option(..., "--law", help="File from `oasl schedules fit`."),
        curves: list[Path] = typer.Option(
            ..., "--curves", help="Curve CSV files with columns step, lr, loss (repeatable)."
        ),
        n_params: float = typer.Option(
            None, "--n-params", parser=parse_count, help="Model size, for a --scaled law."
        ),
        fmt: str = typer.Option("table", "--format", help="table or json."),
    ) -> None:
        """Score a fitted law on curve files: per curve the mean, worst and final-loss relative error."""
        import json

        from oasl.curves.io import load_schedule_law
        from oasl.errors import ConfigError
        from oasl.workflows import predict_kwargs

        if fmt not in ("table", "json"):
            raise ConfigError(f"unknown --format {fmt!r}: use table or json")
        from oasl.curves.fit import evaluate_curves, read_curves

        _check_positive(n_params=n_params)
        law, ctx = load_schedule_law(law_file)
        kw = predict_kwargs(law, n_params, ctx)
        res = evaluate_curves(law, read_curves(curves, n_params), **kw)
        if fmt == "json":
            typer.echo(json.dumps({"law": str(law_file), **res}, indent=1))
            return
        table = Table(title=f"{law_file}: relative errors |L - Lhat| / L")
        for col in ("curve", "points", "mean", "worst", "final"):
            table.add_column(col, justify="left" if col == "curve" else "right")
        for name, e in res["curves"].items():
            table.add_row(
                name,
                str(e["points"]),
                f"{e['mean_rel']:.3%}",
                f"{e['worst_rel']:.3%}",
                f"{e['final_rel']:.3%}",
            )
        m = res["mean"]
        table.add_row("mean", "", f"{m['mean_rel']:.3%}", f"{m['worst_rel']:.3%}", f"{m['final_rel']:.3%}")
        console.print(table)

    @sched.command("predict")
    def predict_cmd(
        law_file: Path = typer.Option(
            Path("schedule_law.json"), "--law", help="File from `oasl schedules fit`."
        ),
        schedule: str = typer.Option(
            ..., "--schedule", help="e.g. cosine, cosine:0.1, wsd:0.2, linear, constant."
        ),
        steps: int = typer.Option(None, "--steps", help="Run length in steps (default: the fitted runs')."),
        lr: float = typer.Option(None, "--lr", help="Peak lr (default: the fitted runs')."),
        warmup_steps: int = typer.Option(
            None, "--warmup-steps", help="Warmup steps (default: the fitted runs')."
        ),
        n_params: float = typer.Option(
            None, "--n-params", parser=parse_count, help="Model size, for a --scaled law."
        ),
        level: float = typer.Option(0.9, "--level", help="Interval level."),
        plot: Path = typer.Option(None, "--plot", help="Write the predicted curve to this PNG."),
    ) -> None:
        """Predict the loss curve and final loss of one schedule."""
        from oasl.curves.io import load_schedule_law
        from oasl.curves.ranking import candidate_schedules
        from oasl.report.schedules import has_intervals, plot_schedules
        from oasl.workflows import predict_kwargs, schedule_target

        _check_steps(steps, warmup_steps)
        _check_positive(lr=lr, n_params=n_params)
        _check_level(level)
        law, ctx = load_schedule_law(law_file)
        steps, lr, warm = schedule_target(ctx, steps, lr, warmup_steps)
        _warn_horizon(ctx, steps)
        kw = predict_kwargs(law, n_params, ctx)
        lrs = candidate_schedules([schedule], steps, lr, warmup_steps=warm)[schedule]
        final = float(law.predict(lrs, [len(lrs) - 1], **kw)[0])
        msg = f"{schedule}: {steps} steps at peak lr {lr:.3g}: predicted final loss {final:.4f}"
        if has_intervals(law):
            lo, hi = law.predict_interval(lrs, [len(lrs) - 1], level=level, **kw)
            msg += f" ({level:.0%} interval [{lo[0]:.4f}, {hi[0]:.4f}])"
        console.print(msg)
        if plot:
            plot_schedules(law, [schedule], steps, lr, warm, plot, level=level, **kw)
            console.print(f"plot written to {plot}")

    @sched.command("rank")
    def rank_cmd(
        candidates: str = typer.Option(
            "constant,cosine,cosine:0,linear,wsd:0.1,wsd:0.2",
            "--candidates",
            help="Comma-separated schedule names.",
        ),
        law_file: Path = typer.Option(
            None, "--law", help="File from `oasl schedules fit` (or give --store)."
        ),
        store: str = typer.Option(None, "--store", help="Fit on this store's curves first."),
        where: list[str] = typer.Option(None, "--where", help="With --store: keep runs with column=value."),
        law_name: str = typer.Option("mpl", "--law-form", help="With --store: mpl or annealing."),
        steps: int = typer.Option(
            None, "--steps", help="Target run length in steps (default: the fitted runs')."
        ),
        lr: float = typer.Option(None, "--lr", help="Peak lr (default: the fitted runs')."),
        warmup_steps: int = typer.Option(
            None, "--warmup-steps", help="Warmup steps (default: the fitted runs')."
        ),
        n_params: float = typer.Option(
            None, "--n-params", parser=parse_count, help="Model size, for a --scaled law."
        ),
        tune: bool = typer.Option(
            False, "--tune", help="Also tune each family's own parameter (WSD decay, final LR)."
        ),
        level: float = typer.Option(0.9, "--level", help="Interval level (needs bootstrap draws)."),
        plot: Path = typer.Option(
            None, "--plot", help="Write predicted curves of the candidates to this PNG."
        ),
    ) -> None:
        """Rank candidate schedules for a target run by predicted final loss, with intervals."""
        from oasl.curves.io import load_schedule_law
        from oasl.curves.ranking import rank_candidates
        from oasl.errors import ConfigError
        from oasl.report.schedules import has_intervals, plot_schedules
        from oasl.workflows import predict_kwargs, schedule_target

        if (law_file is None) == (store is None):
            raise ConfigError("give exactly one of --law (a fitted law file) or --store (fit on its curves)")
        _check_steps(steps, warmup_steps)
        _check_positive(lr=lr, n_params=n_params)
        _check_level(level)
        names = [c.strip() for c in candidates.split(",") if c.strip()]
        check_candidate_names(names)  # before any fit or bootstrap
        if store is not None:
            with console.status("fitting the schedule law on the store's curves"):
                from oasl.curves.fit import fit_from_store

                law, ctx, _ = fit_from_store(store, _where(where), law_name, boot=20)
        else:
            law, ctx = load_schedule_law(law_file)
        steps, lr, warm = schedule_target(ctx, steps, lr, warmup_steps)
        _warn_horizon(ctx, steps)
        kw = predict_kwargs(law, n_params, ctx)
        df = rank_candidates(
            law,
            names,
            steps,
            lr,
            warmup_steps=warm,
            tune=tune,
            level=level if has_intervals(law) else None,
            **kw,
        )
        table = Table(title=f"schedules for {steps} steps at peak lr {lr:.3g}, best first")
        for col in ("schedule", "final loss", "gap to best", f"{level:.0%} interval", "tuned"):
            table.add_column(col, justify="left" if col == "schedule" else "right")
        for _, r in df.iterrows():
            iv = f"[{r['final_loss_lo']:.4f}, {r['final_loss_hi']:.4f}]" if "final_loss_lo" in df else "-"
            table.add_row(
                r["schedule"],
                f"{r['final_loss']:.4f}",
                f"{r['gap_to_best']:+.4f}",
                iv,
                "yes" if r["tuned"] else "",
            )
        console.print(table)
        if plot:
            plot_schedules(law, list(df["schedule"]), steps, lr, warm, plot, **kw)
            console.print(f"plot written to {plot}")
