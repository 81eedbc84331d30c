"""Sweep specs: a YAML description of many runs, and its expansion into :class:`RunSpec` objects.

A sweep crosses model shapes x optimizers x each optimizer's HP grid x batch sizes x token budgets x
seeds. Grid values are written as a list (``[0.9, 0.95]``), a scalar, or a range
(``{log_range: [1e-4, 3e-2], num: 9}`` for log-spaced, ``{range: [0, 0.1], num: 3}`` for linear).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from oasl.config import CorpusSpec, ModelShape, RunSpec, ScheduleSpec, TrainerSpec, _Spec, build, load_yaml
from oasl.errors import ConfigError

SCHEDULE_AXES = ("warmup_frac", "final_frac", "decay_frac")


def grid_values(value: Any, where: str) -> list[float]:
    """Expand one grid entry (scalar, list, ``log_range`` or ``range`` mapping) to a list of floats."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [float(value)]
    if isinstance(value, (list, tuple)):
        if not value:
            raise ConfigError(f"{where}: the grid is empty; give at least one value")
        try:
            return [float(v) for v in value]
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: grid values must be numbers, got {list(value)!r}") from None
    if isinstance(value, dict):
        keys = set(value) - {"num"}
        if keys not in ({"log_range"}, {"range"}) or "num" not in value:
            raise ConfigError(
                f"{where}: a range is written {{log_range: [lo, hi], num: k}} or {{range: [lo, hi], num: k}}"
            )
        kind = keys.pop()
        bounds, num = value[kind], value["num"]
        if not (isinstance(bounds, (list, tuple)) and len(bounds) == 2):
            raise ConfigError(f"{where}.{kind}: expected [lo, hi]")
        if not isinstance(num, int) or num < 1:
            raise ConfigError(
                f"{where}.num: expected a positive integer, got {num!r}; the grid is empty otherwise"
            )
        lo, hi = float(bounds[0]), float(bounds[1])
        if kind == "log_range":
            if lo <= 0 or hi <= 0:
                raise ConfigError(f"{where}.log_range: bounds must be positive, got [{lo:g}, {hi:g}]")
            return [float(v) for v in np.geomspace(lo, hi, num)]
        return [float(v) for v in np.linspace(lo, hi, num)]
    raise ConfigError(f"{where}: expected a number, a list or a range mapping, got {type(value).__name__}")


