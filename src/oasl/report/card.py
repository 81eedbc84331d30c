"""The report's first screen: one recommendation card per optimizer of a validation, saying what to
use for the target run, the law behind each value, and what validation showed.

The card only renders what the API computed: the validated law and its numbers
(:class:`~oasl.validate.harness.OptimizerValidation`), and the configuration of the run that validation
trained at the recommendation (read from the store). Fields a newer validation adds (``regret_ci``,
``verdict`` per method, ``noise_floor``) are shown when present; without them the card shows the regret
over seeds alone.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from oasl.validate.curves import card_line
from oasl.validate.stats import expected_search_text, interval_regret_text

# Regret is a fraction in the API; the page shows it in % everywhere (one unit per quantity).
COMPUTE_NOTE = (
    "Tuning compute is in target-run equivalents: the FLOPs a method spent choosing its learning rate "
    "divided by the FLOPs of one training run of the target, so {oasl} for oasl means its whole "
    "small-model sweep cost {oasl} runs of the big model."
)
REGRET_NOTE = (
    "Regret: how much higher the target's final validation loss is than the oracle's (the best learning "
    "rate of a grid trained at the target itself), in % of the oracle's loss, paired by seed; lower is "
    "better, 0% matches the oracle."
)


@dataclass
class Row:
    """One line of the configuration table."""

    name: str
    value: str
    interval: str = "-"
    source: str = ""


@dataclass
class Card:
    """The data of one optimizer's card (strings ready to print; numbers kept for tests and the API)."""

    optimizer: str
    target: str
    rows: list[Row] = field(default_factory=list)
    methods: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)
    lr: float = math.nan
    lr_interval: tuple[float, float] = (math.nan, math.nan)
    recommendation: Any = None  # the oasl.recommend.Recommendation the rows render


def pct(x: Any, signed: bool = True) -> str:
    """A regret fraction as % with 2 decimals (``0.0042`` -> ``+0.42%``); ``-`` when unknown."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "-"
    if math.isinf(v):
        return "diverged"
    if not math.isfinite(v):
        return "-"
    return f"{100 * v:+.2f}%" if signed else f"{100 * v:.2f}%"


def sig(x: Any, digits: int = 3) -> str:
    """A number to ``digits`` significant digits, ``-`` when missing."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "-" if x is None else str(x)
    return f"{v:.{digits}g}" if math.isfinite(v) else "-"


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _target_run(df: pd.DataFrame | None, ov) -> pd.Series | None:
    """The stored run that validation trained at the recommendation (target N, recommended lr)."""
    if df is None or df.empty or not {"optimizer", "n_params", "lr"} <= set(df.columns):
        return None
    n = pd.to_numeric(df["n_params"], errors="coerce")
    lr = pd.to_numeric(df["lr"], errors="coerce")
    hit = df[(df["optimizer"] == ov.optimizer) & (n == ov.target_n_params)]
    hit = hit[np.isclose(lr[hit.index], ov.recommended_lr, rtol=1e-6, atol=0)]
    if "parametrization" in hit:
        hit = hit[hit["parametrization"].fillna("sp") == "sp"]
    return None if hit.empty else hit.iloc[0]


def _law_row(ov) -> Row:
    from oasl.laws.io import law_from_dict

    lo, hi = ov.recommended_interval
    interval = f"[{sig(lo)}, {sig(hi)}]" if hi > lo else "-"
    try:
        law = law_from_dict(dict(ov.law))
        formula = law.formula()
        quality = []
        if math.isfinite(getattr(law, "r2_", math.nan)):
            quality.append(f"R² {law.r2_:.2f}")
        try:
            loo = law.loo_error()
            if math.isfinite(loo):
                quality.append(f"leave-one-size-out error {100 * loo:.0f}%")
        except Exception:  # a law saved without its data has no held-out error to show
            pass
        ranges = getattr(law, "range_", {}) or {}
        fitted = ", ".join(f"{k} {sig(a)}-{sig(b)}" for k, (a, b) in ranges.items())
        kind = getattr(law, "kind", "power")
    except Exception:  # an unreadable law still leaves the recommendation to show
        formula = getattr(ov, "law_formula", "") or str(dict(ov.law or {}).get("kind", "law"))
        quality, fitted, kind = [], "", ""
    law_text = f"law <code>{html.escape(formula)}</code>"
    parts = [law_text + (f" ({', '.join(quality)})" if quality else "")]
    if fitted:
        parts.append(f"fitted on {html.escape(fitted)}")
    parts.append(f"extrapolated {ov.extrapolation_ratio:.1f}x beyond the largest swept N")
    if kind == "constant":
        parts.append("constant: the optima showed no trend with N (the exponent's 90% interval contains 0)")
    return Row("peak learning rate", sig(ov.recommended_lr), interval, "; ".join(parts))


