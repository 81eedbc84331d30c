"""Typed, validated specs: the shape of a model, one training run, a corpus.

Specs are pydantic models with ``extra="forbid"`` so a misspelt key is an error, not a silent default.
:func:`load_yaml` turns a YAML file into a spec and converts every validation failure into one
:class:`~oasl.errors.ConfigError` line naming the offending field.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from oasl.errors import ConfigError

# muP's output multiplier a_out (logits x a_out / m), tuned at base widths 16 and 32 on the CPU ladder of
# benchmarks/mup_ladder.py (AdamW, a_out in 1..32; best 8-16 at both bases). TP-V Table 1: parameter
# multipliers are muTransferable HPs, tuned on the base model; mup's default output_mult = 1 is SP's readout.
MUP_OUTPUT_MULT = 8.0  # oasl.models.gpt.MUP_OUTPUT_MULT

ScheduleName = Literal["constant", "cosine", "linear", "wsd", "inverse_sqrt", "step"]

# RunSpec fields added after stores existed: each is left out of the hashed key payload while it equals
# the default named here, so every run recorded before the field existed keeps its key. A new RunSpec
# field must be added here with its default (tests/test_config_key.py checks this).
KEY_DEFAULTS: dict[str, Any] = {
    "data_seed": None,
    "compile": False,
    "gns": False,
    "output_mult": None,
    "gns_hessian": False,
    "trainer": None,
    "model": None,
}


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelShape(_Spec):
    """Shape of a GPT-style decoder.

    ``width`` is d_model, ``depth`` the number of transformer blocks. ``n_heads`` defaults to
    ``max(1, width // 32)`` (head dimension 32), so attention heads grow with width as in most ladders.
    """

    width: int = Field(gt=0)
    depth: int = Field(gt=0)
    n_heads: int | None = Field(default=None, gt=0)
    mlp_ratio: float = Field(default=4.0, gt=0)
    seq_len: int = Field(default=128, gt=0)
    vocab_size: int = Field(default=256, gt=1)
    tie_embeddings: bool = True

    @model_validator(mode="after")
    def _check_heads(self) -> ModelShape:
        if self.width % self.heads != 0:
            raise ValueError(f"width {self.width} is not divisible by n_heads {self.heads}")
        if self.mlp_hidden < 1:
            raise ValueError("mlp_ratio * width must be at least 1")
        return self

    @property
    def heads(self) -> int:
        """Number of attention heads actually used."""
        return self.n_heads if self.n_heads is not None else max(1, self.width // 32)

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def mlp_hidden(self) -> int:
        return int(round(self.mlp_ratio * self.width))


class CorpusSpec(_Spec):
    """Where the training text comes from and how it is tokenized.

    ``source="stdlib"`` (default) is the running interpreter's standard-library ``.py`` files: real
    text present on every machine without a download. Otherwise ``paths`` lists files or globs of
    ``.txt``-like text, ``.jsonl`` (field ``text_field``) or ``.parquet`` (column ``text_field``); a name
    ending in ``.gz`` is decompressed first (``notes.txt.gz``, ``shard.jsonl.gz``, GNU info manuals).
    """

    source: Literal["stdlib", "files"] = "stdlib"
    paths: tuple[str, ...] = ()
    text_field: str = "text"
    tokenizer: Literal["byte", "bpe"] = "byte"
    bpe_vocab_size: int = Field(default=4096, gt=256)
    val_fraction: float = Field(default=0.05, gt=0, lt=0.5)
    max_bytes: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check_paths(self) -> CorpusSpec:
        if self.source == "files" and not self.paths:
            raise ValueError("corpus.source is 'files' but corpus.paths is empty")
        return self


class ScheduleSpec(_Spec):
    """A learning-rate schedule: warmup, then a decay shape (see :mod:`oasl.optim.schedules`).

    ``warmup_frac`` is a fraction of total steps (``warmup_steps`` overrides it). ``final_frac`` is the
    final LR as a fraction of the peak (cosine, linear, WSD). WSD decays over the last ``decay_frac``
    of steps with ``decay_shape``. ``step`` multiplies by ``gamma`` at each fraction in ``milestones``.
    """

    name: ScheduleName = "cosine"
    warmup_frac: float = Field(default=0.0, ge=0, lt=1)
    warmup_steps: int | None = Field(default=None, ge=0)
    final_frac: float = Field(default=0.1, ge=0, le=1)
    decay_frac: float = Field(default=0.2, gt=0, le=1)
    decay_shape: Literal["linear", "cosine", "sqrt"] = "linear"
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = Field(default=0.1, gt=0, le=1)

    def warmup_for(self, total_steps: int) -> int:
        """Warmup length in steps for a run of ``total_steps``."""
        if self.warmup_steps is not None:
            return min(self.warmup_steps, total_steps)
        return int(round(self.warmup_frac * total_steps))


class TrainerSpec(_Spec):
    """Which code trains a run when it is not oasl's built-in GPT (see :mod:`oasl.trainers`).

    Exactly one of ``command`` (a shell command template: ``{field}`` takes any field of the run's
    params, e.g. ``python train.py --lr {lr} --steps {steps}``) or ``function`` (``"pkg.module:func"``,
    a callable ``func(trial)``). ``version`` is yours: change it when your training code changes, so the
    store does not reuse runs of the old code. The identity (command template or function name, and
    ``version``) is part of every run's key; ``timeout_s`` (seconds per run), ``cwd`` and ``env`` are not.
    """

    command: str | None = None
    function: str | None = None
    version: str = ""
    timeout_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    #: a command that cannot report through oasl.integrations.reporter: a regular expression over each
    #: line it prints (stdout and stderr), with a named group ``loss`` and optionally ``step`` and
    #: ``n_params``; a match with a step is a point of the curve, the last match's loss the final loss
    loss_pattern: str | None = None

    @model_validator(mode="after")
    def _one(self) -> TrainerSpec:
        if (self.command is None) == (self.function is None):
            raise ValueError(
                "a trainer is {command: 'python train.py --lr {lr} ...'} or {function: 'pkg.module:func'}"
                " (exactly one of them)"
            )
        if self.command is not None and not self.command.strip():
            raise ValueError("trainer.command is empty: give the shell command that trains one run")
        if self.loss_pattern is not None:
            if self.command is None:
                raise ValueError("trainer.loss_pattern reads a command's output: a function returns its loss")
            try:
                groups = re.compile(self.loss_pattern).groupindex
            except re.error as exc:
                raise ValueError(
                    f"trainer.loss_pattern {self.loss_pattern!r} is not a regular expression ({exc})"
                ) from None
            if "loss" not in groups:
                raise ValueError(
                    f"trainer.loss_pattern {self.loss_pattern!r} has no group named loss: write it as "
                    r"'val loss (?P<loss>[0-9.eE+-]+)' (optionally with (?P<step>\d+))"
                )
        return self

    @property
    def kind(self) -> str:
        return "command" if self.command is not None else "function"

    def identity(self) -> dict[str, str]:
        """What of the trainer goes into a run's key: kind, command template or function name, version,
        and the loss pattern when there is one (it decides which number is the run's loss)."""
        out = {"kind": self.kind, self.kind: self.command or self.function or "", "version": self.version}
        if self.loss_pattern is not None:
            out["loss_pattern"] = self.loss_pattern
        return out


class RunSpec(_Spec):
    """Everything that determines one training run; its hash is the run's key in the store.

    ``lr`` is the peak learning rate. ``hps`` holds the optimizer's other hyperparameters by the names
    its registry entry declares (``beta1``, ``beta2``, ``momentum``, ``weight_decay``, ``eps`` ...);
    missing ones take the registry defaults. ``tokens`` is the training budget D; steps =
    tokens // (batch_seqs * seq_len). ``device`` is not part of the key (where a run ran does not
    change which experiment it is).

    ``seed`` draws the initial weights; ``data_seed`` draws the order of training batches and defaults
    to ``seed`` (None). Runs of a grid that share a ``data_seed`` see the same batches (common random
    numbers), so lr comparisons are paired. ``compile=True`` trains through ``torch.compile``; it is part
    of the key when True because compiled kernels may round differently. ``gns=True`` records the
    gradient noise scale at each evaluation (:mod:`oasl.train.gns`); ``gns_hessian=True`` (with ``gns``)
    adds the Hessian-weighted noise scale B_noise (:mod:`oasl.train.gns_hessian`). These fields are left out of
    the key while they hold their defaults (:data:`KEY_DEFAULTS`), so keys of older runs are unchanged.

    ``output_mult`` is muP's output multiplier a_out (None: the default of
    :class:`oasl.models.Parametrization`); it must stay None under SP. A muP run's key always holds the
    a_out it trains with, so muP runs recorded before a_out existed (a_out = 1 then) are not mistaken for
    runs of today's muP, and SP keys are unchanged.
    """

    shape: ModelShape
    parametrization: Literal["sp", "mup"] = "sp"
    base_width: int = Field(default=64, gt=0)
    optimizer: str = "adamw"
    lr: float = Field(gt=0)
    hps: dict[str, float] = Field(default_factory=dict)
    batch_seqs: int = Field(default=16, gt=0)
    tokens: int = Field(gt=0)
    schedule: ScheduleSpec = ScheduleSpec()
    grad_clip: float | None = Field(default=1.0, gt=0)
    seed: int = 0
    data_seed: int | None = None
    compile: bool = False
    device: str = "auto"
    eval_interval: int = Field(default=50, gt=0)
    eval_tokens: int = Field(default=16384, gt=0)
    diverge_factor: float = Field(default=1.5, gt=1)
    corpus: CorpusSpec = CorpusSpec()
    # Measure the gradient noise scale at evaluations (oasl.train.gns). The extra gradients leave the
    # trajectory unchanged, but a run asked with measurements is keyed apart, so a store that holds the
    # run without them trains it again rather than silently skipping the measurement.
    gns: bool = False
    output_mult: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    # Also measure B_noise = tr(H Sigma) / (G^T H G) with Hessian-vector products (oasl.train.gns_hessian);
    # keyed apart like gns, and only with gns (it reuses the same micro-batch gradients).
    gns_hessian: bool = False
    # Who trains the run: None is oasl's built-in GPT; otherwise the user's command or function
    # (oasl.trainers). ``model`` is the ladder rung's own fields for such a trainer (``{name: s, d_model:
    # 256, n_layers: 4}``); ``shape`` then holds what oasl could read from them (width, depth, seq_len).
    trainer: TrainerSpec | None = None
    model: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> RunSpec:
        from oasl.hparams import validate_hps  # the torch-free table: no optimizer builders

        object.__setattr__(self, "hps", validate_hps(self.optimizer, self.hps))
        if self.output_mult is not None and self.parametrization != "mup":
            raise ValueError("output_mult is muP's output multiplier: leave it unset under SP")
        if self.gns_hessian and not self.gns:
            raise ValueError("gns_hessian measures B_noise beside B_simple: set gns: true as well")
        if self.steps < 1:
            raise ValueError(
                f"tokens={self.tokens} is less than one batch ({self.batch_tokens} tokens): "
                "raise tokens or lower batch_seqs"
            )
        return self

    @property
    def batch_tokens(self) -> int:
        return self.batch_seqs * self.shape.seq_len

    @property
    def steps(self) -> int:
        return self.tokens // self.batch_tokens

    @property
    def data_order_seed(self) -> int:
        """The seed of the training-batch order: ``data_seed``, or ``seed`` when that is None."""
        return self.seed if self.data_seed is None else self.data_seed

    def key(self) -> str:
        """Stable 16-hex-digit hash of the spec (device excluded; fields of :data:`KEY_DEFAULTS` excluded
        while they hold their default, so adding such a field left every existing key unchanged;
        ``data_seed`` equal to ``seed`` counts as the default)."""
        payload = self.model_dump(mode="json", exclude={"device"})
        if payload["data_seed"] == payload["seed"]:  # data_seed = seed is the default data order: same run
            payload["data_seed"] = None
        for name, default in KEY_DEFAULTS.items():
            if payload.get(name, default) == default:
                payload.pop(name, None)
        if self.trainer is not None:  # the trainer's identity only: timeout, cwd, env do not change the run
            payload["trainer"] = self.trainer.identity()
        if self.parametrization == "mup":  # muP's model changed with a_out (issue 11): always keyed
            # a_out as oasl.models.Parametrization.alpha_out reads it under muP
            payload["output_mult"] = MUP_OUTPUT_MULT if self.output_mult is None else float(self.output_mult)
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


S = TypeVar("S", bound=BaseModel)


def format_validation_error(exc: ValidationError, what: str) -> str:
    """One line naming each offending field of a pydantic error."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        parts.append(f"{loc}: {msg}")
    return f"invalid {what}: " + "; ".join(parts)


def build(cls: type[S], data: Any, what: str | None = None) -> S:
    """Validate ``data`` as ``cls``; raise ConfigError with a one-line message on failure."""
    what = what or cls.__name__
    if not isinstance(data, dict):
        raise ConfigError(f"invalid {what}: expected a mapping, got {type(data).__name__}")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, what)) from None
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"invalid {what}: {exc}") from None


MAX_DEPTH = 64  # nesting of a YAML/JSON input oasl reads: specs and result files nest a few levels


def read_text_file(path: str | Path, what: str = "file") -> str:
    """The text of an input file, decoded as UTF-8 strictly (a UTF-8 byte-order mark is dropped).

    ConfigError (one line, naming ``what`` and the path) when it is missing, a folder, unreadable or not
    UTF-8 text (UTF-16, binary): every YAML/JSON input of oasl is read through here."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {p} does not exist" + (" (it is a folder)" if p.is_dir() else ""))
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {p}: {exc.strerror}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {p} is not UTF-8 text: save it as UTF-8") from None


def check_depth(obj: Any, where: str, limit: int = MAX_DEPTH) -> Any:
    """``obj`` unchanged; ConfigError if its lists/dicts nest deeper than ``limit`` (checked without
    recursion, so any depth is refused in one line instead of a RecursionError later)."""
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list, tuple)):
            if depth > limit:
                raise ConfigError(f"{where} nests more than {limit} levels deep: flatten it")
            stack.extend((v, depth + 1) for v in (node.values() if isinstance(node, dict) else node))
    return obj


