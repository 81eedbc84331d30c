"""Baselines of the validation harness as plug-ins: one small protocol, one class per baseline.

A baseline is an object with a ``name`` and ``propose(ctx) -> Proposal``: given what the harness knows
about one optimizer's target (:class:`TargetContext`), it returns the lr it would train the target with
and the compute it spent to choose it (FLOPs; the harness turns them into target-run equivalents). The
harness then trains the target at that lr on every evaluation seed, so all methods are compared on the
same seeds. A new baseline is one class registered in :data:`BASELINES` (as Optuna's samplers are
plug-ins behind one small protocol).

Names in a spec: ``naive``, ``defaults``, ``mup``, ``step-law``, ``random:K``, ``tpe:K``, ``gp:K`` (Optuna's
Gaussian-process sampler), ``oasl-refine:K`` (K target runs around the law, :mod:`oasl.validate.refine`),
``oasl-risk`` (the law's risk-adjusted zero-run point);
``oasl`` and ``oracle`` are always measured.

A search baseline may also implement ``search(objective, search_range, k, seed) -> list of lrs tried`` (the
:class:`Search` protocol): the harness then replays it on the runs already at the target for the
cost-to-regret curves (:mod:`oasl.validate.curves`) without training. Anything that can choose an lr from
past (lr, loss) pairs fits the protocol, e.g. a plug-in that asks an LLM endpoint for the next lr (Zhang et
al. 2023, "Using Large Language Models for Hyperparameter Optimization", arXiv 2312.04528); none ships.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from oasl.config import RunSpec, build

if TYPE_CHECKING:
    from oasl.validate.harness import Runner
    from oasl.validate.spec import ValidateSpec


def with_changes(spec: RunSpec, **changes) -> RunSpec:
    """A copy of ``spec`` with top-level fields replaced (validated again)."""
    return build(RunSpec, {**spec.model_dump(), **changes})


@dataclass
class TargetContext:
    """What a baseline may use for one optimizer: the validation spec, the runner (trains specs through
    the store and reads losses/FLOPs back), the target run template ``base`` (seed = first evaluation
    seed; lr to be set), the located sweep optima, the sweep's FLOPs, oasl's recommendation and the
    lr range a direct search at the target explores."""

    spec: ValidateSpec
    runner: Runner
    optimizer: str
    base: RunSpec
    optima: pd.DataFrame
    sweep_flops: float
    n_target: int
    recommended_lr: float
    search_range: tuple[float, float]
    log: Callable[[str], None] = lambda msg: None
    #: the law's 90% interval for the lr at the target (None: unknown) and the ladder's valley shape
    recommended_interval: tuple[float, float] | None = None
    valley: Any = None
    #: the ladder's asymmetric valley (oasl.laws.risk.ValleyShape; None: not measured)
    risk: Any = None
    #: the ladder's own check (oasl.validate.riskcheck.risk_check): the refinement risk-adjusts on ``risk``
    #: only where it prefers that (riskcheck.uses_risk: the zero-run verdict for k = 1, the refinement's for
    #: k >= 2); otherwise the posterior mean. None: never
    refine_check: dict | None = None


@dataclass
class Proposal:
    """A baseline's answer: ``lr`` for the target, ``tuning_flops`` spent to find it, a ``note``; ``target``
    replaces the evaluated run template when the method trains a different model (muP); ``trials`` are the
    seed-0 losses of a direct search in order (for the efficiency table); ``extra`` anything to report."""

    lr: float
    tuning_flops: float
    note: str = ""
    target: RunSpec | None = None
    trials: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


class Baseline(Protocol):
    name: str

    def propose(self, ctx: TargetContext) -> Proposal:
        """The lr this method trains the target with and the compute it spent to choose it."""
        ...


class Search(Protocol):
    """A direct search that can be replayed off the target's runs (cost-to-regret curves)."""

    def search(
        self, objective: Callable[[float], float], search_range: tuple[float, float], k: int, seed: int
    ) -> list[float]:
        """The ``k`` lrs it tries in order, asking ``objective(lr) -> loss`` (NaN = diverged) for each."""
        ...


