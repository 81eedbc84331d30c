"""``oasl schedules fit|eval|predict|rank``: schedule-aware loss laws on a store's curves or on curve
files (CSV with columns step, lr, loss: :func:`oasl.curves.io.read_curve_file`). Thin: parse, call
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


def _make_law(name: str, boot: int, prior: Path | None = None):
    """An unfitted law; ``prior``: a schedule-law file whose multi-power shape centres a prior."""
    from oasl.curves import AnnealingLaw, MultiPowerLaw
    from oasl.errors import ConfigError

    if name not in LAWS:
        raise ConfigError(f"unknown schedule law {name!r}: choose one of {', '.join(LAWS)}")
    if prior is None:
        return (MultiPowerLaw if name == "mpl" else AnnealingLaw)(n_boot=max(boot, 1))
    if name != "mpl":
        raise ConfigError("--prior centres a prior on the multi-power law's shape: use it with --law mpl")
    from oasl.curves.io import load_schedule_law

    other, _ = load_schedule_law(prior)
    if not isinstance(other, MultiPowerLaw):
        raise ConfigError(f"--prior {prior} holds a {type(other).__name__}, not a fitted multi-power law")
    return MultiPowerLaw(n_boot=max(boot, 1), prior=other)


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


def read_curves(files: list[Path], n_params: float | None = None) -> list:
    """Curves from curve files (:func:`oasl.curves.io.read_curve_file`), all with model size ``n_params``."""
    from oasl.curves.io import read_curve_file

    return [read_curve_file(f, n_params) for f in files]


def _fit_context(curves, extra: dict) -> dict:
    """What a fit saw: planned steps, peak lr, warmup steps, sizes, curve names (for predict/rank)."""
    import numpy as np

    from oasl.curves.curve import infer_warmup_steps

    sizes = sorted({c.n_params for c in curves if c.n_params is not None})
    return {
        **extra,
        "steps": int(Counter(len(c.lrs) for c in curves).most_common(1)[0][0]),
        "lr": float(np.median([c.lrs.max() for c in curves])),
        "warmup_steps": int(Counter(infer_warmup_steps(c.lrs) for c in curves).most_common(1)[0][0]),
        "n_params": sizes[-1] if sizes else None,
        "sizes": sizes,
        "curves": [c.name for c in curves],
    }


def fit_from_files(
    files: list[Path],
    law: str = "mpl",
    n_params: float | None = None,
    boot: int = 20,
    prior: Path | None = None,
    transfer_from: Path | None = None,
):
    """Fit a schedule law on curve files; returns ``(law, context, curves)``. With ``transfer_from`` (a
    law file of another model size) only L0, A and alpha are refitted (:func:`oasl.curves.transfer_law`),
    so one constant-LR run of the new size is enough; otherwise the files must hold a constant and a
    decaying schedule (:func:`oasl.curves.curve.check_curve_set`)."""
    from oasl.curves.curve import check_curve_set

    _check_positive(n_params=n_params)
    curves = read_curves(files, n_params)
    if transfer_from is not None:
        from oasl.curves import ScaledScheduleLaw, transfer_law
        from oasl.curves.io import load_schedule_law
        from oasl.errors import ConfigError

        small, ctx = load_schedule_law(transfer_from)
        if isinstance(small, ScaledScheduleLaw):
            raise ConfigError(
                "--transfer-from takes a one-size law (from `oasl schedules fit` without --scaled)"
            )
        fitted = transfer_law(small, curves)
        extra = {"transfer_from": str(transfer_from), "transfer_from_curves": ctx.get("curves", [])}
        return fitted, _fit_context(curves, {"files": [str(f) for f in files], **extra}), curves
    base = _make_law(law, boot, prior)  # a bad law name or prior fails before fitting
    check_curve_set(curves)
    fitted = base.fit(curves)
    if boot > 0:
        fitted.bootstrap(boot)
    return fitted, _fit_context(curves, {"files": [str(f) for f in files]}), curves


def fit_from_store(
    store: str,
    where: dict,
    law: str = "mpl",
    source: str = "auto",
    scaled: bool = False,
    boot: int = 20,
    prior: Path | None = None,
):
    """Fit a schedule law on the matching runs of ``store``; returns ``(law, context, run_curves)``.

    One model size unless ``scaled`` (then a :class:`~oasl.curves.ScaledScheduleLaw` over the
    sizes). ``context`` records what the fit saw: planned steps, peak lr, warmup steps, sizes, filters."""
    import numpy as np

    from oasl.curves import ScaledScheduleLaw
    from oasl.curves.curve import check_curve_set, infer_warmup_steps
    from oasl.curves.runs import store_curves
    from oasl.errors import DataError

    base = _make_law(law, boot, prior)  # an unknown law name fails before the store is read
    rcs = store_curves(store, where, source=source)
    sizes = sorted({rc.n_params for rc in rcs})
    if len(sizes) > 1 and not scaled:
        raise DataError(
            f"the matching runs have {len(sizes)} model sizes ({', '.join(f'{s:.3g}' for s in sizes)}): "
            "pick one with --where width=... or fit across sizes with --scaled"
        )
    optimizers = [rc.row.get("optimizer", "?") for rc in rcs]
    for n in sizes:  # each size needs its constant and decaying schedules, all of one optimizer
        check_curve_set([rc.curve for rc in rcs if rc.n_params == n], optimizers)
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


def evaluate_curves(law, curves, **predict_kwargs) -> dict:
    """Per curve (by name) the points and the mean, worst and final relative error |L - Lhat| / L
    (fractions) of ``law``'s prediction; ``mean``: their averages over the curves."""
    import numpy as np

    from oasl.curves.curve import curve_errors

    out = {}
    for c in curves:
        e = curve_errors(law.predict(c.lrs, c.steps, **predict_kwargs), c.loss)
        out[c.name] = {"points": len(c), **{k: e[k] for k in ("mean_rel", "worst_rel", "final_rel")}}
    keys = ("mean_rel", "worst_rel", "final_rel")
    return {"curves": out, "mean": {k: float(np.mean([v[k] for v in out.values()])) for k in keys}}


