"""A :class:`~oasl.recommend.Recommendation` as another framework's configuration: ``torch.optim`` (the
optimizer, its LambdaLR schedule, steps and batch), Hugging Face ``TrainingArguments`` kwargs, and optax.

Each export reads the recommendation's values (lr, batch, steps, warmup, schedule, floor) and computes
nothing of its own but the framework's spelling of them, so that every export says what the table says.
The schedule they spell is oasl's (:func:`oasl.optim.schedules.lr_factor`): linear warmup, then the
decay shape down to ``final_lr_frac`` of the peak.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from oasl.errors import ConfigError

if TYPE_CHECKING:
    from oasl.recommend import Recommendation


def _schedule(rec: Recommendation):
    from oasl.config import ScheduleSpec, build

    return build(
        ScheduleSpec,
        {
            "name": str(rec.value("schedule")),
            "warmup_steps": int(rec.value("warmup_steps")),
            "final_frac": float(rec.final_frac),
        },
        what="recommended schedule",
    )


def lr_factor(rec: Recommendation, step: int) -> float:
    """The recommended schedule's multiplier of the peak lr at ``step`` (0-based), as oasl trains it."""
    from oasl.optim.schedules import lr_factor as factor

    return factor(_schedule(rec), step, int(rec.value("total_steps")))


def torch_kwargs(rec: Recommendation) -> dict[str, Any]:
    """Keyword arguments for the torch optimizer class (``class`` names it)."""
    hp = rec.hps()
    lr = float(rec.value("lr"))
    name = rec.optimizer
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
            "nesterov": bool(hp["nesterov"]) and hp["momentum"] > 0,
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


# The LambdaLR multiplier of each decay shape, written out so that the snippet runs without oasl; the
# same arithmetic as oasl.optim.schedules.lr_factor (a test checks every step of both).
_DECAY = {
    "cosine": "FLOOR + (1 - FLOOR) * 0.5 * (1 + math.cos(math.pi * p))",
    "linear": "1 - (1 - FLOOR) * p",
    "constant": "1.0",
}


def torch_config(rec: Recommendation) -> dict[str, Any]:
    """The whole torch recipe: ``optimizer`` (:func:`torch_kwargs`), ``scheduler`` (a LambdaLR: warmup,
    decay shape, floor, total steps), ``batch`` (global sequences, sequence length, tokens) and ``code``,
    a snippet that builds ``optimizer`` and ``scheduler`` for a ``model`` in scope (call
    ``scheduler.step()`` after each ``optimizer.step()``)."""
    name = str(rec.value("schedule"))
    if name not in _DECAY:
        raise ConfigError(
            f"no torch snippet for the {name} schedule: use oasl.optim.schedules.lr_factor, or "
            "--format json for the values"
        )
    opt = torch_kwargs(rec)
    steps, warmup = int(rec.value("total_steps")), int(rec.value("warmup_steps"))
    floor = float(rec.final_frac) if name != "constant" else 1.0
    cls = opt["class"]
    args = ", ".join(f"{k}={v!r}" for k, v in opt.items() if k != "class")
    module, _, short = cls.rpartition(".")
    imports = "import math\n\nimport torch\n" + (
        "" if module.startswith("torch") else f"from {module} import {short}\n"
    )
    make = cls if module.startswith("torch") else short
    build = f"optimizer = {make}(model.parameters(), {args})\n"
    if rec.optimizer == "muon":  # Muon takes the hidden matrices and AdamW the rest: oasl splits them by role
        imports = "import math\n\nimport torch\nfrom oasl.optim import make_optimizer\n"
        build = f"optimizer = make_optimizer(model, 'muon', {float(rec.value('lr'))!r}, {rec.hps()!r})\n"
    code = (
        f"{imports}\n"
        f"{build}"
        f"WARMUP, TOTAL, FLOOR = {warmup}, {steps}, {floor!r}  # steps; last lr = FLOOR x peak\n\n\n"
        "def lr_lambda(step):\n"
        "    if step < WARMUP:\n"
        "        return (step + 1) / WARMUP\n"
        "    p = 1.0 if TOTAL - WARMUP <= 1 else min(max((step - WARMUP) / (TOTAL - WARMUP - 1), 0.0), 1.0)\n"
        f"    return {_DECAY[name]}\n\n\n"
        "scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)\n"
        f"# {steps} steps of {int(rec.value('batch_seqs'))} sequences x {rec.seq_len} tokens; "
        "call scheduler.step() after each optimizer.step()\n"
    )
    return {
        "optimizer": opt,
        "scheduler": {
            "class": "torch.optim.lr_scheduler.LambdaLR",
            "schedule": name,
            "warmup_steps": warmup,
            "total_steps": steps,
            "final_lr_frac": floor,
            "final_lr": floor * float(rec.value("lr")),
        },
        "total_steps": steps,
        "batch_seqs": int(rec.value("batch_seqs")),
        "seq_len": rec.seq_len,
        "batch_tokens": int(rec.value("batch_seqs")) * rec.seq_len,
        "code": code,
    }