def _grid_optimum(ctx: TargetContext, specs: list[RunSpec]) -> tuple[float, pd.DataFrame]:
    """Train ``specs`` (one lr grid), locate the refined optimum; returns (lr, frame of lr and loss)."""
    from oasl.optima import locate_optima

    losses = ctx.runner.losses(specs, role="baseline")
    frame = pd.DataFrame(
        {
            "lr": [s.lr for s in specs],
            "final_val_loss": losses,
            "optimizer": ctx.optimizer,
            "diverged": [not math.isfinite(v) for v in losses],
        }
    )
    lr = float(locate_optima(frame, over="lr", group_by=["optimizer"]).iloc[0]["opt"])
    if not math.isfinite(lr):  # too few finite points to refine: the grid's best run
        finite = frame[np.isfinite(frame["final_val_loss"])]
        lr = float(finite.loc[finite["final_val_loss"].idxmin(), "lr"]) if len(finite) else specs[0].lr
    return lr, frame


class Naive:
    """Naive transfer: the optimum of the largest swept shape, unchanged at the target."""

    name = "naive"

    def propose(self, ctx: TargetContext) -> Proposal:
        largest = ctx.optima.loc[ctx.optima["n_params"].idxmax()]
        return Proposal(
            float(largest["opt"]), ctx.sweep_flops, "optimum of the largest swept shape, unchanged"
        )


class Defaults:
    """The optimizer's library default lr (no tuning)."""

    name = "defaults"

    def propose(self, ctx: TargetContext) -> Proposal:
        from oasl.optim import get_optimizer

        return Proposal(get_optimizer(ctx.optimizer).default_lr, 0.0, "the optimizer's library default lr")


class StepLaw:
    """Step Law (Li et al. 2025, arXiv 2503.04715, Eq. 1): lr = 1.79 N^-0.713 D^0.307, fitted on AdamW."""

    name = "step-law"

    def propose(self, ctx: TargetContext) -> Proposal:
        from oasl.laws.published import get_published

        law = get_published("step-law")["lr"]
        lr = float(law.predict(pd.DataFrame({"N": [ctx.n_target], "D": [ctx.base.tokens]}))[0])
        note = "Li et al. 2025 (fitted on AdamW)"
        if ctx.optimizer != "adamw":
            note += "; not fitted for " + ctx.optimizer
        return Proposal(lr, 0.0, note)


class MuPTransfer:
    """muP transfer (Yang et al. 2022, arXiv 2203.03466): sweep lr at the smallest swept width under muP
    (the base width), reuse its optimum at the target trained under muP."""

    name = "mup"

    def propose(self, ctx: TargetContext) -> Proposal:
        base_shape = ctx.spec.sweep.model_shapes()[0]
        grid = ctx.spec.sweep.optimizer_grids()[ctx.optimizer]["lr"]
        small = with_changes(
            ctx.base, shape=base_shape.model_dump(), parametrization="mup", base_width=base_shape.width
        )
        specs = [with_changes(small, lr=float(lr)) for lr in grid]
        lr, _ = _grid_optimum(ctx, specs)
        target = with_changes(ctx.base, parametrization="mup", base_width=base_shape.width)
        return Proposal(
            lr,
            ctx.runner.flops(specs),
            f"muP, base width {base_shape.width}, same tokens as the target",
            target=target,
        )


