"""The self-contained HTML report: every figure embedded as a base64 PNG, tables as HTML."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

import pandas as pd

from oasl.report import plots
from oasl.report.card import CARD_CSS, build_card, pct, render_card

CSS = (
    CARD_CSS
    + """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: right; }
th { background: #f3f3f3; } td.l { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: .5em 0; }
.warn { color: #a15c00; } .note { color: #555; font-size: .9em; }
"""
)


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if not math.isfinite(v):
            return "-"
        return f"{v:.4g}"
    return html.escape(str(v))


def _table(df: pd.DataFrame, cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for _, r in df.iterrows():
        cells = "".join(f'<td class="{"l" if isinstance(v, str) else ""}">{_fmt(v)}</td>' for v in r)
        rows.append(f"<tr>{cells}</tr>")
    return f'<table class="{cls}"><tr>{head}</tr>{"".join(rows)}</table>'


def _fit_df(df: pd.DataFrame, sweep_keys=None) -> pd.DataFrame:
    # as `oasl fit` does by default: a validation's target and baseline runs are not sweep optima
    return df[df["role"].fillna("sweep") == "sweep"] if "role" in df and sweep_keys is None else df


def _target_cards(df: pd.DataFrame, target: dict, fit, over: str):
    """The cards of a report given a target and no validation; returns (html parts, the FitReport used)."""
    from oasl.laws.pipeline import fit_laws
    from oasl.recommend import recommend, sweep_settings
    from oasl.report.card import target_card

    if target.get("laws"):
        from oasl.laws import load_laws

        laws, meta = load_laws(target["laws"])
        laws.pop("loss", None)
        fixed_of = lambda opt: meta.get("fixed") or {}  # noqa: E731
        source = f"fitted laws {target['laws']}"
    else:
        runs = _fit_df(df)
        fit = fit if fit is not None else fit_laws(runs, hps=[over])
        laws = dict(fit.laws)
        fixed_of = lambda opt: sweep_settings(runs[runs["optimizer"] == opt])  # noqa: E731
        source = "the law fitted on this store's sweep runs"
    lr_law = laws.get("lr")
    optimizers = target.get("optimizers") or (
        list(lr_law.laws_) if hasattr(lr_law, "laws_") else sorted(df["optimizer"].dropna().unique())
    )
    parts = []
    for opt in optimizers:
        fixed, shape = fixed_of(opt), target.get("shape")
        if shape is not None and not target.get("seq_len") and fixed.get("seq_len"):
            shape = shape.model_copy(update={"seq_len": int(fixed["seq_len"])})  # as `oasl recommend` does
        rec = recommend(
            opt,
            n_params=target.get("n_params"),
            tokens=target["tokens"],
            shape=shape,
            laws=laws,
            fixed=fixed,
            seq_len=target.get("seq_len"),
            laws_source=source,
        )
        parts.append(render_card(target_card(rec)))
    return parts, fit


def write_report(
    store: str | Path,
    out: str | Path,
    validation=None,
    fit=None,
    sweep_keys=None,
    schedules: dict | None = None,
    over: str = "lr",
    transfer=None,
    target: dict | None = None,
) -> Path:
    """Write ``out/index.html`` (images also saved beside it) from a store and optional results.

    ``validation`` is a :class:`~oasl.validate.ValidationResult`, ``fit`` a
    :class:`~oasl.laws.pipeline.FitReport` (fitted here from the store when None), ``schedules`` the dict
    of :func:`oasl.report.schedules.schedule_section` (or a schedule-law file path, turned into one here).
    ``transfer`` a :class:`~oasl.laws.transfer.TransferResult` (adds the fast-transfer section).
    ``target`` (without a validation): ``{"n_params", "tokens", "shape" (optional ModelShape), "laws"
    (optional laws.json path; default: the laws fitted here), "optimizers" (optional)}`` puts a card per
    optimizer on the first screen, from :func:`oasl.recommend.recommend` as ``oasl recommend`` computes it.
    Returns the path of the HTML page.
    """
    from oasl.errors import FitError
    from oasl.laws.pipeline import fit_laws
    from oasl.optima import locate_optima
    from oasl.report.plots_optima import plot_optima
    from oasl.store import open_store

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    all_runs = open_store(store).to_dataframe()
    df = all_runs[all_runs["key"].isin(sweep_keys)] if sweep_keys is not None and len(all_runs) else all_runs
    parts = [f"<h1>oasl report</h1><p class='note'>store: {html.escape(str(store))}; {len(df)} runs</p>"]
    if validation is not None:  # the first screen: what to use for the target, and how sure
        floor = getattr(validation, "noise_floor", None)
        parts += [render_card(build_card(ov, all_runs, floor)) for ov in validation.optimizers]
    elif target is not None:
        cards, fit = _target_cards(df, target, fit, over)
        parts += cards
    else:
        parts.append(
            "<p class='note'>No target in this report: pass one (<code>oasl report --target-params 1B "
            "--target-tokens 20B</code>) or a validation (<code>--validation validation.json</code>) for a "
            "recommendation card.</p>"
        )
    parts.append("<h2 class='evidence'>The evidence</h2>")

    parts.append("<h2>Loss vs learning rate, with located optima</h2>")
    sweep = _fit_df(df, sweep_keys)  # the runs the laws are fitted on: the table and the law plot agree
    if len(sweep) < len(df):
        parts.append(
            f"<p class='note'>{len(df) - len(sweep)} target and baseline run(s) of a validation are left out "
            "here, as in the law fit; the card above reports them.</p>"
        )
    if over in sweep and len(sweep):
        group = [g for g in ("optimizer", "n_params", "tokens") if g in sweep]
        try:
            opt = locate_optima(sweep, over=over, group_by=group)
            png = plot_optima(sweep, opt, over, group, out / "optima.png")
            parts.append(_img(png, "loss vs lr per shape and optimizer"))
            cols = [*group, "grid_argmin", "opt", "ci_low", "ci_high", "band_low", "band_high", "note"]
            parts.append(_table(opt[cols]))
        except FitError as exc:
            parts.append(f"<p class='warn'>optima not located: {html.escape(str(exc))}</p>")

    parts.append("<h2>Fitted laws</h2>")
    if fit is None:
        fit_df = _fit_df(df, sweep_keys)
        try:
            fit = fit_laws(fit_df, hps=[over])
        except FitError as exc:
            parts.append(f"<p class='warn'>no law fitted: {html.escape(str(exc))}</p>")
        validated = getattr(validation, "law_formula", "") if validation is not None else ""
        if fit is not None and validated and over in fit.laws and fit.laws[over].formula() != validated:
            parts.append(
                "<p class='warn'>The law refitted from this store's sweep runs, "
                f"<code>{html.escape(fit.laws[over].formula())}</code>, is not the validated law "
                f"<code>{html.escape(validated)}</code>: the store holds other sweeps' runs too. The card "
                "above reports the validated law; fit a store of that validation's sweep alone to plot it.</p>"
            )
    if fit is not None:
        target_n = None
        if validation is not None and validation.optimizers:
            target_n = validation.optimizers[0].target_n_params
        png = plots.plot_laws(fit, out / "laws.png", target_n=target_n)
        parts.append(_img(png, "fitted laws on log-log axes"))
        parts.append(_table(fit.table()))
        if fit.loss_law is not None:
            p = fit.loss_law.params_
            parts.append(
                "<p>Loss law: L = {E:.3f} + {A:.3g}/N^{alpha:.3f} + {B:.3g}/D^{beta:.3f}</p>".format(**p)
            )

    if validation is not None:
        parts.append("<h2>Validation: regret and tuning compute per method</h2>")
        table = validation.table()
        png = plots.plot_validation(table, out / "validation.png")
        parts.append(_img(png, "validation bars"))
        shown = pd.DataFrame(
            {
                "optimizer": table["optimizer"],
                "method": table["method"],
                "lr": table["lr"],
                "regret vs oracle (%)": table["regret_mean"].map(pct),
                "seed spread (%)": table["regret_std"].map(lambda v: pct(v, signed=False)),
                "tuning compute (target runs)": table["tuning_runs"],
            }
        )
        parts.append(_table(shown))
        from oasl.report.cost_regret import has_curves, plot_cost_to_regret

        if has_curves(validation):
            parts.append("<h2>Cost to regret: how many target runs each method needs</h2>")
            png = plot_cost_to_regret(validation, out / "cost_regret.png")
            parts.append(_img(png, "expected regret against target runs, per method"))
            parts.append(
                "<p class='note'>Expected regret after k runs of the target model (ladder not counted): "
                "filled points were trained on every evaluation seed, hollow ones read off the runs already "
                "at the target (each search replayed on the seed-0 curve, scored by the seed-mean regret); "
                "bands are 90% intervals over the evaluation seeds.</p>"
            )

    if schedules is not None and not isinstance(schedules, dict):
        from oasl.report.schedules import schedule_section

        schedules = schedule_section(schedules, out, store=store)
    if schedules:
        parts.append("<h2>Schedules: observed vs predicted loss curves</h2>")
        if schedules.get("law"):
            parts.append(f"<p class='note'>{html.escape(schedules['law'])}</p>")
        if schedules.get("fit_figure"):
            parts.append(_img(Path(schedules["fit_figure"]), "observed vs predicted loss curves"))
        if schedules.get("errors") is not None and len(schedules["errors"]):
            parts.append(_table(schedules["errors"]))
        parts.append("<h2>Schedules: ranking by predicted final loss</h2>")
        if schedules.get("figure"):
            parts.append(_img(Path(schedules["figure"]), "predicted loss curves per schedule"))
        if schedules.get("table") is not None:
            parts.append(_table(schedules["table"]))

    if transfer is not None:
        from oasl.report.transfer import transfer_section

        png, table = transfer_section(transfer, out)
        parts += ["<h2>Fast transfer: beta vs alpha/2</h2>", _img(png, "transfer fits"), _table(table)]

    page = out / "index.html"
    page.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>oasl report</title>"
        f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>"
    )
    return page