def read_json_file(path: str | Path, what: str = "JSON file") -> Any:
    """Parse a JSON file read by :func:`read_text_file`; ConfigError on malformed or too deeply nested
    JSON."""
    import json

    p = Path(path)
    text = read_text_file(p, what)
    try:
        return check_depth(json.loads(text), f"{what} {p}")
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{what} {p} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise ConfigError(f"{what} {p} nests more than {MAX_DEPTH} levels deep: flatten it") from None


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file; raise ConfigError naming the file and line on failure."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    text = read_text_file(p, "config file")
    try:
        return check_depth(yaml.safe_load(text), f"config file {p}")
    except RecursionError:
        raise ConfigError(f"config file {p} nests more than {MAX_DEPTH} levels deep: flatten it") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"malformed YAML in {p}{where}: {problem}") from None


def load_yaml(path: str | Path, cls: type[S]) -> S:
    """Load and validate a YAML spec file as ``cls``."""
    return build(cls, read_yaml(path), what=f"{cls.__name__} in {path}")


COUNT_SUFFIXES = {"K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}


def parse_count(text: str | float | int | None) -> float | None:
    """A count (parameters, tokens) as a float: a number (``1.2e9``, ``350000000``, ``1_000``) or a number
    with a suffix K, M, B or G, T (thousand, million, billion, trillion; case-insensitive): ``7B`` ->
    7e9, ``350M`` -> 3.5e8. None stays None; anything else is a ConfigError naming the accepted forms."""
    if text is None or isinstance(text, (int, float)):
        return None if text is None else float(text)
    t = str(text).strip().replace("_", "").replace(",", "")
    scale = COUNT_SUFFIXES.get(t[-1:].upper(), 1.0) if t else 1.0
    if scale != 1.0:
        t = t[:-1]
    try:
        return float(t) * scale
    except ValueError:
        raise ConfigError(
            f"{text!r} is not a count: give a number (1.2e9) or one with a suffix K, M, B/G or T (7B, 350M)"
        ) from None