class RandomSearch:
    """Random search directly at the target: ``k`` log-uniform lrs at seed 0, the best one kept.
    The generator's seed is fixed, so random:8 extends random:4 (budgets share a prefix)."""

    def __init__(self, k: int):
        self.k, self.name = k, f"random:{k}"

    def propose(self, ctx: TargetContext) -> Proposal:
        lo, hi = ctx.search_range
        rng = np.random.default_rng(12345)
        lrs = [float(v) for v in np.exp(rng.uniform(math.log(lo), math.log(hi), size=self.k))]
        specs = [with_changes(ctx.base, lr=v) for v in lrs]
        losses = ctx.runner.losses(specs)
        return _search_result(self.k, "random", lrs, losses, ctx.runner.flops(specs), lo, hi)

    def search(self, objective, search_range, k, seed) -> list[float]:
        lo, hi = search_range
        rng = np.random.default_rng(seed)
        return [float(v) for v in np.exp(rng.uniform(math.log(lo), math.log(hi), size=k))]


class _OptunaSearch:
    """A direct search at the target with an Optuna sampler: ``k`` trials at seed 0, the best one kept."""

    kind = ""

    def __init__(self, k: int):
        self.k, self.name = k, f"{self.kind}:{k}"

    def sampler(self, optuna, seed: int):
        raise NotImplementedError

    def search(self, objective, search_range, k, seed) -> list[float]:
        """Ask the sampler for ``k`` lrs in ``search_range`` (log scale), telling it ``objective(lr)``
        (a diverged run is told as a loss of 1e3)."""
        from oasl.errors import require

        optuna = require("optuna", "optuna")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        lo, hi = search_range
        study = optuna.create_study(sampler=self.sampler(optuna, seed))
        lrs = []
        for _ in range(k):
            trial = study.ask()
            lr = trial.suggest_float("lr", lo, hi, log=True)
            loss = objective(lr)
            study.tell(trial, loss if math.isfinite(loss) else 1e3)
            lrs.append(lr)
        return lrs

    def propose(self, ctx: TargetContext) -> Proposal:
        lo, hi = ctx.search_range
        specs: list[RunSpec] = []
        losses: list[float] = []

        def objective(lr: float) -> float:
            specs.append(with_changes(ctx.base, lr=lr))
            losses.append(ctx.runner.losses([specs[-1]])[0])
            return losses[-1]

        lrs = self.search(objective, (lo, hi), self.k, 0)
        return _search_result(self.k, self.kind, lrs, losses, ctx.runner.flops(specs), lo, hi)


class TPESearch(_OptunaSearch):
    """Optuna's TPE sampler directly at the target: ``k`` trials at seed 0, the best one kept."""

    kind = "tpe"

    def sampler(self, optuna, seed: int):
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(3, self.k))


class GPSearch(_OptunaSearch):
    """Optuna's Gaussian-process sampler (``GPSampler``: a Matern-5/2 GP with log expected improvement)
    directly at the target, over the same range as random search and TPE: ``k`` trials at seed 0, the best
    one kept. Two random start-up trials (the GP needs two points; Optuna's default of 10 would leave a
    budget of 8 all random)."""

    kind = "gp"

    def sampler(self, optuna, seed: int):
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=min(2, self.k))


class OaslRisk:
    """The law's point with no target run, risk-adjusted (issue 25, item 5): the lr of least expected
    regret under the law's predictive distribution on the ladder's asymmetric valley
    (:func:`oasl.validate.refine.zero_run`, with :mod:`oasl.laws.risk`'s valley shape); the law's centre
    when the ladder gives no valley shape. Costs the sweep."""

    name = "oasl-risk"

    def propose(self, ctx: TargetContext) -> Proposal:
        from oasl.validate.refine import zero_run

        r = zero_run(ctx.recommended_lr, ctx.recommended_interval, ctx.valley, ctx.risk)
        note = (
            f"the law's lr x{r.lr / ctx.recommended_lr:.2f}: least expected regret on the ladder's valley"
            if ctx.risk is not None
            else "no valley shape measured on the ladder: the law's centre"
        )
        return Proposal(r.lr, ctx.sweep_flops, note)


