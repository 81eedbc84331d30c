"""The extrapolation harness: sweep small shapes, fit lr*(N), recommend for a larger target, and measure
the recommendation at the target against an oracle grid and the baselines a user would otherwise use.

Every run goes through the store (keyed by its spec), so the harness is resumable and a second call
re-measures nothing. Regret is paired by seed: for each evaluation seed s,
``(L_method(s) - L_oracle(s)) / L_oracle(s)``, where the oracle is trained at the refined optimum
of its lr grid with the same seed; the mean and spread over seeds are reported.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oasl.config import RunSpec, build
from oasl.errors import FitError, SweepError
from oasl.store import SQLiteStore, open_store
from oasl.sweep import expand, run_sweep
from oasl.validate.spec import ValidateSpec

Log = Callable[[str], None]
# progress(label, total) returns the on_update callback of one batch of runs (see run_sweep)
Progress = Callable[[str, int], Callable[..., None]]


@dataclass
class MethodResult:
    """One method at the target: the lr it chose, its regret over seeds, the compute it spent to choose."""

    method: str
    lr: float
    losses: list[float]
    regret_mean: float
    regret_std: float
    tuning_flops: float
    tuning_runs: float  # tuning_flops as a multiple of one target run
    note: str = ""


@dataclass
class OptimizerValidation:
    """Everything measured for one optimizer."""

    optimizer: str
    target_n_params: int
    largest_swept_n_params: int
    extrapolation_ratio: float
    law: dict[str, Any]
    recommended_lr: float
    recommended_interval: tuple[float, float]
    oracle_lr: float
    oracle_losses: list[float]
    oracle_flops: float
    sweep_flops: float
    target_run_flops: float
    methods: list[MethodResult] = field(default_factory=list)
    efficiency: dict[str, Any] = field(default_factory=dict)
    optima: list[dict[str, Any]] = field(default_factory=list)
    oracle_grid: list[dict[str, float]] = field(default_factory=list)


@dataclass
class ValidationResult:
    name: str
    optimizers: list[OptimizerValidation]

    def table(self) -> pd.DataFrame:
        """One row per (optimizer, method) with regret and tuning compute."""
        rows = []
        for ov in self.optimizers:
            for m in ov.methods:
                rows.append(
                    {
                        "optimizer": ov.optimizer,
                        "method": m.method,
                        "lr": m.lr,
                        "regret_mean": m.regret_mean,
                        "regret_std": m.regret_std,
                        "tuning_flops": m.tuning_flops,
                        "tuning_runs": m.tuning_runs,
                        "note": m.note,
                    }
                )
        return pd.DataFrame(rows)

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(_clean(asdict(self)), indent=2))


def _clean(x):
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


class _Runner:
    """Runs specs through the store (skipping finished ones) and reads their final losses back."""

    def __init__(self, store_path: str, workers: int, log: Log, progress: Progress | None = None):
        self.store_path, self.workers, self.log, self.progress = store_path, workers, log, progress
        self.store: SQLiteStore = open_store(store_path)  # type: ignore[assignment]

    def run(self, specs: list[RunSpec], label: str = "target runs", pruning=None) -> None:
        """Train the specs not yet in the store, reporting progress if a progress factory was given."""
        on_update = self.progress(label, len(specs)) if self.progress else None
        run_sweep(
            specs,
            self.store_path,
            workers=min(self.workers, len(specs)) or 1,
            pruning=pruning,
            on_update=on_update,
        )

    def losses(self, specs: list[RunSpec]) -> list[float]:
        self.run(specs)
        out = []
        for s in specs:
            row = self.store.get(s.key())
            loss = (row.get("result") or {}).get("final_val_loss")
            out.append(math.nan if loss is None or row["status"] != "done" else float(loss))
        return out

    def flops(self, specs: list[RunSpec]) -> float:
        total = 0.0
        for s in specs:
            row = self.store.get(s.key())
            total += float((row.get("result") or {}).get("flops") or 0.0)
        return total


def _with(spec: RunSpec, **changes) -> RunSpec:
    data = spec.model_dump()
    for k, v in changes.items():
        data[k] = v
    return build(RunSpec, data)


def fit_lr_law(optima: pd.DataFrame, features: tuple[str, ...]):
    """Fit lr*(features) as a power law on one optimizer's located optima (grid-edge bounds left out
    when three or more other optima remain). When an exponent's 90% interval contains 0 the optima do
    not show a trend to extrapolate, and the null model is returned instead: a :class:`ConstantLaw`
    (their geometric mean), so noise is not extrapolated 9x. Returns the fitted law."""
    from oasl.laws import ConstantLaw, PowerLaw
    from oasl.laws.pipeline import drop_bounds

    X = drop_bounds(optima).rename(columns={"n_params": "N", "tokens": "D"})
    law = PowerLaw(features=features, target="lr").fit(X[list(features)], X["opt"].to_numpy())
    if features and any(lo <= 0 <= hi for lo, hi in law.exponent_interval(0.9).values()):
        return ConstantLaw(features=features, target="lr").fit(X[list(features)], X["opt"].to_numpy())
    return law


def validate(
    spec: ValidateSpec,
    store: str | Path,
    workers: int = 1,
    log: Log | None = None,
    out: str | Path | None = None,
    progress: Progress | None = None,
) -> ValidationResult:
    """Run the whole harness for every optimizer of ``spec.sweep``; write ``validation.json`` to ``out``."""
    from oasl.models import count_params
    from oasl.optima import locate_optima

    log = log or (lambda msg: None)
    runner = _Runner(str(store), workers, log, progress)
    target_shape = spec.target_shape()
    n_target = count_params(target_shape).n_params
    n_max = max(count_params(s).n_params for s in spec.sweep.model_shapes())
    if n_target < spec.min_ratio * n_max:
        raise SweepError(
            f"target N={n_target:,} is only {n_target / n_max:.1f}x the largest swept N={n_max:,}: "
            f"the harness measures extrapolation of at least {spec.min_ratio:g}x; enlarge `target`"
        )
    sweep_runs = expand(spec.sweep)
    log(f"sweep: {len(sweep_runs)} runs of {len(spec.sweep.model_shapes())} shapes")
    runner.run(sweep_runs, f"sweep {spec.sweep.name}", pruning=spec.sweep.pruning)
    df = runner.store.to_dataframe()
    df = df[df["key"].isin({r.key() for r in sweep_runs})]
    results = []
    for opt in spec.sweep.optimizer_grids():
        log(f"[{opt}] locating optima and fitting lr*(N)")
        sub = df[df["optimizer"] == opt]
        optima = locate_optima(sub, over="lr", group_by=["optimizer", "n_params", "tokens"])
        usable = optima[np.isfinite(optima["opt"].astype(float))]
        if len(usable) < 2:
            raise FitError(f"[{opt}] fewer than 2 located optima: widen the lr grid or add shapes")
        law = fit_lr_law(usable, spec.law_features)
        if getattr(law, "kind", "") == "constant":
            log(
                f"[{opt}] the exponent's 90% interval contains 0: no trend to extrapolate, using the constant law"
            )
        template = next(
            r for r in sweep_runs if r.optimizer == opt and r.shape == spec.sweep.model_shapes()[-1]
        )
        tokens = spec.target_tokens or _target_tokens(spec, n_target)
        base = _with(template, shape=target_shape.model_dump(), tokens=tokens, seed=spec.seeds[0])
        q = pd.DataFrame({"N": [n_target], "D": [tokens]})[list(spec.law_features)]
        rec_lr = float(law.predict(q)[0])
        lo, hi = law.predict_interval(q, level=0.9)
        log(f"[{opt}] recommended lr {rec_lr:.3g} (90% interval {float(lo[0]):.3g}-{float(hi[0]):.3g})")
        results.append(
            _measure_target(
                spec,
                runner,
                opt,
                base,
                law,
                rec_lr,
                (float(lo[0]), float(hi[0])),
                usable,
                sub,
                sweep_runs,
                n_target,
                n_max,
                log,
            )
        )
    result = ValidationResult(spec.name, results)
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        result.to_json(Path(out) / "validation.json")
    return result


def _target_tokens(spec: ValidateSpec, n_target: int) -> int:
    tok = spec.sweep.tokens
    if isinstance(tok, dict):
        return int(float(tok["ratio"]) * n_target)
    if isinstance(tok, (list, tuple)):
        return int(max(tok))
    return int(tok)


def _oracle(spec, runner, opt, base, log, rec_lr) -> tuple[float, pd.DataFrame, list[RunSpec]]:
    """The lr grid at the target (extended while the optimum is at an edge), refined by the optima module."""
    from oasl.optima import locate_optima

    if spec.oracle_mode == "neighbours":
        step = spec.neighbour_factor
        lrs = [rec_lr / step, rec_lr, rec_lr * step]
    else:
        grid = spec.sweep.optimizer_grids()[opt]["lr"]
        lo, hi = min(grid) / spec.oracle_widen, max(grid) * spec.oracle_widen
        lrs = list(np.geomspace(lo, hi, spec.oracle_num))
        step = (hi / lo) ** (1 / (spec.oracle_num - 1))
    specs: list[RunSpec] = []
    for attempt in range(spec.oracle_max_extend + 1):
        new = [_with(base, lr=float(lr)) for lr in lrs if all(abs(math.log(s.lr / lr)) > 1e-9 for s in specs)]
        specs += new
        losses = runner.losses(specs)
        frame = pd.DataFrame(
            {
                "lr": [s.lr for s in specs],
                "final_val_loss": losses,
                "optimizer": opt,
                "diverged": [not math.isfinite(v) for v in losses],
            }
        )
        opt_row = locate_optima(frame, over="lr", group_by=["optimizer"]).iloc[0]
        edge = str(opt_row.get("at_edge", "") or "")
        if attempt == spec.oracle_max_extend:
            if edge:
                log(
                    f"[{opt}] oracle optimum still at the {edge} edge: it is a bound (raise oracle_max_extend)"
                )
            break
        if edge == "high":
            lrs = [max(s.lr for s in specs) * step]
        elif edge == "low":
            lrs = [min(s.lr for s in specs) / step]
        else:
            break
        log(f"[{opt}] oracle optimum at the {edge} edge of its grid: adding lr {lrs[0]:.3g}")
    best = (
        float(opt_row["opt"])
        if math.isfinite(float(opt_row["opt"]))
        else float(frame.loc[frame["final_val_loss"].idxmin(), "lr"])
    )
    return best, frame.sort_values("lr"), specs


def _evaluate(runner, base, lr, seeds) -> tuple[list[float], list[RunSpec]]:
    specs = [_with(base, lr=float(lr), seed=s) for s in seeds]
    return runner.losses(specs), specs


def _regret(losses, oracle) -> tuple[float, float]:
    r = [
        (a - b) / b if math.isfinite(a) and math.isfinite(b) else math.inf
        for a, b in zip(losses, oracle, strict=True)
    ]
    arr = np.array(r, dtype=float)
    if not np.all(np.isfinite(arr)):
        return math.inf, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def _measure_target(
    spec, runner, opt, base, law, rec_lr, rec_interval, optima, sub, sweep_runs, n_target, n_max, log
) -> OptimizerValidation:
    from oasl.optim import get_optimizer

    seeds = list(spec.seeds)
    oracle_lr, grid, oracle_specs = _oracle(spec, runner, opt, base, log, rec_lr)
    oracle_losses, oracle_eval = _evaluate(runner, base, oracle_lr, seeds)
    # The refined optimum is a model's guess; the grid's best run is a measurement. Evaluate both on every
    # seed and keep the better mean, so a skewed loss-vs-lr valley cannot make the oracle a poor one.
    finite = grid[np.isfinite(grid["final_val_loss"])]
    if len(finite):
        argmin_lr = float(finite.loc[finite["final_val_loss"].idxmin(), "lr"])
        if abs(math.log(argmin_lr / oracle_lr)) > 1e-9:
            alt_losses, alt_eval = _evaluate(runner, base, argmin_lr, seeds)
            oracle_specs = oracle_specs + [
                s for s in alt_eval if all(s.key() != o.key() for o in oracle_specs)
            ]
            if np.all(np.isfinite(alt_losses)) and (
                not np.all(np.isfinite(oracle_losses)) or np.mean(alt_losses) < np.mean(oracle_losses)
            ):
                log(
                    f"[{opt}] oracle: the grid's best lr {argmin_lr:.3g} beats the refined {oracle_lr:.3g} on the seeds"
                )
                oracle_lr, oracle_losses = argmin_lr, alt_losses
    target_flops = runner.flops([oracle_specs[0]])
    sweep_specs = [r for r in sweep_runs if r.optimizer == opt]
    sweep_flops = runner.flops(sweep_specs)
    ov = OptimizerValidation(
        optimizer=opt,
        target_n_params=n_target,
        largest_swept_n_params=n_max,
        extrapolation_ratio=n_target / n_max,
        law=law.to_dict(),
        recommended_lr=rec_lr,
        recommended_interval=rec_interval,
        oracle_lr=oracle_lr,
        oracle_losses=oracle_losses,
        oracle_flops=runner.flops(oracle_specs),
        sweep_flops=sweep_flops,
        target_run_flops=target_flops,
        optima=optima.to_dict(orient="records"),
        oracle_grid=grid[["lr", "final_val_loss"]].to_dict(orient="records"),
    )

    def add(method, lr, tuning_flops, note=""):
        losses, _ = _evaluate(runner, base, lr, seeds)
        mean, std = _regret(losses, oracle_losses)
        ov.methods.append(
            MethodResult(
                method, float(lr), losses, mean, std, tuning_flops, tuning_flops / target_flops, note
            )
        )
        log(f"[{opt}] {method:>10}: lr {lr:.3g}  regret {mean:+.2%}")

    add("oasl", rec_lr, sweep_flops, f"law {law}")
    add("oracle", oracle_lr, ov.oracle_flops, f"{len(oracle_specs)}-point grid at the target, refined")
    largest = optima.loc[optima["n_params"].idxmax()]
    for b in spec.baselines:
        kind, _, k = b.partition(":")
        if kind == "naive":
            add("naive", float(largest["opt"]), sweep_flops, "optimum of the largest swept shape, unchanged")
        elif kind == "defaults":
            add("defaults", get_optimizer(opt).default_lr, 0.0, "the optimizer's library default lr")
        elif kind == "step-law":
            from oasl.laws.published import get_published

            pl = get_published("step-law")
            lr = float(pl["lr"].predict(pd.DataFrame({"N": [n_target], "D": [base.tokens]}))[0])
            add(
                "step-law",
                lr,
                0.0,
                "Li et al. 2025 (fitted on AdamW)" + ("" if opt == "adamw" else "; not fitted for " + opt),
            )
        elif kind == "mup":
            _add_mup(spec, runner, opt, base, seeds, oracle_losses, ov, log)
        elif kind in ("random", "tpe"):
            _add_search(kind, int(k), spec, runner, opt, base, grid, ov, add, log)
    ov.efficiency = _efficiency(ov)
    return ov


def _add_mup(spec, runner, opt, base, seeds, oracle_losses, ov, log) -> None:
    """muP transfer: sweep lr at the base width under muP, reuse its optimum at the target under muP."""
    from oasl.optima import locate_optima

    base_shape = spec.sweep.model_shapes()[0]
    grid = spec.sweep.optimizer_grids()[opt]["lr"]
    small = _with(
        base,
        shape=base_shape.model_dump(),
        parametrization="mup",
        base_width=base_shape.width,
        tokens=base.tokens,
        seed=seeds[0],
    )
    specs = [_with(small, lr=float(lr)) for lr in grid]
    losses = runner.losses(specs)
    frame = pd.DataFrame(
        {
            "lr": grid,
            "final_val_loss": losses,
            "optimizer": opt,
            "diverged": [not math.isfinite(v) for v in losses],
        }
    )
    lr = float(locate_optima(frame, over="lr", group_by=["optimizer"]).iloc[0]["opt"])
    target = _with(base, parametrization="mup", base_width=base_shape.width)
    eval_losses, _ = _evaluate(runner, target, lr, seeds)
    mean, std = _regret(eval_losses, oracle_losses)
    flops = runner.flops(specs)
    ov.methods.append(
        MethodResult(
            "mup",
            lr,
            eval_losses,
            mean,
            std,
            flops,
            flops / ov.target_run_flops,
            f"muP, base width {base_shape.width}, same tokens as the target",
        )
    )
    log(f"[{opt}]        mup: lr {lr:.3g}  regret {mean:+.2%}")


def _add_search(kind, k, spec, runner, opt, base, grid, ov, add, log) -> None:
    """Random search or Optuna TPE directly at the target, k trials at seed 0, best one evaluated on all seeds."""
    lo, hi = float(grid["lr"].min()), float(grid["lr"].max())
    trials: list[tuple[float, float]] = []
    if kind == "random":
        rng = np.random.default_rng(12345)  # budgets share a prefix: random:8 extends random:4
        lrs = np.exp(rng.uniform(math.log(lo), math.log(hi), size=k))
        losses = runner.losses([_with(base, lr=float(v)) for v in lrs])
        trials = list(zip(map(float, lrs), losses, strict=True))
    else:
        from oasl.errors import require

        optuna = require("optuna", "optuna")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=min(3, k)))
        for _ in range(k):
            trial = study.ask()
            lr = trial.suggest_float("lr", lo, hi, log=True)
            loss = runner.losses([_with(base, lr=lr)])[0]
            study.tell(trial, loss if math.isfinite(loss) else 1e3)
            trials.append((lr, loss))
    finite = [(lr, loss) for lr, loss in trials if math.isfinite(loss)]
    best_lr = min(finite, key=lambda t: t[1])[0] if finite else trials[0][0]
    flops = ov.target_run_flops * k
    add(f"{kind}:{k}", best_lr, flops, f"{k} trials at the target, lr in [{lo:.3g}, {hi:.3g}]")
    ov.methods[-1].note += "; trial losses " + ", ".join(f"{loss:.4f}" for _, loss in trials)
    key = f"{kind}_trajectory"
    if len(trials) > len(ov.efficiency.get(key, [])):
        ov.efficiency[key] = [loss for _, loss in trials]


def _efficiency(ov: OptimizerValidation) -> dict[str, Any]:
    """Compute a direct search needs to come within oasl's regret, divided by what oasl spent.

    Uses the seed-0 trajectories of best-so-far loss of random search and TPE, against the oracle's
    seed-0 loss; oasl spent its small sweep plus one target run.
    """
    out = dict(ov.efficiency)
    oasl = next(m for m in ov.methods if m.method == "oasl")
    oasl_spend = ov.sweep_flops + ov.target_run_flops
    oracle0 = ov.oracle_losses[0]
    oasl_regret0 = (oasl.losses[0] - oracle0) / oracle0
    out["oasl_spend_flops"] = oasl_spend
    out["oasl_spend_target_runs"] = oasl_spend / ov.target_run_flops
    for kind in ("random", "tpe"):
        traj = out.get(f"{kind}_trajectory")
        if not traj:
            continue
        best = np.minimum.accumulate(np.where(np.isfinite(traj), traj, np.inf))
        reached = np.nonzero((best - oracle0) / oracle0 <= max(oasl_regret0, 0.0))[0]
        if reached.size:
            runs = int(reached[0]) + 1
            out[f"{kind}_runs_to_match"] = runs
            out[f"{kind}_efficiency_gain"] = runs * ov.target_run_flops / oasl_spend
        else:
            out[f"{kind}_runs_to_match"] = f">{len(traj)}"
            out[f"{kind}_efficiency_gain"] = f">{len(traj) * ov.target_run_flops / oasl_spend:.2f}"
    out["oracle_efficiency_gain"] = ov.oracle_flops / oasl_spend
    return out


def load_validation(path: str | Path) -> ValidationResult:
    """Read a ``validation.json`` written by :func:`validate` back into a :class:`ValidationResult`."""
    from oasl.errors import ConfigError

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"validation file {p} does not exist")
    try:
        d = json.loads(p.read_text())
        ovs = []
        for o in d["optimizers"]:
            methods = [
                MethodResult(**{k: (math.nan if v is None and k != "note" else v) for k, v in m.items()})
                for m in o.pop("methods")
            ]
            o["recommended_interval"] = tuple(o["recommended_interval"])
            ovs.append(OptimizerValidation(**o, methods=methods))
        return ValidationResult(d["name"], ovs)
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"{p} is not a validation.json written by oasl ({exc})") from None
