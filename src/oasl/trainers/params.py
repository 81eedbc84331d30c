"""A run's parameters as a user's trainer sees them, and the ladder rungs of arbitrary model configs.

Torch-free: it is imported when a sweep spec is expanded and in every trainer.
"""

from __future__ import annotations

from typing import Any

from oasl.config import ModelShape, RunSpec, build
from oasl.errors import ConfigError

# Names oasl reads as its own width / depth / heads / sequence length / vocabulary in a ladder rung of
# any model (nanoGPT, GPT-2 and Llama config names), so it can count the parameters and check the
# count the trainer reports.
WIDTH_KEYS = ("width", "d_model", "n_embd", "hidden_size")
DEPTH_KEYS = ("depth", "n_layers", "n_layer", "num_hidden_layers")
HEADS_KEYS = ("n_heads", "n_head", "num_attention_heads")
SEQ_KEYS = ("seq_len", "block_size")
VOCAB_KEYS = ("vocab_size",)
SHAPE_ALIASES = {"width": WIDTH_KEYS, "depth": DEPTH_KEYS, "n_heads": HEADS_KEYS, "seq_len": SEQ_KEYS}
# run fields a rung may not redefine (they are sweep axes)
RESERVED = {"lr", "optimizer", "batch_seqs", "batch_tokens", "tokens", "steps", "seed", "key", "trainer"}


def _first(rung: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for k in keys:
        if k in rung:
            return rung[k]
    return None


def rung_shape(rung: dict[str, Any], defaults: dict[str, Any], where: str) -> tuple[ModelShape, bool]:
    """oasl's :class:`ModelShape` read from a ladder rung of any model config (``d_model`` or ``width``,
    ``n_layers`` or ``depth``, ...), with ``defaults`` (the sweep's ``shape_defaults``) below it, and
    whether the rung named both a width and a depth (else the shape is a stand-in of width 1, depth 1
    that only carries ``seq_len`` and ``vocab_size``, and oasl cannot count the model's parameters)."""
    if bad := sorted(set(rung) & RESERVED):
        raise ConfigError(
            f"{where}: `{bad[0]}` is a sweep axis, not a model field: move it out of the ladder"
        )
    data = {k: v for k, v in defaults.items() if k in ModelShape.model_fields}
    for name, keys in SHAPE_ALIASES.items():
        v = _first(rung, keys)
        if v is not None:
            data[name] = v
    if (v := _first(rung, VOCAB_KEYS)) is not None:
        data["vocab_size"] = v
    known = "width" in data and "depth" in data
    if not known:
        data = {**{k: v for k, v in data.items() if k in ("seq_len", "vocab_size")}, "width": 1, "depth": 1}
    elif "n_heads" not in data:
        w = int(data["width"])
        data["n_heads"] = max(1, w // 32) if w % max(1, w // 32) == 0 else 1
    return build(ModelShape, data, what=where), known


def builtin_shape(rung: dict[str, Any], defaults: dict[str, Any], where: str) -> ModelShape:
    """A ladder rung for oasl's built-in GPT: its fields (``name`` aside) are :class:`ModelShape` fields, or
    their GPT aliases (``d_model``, ``n_layers``)."""
    data = dict(defaults)
    for k, v in rung.items():
        if k == "name":
            continue
        alias = next((n for n, keys in SHAPE_ALIASES.items() if k in keys), k)
        data[alias] = v
    return build(ModelShape, data, what=where)


def stated_n_params(model: dict[str, Any] | None) -> int | None:
    """The non-embedding N a ladder rung (or target config) states as ``n_params``; None when it states none."""
    if model is not None and model.get("n_params") is not None:
        return int(model["n_params"])
    return None


def n_params_of(shape: ModelShape, model: dict[str, Any] | None) -> int:
    """N of a model: the rung's stated ``n_params`` when given, else oasl's count of a GPT of ``shape``."""
    stated = stated_n_params(model)
    if stated is not None:
        return stated
    from oasl.models import count_params

    return count_params(shape).n_params


def arch_known(spec: RunSpec) -> bool:
    """Whether oasl can count ``spec``'s parameters (built-in GPT, or a rung naming width and depth)."""
    if spec.model is None:
        return True
    return _first(spec.model, WIDTH_KEYS) is not None and _first(spec.model, DEPTH_KEYS) is not None


def model_label(spec: RunSpec) -> str:
    """A short name of the run's model: the rung's ``name``, else wWIDTHdDEPTH."""
    if spec.model is not None and spec.model.get("name") is not None:
        return str(spec.model["name"])
    return f"w{spec.shape.width}d{spec.shape.depth}"


def run_params(spec: RunSpec) -> dict[str, Any]:
    """The run's full spec as one flat dict of plain values (what ``trial.params`` holds, what a command
    template may name, what the JSON config file and the ``OASL_*`` variables carry).

    Keys: the ladder rung's own fields (``name``, ``d_model``, ...), oasl's shape (width, depth, n_heads,
    seq_len, vocab_size, mlp_ratio; for a rung oasl cannot read, only seq_len and vocab_size), optimizer,
    lr (peak), each optimizer HP (beta1, beta2, weight_decay, ...), batch_seqs, batch_tokens, tokens,
    steps, seed, data_seed, grad_clip, schedule (name), warmup_frac, warmup_steps, final_frac, decay_frac,
    min_lr (final_frac x lr), eval_interval, device, key."""
    out: dict[str, Any] = {}
    if spec.model is not None:
        out.update(spec.model)
    shape = spec.shape
    if arch_known(spec):
        out.update(
            width=shape.width,
            depth=shape.depth,
            n_heads=shape.heads,
            mlp_ratio=shape.mlp_ratio,
            tie_embeddings=shape.tie_embeddings,
        )
    sched = spec.schedule
    out.update(
        seq_len=shape.seq_len,
        vocab_size=shape.vocab_size,
        optimizer=spec.optimizer,
        lr=spec.lr,
        **spec.hps,
        batch_seqs=spec.batch_seqs,
        batch_tokens=spec.batch_tokens,
        tokens=spec.tokens,
        steps=spec.steps,
        seed=spec.seed,
        data_seed=spec.data_order_seed,
        grad_clip=spec.grad_clip,
        schedule=sched.name,
        warmup_frac=sched.warmup_frac,
        warmup_steps=sched.warmup_for(spec.steps),
        final_frac=sched.final_frac,
        decay_frac=sched.decay_frac,
        min_lr=spec.lr * sched.final_frac,
        eval_interval=spec.eval_interval,
        device=spec.device,
        parametrization=spec.parametrization,
        key=spec.key(),
    )
    return out
