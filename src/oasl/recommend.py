"""A full hyperparameter configuration for a target model, from fitted or published laws.

Every value says where it came from (which law, fitted on what, or the optimizer's default) and, where
a law is behind it, carries an interval and the extrapolation ratio of the query; beyond
``warn_ratio`` a warning is attached. Where no law covers a value, the one the sweep held fixed
(:func:`sweep_settings`, kept in laws.json) is used before any default: the report's card, ``oasl
recommend`` and the exports all read this one :class:`Recommendation`. Exports (``torch.optim``, Hugging
Face ``TrainingArguments``, optax) live in :mod:`oasl.export`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from oasl.config import ModelShape
from oasl.errors import ConfigError
from oasl.optim.registry import get_optimizer

DEFAULT_WARMUP_FRAC = 0.02
DEFAULT_SCHEDULE = "cosine"
DEFAULT_FINAL_FRAC = 0.1
DECAYS_TO_FLOOR = ("cosine", "linear", "wsd")  # schedules whose last lr is final_frac x the peak
DEFAULT_SEQ_LEN = 2048  # the target's sequence length when neither --seq-len nor a shape gives one
# Token budgets outside these bounds get a warning: compute-optimal training is about 20 tokens per
# parameter (Hoffmann et al. 2022, Table 3) and heavily over-trained models reach a few thousand
# (Llama 3 8B: 15T tokens, about 1900 per parameter); below 1 or above 10^4 is more likely a unit slip.
TOKENS_PER_PARAM_RANGE = (1.0, 1e4)
MIN_STEPS = 100  # fewer optimizer steps than this and warmup, decay and the laws' regime do not apply
SWEEP_FIXED = "held fixed in the sweep (no law fitted for it)"
# Settings a sweep may hold fixed: the recommendation keeps them where no law says otherwise, since
# the laws were fitted at them (the validation trains its target at them too).
FIXED_COLUMNS = ("batch_seqs", "seq_len", "warmup_frac", "schedule", "final_frac")


@dataclass
class Item:
    """One recommended value with its interval, source and extrapolation warning."""

    name: str
    value: float | str
    low: float | None = None
    high: float | None = None
    source: str = "default"
    extrapolation: float | None = None
    warning: str = ""


@dataclass
class Recommendation:
    """A target's recommended configuration. ``items`` by name: lr, batch_tokens, batch_seqs, the
    optimizer's HPs, total_steps, warmup_steps, schedule. Every consumer (``oasl recommend``, the
    report's card, the hf/torch/optax exports) reads its values from here, so they say the same."""

    optimizer: str
    n_params: float
    tokens: float
    seq_len: int
    items: dict[str, Item] = field(default_factory=dict)
    shape: ModelShape | None = None
    notes: list[str] = field(default_factory=list)  # warnings about the target itself (token budget)
    warmup_frac: float = DEFAULT_WARMUP_FRAC  # warmup_steps = round(warmup_frac x total_steps)
    final_frac: float = DEFAULT_FINAL_FRAC  # the schedule's last lr as a fraction of the peak

    def value(self, name: str):
        return self.items[name].value

    @property
    def warnings(self) -> list[str]:
        return [*self.notes, *(f"{i.name}: {i.warning}" for i in self.items.values() if i.warning)]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([i.__dict__ for i in self.items.values()])

    def to_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer,
            "n_params": self.n_params,
            "tokens": self.tokens,
            "seq_len": self.seq_len,
            "config": {k: v.value for k, v in self.items.items()},
            "items": {k: v.__dict__ for k, v in self.items.items()},
            "warnings": self.warnings,
        }

    # -- exports (the arithmetic lives in :mod:`oasl.export`) -----------------------------------------
    def hps(self) -> dict[str, float]:
        """The optimizer's own HPs (registry names) as recommended."""
        entry = get_optimizer(self.optimizer)
        return {h: float(self.items[h].value) for h in entry.hp_names if h in self.items}

    def lr_factor(self, step: int) -> float:
        """The recommended schedule's multiplier of the peak lr at ``step`` (0-based), as oasl trains it."""
        from oasl.export import lr_factor

        return lr_factor(self, step)

    def torch_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the torch optimizer class (``class`` names it)."""
        from oasl.export import torch_kwargs

        return torch_kwargs(self)

    def torch_optimizer(self, model):
        """A ready torch optimizer over ``model`` (an oasl GPT or any module with ``param_roles`` and
        ``lr_multipliers``), with the recommended peak LR and muP multipliers in its param groups."""
        from oasl.optim import make_optimizer

        return make_optimizer(model, self.optimizer, float(self.value("lr")), self.hps())

    def hf_training_arguments(
        self, world_size: int = 1, grad_accum: int = 1, round_batch: bool = True
    ) -> dict[str, Any]:
        """``transformers.TrainingArguments`` kwargs (see :func:`oasl.export.hf_training_arguments`)."""
        from oasl.export import hf_training_arguments

        return hf_training_arguments(self, world_size, grad_accum, round_batch)

    def optax_optimizer(self):
        """An optax GradientTransformation (see :func:`oasl.export.optax_optimizer`)."""
        from oasl.export import optax_optimizer

        return optax_optimizer(self)

    def with_batch_seqs(self, batch_seqs: int, why: str) -> Recommendation:
        """A copy with the global batch set to ``batch_seqs`` sequences and the steps and warmup that
        follow from it re-derived (same token budget, same warmup fraction); ``why`` is the new source."""
        import copy

        rec = copy.deepcopy(self)
        bt = float(batch_seqs * rec.seq_len)
        rec.items["batch_tokens"] = Item("batch_tokens", bt, source=f"batch_seqs x seq_len {rec.seq_len}")
        _derive(rec, batch_seqs, why)
        return rec


def _query(n_params: float, tokens: float, shape: ModelShape | None, optimizer: str) -> pd.DataFrame:
    q = {"N": [n_params], "D": [tokens], "C": [6.0 * n_params * tokens], "optimizer": [optimizer]}
    if shape is not None:
        q.update(width=[shape.width], depth=[shape.depth])
    return pd.DataFrame(q)


def _from_law(name, law, q, level, warn_ratio, source) -> Item:
    missing = [f for f in getattr(law, "features", ()) if f not in q]
    if missing:
        raise ConfigError(f"the law of {name} needs {', '.join(missing)}: give a target shape")
    sub = law.law_for(q["optimizer"].iloc[0]) if hasattr(law, "law_for") else law
    value = float(sub.predict(q)[0])
    lo, hi = (float(v[0]) for v in sub.predict_interval(q, level))
    ratio = float(sub.extrapolation_ratio(q)[0]) if getattr(sub, "range_", None) else None
    warning = ""
    if ratio is not None and ratio > warn_ratio:
        warning = (
            f"extrapolates {ratio:.0f}x beyond the range the law was fitted on "
            f"({', '.join(f'{k} {a:.3g}-{b:.3g}' for k, (a, b) in sub.range_.items())}); trust it less"
        )
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"the law of {name} predicts {value} at this target: it does not apply here")
    return Item(name, value, lo if hi > lo else None, hi if hi > lo else None, source, ratio, warning)


def _budget_warnings(n_params: float, tokens: float, steps: int, batch_tokens: float) -> list[str]:
    """Warnings about an implausible token budget (few steps, tokens per parameter far from usual)."""
    out = []
    if steps < MIN_STEPS:
        out.append(
            f"tokens: {tokens:.3g} tokens are {steps} step(s) of {batch_tokens:.3g}-token batches, fewer "
            f"than {MIN_STEPS}: check the units of --tokens (a budget, not a batch)"
        )
    ratio = tokens / n_params
    lo, hi = TOKENS_PER_PARAM_RANGE
    if not lo <= ratio <= hi:
        out.append(
            f"tokens: {ratio:.3g} tokens per parameter is outside the usual {lo:g}-{hi:g} (compute-optimal "
            "is about 20, Hoffmann et al. 2022): check --tokens and --params"
        )
    return out


def recommend(
    optimizer: str,
    n_params: float | None = None,
    tokens: float | None = None,
    shape: ModelShape | None = None,
    laws: dict[str, Any] | None = None,
    published: str | None = None,
    seq_len: int | None = None,
    level: float = 0.9,
    warn_ratio: float = 4.0,
    laws_source: str = "fitted laws",
    force: bool = False,
    fixed: dict[str, Any] | None = None,
) -> Recommendation:
    """Recommend a configuration for a target of ``n_params`` (non-embedding) and ``tokens``.

    ``shape`` (optional) gives N, width, depth and seq_len. ``laws`` maps HP names to fitted laws (from
    :func:`oasl.laws.load_laws`); ``published`` names a published law set used for what the fitted
    laws do not cover (or alone). ``seq_len`` defaults to the shape's, else ``DEFAULT_SEQ_LEN``. A
    published law measured with another optimizer raises ConfigError unless ``force`` (then each value
    it gives carries a warning). Returns a :class:`Recommendation`; its ``warnings`` include a token
    budget of under ``MIN_STEPS`` steps or outside ``TOKENS_PER_PARAM_RANGE`` tokens per parameter.

    ``fixed`` (:func:`sweep_settings`, laws.json's ``meta["fixed"]``) gives the settings the sweep held
    fixed: where no law covers batch, warmup, schedule or an optimizer HP, the value the laws were
    fitted at is kept (source :data:`SWEEP_FIXED`) rather than a default; its ``seq_len`` is the
    default sequence length. Without it, batch is 0.5M tokens or 1% of the budget and warmup 2%.
    """
    from oasl.laws.published import get_published
    from oasl.models import count_params

    entry = get_optimizer(optimizer)
    if shape is not None:
        n_params = n_params or count_params(shape).n_params
        seq_len = seq_len or shape.seq_len
    if n_params is None or tokens is None:
        raise ConfigError(
            "give the target as --params and --tokens (or a shape with --width/--depth and --tokens)"
        )
    for what, v in (("params", n_params), ("tokens", tokens)):
        try:
            ok = math.isfinite(float(v)) and float(v) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"the target's {what} must be a finite positive number, got {v}")
    fixed = dict(fixed or {})
    seq_len = int(seq_len or fixed.get("seq_len") or DEFAULT_SEQ_LEN)
    q = _query(n_params, tokens, shape, entry.name)
    rec = Recommendation(entry.name, float(n_params), float(tokens), seq_len, shape=shape)
    laws = dict(laws or {})
    pub = get_published(published) if published else None
    if pub is not None and pub.optimizer != entry.name and not force:
        raise ConfigError(
            f"the published {pub.name} laws were fitted on {pub.optimizer}, not {entry.name}: their values "
            f"do not transfer across optimizers; fit your own (`oasl fit`) or pass --force to use them anyway"
        )
    sources: dict[str, tuple[Any, str]] = {k: (v, laws_source) for k, v in laws.items()}
    queries: dict[str, pd.DataFrame] = {}
    if pub is not None:
        pq, cnote = q, ""
        if pub.name == "deepseek":
            # DeepSeek's C is M D with M counting attention (Bi et al. 2024, Eq. 2), not 6 N D.
            from oasl.laws.published import deepseek_flops

            pq = q.copy()
            if shape is not None:
                pq["C"] = deepseek_flops(shape.depth, shape.width, seq_len, tokens)
            else:
                cnote = "; C taken as 6ND (give a shape for DeepSeek's C = M D, which counts attention)"
        for k, v in pub.laws.items():
            if k not in sources and set(getattr(v, "features", ())) <= set(q.columns):
                note = "" if pub.optimizer == entry.name else f"; measured with {pub.optimizer}"
                sources[k] = (v, f"published {pub.name} ({pub.citation}){note}{cnote}")
                queries[k] = pq

    def law_item(k: str) -> Item:
        it = _from_law(k, sources[k][0], queries.get(k, q), level, warn_ratio, sources[k][1])
        if pub is not None and pub.optimizer != entry.name and sources[k][1].startswith("published"):
            mismatch = f"the {pub.optimizer} law applied to {entry.name} (--force)"
            it.warning = f"{mismatch}; {it.warning}" if it.warning else mismatch
        return it

    if "lr" in sources:
        rec.items["lr"] = law_item("lr")
    else:
        rec.items["lr"] = Item(
            "lr",
            entry.default_lr,
            source=f"{entry.name} default (no law of lr given)",
            warning="no law behind this value: fit one (oasl fit) or pass --published",
        )
    if "batch_tokens" in sources:
        rec.items["batch_tokens"] = law_item("batch_tokens")
    elif fixed.get("batch_seqs") and fixed.get("seq_len"):
        fb, fs = int(fixed["batch_seqs"]), int(fixed["seq_len"])
        rec.items["batch_tokens"] = Item(
            "batch_tokens", float(fb * fs), source=f"{SWEEP_FIXED}: {fb} sequences x {fs} tokens"
        )
    else:
        rec.items["batch_tokens"] = Item(
            "batch_tokens",
            float(min(2**19, tokens / 100)),
            source="heuristic: 0.5M tokens or 1% of the budget, whichever is smaller",
            warning="no law behind this value",
        )
    fixed_hps = (fixed.get("hps") or {}).get(entry.name, {})
    for h in entry.hps:
        if h.name in sources:
            rec.items[h.name] = law_item(h.name)
        elif h.name in fixed_hps:
            rec.items[h.name] = Item(h.name, float(fixed_hps[h.name]), source=SWEEP_FIXED)
        else:
            rec.items[h.name] = Item(h.name, h.default, source=f"{entry.name} default ({h.doc})")
    if "warmup_frac" in sources:
        it = law_item("warmup_frac")
        rec.warmup_frac, wsrc = float(it.value), it.source
    elif fixed.get("warmup_frac") is not None:
        rec.warmup_frac = float(fixed["warmup_frac"])
        wsrc = f"{SWEEP_FIXED}: {rec.warmup_frac:.0%} of the steps"
    else:
        wsrc = f"default: {DEFAULT_WARMUP_FRAC:.0%} of the steps"
    rec.items["warmup_steps"] = Item("warmup_steps", 0, source=wsrc)
    bt = float(rec.items["batch_tokens"].value)
    _derive(rec, max(1, round(bt / seq_len)), f"batch_tokens / seq_len {seq_len}")
    name = str(fixed.get("schedule") or DEFAULT_SCHEDULE)
    if fixed.get("final_frac") is not None:
        rec.final_frac = float(fixed["final_frac"])
    end = f" to {rec.final_frac:.0%} of the peak" if name in DECAYS_TO_FLOOR else ""
    ssrc = SWEEP_FIXED if fixed.get("schedule") else "default (rank schedules with `oasl schedules rank`)"
    rec.items["schedule"] = Item("schedule", name, source=f"{ssrc}: {name}{end}")
    rec.items["final_lr_frac"] = Item(
        "final_lr_frac", rec.final_frac, source=f"{ssrc}: the last lr / the peak"
    )
    order = ["lr", "batch_tokens", "batch_seqs", *entry.hp_names, "total_steps", "warmup_steps"]
    rec.items = {k: rec.items[k] for k in [*order, *rec.items] if k in rec.items}
    bs = int(rec.value("batch_seqs"))
    rec.notes += _budget_warnings(float(n_params), float(tokens), rec.value("total_steps"), bs * seq_len)
    return rec


def _derive(rec: Recommendation, batch_seqs: int, why: str) -> None:
    """Set batch_seqs and what follows from it: total_steps (the token budget over the batch) and
    warmup_steps (``rec.warmup_frac`` of them). The one place these are computed."""
    rec.items["batch_seqs"] = Item("batch_seqs", int(batch_seqs), source=why)
    steps = max(1, int(rec.tokens // (batch_seqs * rec.seq_len)))
    rec.items["total_steps"] = Item("total_steps", steps, source="tokens / (batch_seqs x seq_len)")
    src = rec.items["warmup_steps"].source if "warmup_steps" in rec.items else ""
    rec.items["warmup_steps"] = Item(
        "warmup_steps", int(round(rec.warmup_frac * steps)), source=src or "warmup_frac x total_steps"
    )


def sweep_settings(runs: pd.DataFrame) -> dict[str, Any]:
    """The settings a sweep held fixed: each of :data:`FIXED_COLUMNS` with one value over ``runs`` (a
    store's :meth:`~oasl.store.Store.to_dataframe` of the sweep), and under ``hps`` per optimizer its
    registry HPs set in some run with one value (unset cells count as the registry default). JSON-ready; ``oasl fit`` and the
    validation harness write it into laws.json's meta as ``fixed``, and :func:`recommend` keeps these
    values where no law gives one."""
    out: dict[str, Any] = {}
    if runs is None or not len(runs):
        return out
    for c in FIXED_COLUMNS:
        if c in runs:
            vals = runs[c].dropna().unique()
            if len(vals) == 1:
                v = vals[0]
                out[c] = v.item() if hasattr(v, "item") else v
    hps: dict[str, dict[str, float]] = {}
    for opt in runs["optimizer"].dropna().unique() if "optimizer" in runs else ():
        sub = runs[runs["optimizer"] == opt]
        try:
            entry = get_optimizer(str(opt))
        except ConfigError:
            continue
        kept = {}
        for h in entry.hps:
            if h.name not in sub or sub[h.name].isna().all():
                continue  # never set (the default, or not recorded): the default's own source says so
            vals = sub[h.name].fillna(h.default).unique()  # a spec stores only HPs set off default
            if len(vals) == 1:
                kept[h.name] = float(vals[0])
        hps[entry.name] = kept
    if hps:
        out["hps"] = hps
    return out


def recommend_coordinate(
    lawset,
    optimizer: str,
    n_params: float,
    tokens: float,
    seq_len: int | None = None,
    level: float = 0.9,
    risk: bool = False,
    warn_ratio: float = 4.0,
    laws_source: str = "coordinate laws",
) -> Recommendation:
    """A full configuration for ``optimizer`` at (``n_params``, ``tokens``) from a
    :class:`~oasl.laws.coordinate.CoordinateLawSet` (fitted with ``oasl fit`` on coordinate sweeps, or
    the shipped ``--published marin``): lr, batch_tokens and batch_seqs, every HP the set has for the
    optimizer (betas, weight decay, its own HPs), warmup_steps (the laws are in steps, as Marin sets
    warmup) and total_steps. ``risk``: lr and batch are risk-adjusted (:mod:`oasl.laws.risk`); the
    law's own centre stays in each item's source. Off by default (the rule raised the loss regret in
    the training-only check that sets its default, docs/marin.md): the risk-adjusted value is then
    named in the item's source. ``seq_len`` defaults to the set's (4096 for Marin);
    another one is allowed (the batch law is in tokens) with a warning."""
    for what, v in (("params", n_params), ("tokens", tokens)):
        try:
            ok = math.isfinite(float(v)) and float(v) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"the target's {what} must be a finite positive number, got {v}")
    fitted_seq = int(lawset.meta.get("seq_len", DEFAULT_SEQ_LEN))
    seq_len = int(seq_len or fitted_seq)
    preds = lawset.predict(optimizer, float(n_params), float(tokens), level=level, risk=risk)
    rec = Recommendation(str(optimizer).strip().lower(), float(n_params), float(tokens), seq_len)
    if seq_len != fitted_seq:
        rec.notes.append(
            f"seq_len: the laws were fitted at sequence length {fitted_seq}; {seq_len} keeps the batch in "
            "tokens, but the optimum may move"
        )

    def item(name: str, p: dict) -> Item:
        src = f"{laws_source}: {p['source']}"
        if p["formula"]:
            src += f" ({p['formula']}; centre {p['center']:.4g})" if p["shift"] else f" ({p['formula']})"
        if not p["shift"] and p.get("risk_value") is not None:
            src += f"; risk-adjusted (--risk): {p['risk_value']:.4g}"
        return Item(name, float(p["value"]), p["low"], p["high"], src, p["extrapolation"])

    order = ["lr", "batch_tokens", *(h for h in preds if h not in ("lr", "batch_tokens", "warmup"))]
    for h in order:
        if h in preds:
            rec.items[h] = item(h, preds[h])
    ratios = [p["extrapolation"] for p in preds.values() if p["extrapolation"] is not None]
    if ratios and max(ratios) > warn_ratio:  # one note: every law of the set shares the fitted range
        rng = ", ".join(f"{k} {a:.3g}-{b:.3g}" for k, (a, b) in lawset.fitted_range().items())
        rec.notes.append(
            f"target: extrapolates {max(ratios):.0f}x beyond the range the laws were fitted on ({rng}); trust them less"
        )
    bt = float(rec.items["batch_tokens"].value)
    bs = max(1, round(bt / seq_len))
    rec.items["batch_seqs"] = Item("batch_seqs", bs, source=f"batch_tokens / seq_len {seq_len}")
    steps = max(1, int(tokens // (bs * seq_len)))
    rec.items["total_steps"] = Item("total_steps", steps, source="tokens / (batch_seqs x seq_len)")
    if "warmup" in preds:
        w = item("warmup_steps", preds["warmup"])
        w.value = int(round(min(float(w.value), steps)))
        rec.items["warmup_steps"] = w
    rec.notes += _budget_warnings(float(n_params), float(tokens), steps, bs * seq_len)
    return rec
