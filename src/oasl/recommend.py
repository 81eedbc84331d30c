"""A full hyperparameter configuration for a target model, from fitted or published laws.

Every value says where it came from (which law, fitted on what, or the optimizer's default) and, where
a law is behind it, carries an interval and the extrapolation ratio of the query; beyond
``warn_ratio`` a warning is attached. Exports turn the recommendation into ``torch.optim`` kwargs and
param groups, Hugging Face ``TrainingArguments`` kwargs, or an optax optimizer.
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
DEFAULT_SEQ_LEN = 2048  # the target's sequence length when neither --seq-len nor a shape gives one
# Token budgets outside these bounds get a warning: compute-optimal training is about 20 tokens per
# parameter (Hoffmann et al. 2022, Table 3) and heavily over-trained models reach a few thousand
# (Llama 3 8B: 15T tokens, about 1900 per parameter); below 1 or above 10^4 is more likely a unit slip.
TOKENS_PER_PARAM_RANGE = (1.0, 1e4)
MIN_STEPS = 100  # fewer optimizer steps than this and warmup, decay and the laws' regime do not apply


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
    optimizer's HPs, warmup_steps, schedule, total_steps."""

    optimizer: str
    n_params: float
    tokens: float
    seq_len: int
    items: dict[str, Item] = field(default_factory=dict)
    shape: ModelShape | None = None
    notes: list[str] = field(default_factory=list)  # warnings about the target itself (token budget)

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

    # -- exports ----------------------------------------------------------------------------------
    def hps(self) -> dict[str, float]:
        """The optimizer's own HPs (registry names) as recommended."""
        entry = get_optimizer(self.optimizer)
        return {h: float(self.items[h].value) for h in entry.hp_names if h in self.items}

    def torch_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the torch optimizer class (``class`` names it)."""
        hp = self.hps()
        lr = float(self.value("lr"))
        name = self.optimizer
        if name == "adamw":
            return {
                "class": "torch.optim.AdamW",
                "lr": lr,
                "betas": (hp["beta1"], hp["beta2"]),
                "eps": hp["eps"],
                "weight_decay": hp["weight_decay"],
            }
        if name == "sgd":
            return {
                "class": "torch.optim.SGD",
                "lr": lr,
                "momentum": hp["momentum"],
                "nesterov": bool(hp["nesterov"]),
                "weight_decay": hp["weight_decay"],
            }
        if name == "adafactor":
            return {
                "class": "torch.optim.Adafactor",
                "lr": lr,
                "beta2_decay": hp["beta2_decay"],
                "d": hp["clip_threshold"],
                "weight_decay": hp["weight_decay"],
            }
        if name == "lion":
            return {
                "class": "oasl.optim.lion.Lion",
                "lr": lr,
                "betas": (hp["beta1"], hp["beta2"]),
                "weight_decay": hp["weight_decay"],
            }
        return {"class": "oasl.optim.registry.MuonWithAdamW", "lr": lr, **hp}

    def torch_optimizer(self, model):
        """A ready torch optimizer over ``model`` (an oasl GPT or any module with ``param_roles`` and
        ``lr_multipliers``), with the recommended peak LR and muP multipliers in its param groups."""
        from oasl.optim import make_optimizer

        return make_optimizer(model, self.optimizer, float(self.value("lr")), self.hps())

    def hf_training_arguments(self, world_size: int = 1, grad_accum: int = 1) -> dict[str, Any]:
        """Keyword arguments for ``transformers.TrainingArguments``: the recommended global batch (in
        sequences) split as ``per_device_train_batch_size x world_size x gradient_accumulation_steps``;
        ConfigError when it does not divide exactly (a rounded split would train another batch size)."""
        if world_size < 1 or grad_accum < 1:
            raise ConfigError(
                f"--world-size and --grad-accum must be >= 1, got {world_size} and {grad_accum}"
            )
        batch = int(self.value("batch_seqs"))
        split = world_size * grad_accum
        if batch % split:
            lo, hi = batch // split * split, (batch // split + 1) * split
            fits = [a for a in range(1, min(batch, 64) + 1) if batch % (world_size * a) == 0]
            hint = (
                f"a --grad-accum that divides {batch // world_size} (e.g. {', '.join(map(str, fits[:6]))})"
                if fits
                else f"a --world-size that divides {batch}"
            )
            raise ConfigError(
                f"the recommended global batch of {batch} sequences is not divisible by --world-size "
                f"{world_size} x --grad-accum {grad_accum} = {split}: choose {hint}, or train with "
                f"{lo or split} or {hi} sequences per step"
            )
        hp = self.hps()
        optim = {"adamw": "adamw_torch", "sgd": "sgd", "adafactor": "adafactor", "lion": "lion_32bit"}.get(
            self.optimizer
        )
        if optim is None:
            raise ConfigError(f"Hugging Face Trainer has no built-in {self.optimizer}; use --format torch")
        steps = int(self.value("total_steps"))
        out = {
            "learning_rate": float(self.value("lr")),
            "max_steps": steps,
            "per_device_train_batch_size": batch // split,
            "gradient_accumulation_steps": grad_accum,
            "warmup_steps": int(self.value("warmup_steps")),
            "lr_scheduler_type": str(self.value("schedule")),
            "weight_decay": hp.get("weight_decay", 0.0),
            "optim": optim,
        }
        if "beta1" in hp:
            out.update(adam_beta1=hp["beta1"], adam_beta2=hp["beta2"])
        if "eps" in hp:
            out["adam_epsilon"] = hp["eps"]
        return out

    def optax_optimizer(self):
        """An optax GradientTransformation: warmup + cosine schedule and the recommended optimizer."""
        from oasl.errors import require

        optax = require("optax", "jax")
        hp = self.hps()
        lr, steps = float(self.value("lr")), int(self.value("total_steps"))
        sched = optax.warmup_cosine_decay_schedule(
            0.0, lr, int(self.value("warmup_steps")), steps, end_value=lr * DEFAULT_FINAL_FRAC
        )
        if self.optimizer == "adamw":
            return optax.adamw(
                sched, b1=hp["beta1"], b2=hp["beta2"], eps=hp["eps"], weight_decay=hp["weight_decay"]
            )
        if self.optimizer == "sgd":
            return optax.sgd(sched, momentum=hp["momentum"], nesterov=bool(hp["nesterov"]))
        if self.optimizer == "lion":
            return optax.lion(sched, b1=hp["beta1"], b2=hp["beta2"], weight_decay=hp["weight_decay"])
        if self.optimizer == "adafactor":
            return optax.adafactor(sched)
        raise ConfigError(f"no optax export for {self.optimizer}")


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
) -> Recommendation:
    """Recommend a configuration for a target of ``n_params`` (non-embedding) and ``tokens``.

    ``shape`` (optional) gives N, width, depth and seq_len. ``laws`` maps HP names to fitted laws (from
    :func:`oasl.laws.load_laws`); ``published`` names a published law set used for what the fitted
    laws do not cover (or alone). ``seq_len`` defaults to the shape's, else ``DEFAULT_SEQ_LEN``. A
    published law measured with another optimizer raises ConfigError unless ``force`` (then each value
    it gives carries a warning). Returns a :class:`Recommendation`; its ``warnings`` include a token
    budget of under ``MIN_STEPS`` steps or outside ``TOKENS_PER_PARAM_RANGE`` tokens per parameter.
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
    seq_len = seq_len or DEFAULT_SEQ_LEN
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
    else:
        rec.items["batch_tokens"] = Item(
            "batch_tokens",
            float(min(2**19, tokens / 100)),
            source="heuristic: 0.5M tokens or 1% of the budget, whichever is smaller",
            warning="no law behind this value",
        )
    bt = float(rec.items["batch_tokens"].value)
    bs = max(1, round(bt / seq_len))
    rec.items["batch_seqs"] = Item("batch_seqs", bs, source=f"batch_tokens / seq_len {seq_len}")
    for h in entry.hps:
        if h.name in sources:
            rec.items[h.name] = law_item(h.name)
        else:
            rec.items[h.name] = Item(h.name, h.default, source=f"{entry.name} default ({h.doc})")
    steps = max(1, int(tokens // (bs * seq_len)))
    rec.items["total_steps"] = Item("total_steps", steps, source="tokens / (batch_seqs x seq_len)")
    rec.notes += _budget_warnings(float(n_params), float(tokens), steps, bs * seq_len)
    if "warmup_frac" in sources:
        it = law_item("warmup_frac")
        frac = float(it.value)
        src = it.source
    else:
        frac, src = DEFAULT_WARMUP_FRAC, f"default: {DEFAULT_WARMUP_FRAC:.0%} of the steps"
    rec.items["warmup_steps"] = Item("warmup_steps", int(round(frac * steps)), source=src)
    rec.items["schedule"] = Item(
        "schedule",
        DEFAULT_SCHEDULE,
        source=f"default: cosine to {DEFAULT_FINAL_FRAC:.0%} of the peak (rank schedules "
        "with `oasl schedules rank`)",
    )
    return rec


def critical_batch_opinion(rec: Recommendation, store, loss_law=None, level: float = 0.9) -> Item | None:
    """A second opinion on the batch: B_crit(L) (Kaplan et al. 2020, Sec. 5.1) fitted on the gradient-noise
    measurements of ``store``, at the target's loss predicted by ``loss_law`` (or one fitted on the
    store). Added to ``rec.items`` as ``batch_tokens_gns`` and returned; None when the store has no
    measurements (runs trained with ``gns: true``). Where the store measured B_noise too (``gns_hessian:
    true``), the law fitted on B_noise is added as ``batch_tokens_gns_noise``, the lower end of a bracket
    whose upper end is ``batch_tokens_gns`` (:data:`oasl.laws.critical_batch.BRACKET_EVIDENCE`)."""
    from oasl.errors import FitError
    from oasl.laws.critical_batch import (
        BRACKET_EVIDENCE,
        CriticalBatchLaw,
        bracket_at,
        loss_at,
        measured,
        noise_points,
    )
    from oasl.store import open_store

    st = open_store(store)
    pts = noise_points(st)
    if not len(pts):
        return None
    law = CriticalBatchLaw(level=level).fit(pts)
    loss, how = loss_at(st, rec.n_params, rec.tokens, loss_law)
    item = _gns_item(
        "batch_tokens_gns", law, loss, f"at L = {loss:.3g} ({how}); second opinion beside batch_tokens"
    )
    rec.items[item.name] = item
    if measured(pts, "b_noise_tokens"):
        try:
            lower = CriticalBatchLaw(level=level).fit(pts, "b_noise_tokens")
        except FitError as exc:  # B_simple's opinion stands alone
            rec.notes.append(f"no B_noise law beside batch_tokens_gns: {exc}")
        else:
            noise = _gns_item(
                "batch_tokens_gns_noise",
                lower,
                loss,
                f"fitted on B_noise at L = {loss:.3g}: the lower end of a bracket whose upper end is "
                f"batch_tokens_gns (B_simple); {BRACKET_EVIDENCE}",
            )
            if not bracket_at(law, lower, loss)["ordered"]:
                inverted = "B_noise lies above B_simple here: the bracket is inverted"
                noise.warning = f"{noise.warning}; {inverted}" if noise.warning else inverted
            rec.items[noise.name] = noise
    return item


def _gns_item(name: str, law, loss: float, where: str) -> Item:
    """The :class:`Item` of a fitted :class:`~oasl.laws.critical_batch.CriticalBatchLaw` at ``loss``."""
    r = law.recommend(loss)
    return Item(
        name,
        r["batch_tokens"],
        r["low"] if math.isfinite(r["low"]) else None,
        r["high"] if math.isfinite(r["high"]) else None,
        source=f"{law.formula()} {where}",
        warning="the target loss lies outside the losses the law was fitted on" if r["extrapolated"] else "",
    )


def recommend_coordinate(
    lawset,
    optimizer: str,
    n_params: float,
    tokens: float,
    seq_len: int | None = None,
    level: float = 0.9,
    risk: bool = True,
    warn_ratio: float = 4.0,
    laws_source: str = "coordinate laws",
) -> Recommendation:
    """A full configuration for ``optimizer`` at (``n_params``, ``tokens``) from a
    :class:`~oasl.laws.coordinate.CoordinateLawSet` (fitted with ``oasl fit`` on coordinate sweeps, or
    the shipped ``--published marin``): lr, batch_tokens and batch_seqs, every HP the set has for the
    optimizer (betas, weight decay, its own HPs), warmup_steps (the laws are in steps, as Marin sets
    warmup) and total_steps. ``risk``: lr and batch are risk-adjusted (:mod:`oasl.laws.risk`); the
    law's own centre stays in each item's source. ``seq_len`` defaults to the set's (4096 for Marin);
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