def recommendation_for(ov, runs: pd.DataFrame | None = None, fixed: dict[str, Any] | None = None):
    """The :class:`~oasl.recommend.Recommendation` behind a validation's card: :func:`oasl.recommend.recommend`
    with the validated law at the validated target (N, D, shape), keeping what the sweep held fixed
    (``fixed``, as laws.json's ``meta["fixed"]``; else read off ``runs``' sweep runs). The same call
    ``oasl recommend --laws laws.json`` makes, so the card and the command say the same. None when the
    target's token budget is unknown (a validation.json written before it and no target run stored), or
    neither ``runs`` nor ``fixed`` is given."""
    from oasl.config import ModelShape, build
    from oasl.laws.io import law_from_dict
    from oasl.recommend import recommend, sweep_settings

    if runs is None and fixed is None:
        return None  # what the sweep held fixed is out of reach: the configuration is not guessed
    run = _target_run(runs, ov)
    tokens = getattr(ov, "target_tokens", math.nan)
    if not _finite(tokens) and run is not None and pd.notna(run.get("tokens")):
        tokens = float(run["tokens"])
    if not _finite(tokens):
        return None
    if fixed is None:
        sweep = runs
        if runs is not None and "role" in runs:
            sweep = runs[runs["role"].fillna("sweep") == "sweep"]
        if sweep is not None and "optimizer" in sweep:
            sweep = sweep[sweep["optimizer"] == ov.optimizer]
        fixed = sweep_settings(sweep) if sweep is not None else {}
    shape_d = dict(getattr(ov, "target_shape", None) or {})
    if not shape_d and run is not None and pd.notna(run.get("width")):
        shape_d = {"width": int(run["width"]), "depth": int(run["depth"])}
        if pd.notna(run.get("seq_len")):
            shape_d["seq_len"] = int(run["seq_len"])
    shape = build(ModelShape, shape_d, what="target shape") if shape_d else None
    return recommend(
        ov.optimizer,
        n_params=float(ov.target_n_params),
        tokens=float(tokens),
        shape=shape,
        laws={"lr": law_from_dict(dict(ov.law))} if ov.law else {},
        seq_len=int(fixed["seq_len"]) if fixed.get("seq_len") else None,
        fixed=fixed,
        laws_source="the validated law",
    )


def config_rows(rec) -> list[Row]:
    """The configuration rows (all but the lr) of a :class:`~oasl.recommend.Recommendation`: batch,
    warmup, schedule, the optimizer's HPs; each value and source as ``oasl recommend`` prints them."""
    from oasl.optim.registry import get_optimizer

    it = rec.items
    bs, seq = int(rec.value("batch_seqs")), rec.seq_len
    steps, warm = int(rec.value("total_steps")), int(rec.value("warmup_steps"))
    rows = [
        Row(
            "batch size",
            f"{bs} sequences x {seq} = {bs * seq:,} tokens",
            "-",
            html.escape(it["batch_tokens"].source),
        ),
        Row(
            "warmup",
            f"{100 * rec.warmup_frac:.0f}% of the steps = {warm} of {steps} steps",
            "-",
            html.escape(it["warmup_steps"].source),
        ),
    ]
    name = str(rec.value("schedule"))
    end = f" to {100 * rec.final_frac:.0f}% of the peak" if name in ("cosine", "linear", "wsd") else ""
    rows.append(Row("schedule", f"{name}{end}", "-", html.escape(it["schedule"].source)))
    for hp in get_optimizer(rec.optimizer).hps:
        v = float(rec.value(hp.name))
        text = ("yes" if v else "no") if hp.name == "nesterov" else sig(v, 4)
        i = it[hp.name]
        interval = f"[{sig(i.low)}, {sig(i.high)}]" if i.low is not None else "-"
        rows.append(Row(hp.name.replace("_", " "), text, interval, html.escape(i.source)))
    return rows