def round_batch(batch: int, split: int) -> int:
    """The multiple of ``split`` nearest to ``batch`` (ties round up; at least ``split``)."""
    return max(split, int(math.floor(batch / split + 0.5)) * split)


def hf_training_arguments(
    rec: Recommendation, world_size: int = 1, grad_accum: int = 1, round_batch_: bool = True
) -> dict[str, Any]:
    """Keyword arguments for ``transformers.TrainingArguments``: the global batch (in sequences) split
    as ``per_device_train_batch_size x world_size x gradient_accumulation_steps``.

    Where the recommended batch does not divide by ``world_size x grad_accum``, it is rounded to the
    nearest multiple (steps and warmup re-derived for the same token budget) and a line saying by how
    much is appended to ``rec.notes`` (so to ``rec.warnings``); with ``round_batch_=False`` that is a
    ConfigError instead. The returned dict holds only TrainingArguments kwargs. A cosine to a floor above 0 is
    ``cosine_with_min_lr`` with ``lr_scheduler_kwargs={"min_lr_rate": floor}`` (transformers' plain
    ``cosine`` decays to 0)."""
    if world_size < 1 or grad_accum < 1:
        raise ConfigError(f"--world-size and --grad-accum must be >= 1, got {world_size} and {grad_accum}")
    batch = int(rec.value("batch_seqs"))
    split = world_size * grad_accum
    if batch % split:
        new = round_batch(batch, split)
        if not round_batch_:
            raise ConfigError(
                f"the recommended global batch of {batch} sequences is not divisible by --world-size "
                f"{world_size} x --grad-accum {grad_accum} = {split}: train with {new} sequences per step "
                "(drop --exact-batch to round), or choose another --grad-accum"
            )
        note = (
            f"batch_seqs: rounded the global batch from {batch} to {new} sequences ({100 * (new - batch) / batch:+.1f}%) "
            f"so that it divides --world-size {world_size} x --grad-accum {grad_accum} = {split}; "
            "steps and warmup re-derived for the same token budget"
        )
        rec.notes.append(note)
        rec = rec.with_batch_seqs(new, f"rounded from {batch} to a multiple of {split}")
        batch = new
    hp = rec.hps()
    optim = {"adamw": "adamw_torch", "sgd": "sgd", "adafactor": "adafactor", "lion": "lion_32bit"}.get(
        rec.optimizer
    )
    if optim is None:
        raise ConfigError(f"Hugging Face Trainer has no built-in {rec.optimizer}; use --format torch")
    out: dict[str, Any] = {
        "learning_rate": float(rec.value("lr")),
        "max_steps": int(rec.value("total_steps")),
        "per_device_train_batch_size": batch // split,
        "gradient_accumulation_steps": grad_accum,
        "warmup_steps": int(rec.value("warmup_steps")),
        **_hf_schedule(rec),
        "weight_decay": hp.get("weight_decay", 0.0),
        "optim": optim,
    }
    if "beta1" in hp:
        out.update(adam_beta1=hp["beta1"], adam_beta2=hp["beta2"])
    if "eps" in hp:
        out["adam_epsilon"] = hp["eps"]
    return out


def _hf_schedule(rec: Recommendation) -> dict[str, Any]:
    name, floor = str(rec.value("schedule")), float(rec.final_frac)
    if name == "cosine":
        if floor > 0:
            return {"lr_scheduler_type": "cosine_with_min_lr", "lr_scheduler_kwargs": {"min_lr_rate": floor}}
        return {"lr_scheduler_type": "cosine"}
    if name == "linear" and floor == 0:
        return {"lr_scheduler_type": "linear"}
    if name == "constant":
        return {"lr_scheduler_type": "constant_with_warmup"}
    raise ConfigError(
        f"transformers has no {name} schedule to {floor:.0%} of the peak: use --format torch (a LambdaLR)"
    )


