"""Fitting a schedule law end to end, as ``oasl schedules fit|eval`` do: on the finished runs of a store
(:func:`fit_from_store`) or on curve files (:func:`fit_from_files`, with an optional size transfer), with
the checks that the curves can identify the law (:func:`oasl.curves.curve.check_curve_set`), and scoring a
law on curves (:func:`evaluate_curves`). Each fit returns the law and a ``context`` dict (what it saw:
planned steps, peak LR, warmup steps, sizes, curve names) that ``predict``/``rank`` default to."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

LAWS = ("mpl", "annealing")


def make_law(name: str, boot: int, prior: Path | None = None):
    """An unfitted law ``name`` ("mpl" or "annealing") with ``boot`` bootstrap refits; ``prior``: a schedule-law
    file whose multi-power shape centres a prior. ConfigError on an unknown name or an unusable prior."""
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


def read_curves(files: list[Path], n_params: float | None = None) -> list:
    """Curves from curve files (:func:`oasl.curves.io.read_curve_file`), all with model size ``n_params``."""
    from oasl.curves.io import read_curve_file

    return [read_curve_file(f, n_params) for f in files]


def fit_context(curves, extra: dict) -> dict:
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
        return fitted, fit_context(curves, {"files": [str(f) for f in files], **extra}), curves
    base = make_law(law, boot, prior)  # a bad law name or prior fails before fitting
    check_curve_set(curves)
    fitted = base.fit(curves)
    if boot > 0:
        fitted.bootstrap(boot)
    return fitted, fit_context(curves, {"files": [str(f) for f in files]}), curves


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

    base = make_law(law, boot, prior)  # an unknown law name fails before the store is read
    rcs = store_curves(store, where, source=source)
    sizes = sorted({rc.n_params for rc in rcs})
    if len(sizes) > 1 and not scaled:
        raise DataError(
            f"the matching runs have {len(sizes)} model sizes ({', '.join(f'{s:.3g}' for s in sizes)}): "
            "pick one with --where width=... or fit across sizes with --scaled"
        )
    optimizers = [rc.row.get("optimizer", "?") for rc in rcs]
    # a constant and a decaying schedule, one optimizer; across sizes (--scaled) the set as a whole
    check_curve_set([rc.curve for rc in rcs], optimizers, one_size=not scaled)
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