def target_card(rec) -> Card:
    """The card of a :class:`~oasl.recommend.Recommendation` made without a validation (``oasl report
    --target-params ...``): the same rows as a validation's card, each value and source as ``oasl
    recommend`` prints them, and no "what validation showed" table."""
    lr = rec.items["lr"]
    shape = f" (width {rec.shape.width}, depth {rec.shape.depth})" if rec.shape is not None else ""
    target = f"N = {sig(rec.n_params)} non-embedding parameters{shape}, D = {sig(rec.tokens)} tokens"
    interval = f"[{sig(lr.low)}, {sig(lr.high)}]" if lr.low is not None else "-"
    src = html.escape(lr.source)
    if lr.extrapolation:
        src += f"; extrapolated {lr.extrapolation:.1f}x beyond the range the law was fitted on"
    card = Card(rec.optimizer, target, lr=float(lr.value), recommendation=rec)
    card.lr_interval = (lr.low or math.nan, lr.high or math.nan)
    card.rows = [Row("peak learning rate", sig(lr.value), interval, src), *config_rows(rec)]
    card.notes = [f"Warning: {w}" for w in rec.warnings]
    card.notes.append(
        "Not validated at the target: these are the laws' values for it. `oasl validate` trains the target "
        "at them and compares with an oracle."
    )
    return card


def build_card(
    ov,
    runs: pd.DataFrame | None = None,
    noise_floor: float | None = None,
    fixed: dict[str, Any] | None = None,
) -> Card:
    """The card of one :class:`~oasl.validate.harness.OptimizerValidation`; its configuration comes from
    :func:`recommendation_for` (``runs``, the store's :meth:`~oasl.store.Store.to_dataframe`, and
    ``fixed`` as there), so it says what ``oasl recommend`` says for the same laws and target."""
    rec = recommendation_for(ov, runs, fixed)
    shape = ""
    if rec is not None and rec.shape is not None:
        shape = f" (width {rec.shape.width}, depth {rec.shape.depth})"
    tokens = f", D = {sig(rec.tokens)} tokens" if rec is not None else ""
    target = (
        f"N = {sig(ov.target_n_params)} non-embedding parameters{shape}{tokens}; "
        f"{ov.extrapolation_ratio:.1f}x the largest swept N ({sig(ov.largest_swept_n_params)})"
    )
    card = Card(ov.optimizer, target, lr=float(ov.recommended_lr), lr_interval=tuple(ov.recommended_interval))
    card.recommendation = rec
    card.rows.append(_law_row(ov))
    if rec is None:
        card.notes.append(
            "The sweep's settings or the target's token budget are not in reach, so only the learning rate "
            "is shown: report from the store the validation trained into."
        )
    else:
        card.rows += config_rows(rec)
    card.methods = _methods(ov)
    # cost to regret (issue 25): the law alone, the law with k runs, what the searches need for the same
    cost_line = card_line(getattr(ov, "cost_to_regret", None) or {})
    if cost_line:
        card.notes.append(cost_line)
    warning = (getattr(ov, "clipping", None) or {}).get("warning")
    if warning:  # first: it says the recommendation itself may be off
        card.notes.insert(0, f"Gradient clipping changes regime at the target: {warning}.")
    oasl = next((m for m in ov.methods if m.method == "oasl"), None)
    if oasl is not None:
        card.notes.append(COMPUTE_NOTE.format(oasl=f"{oasl.tuning_runs:.2f}"))
    card.notes.append(REGRET_NOTE)
    floor = next((f for f in (getattr(ov, "noise_floor", None), noise_floor) if _finite(f)), None)
    if floor is not None:
        card.notes.append(
            f"Noise floor: the oracle's own spread over seeds is {pct(floor, signed=False)}; regrets "
            "closer together than that cannot be told apart."
        )
    ends = getattr(ov, "interval_regret", None) or {}
    if ends:
        card.notes.append(f"{interval_regret_text(ends)}: how much the law's uncertainty costs here.")
    for m in ov.methods:
        if getattr(m, "expected", None):
            card.notes.append(
                f"Over draws of its search, {expected_search_text(m.method, m.expected)}; its row above is the "
                "one draw trained."
            )
    return card


