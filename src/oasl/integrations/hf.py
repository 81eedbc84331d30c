"""Hugging Face ``transformers``: drive a ``Trainer`` from oasl's function trainer.

- :func:`oasl_callback` ``(trial)``: a ``TrainerCallback`` that reports each evaluation loss (and the last
  logged training loss) to the trial, and stops training when oasl prunes the run or flags it.
- :func:`training_arguments` ``(trial or recommendation)``: ``TrainingArguments`` keyword arguments:
  learning rate, per-device batch and gradient accumulation, max steps, warmup, weight decay, Adam betas and
  epsilon, gradient clipping, seed, and the schedule (cosine with its floor as ``cosine_with_min_lr`` and
  ``min_lr_rate``, WSD as ``warmup_stable_decay``).

A function trainer then reads::

    def my_train(trial):
        model = GPT2LMHeadModel(GPT2Config(n_embd=trial.params["n_embd"], ...))   # no download
        args = TrainingArguments(output_dir=..., eval_strategy="steps", eval_steps=50,
                                 **training_arguments(trial))
        trainer = Trainer(model=model, args=args, train_dataset=..., eval_dataset=...,
                          callbacks=[oasl_callback(trial)])
        trainer.train()
        return {"loss": trainer.evaluate()["eval_loss"], "n_params": non_embedding(model)}

``transformers`` is imported only here, when used (``pip install 'oasl[hf]'``).
"""

from __future__ import annotations

from typing import Any

from oasl.errors import ConfigError, DependencyError

# oasl schedule name -> transformers lr_scheduler_type (and how the floor is passed)
_SCHEDULES = {
    "cosine": "cosine_with_min_lr",
    "linear": "linear",
    "constant": "constant_with_warmup",
    "wsd": "warmup_stable_decay",
    "inverse_sqrt": "inverse_sqrt",
}


def _transformers():
    try:
        import transformers
    except ImportError:
        raise DependencyError(
            "the Hugging Face integration needs transformers: `pip install 'oasl[hf]'`"
        ) from None
    return transformers


def oasl_callback(trial, report_train: bool = False):
    """A ``transformers.TrainerCallback`` reporting to ``trial``: each ``eval_loss`` the Trainer logs (with
    the last logged training ``loss`` as the training curve), or with ``report_train`` the training loss at
    each log when the Trainer does not evaluate. It sets ``control.should_training_stop`` when
    ``trial.report`` asks the run to stop. Tokens are counted as global step x the trial's batch_tokens."""
    transformers = _transformers()

    class OaslCallback(transformers.TrainerCallback):
        def __init__(self):
            self.train_loss: float | None = None

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            step = int(state.global_step)
            if "loss" in logs:
                self.train_loss = float(logs["loss"])
            loss = logs.get("eval_loss")
            if loss is None and report_train and "loss" in logs:
                loss = logs["loss"]
            if loss is None or step < 1:
                return control
            tokens = step * int(trial.params.get("batch_tokens", 0)) or None
            if trial.report(step, float(loss), tokens=tokens, train_loss=self.train_loss):
                control.should_training_stop = True
            return control

    return OaslCallback()


def training_arguments(source: Any, world_size: int = 1, grad_accum: int = 1) -> dict[str, Any]:
    """``TrainingArguments`` keyword arguments from a trial (its params) or an oasl
    :class:`~oasl.recommend.Recommendation`. The global batch (``batch_seqs`` sequences) is split as
    per_device_train_batch_size x ``world_size`` x ``grad_accum`` (ConfigError when it does not divide)."""
    from oasl.recommend import DEFAULT_FINAL_FRAC, Recommendation

    if isinstance(source, Recommendation):
        out = source.hf_training_arguments(world_size=world_size, grad_accum=grad_accum)
        sched = str(source.value("schedule"))
        return {**out, **_schedule_kwargs(sched, DEFAULT_FINAL_FRAC, int(out["max_steps"]), 0.2)}
    params = getattr(source, "params", source)
    if not isinstance(params, dict) or "lr" not in params:
        raise ConfigError("training_arguments takes a trial (or its params dict) or an oasl Recommendation")
    batch, split = int(params["batch_seqs"]), world_size * grad_accum
    if batch % split:
        raise ConfigError(
            f"batch_seqs {batch} is not divisible by world_size {world_size} x grad_accum {grad_accum}: "
            "choose a grad_accum that divides it"
        )
    out = {
        "learning_rate": float(params["lr"]),
        "max_steps": int(params["steps"]),
        "per_device_train_batch_size": batch // split,
        "gradient_accumulation_steps": grad_accum,
        "warmup_steps": int(params.get("warmup_steps", 0)),
        "weight_decay": float(params.get("weight_decay", 0.0)),
        "seed": int(params.get("seed", 0)),
    }
    if params.get("grad_clip") is not None:
        out["max_grad_norm"] = float(params["grad_clip"])
    if "beta1" in params:
        out.update(adam_beta1=float(params["beta1"]), adam_beta2=float(params["beta2"]))
    if "eps" in params:
        out["adam_epsilon"] = float(params["eps"])
    out.update(
        _schedule_kwargs(
            str(params.get("schedule", "cosine")),
            float(params.get("final_frac", 0.0)),
            int(params["steps"]),
            float(params.get("decay_frac", 0.2)),
        )
    )
    return out


def _schedule_kwargs(name: str, final_frac: float, steps: int, decay_frac: float) -> dict[str, Any]:
    """``lr_scheduler_type`` and ``lr_scheduler_kwargs`` of an oasl schedule."""
    kind = _SCHEDULES.get(name.split(":")[0])
    if kind is None:
        raise ConfigError(
            f"schedule {name!r} has no transformers equivalent: use cosine, linear, constant or wsd"
        )
    if kind == "cosine_with_min_lr":
        return {"lr_scheduler_type": kind, "lr_scheduler_kwargs": {"min_lr_rate": final_frac}}
    if kind == "warmup_stable_decay":
        return {
            "lr_scheduler_type": kind,
            "lr_scheduler_kwargs": {"num_decay_steps": int(decay_frac * steps), "min_lr_ratio": final_frac},
        }
    return {"lr_scheduler_type": kind}


def non_embedding_params(model) -> int:
    """Parameters of a ``transformers`` model less its input embeddings and (when untied) its output
    embeddings and position table: the N of scaling laws (Kaplan et al. 2020, Sec. 2.1)."""
    skip = {id(model.get_input_embeddings().weight)}
    out_emb = model.get_output_embeddings()
    if out_emb is not None:
        skip.add(id(out_emb.weight))
    for name, p in model.named_parameters():
        if name.endswith(("wpe.weight", "embed_positions.weight")):
            skip.add(id(p))
    seen, n = set(), 0
    for p in model.parameters():
        if id(p) not in skip and id(p) not in seen:
            seen.add(id(p))
            n += p.numel()
    return n