class OaslRefine:
    """Law-guided refinement (:func:`oasl.validate.refine.refine`): ``k`` target runs at seed 0 placed
    around the law's recommendation by its 90% interval and the ladder's valley, the local valley fitted,
    its lr kept. Costs the sweep plus the ``k`` runs."""

    def __init__(self, k: int):
        self.k, self.name = k, f"oasl-refine:{k}"

    def propose(self, ctx: TargetContext) -> Proposal:
        from oasl.validate.refine import refine

        specs: list[RunSpec] = []

        def train(lrs: list[float]) -> list[float]:
            new = [with_changes(ctx.base, lr=float(v)) for v in lrs]
            specs.extend(new)
            return ctx.runner.losses(new)

        from oasl.validate.riskcheck import uses_risk

        risk = ctx.risk if ctx.refine_check and uses_risk(ctx.refine_check, self.k) else None
        r = refine(ctx.recommended_lr, ctx.recommended_interval, self.k, train, ctx.valley, risk=risk)
        note = f"{self.k} target runs around the law (lrs {', '.join(f'{v:.3g}' for v in r.lrs)})"
        if r.flags:
            note += "; " + "; ".join(r.messages)
        return Proposal(
            r.lr,
            ctx.sweep_flops + ctx.runner.flops(specs),
            note,
            trials=list(r.losses),
            extra={"kind": "refine", "trial_lrs": list(r.lrs), "k": self.k, "refine": r.to_dict()},
        )


def _search_result(k, kind, lrs, losses, flops, lo, hi) -> Proposal:
    finite = [(lr, loss) for lr, loss in zip(lrs, losses, strict=True) if math.isfinite(loss)]
    best = min(finite, key=lambda t: t[1])[0] if finite else lrs[0]
    note = f"{k} trials at the target, lr in [{lo:.3g}, {hi:.3g}]; trial losses " + ", ".join(
        f"{v:.4f}" for v in losses
    )
    return Proposal(
        best, flops, note, trials=list(losses), extra={"kind": kind, "trial_lrs": list(lrs), "k": k}
    )


def evaluate_on_seeds(ctx: TargetContext, lr: float, template: RunSpec | None = None) -> list[float]:
    """Final losses of the target trained at ``lr`` on every evaluation seed (NaN where it diverged)."""
    template = template or ctx.base
    return ctx.runner.losses([with_changes(template, lr=float(lr), seed=s) for s in ctx.spec.seeds])


class Oasl:
    """oasl's recommendation: the validated law of lr evaluated at the target; costs the sweep."""

    name = "oasl"

    def propose(self, ctx: TargetContext) -> Proposal:
        return Proposal(ctx.recommended_lr, ctx.sweep_flops, "the law `oasl fit` writes for these sweep runs")