def _methods(ov) -> pd.DataFrame:
    rows = []
    for m in ov.methods:
        ci = getattr(m, "regret_ci", None)
        if ci is not None and len(ci) == 2 and all(_finite(v) for v in ci):
            interval = f"{pct(ci[0])} to {pct(ci[1])} (90%)"
        elif math.isfinite(m.regret_std) and m.regret_std > 0:
            interval = f"± {pct(m.regret_std, signed=False)} (seed spread)"
        else:
            interval = "-"
        verdict = str(getattr(m, "verdict", None) or "-")
        if m.method == "oasl":
            verdict = "this recommendation"
        elif verdict in ("better", "worse"):
            verdict += " than oasl"
        elif verdict == "indistinguishable":
            verdict += " from oasl"
        rows.append(
            {
                "method": m.method,
                "lr": sig(m.lr),
                "regret": pct(m.regret_mean),
                "interval": interval,
                "verdict": verdict,
                "tuning compute": f"{m.tuning_runs:.2f}" if math.isfinite(m.tuning_runs) else "-",
                "regret_value": m.regret_mean,
            }
        )
    return pd.DataFrame(rows)


def render_card(card: Card) -> str:
    """The card as an HTML ``<section class="card">``."""
    e = html.escape
    config = "".join(
        f"<tr><th scope='row'>{e(r.name)}</th><td class='v'>{e(r.value)}</td><td>{e(r.interval)}</td>"
        f"<td class='l'>{r.source}</td></tr>"
        for r in card.rows
    )
    methods = "".join(
        f"<tr class='{'oasl' if r['method'] == 'oasl' else ''}'><td class='l'>{e(r['method'])}</td>"
        f"<td>{e(r['lr'])}</td><td class='v'>{e(r['regret'])}</td><td>{e(r['interval'])}</td>"
        f"<td class='l'>{e(r['verdict'])}</td><td>{e(r['tuning compute'])}</td></tr>"
        for _, r in card.methods.iterrows()
    )
    notes = "".join(f"<p class='note'>{e(n)}</p>" for n in card.notes)
    shown = (
        "<h3>What validation at the target showed</h3>"
        "<table class='methods'><tr><th>method</th><th>lr</th><th>regret vs oracle</th><th>interval</th>"
        f"<th>verdict</th><th>tuning compute (target runs)</th></tr>{methods}</table>"
        if len(card.methods)
        else ""
    )
    return (
        f"<section class='card' data-optimizer='{e(card.optimizer)}'>"
        f"<h2>Use for the target run: {e(card.optimizer)}</h2>"
        f"<p class='target'>Target: {e(card.target)}</p>"
        "<table class='config'><tr><th>hyperparameter</th><th>use</th><th>90% interval</th>"
        f"<th>where it comes from</th></tr>{config}</table>"
        f"{shown}{notes}</section>"
    )


CARD_CSS = """
.card { border: 2px solid #2b7a3d; border-radius: 8px; padding: .4em 1.2em .8em; margin: 1em 0;
        background: #f6fbf7; }
.card h2 { border: none; margin-top: .4em; } .card h3 { margin: .8em 0 .2em; font-size: 1em; }
.card .target { margin: .2em 0 .6em; } .card th { text-align: left; }
.card td.v { font-weight: 600; font-size: 1.05em; white-space: nowrap; }
.card table { background: #fff; } .card th[scope=row] { text-align: left; background: #f3f3f3; }
.card tr.oasl td { background: #eaf6ed; } code { font-size: .95em; }
"""
