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
    interval = f"{sig(lo)} - {sig(hi)}" if hi > lo else "-"
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


def build_card(ov, runs: pd.DataFrame | None = None, noise_floor: float | None = None) -> Card:
    """The card of one :class:`~oasl.validate.harness.OptimizerValidation`; ``runs`` (the store's
    :meth:`~oasl.store.Store.to_dataframe`) supplies the configuration of the target run."""
    run = _target_run(runs, ov)
    shape = ""
    if run is not None and pd.notna(run.get("width")):
        shape = f" (width {int(run['width'])}, depth {int(run['depth'])})"
    tokens = f", D = {sig(run['tokens'])} tokens" if run is not None and pd.notna(run.get("tokens")) else ""
    target = (
        f"N = {sig(ov.target_n_params)} non-embedding parameters{shape}{tokens}; "
        f"{ov.extrapolation_ratio:.1f}x the largest swept N ({sig(ov.largest_swept_n_params)})"
    )
    card = Card(ov.optimizer, target, lr=float(ov.recommended_lr), lr_interval=tuple(ov.recommended_interval))
    card.rows.append(_law_row(ov))
    fixed = "held fixed in the sweep (no law fitted for it)"
    if run is None:
        card.notes.append(
            "The target run is not in this store, so only the learning rate is shown: report from the "
            "store the validation trained into."
        )
    else:
        seq = int(run["seq_len"]) if pd.notna(run.get("seq_len")) else None
        bs = int(run["batch_seqs"]) if pd.notna(run.get("batch_seqs")) else None
        if bs is not None and seq is not None:
            card.rows.append(Row("batch size", f"{bs} sequences x {seq} = {bs * seq:,} tokens", "-", fixed))
        steps = int(run["steps"]) if pd.notna(run.get("steps")) else None
        wf = run.get("warmup_frac")
        if wf is not None and pd.notna(wf):
            n_warm = f" = {round(float(wf) * steps)} of {steps} steps" if steps else ""
            card.rows.append(Row("warmup", f"{100 * float(wf):.0f}% of the steps{n_warm}", "-", fixed))
        if pd.notna(run.get("schedule")):
            ff = run.get("final_frac")
            end = f" to {100 * float(ff):.0f}% of the peak" if ff is not None and pd.notna(ff) else ""
            card.rows.append(Row("schedule", f"{run['schedule']}{end}", "-", fixed))
        from oasl.optim.registry import get_optimizer

        for hp in get_optimizer(ov.optimizer).hps:  # a spec stores only the HPs set away from default
            set_here = hp.name in run and pd.notna(run[hp.name])
            v = float(run[hp.name]) if set_here else hp.default
            text = ("yes" if v else "no") if hp.name == "nesterov" else sig(v, 4)
            src = fixed if set_here else f"{fixed}; the optimizer's default"
            card.rows.append(Row(hp.name.replace("_", " "), text, "-", src))
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
    return (
        f"<section class='card' data-optimizer='{e(card.optimizer)}'>"
        f"<h2>Use for the target run: {e(card.optimizer)}</h2>"
        f"<p class='target'>Target: {e(card.target)}</p>"
        "<table class='config'><tr><th>hyperparameter</th><th>use</th><th>90% interval</th>"
        f"<th>where it comes from</th></tr>{config}</table>"
        "<h3>What validation at the target showed</h3>"
        "<table class='methods'><tr><th>method</th><th>lr</th><th>regret vs oracle</th><th>interval</th>"
        f"<th>verdict</th><th>tuning compute (target runs)</th></tr>{methods}</table>"
        f"{notes}</section>"
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