class Oracle:
    """The reference: an lr grid at the target (seed 0), extended while its optimum sits at an edge, then
    a finer set of candidates around its optimum (the refined optimum, the grid's best run and, unless
    ``spec.oracle_refine`` is off, the points half a grid step either side of it), each trained on every
    evaluation seed; the candidate with the lowest mean loss over seeds is the oracle. ``spec.oracle_mode
    = "neighbours"`` starts from the recommendation and its two neighbours instead of a grid."""

    name = "oracle"

    def _grid(self, ctx: TargetContext) -> tuple[list[float], float]:
        spec = ctx.spec
        if spec.oracle_mode == "neighbours":
            f = spec.neighbour_factor
            return [ctx.recommended_lr / f, ctx.recommended_lr, ctx.recommended_lr * f], f
        lo, hi = ctx.search_range
        return list(np.geomspace(lo, hi, spec.oracle_num)), (hi / lo) ** (1 / (spec.oracle_num - 1))

    def propose(self, ctx: TargetContext) -> Proposal:
        from oasl.optima import locate_optima

        spec, opt = ctx.spec, ctx.optimizer
        lrs, step = self._grid(ctx)
        specs: list[RunSpec] = []
        for attempt in range(spec.oracle_max_extend + 1):
            specs += [with_changes(ctx.base, lr=float(v)) for v in lrs if not _has_lr(specs, v)]
            losses = ctx.runner.losses(specs)
            frame = pd.DataFrame(
                {
                    "lr": [s.lr for s in specs],
                    "final_val_loss": losses,
                    "optimizer": opt,
                    "diverged": [not math.isfinite(v) for v in losses],
                }
            )
            row = locate_optima(frame, over="lr", group_by=["optimizer"]).iloc[0]
            edge = str(row.get("at_edge", "") or "")
            if not edge:
                break
            if attempt == spec.oracle_max_extend:
                ctx.log(
                    f"[{opt}] oracle optimum still at the {edge} edge: it is a bound (raise oracle_max_extend)"
                )
                break
            lrs = [max(s.lr for s in specs) * step] if edge == "high" else [min(s.lr for s in specs) / step]
            ctx.log(f"[{opt}] oracle optimum at the {edge} edge of its grid: adding lr {lrs[0]:.3g}")
        finite = frame[np.isfinite(frame["final_val_loss"])]
        candidates = [float(row["opt"])] if math.isfinite(float(row["opt"])) else []
        if len(finite):
            best = float(finite.loc[finite["final_val_loss"].idxmin(), "lr"])
            candidates.append(best)
            if spec.oracle_refine:
                candidates += [best / math.sqrt(step), best * math.sqrt(step)]
        candidates = list(dict.fromkeys(candidates)) or [lrs[0]]
        evaluated = {lr: evaluate_on_seeds(ctx, lr) for lr in candidates}
        means = {lr: float(np.mean(v)) if np.all(np.isfinite(v)) else math.inf for lr, v in evaluated.items()}
        oracle_lr = min(means, key=means.get)
        all_specs = specs + [with_changes(ctx.base, lr=lr, seed=s) for lr in candidates for s in spec.seeds]
        unique = list({s.key(): s for s in all_specs}.values())
        return Proposal(
            oracle_lr,
            ctx.runner.flops(unique),
            f"{len(specs)}-point grid at the target, {len(candidates)} candidates on every seed",
            extra={"grid": frame.sort_values("lr"), "evaluated": evaluated, "n_runs": len(unique)},
        )


def _has_lr(specs: list[RunSpec], lr: float) -> bool:
    return any(abs(math.log(s.lr / lr)) <= 1e-9 for s in specs)


#: name (the part before ``:``) -> factory taking the budget (``None`` for names without one)
BASELINES: dict[str, Callable[[int | None], Baseline]] = {
    "naive": lambda k: Naive(),
    "defaults": lambda k: Defaults(),
    "step-law": lambda k: StepLaw(),
    "mup": lambda k: MuPTransfer(),
    "random": lambda k: RandomSearch(int(k or 4)),
    "tpe": lambda k: TPESearch(int(k or 4)),
    "gp": lambda k: GPSearch(int(k or 4)),
    "oasl-refine": lambda k: OaslRefine(int(k or 2)),
    "oasl-risk": lambda k: OaslRisk(),
}
#: names that need a budget ``:K``
BUDGETED = ("random", "tpe", "gp", "oasl-refine")


def check_baseline_name(name: str) -> None:
    """ValueError naming the valid forms unless ``name`` is a registered baseline (``random:K`` needs K)."""
    kind, sep, k = name.partition(":")
    ok = kind in BASELINES and (
        (kind in BUDGETED and sep and k.isdigit() and int(k) > 0) or (kind not in BUDGETED and not sep)
    )
    if not ok:
        plain = ", ".join(b for b in BASELINES if b not in BUDGETED)
        budgeted = ", ".join(f"{b}:K" for b in BUDGETED)
        raise ValueError(f"unknown baseline {name!r}: use {plain} or {budgeted}")


def make_baseline(name: str) -> Baseline:
    """The baseline object named ``name`` (e.g. ``"naive"``, ``"tpe:8"``)."""
    check_baseline_name(name)
    kind, _, k = name.partition(":")
    return BASELINES[kind](int(k) if k else None)
