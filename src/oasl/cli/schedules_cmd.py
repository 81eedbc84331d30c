"""``oasl schedules fit|predict|rank``: schedule-aware loss laws on a store's curves. Thin: parse, call
:mod:`oasl.curves`, print."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer
from rich.table import Table

from oasl.cli.common import console

LAWS = ("mpl", "annealing")


def _where(items: list[str] | None) -> dict[str, object]:
    from oasl.errors import ConfigError

    out: dict[str, object] = {}
    for item in items or []:
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise ConfigError(f"--where {item!r} is not of the form column=value (e.g. optimizer=adamw)")
        out[k.strip()] = v.strip()
    return out


def _make_law(name: str, boot: int):
    from oasl.curves import AnnealingLaw, MultiPowerLaw
    from oasl.errors import ConfigError

    if name not in LAWS:
        raise ConfigError(f"unknown schedule law {name!r}: choose one of {', '.join(LAWS)}")
    return (MultiPowerLaw if name == "mpl" else AnnealingLaw)(n_boot=max(boot, 1))


def fit_from_store(
    store: str, where: dict, law: str = "mpl", source: str = "auto", scaled: bool = False, boot: int = 20
):
    """Fit a schedule law on the matching runs of ``store``; returns ``(law, context, run_curves)``.

    One model size unless ``scaled`` (then a :class:`~oasl.curves.ScaledScheduleLaw` over the
    sizes). ``context`` records what the fit saw: planned steps, peak lr, warmup steps, sizes, filters."""
    import numpy as np

    from oasl.curves import ScaledScheduleLaw
    from oasl.curves.curve import infer_warmup_steps
    from oasl.curves.runs import store_curves
    from oasl.errors import DataError

    base = _make_law(law, boot)  # an unknown law name fails before the store is read
    rcs = store_curves(store, where, source=source)
    sizes = sorted({rc.n_params for rc in rcs})
    if len(sizes) > 1 and not scaled:
        raise DataError(
            f"the matching runs have {len(sizes)} model sizes ({', '.join(f'{s:.3g}' for s in sizes)}): "
            "pick one with --where width=... or fit across sizes with --scaled"
        )
    if scaled:
        import warnings

        with warnings.catch_warnings():  # surfaced below through warnings_
            warnings.simplefilter("ignore")
            fitted = ScaledScheduleLaw(base, n_boot=boot).fit([rc.curve for rc in rcs])
    else:
        fitted = base.fit([rc.curve for rc in rcs])
        if boot > 0:
            fitted.bootstrap(boot)
    steps = Counter(rc.steps for rc in rcs).most_common(1)[0][0]
    context = {
        "store": str(store),
        "where": {k: str(v) for k, v in where.items()},
        "source": rcs[0].source,
        "steps": int(steps),
        "lr": float(np.median([rc.lr for rc in rcs])),
        "warmup_steps": int(Counter(infer_warmup_steps(rc.curve.lrs) for rc in rcs).most_common(1)[0][0]),
        "n_params": sizes[-1],
        "sizes": sizes,
        "curves": [rc.curve.name for rc in rcs],
    }
    return fitted, context, rcs


def _target(
    ctx: dict, steps: int | None, lr: float | None, warmup_steps: int | None
) -> tuple[int, float, int]:
    """The target run's (steps, peak lr, warmup steps): the options given, else the fitted runs'."""
    warm = warmup_steps if warmup_steps is not None else ctx.get("warmup_steps", 0)
    return int(steps or ctx["steps"]), float(lr or ctx["lr"]), int(warm)


def _predict_kwargs(law, n_params: float | None, context: dict) -> dict:
    from oasl.curves import ScaledScheduleLaw

    if isinstance(law, ScaledScheduleLaw):
        return {"n_params": float(n_params if n_params is not None else context.get("n_params"))}
    return {}


def register(app: typer.Typer) -> None:
    sched = typer.Typer(
        no_args_is_help=True, help="Schedule-aware loss laws: fit on curves, predict any schedule, rank."
    )
    app.add_typer(sched, name="schedules")

    @sched.command("fit")
    def fit_cmd(
        store: str = typer.Option(..., "--store", help="Store with the runs' curves."),
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
        boot: int = typer.Option(20, "--boot", help="Bootstrap refits for intervals (0: none)."),
        out: Path = typer.Option(Path("schedule_law.json"), "--out", help="Where to write the fitted law."),
    ) -> None:
        """Fit a schedule law on a store's training curves and save it."""
        from oasl.curves.io import save_schedule_law

        with console.status(f"fitting {law} on the store's curves"):
            fitted, context, rcs = fit_from_store(store, _where(where), law, source, scaled, boot)
        table = Table(title=f"{fitted!r}" if not scaled else "scaled schedule law", show_lines=False)
        for col in ("curve", "points", "mean err", "worst err", "final err"):
            table.add_column(col, justify="left" if col == "curve" else "right")
        for name, e in fitted.train_errors_.items():
            n = next((len(rc.curve) for rc in rcs if name.startswith(rc.curve.name)), 0)
            table.add_row(
                name, str(n), f"{e['mean_rel']:.3%}", f"{e['worst_rel']:.3%}", f"{e['final_rel']:.3%}"
            )
        console.print(table)
        if scaled:
            console.print(
                "slopes d log p / d log N: " + ", ".join(f"{k} {v:+.3f}" for k, v in fitted.slopes_.items())
            )
        path = save_schedule_law(out, fitted, context)
        console.print(f"{len(rcs)} curves; law written to {path}")

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
        n_params: float = typer.Option(None, "--n-params", help="Model size, for a --scaled law."),
        level: float = typer.Option(0.9, "--level", help="Interval level."),
        plot: Path = typer.Option(None, "--plot", help="Write the predicted curve to this PNG."),
    ) -> None:
        """Predict the loss curve and final loss of one schedule."""
        from oasl.curves.io import load_schedule_law
        from oasl.curves.ranking import candidate_schedules
        from oasl.report.schedules import has_intervals, plot_schedules

        law, ctx = load_schedule_law(law_file)
        steps, lr, warm = _target(ctx, steps, lr, warmup_steps)
        kw = _predict_kwargs(law, n_params, ctx)
        lrs = candidate_schedules([schedule], steps, lr, warmup_steps=warm)[schedule]
        final = float(law.predict(lrs, [len(lrs) - 1], **kw)[0])
        msg = f"{schedule}: {steps} steps at peak lr {lr:.3g}: predicted final loss {final:.4f}"
        if has_intervals(law):
            lo, hi = law.predict_interval(lrs, [len(lrs) - 1], level=level, **kw)
            msg += f" ({level:.0%} interval {lo[0]:.4f}-{hi[0]:.4f})"
        console.print(msg)
        if plot:
            plot_schedules(law, [schedule], steps, lr, warm, plot, **kw)
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
        n_params: float = typer.Option(None, "--n-params", help="Model size, for a --scaled law."),
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

        if (law_file is None) == (store is None):
            raise ConfigError("give exactly one of --law (a fitted law file) or --store (fit on its curves)")
        if store is not None:
            with console.status("fitting the schedule law on the store's curves"):
                law, ctx, _ = fit_from_store(store, _where(where), law_name, boot=20)
        else:
            law, ctx = load_schedule_law(law_file)
        steps, lr, warm = _target(ctx, steps, lr, warmup_steps)
        kw = _predict_kwargs(law, n_params, ctx)
        names = [c.strip() for c in candidates.split(",") if c.strip()]
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
            iv = f"{r['final_loss_lo']:.4f}-{r['final_loss_hi']:.4f}" if "final_loss_lo" in df else "-"
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