class Ladder(_Spec):
    """Widths at one depth, or explicit (width, depth) pairs."""

    widths: tuple[int, ...] = ()
    depth: int | None = Field(default=None, gt=0)
    pairs: tuple[tuple[int, int], ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Ladder:
        if bool(self.widths) == bool(self.pairs):
            raise ValueError("a ladder has either `widths` (with `depth`) or `pairs`")
        if self.widths and self.depth is None:
            raise ValueError("a ladder of widths needs `depth`")
        return self

    def shapes(self) -> list[tuple[int, int]]:
        return list(self.pairs) if self.pairs else [(w, self.depth) for w in self.widths]


class Pruning(_Spec):
    """Multi-fidelity early stopping within a group (successive-halving style).

    At each checkpoint fraction of the budget, a run whose validation loss is worse than the best
    loss of its group at the same step by more than ``margin`` (relative) is stopped and recorded
    with status "stopped": evidence of where the optimum is not.
    """

    enabled: bool = False
    checkpoints: tuple[float, ...] = (0.25, 0.5)
    margin: float = Field(default=0.05, gt=0)
    min_runs: int = Field(default=2, ge=1)

    @field_validator("checkpoints")
    @classmethod
    def _fractions(cls, v):
        if any(not 0 < c < 1 for c in v):
            raise ValueError("pruning checkpoints are fractions of the run in (0, 1)")
        return tuple(sorted(v))


class EarlyWarn(_Spec):
    """Divergence early warning in a sweep: ``predictor`` is a file from ``oasl earlywarn fit``; a run it
    flags at the end of its window (the predictor's ``frac`` of the steps) is stopped and recorded with
    status "stopped". ``threshold`` overrides the predictor's probability threshold."""

    predictor: str | None = None
    threshold: float | None = Field(default=None, gt=0, lt=1)


class Execution(_Spec):
    """How a sweep's runs are executed (``oasl sweep run`` flags override these).

    ``executor``: "auto" (batched on a GPU where two or more compatible runs use a batched optimizer,
    else local), "local" (a process pool, one run per process), "batched" (K runs per process as one stacked
    model) or "ray". ``workers``: worker processes (local, batched) or the least Ray tasks in flight.
    ``members``: the most runs per batch (default: as many as memory allows). ``runs_per_gpu``: worker
    processes per visible GPU. ``threads``: torch threads per worker process (default ``$OASL_THREADS``,
    else this process's cores // workers; give fewer on a machine other jobs share). ``gpus_per_run`` / ``cpus_per_run``: what each Ray task requests (fractions
    allowed; default: one GPU on a cluster with GPUs, else none). ``ray_address``: "auto" joins a running
    cluster. ``lease_s``: lifetime in seconds of a run's claim without heartbeat (a dead runner's runs are
    taken over after it)."""

    executor: Literal["auto", "local", "batched", "ray"] = "auto"
    workers: int = Field(default=1, ge=1)
    members: int | None = Field(default=None, ge=1)
    runs_per_gpu: int | None = Field(default=None, ge=1)
    threads: int | None = Field(default=None, ge=1)
    gpus_per_run: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    cpus_per_run: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    ray_address: str | None = None
    lease_s: float = Field(default=60.0, gt=0, allow_inf_nan=False)


class SweepSpec(_Spec):
    """A sweep: shapes x optimizers (each with its HP grid) x batch sizes x token budgets x seeds.

    ``optimizers`` maps an optimizer name to its grid: ``lr`` (required), any HP its registry entry
    declares, and the schedule axes ``warmup_frac``, ``final_frac``, ``decay_frac``. ``tokens`` is a
    number, a list, or ``{ratio: r}`` (tokens = r x N, N the non-embedding parameters). ``run`` holds
    RunSpec defaults shared by every run (eval interval, grad clip, device, ...). ``schedules`` (optional)
    sweeps schedule shapes by short name (``cosine``, ``wsd:0.2``, ``constant``, ...; see
    :func:`oasl.optim.schedules.parse_schedule`), each taking its other fields from ``schedule``.
    ``execution`` says how the runs are trained (:class:`Execution`; ``oasl sweep run`` flags override it).

    ``trainer`` (optional) trains the runs with the user's own code (:mod:`oasl.trainers`): a shell command
    template or a Python function. ``ladder`` may then be a list of named model configs with any fields
    (``[{name: s, d_model: 256, n_layers: 4}, ...]``), handed to the trainer as they are; oasl reads its
    width and depth from them where it can (``width``/``d_model``/``n_embd``/``hidden_size``, ...).
    """

    name: str = "sweep"
    shapes: tuple[dict[str, Any], ...] = ()
    ladder: Ladder | tuple[dict[str, Any], ...] | None = None
    trainer: TrainerSpec | None = None
    shape_defaults: dict[str, Any] = Field(default_factory=dict)
    parametrization: Literal["sp", "mup"] = "sp"
    base_width: int = Field(default=64, gt=0)
    optimizers: dict[str, dict[str, Any]]
    batch_seqs: Any = 16
    tokens: Any = 1_000_000
    schedule: ScheduleSpec = ScheduleSpec()
    schedules: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0,)
    corpus: CorpusSpec = CorpusSpec()
    run: dict[str, Any] = Field(default_factory=dict)
    pruning: Pruning = Pruning()
    early_warn: EarlyWarn = EarlyWarn()
    execution: Execution = Execution()

    @model_validator(mode="after")
    def _check(self) -> SweepSpec:
        if not self.shapes and self.ladder is None:
            raise ValueError("give model `shapes` (a list) or a `ladder`")
        if not self.optimizers:
            raise ValueError("`optimizers` is empty: name at least one optimizer with its lr grid")
        if not self.seeds:
            raise ValueError("`seeds` is empty")
        forbidden = {"shape", "optimizer", "lr", "hps", "batch_seqs", "tokens", "seed", "schedule", "corpus"}
        forbidden |= {"trainer", "model"}
        if bad := sorted(set(self.run) & forbidden):
            raise ValueError(f"run.{bad[0]} is set per sweep axis, not under `run`")
        return self

    def model_shapes(self) -> list[ModelShape]:
        return [shape for shape, _ in self.rungs()]

    def rungs(self) -> list[tuple[ModelShape, dict[str, Any] | None]]:
        """Each model of the sweep: oasl's shape, and the rung's own fields for a user's trainer (None for the
        built-in GPT). ``shapes`` and a :class:`Ladder` give shapes; a list ladder gives named configs."""
        from oasl.trainers.params import builtin_shape, rung_shape

        pairs = [] if self.ladder is None or not isinstance(self.ladder, Ladder) else self.ladder.shapes()
        raw = [dict(s) for s in self.shapes] + [{"width": w, "depth": d} for w, d in pairs]
        out: list[tuple[ModelShape, dict[str, Any] | None]] = [
            (build(ModelShape, {**self.shape_defaults, **s}, what=f"shape {s}"), None) for s in raw
        ]
        if isinstance(self.ladder, tuple):
            for i, rung in enumerate(self.ladder):
                where = f"ladder[{i}] {rung.get('name', '')}".rstrip()
                if self.trainer is None:
                    out.append((builtin_shape(rung, self.shape_defaults, where), None))
                else:
                    shape, _ = rung_shape(rung, self.shape_defaults, where)
                    out.append((shape, dict(rung)))
        return out

    def schedule_variants(self) -> list[dict[str, Any]]:
        """The schedule(s) every run is expanded over: ``schedule`` alone, or one per ``schedules`` name."""
        from oasl.optim.schedules import parse_schedule

        if not self.schedules:
            return [self.schedule.model_dump()]
        base = self.schedule.model_dump()
        return [parse_schedule(n, **base).model_dump() for n in self.schedules]

    def optimizer_grids(self) -> dict[str, dict[str, list[float]]]:
        """Each optimizer's axes expanded to value lists, checked against its registry entry."""
        from oasl.optim.registry import get_optimizer

        out = {}
        for name, grid in self.optimizers.items():
            entry = get_optimizer(name)
            if not isinstance(grid, dict) or "lr" not in grid:
                raise ConfigError(
                    f"optimizers.{name}: needs an `lr` grid, e.g. lr: {{log_range: [1e-4, 3e-2], num: 7}}"
                )
            axes = {}
            for hp, value in grid.items():
                if hp != "lr" and hp not in entry.hp_names and hp not in SCHEDULE_AXES:
                    raise ConfigError(
                        f"optimizers.{name}.{hp}: {name} has no hyperparameter {hp} "
                        f"(it has lr, {', '.join(entry.hp_names)}, and schedule axes {', '.join(SCHEDULE_AXES)})"
                    )
                axes[hp] = grid_values(value, f"optimizers.{name}.{hp}")
            out[entry.name] = axes
        return out