def optax_config(rec: Recommendation) -> dict[str, Any]:
    """The optax recipe as data (JSON-ready, needs no jax): ``schedule`` (the optax function and its
    arguments), ``optimizer`` (function and arguments; ``learning_rate`` is the schedule), steps, batch,
    and ``code``, a snippet that builds ``optimizer`` with optax."""
    lr, steps = float(rec.value("lr")), int(rec.value("total_steps"))
    warmup, name, floor = int(rec.value("warmup_steps")), str(rec.value("schedule")), float(rec.final_frac)
    if name == "cosine":
        sched = {
            "fn": "optax.warmup_cosine_decay_schedule",
            "init_value": 0.0,
            "peak_value": lr,
            "warmup_steps": warmup,
            "decay_steps": steps,  # optax counts the warmup inside decay_steps
            "end_value": floor * lr,
        }
    elif name == "constant":
        sched = {
            "fn": "optax.warmup_constant_schedule",
            "init_value": 0.0,
            "peak_value": lr,
            "warmup_steps": warmup,
        }
    else:
        raise ConfigError(f"no optax export for the {name} schedule: use --format json for the values")
    hp = rec.hps()
    opts = {
        "adamw": (
            "optax.adamw",
            {"b1": "beta1", "b2": "beta2", "eps": "eps", "weight_decay": "weight_decay"},
        ),
        "sgd": ("optax.sgd", {"momentum": "momentum", "nesterov": "nesterov"}),
        "lion": ("optax.lion", {"b1": "beta1", "b2": "beta2", "weight_decay": "weight_decay"}),
        "adafactor": ("optax.adafactor", {"weight_decay_rate": "weight_decay"}),
    }
    if rec.optimizer not in opts:
        raise ConfigError(f"no optax export for {rec.optimizer}: use --format torch")
    fn, names = opts[rec.optimizer]
    kwargs: dict[str, Any] = {k: hp[v] for k, v in names.items() if v in hp}
    if "nesterov" in kwargs:
        kwargs["nesterov"] = bool(kwargs["nesterov"]) and hp.get("momentum", 0) > 0
    s_args = ", ".join(f"{k}={v!r}" for k, v in sched.items() if k != "fn")
    o_args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    code = (
        "import optax\n\n"
        f"schedule = {sched['fn']}({s_args})\n"
        f"optimizer = {fn}(schedule, {o_args})\n"
        f"# {steps} steps of {int(rec.value('batch_seqs'))} sequences x {rec.seq_len} tokens\n"
    )
    return {
        "schedule": sched,
        "optimizer": {"fn": fn, **kwargs},
        "total_steps": steps,
        "batch_seqs": int(rec.value("batch_seqs")),
        "seq_len": rec.seq_len,
        "code": code,
    }


def optax_lr(config: dict[str, Any], step: int) -> float:
    """The learning rate at ``step`` of :func:`optax_config`'s schedule, by optax's documented formula
    (``warmup_cosine_decay_schedule``: linear from init to peak over warmup_steps, then cosine from peak
    to end_value over decay_steps - warmup_steps), computed without jax."""
    s = config["schedule"]
    w = s["warmup_steps"]
    if step < w:
        return s["init_value"] + (s["peak_value"] - s["init_value"]) * step / w
    if s["fn"] == "optax.warmup_constant_schedule":
        return s["peak_value"]
    span = max(s["decay_steps"] - w, 1)
    t = min(step - w, span) / span
    return s["end_value"] + (s["peak_value"] - s["end_value"]) * 0.5 * (1 + math.cos(math.pi * t))


def optax_optimizer(rec: Recommendation):
    """An optax GradientTransformation built from :func:`optax_config` (needs ``pip install oasl[jax]``)."""
    from oasl.errors import require

    optax = require("optax", "jax")
    cfg = optax_config(rec)
    s = dict(cfg["schedule"])
    sched = getattr(optax, s.pop("fn").split(".", 1)[1])(**s)
    o = dict(cfg["optimizer"])
    return getattr(optax, o.pop("fn").split(".", 1)[1])(sched, **o)