def _target(
    ctx: dict, steps: int | None, lr: float | None, warmup_steps: int | None
) -> tuple[int, float, int]:
    """The target run's (steps, peak lr, warmup steps): the options given, else the fitted runs'."""
    warm = warmup_steps if warmup_steps is not None else ctx.get("warmup_steps", 0)
    return int(steps or ctx["steps"]), float(lr or ctx["lr"]), int(warm)


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
            None, "--n-params", help="With --curves: the model's parameter count."
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
        path = save_schedule_law(out, fitted, context)
        console.print(f"{len(fitted_curves)} curves; law written to {path}")

    @sched.command("eval")
    def eval_cmd(
        law_file: Path = typer.Option(..., "--law", help="File from `oasl schedules fit`."),
        curves: list[Path] = typer.Option(
            ..., "--curves", help="Curve CSV files with columns step, lr, loss (repeatable)."
        ),
        n_params: float = typer.Option(None, "--n-params", help="Model size, for a --scaled law."),
        fmt: str = typer.Option("table", "--format", help="table or json."),
    ) -> None:
        """Score a fitted law on curve files: per curve the mean, worst and final-loss relative error."""
        import json

        from oasl.curves.io import load_schedule_law
        from oasl.errors import ConfigError

        if fmt not in ("table", "json"):
            raise ConfigError(f"unknown --format {fmt!r}: use table or json")
        _check_positive(n_params=n_params)
        law, ctx = load_schedule_law(law_file)
        kw = _predict_kwargs(law, n_params, ctx)
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
        n_params: float = typer.Option(None, "--n-params", help="Model size, for a --scaled law."),
        level: float = typer.Option(0.9, "--level", help="Interval level."),
        plot: Path = typer.Option(None, "--plot", help="Write the predicted curve to this PNG."),
    ) -> None:
        """Predict the loss curve and final loss of one schedule."""
        from oasl.curves.io import load_schedule_law
        from oasl.curves.ranking import candidate_schedules
        from oasl.report.schedules import has_intervals, plot_schedules

        _check_steps(steps, warmup_steps)
        _check_positive(lr=lr, n_params=n_params)
        _check_level(level)
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
        _check_steps(steps, warmup_steps)
        _check_positive(lr=lr, n_params=n_params)
        _check_level(level)
        names = [c.strip() for c in candidates.split(",") if c.strip()]
        check_candidate_names(names)  # before any fit or bootstrap
        if store is not None:
            with console.status("fitting the schedule law on the store's curves"):
                law, ctx, _ = fit_from_store(store, _where(where), law_name, boot=20)
        else:
            law, ctx = load_schedule_law(law_file)
        steps, lr, warm = _target(ctx, steps, lr, warmup_steps)
        kw = _predict_kwargs(law, n_params, ctx)
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