def _token_budgets(value: Any, n_params: int) -> list[int]:
    if isinstance(value, dict):
        if set(value) != {"ratio"}:
            raise ConfigError("tokens: a mapping must be {ratio: r} (tokens = r x non-embedding parameters)")
        return [int(r * n_params) for r in grid_values(value["ratio"], "tokens.ratio")]
    return [int(v) for v in grid_values(value, "tokens")]


def _rung_n_params(shape: ModelShape, model: dict[str, Any] | None, tokens: Any) -> int:
    """N of a rung for ``tokens: {ratio: r}``: the rung's ``n_params`` when given, else oasl's count."""
    from oasl.trainers.params import DEPTH_KEYS, WIDTH_KEYS, n_params_of, stated_n_params

    known = model is None or (any(k in model for k in WIDTH_KEYS) and any(k in model for k in DEPTH_KEYS))
    if stated_n_params(model) is None and not known and isinstance(tokens, dict):
        name = model.get("name", model) if model else model
        raise ConfigError(
            f"tokens: {{ratio: r}} needs the non-embedding n_params of ladder rung {name}: oasl cannot count a "
            "model without width/d_model and depth/n_layers; add `n_params:` to the rung or give tokens as numbers"
        )
    return n_params_of(shape, model)


def expand(spec: SweepSpec) -> list[RunSpec]:
    """All runs of ``spec`` in a deterministic order (shape, optimizer, grid axes, batch, tokens, seed)."""
    runs: list[RunSpec] = []
    seen: set[str] = set()
    batches = [int(b) for b in grid_values(spec.batch_seqs, "batch_seqs")]
    grids = spec.optimizer_grids()
    variants = spec.schedule_variants()
    trainer = None if spec.trainer is None else spec.trainer.model_dump()
    for shape, model in spec.rungs():
        n_params = _rung_n_params(shape, model, spec.tokens)
        for opt, axes in grids.items():
            names = list(axes)
            for variant, combo in itertools.product(variants, itertools.product(*(axes[n] for n in names))):
                values = dict(zip(names, combo, strict=True))
                lr = values.pop("lr")
                sched = {**variant, **{k: values.pop(k) for k in SCHEDULE_AXES if k in values}}
                for bs, tokens, seed in itertools.product(
                    batches, _token_budgets(spec.tokens, n_params), spec.seeds
                ):
                    data = {
                        **spec.run,
                        "shape": shape.model_dump(),
                        "parametrization": spec.parametrization,
                        "base_width": spec.base_width,
                        "optimizer": opt,
                        "lr": lr,
                        "hps": values,
                        "batch_seqs": bs,
                        "tokens": tokens,
                        "schedule": sched,
                        "seed": seed,
                        "corpus": spec.corpus.model_dump(),
                    }
                    if trainer is not None:
                        data["trainer"], data["model"] = trainer, model
                    run = build(RunSpec, data, what=f"run of sweep {spec.name} ({opt}, width {shape.width})")
                    if run.key() not in seen:
                        seen.add(run.key())
                        runs.append(run)
    if not runs:
        raise ConfigError(f"sweep {spec.name} expands to no runs")
    return runs


def group_key(
    run: RunSpec, over: tuple[str, ...] = ("lr", "hps", "warmup_frac", "final_frac", "decay_frac")
) -> str:
    """Key of the group a run belongs to when the axes in ``over`` vary (pruning compares within it)."""
    d = run.model_dump(mode="json", exclude={"device"})
    for axis in over:
        d.pop(axis, None)
        d["schedule"].pop(axis, None)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def load_sweep(path) -> SweepSpec:
    """Load and validate a sweep YAML file (one ConfigError line on any problem). A ``trainer.command``
    without ``cwd`` runs in the YAML file's folder (so ``python train.py`` finds a script beside it)."""
    from pathlib import Path

    spec = load_yaml(path, SweepSpec)
    if spec.trainer is not None and spec.trainer.command is not None and spec.trainer.cwd is None:
        cwd = str(Path(path).resolve().parent)
        spec = spec.model_copy(update={"trainer": spec.trainer.model_copy(update={"cwd": cwd})})
    return spec
