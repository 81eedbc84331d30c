"""The extrapolation harness: sweep small shapes, fit lr*(N) exactly as ``oasl fit`` does, recommend for a
larger target, and measure the recommendation at the target against an oracle and the baselines a user
would otherwise use (plug-ins, :mod:`oasl.validate.baselines`).

Every run goes through the store (keyed by its spec) with its role (sweep, target, baseline), so the
harness is resumable, a second call re-measures nothing, and ``oasl fit`` on the same store fits the same
sweep runs. Every method's lr is trained on the same evaluation seeds (seed s fixes initialisation and
data order), and regrets, their intervals and the verdicts are paired by seed (:mod:`oasl.validate.stats`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oasl.config import RunSpec
from oasl.errors import FitError, SweepError
from oasl.optima.clipping import clip_regime
from oasl.store import FINISHED, SQLiteStore, open_store
from oasl.sweep import expand, run_sweep
from oasl.validate import curves as cost_curves
from oasl.validate import stats
from oasl.validate.baselines import (
    Oasl,
    Oracle,
    Proposal,
    TargetContext,
    evaluate_on_seeds,
    make_baseline,
    with_changes,
)
from oasl.validate.refine import ladder_risk, ladder_valley, with_asymmetry
from oasl.validate.results import MethodResult, OptimizerValidation, ValidationResult, load_validation
from oasl.validate.spec import ValidateSpec

Log = Callable[[str], None]
# progress(label, total) returns the on_update callback of one batch of runs (see run_sweep)
Progress = Callable[[str, int], Callable[..., None]]

__all__ = ["Runner", "fit_validated_law", "load_validation", "validate"]


class Runner:
    """Runs specs through the store (skipping finished ones), marks their role, reads losses and FLOPs back."""

    def __init__(self, store_path: str, workers: int, log: Log, progress: Progress | None = None):
        self.store_path, self.workers, self.log, self.progress = store_path, workers, log, progress
        self.store: SQLiteStore = open_store(store_path)  # type: ignore[assignment]

    def run(
        self, specs: list[RunSpec], label: str = "target runs", pruning=None, role: str = "target"
    ) -> None:
        """Train the specs not yet in the store and mark them with ``role``.

        Runs are marked as each one lands (and once more at the end), not only after the whole batch:
        a validation killed midway must not leave target runs looking like sweep runs to `oasl fit`.
        """
        keys = [s.key() for s in specs]
        progress = self.progress(label, len(specs)) if self.progress else None
        self.store.set_role(keys, role)  # runs already stored (an earlier, interrupted validation)

        def on_update(summary, total) -> None:
            self.store.set_role(keys, role)
            if progress is not None:
                progress(summary, total)

        run_sweep(
            specs,
            self.store_path,
            workers=min(self.workers, len(specs)) or 1,
            pruning=pruning,
            on_update=on_update,
        )
        self.store.set_role(keys, role)

    def losses(self, specs: list[RunSpec], role: str = "target") -> list[float]:
        """Final validation loss of each spec (trained first if needed); NaN where it diverged."""
        self.run(specs, role=role)
        out = []
        for s in specs:
            row = self.store.get(s.key())
            if row["status"] not in FINISHED:  # an error, not a divergence: say which, never score it
                why = (row.get("error") or "not finished").strip().splitlines()[0]
                raise SweepError(
                    f"run {s.key()} (width {s.shape.width}, lr {s.lr:.3g}, seed {s.seed}) is {row['status']}: "
                    f"{why}; fix the cause and rerun (failed runs are trained again)"
                )
            loss = (row.get("result") or {}).get("final_val_loss")
            out.append(math.nan if loss is None or row["status"] != "done" else float(loss))
        return out

    def flops(self, specs: list[RunSpec]) -> float:
        """Training FLOPs the specs spent, summed (0 for runs not in the store)."""
        total = 0.0
        for s in specs:
            row = self.store.get(s.key())
            total += float((row.get("result") or {}).get("flops") or 0.0)
        return total


def fit_validated_law(runs: pd.DataFrame, features: tuple[str, ...] | None = None):
    """Fit the law of lr on sweep runs exactly as ``oasl fit`` does (:func:`oasl.laws.pipeline.fit_laws`:
    optima per (optimizer, N, D), form and optimizer sharing chosen by forward-chaining held-out error).
    Returns the :class:`~oasl.laws.pipeline.FitReport`; its ``laws["lr"]`` is the validated law."""
    from oasl.laws.pipeline import fit_laws

    report = fit_laws(runs, hps=["lr"], features=features or None)
    if "lr" not in report.laws:
        raise FitError(f"no law of lr could be fitted: {report.skipped.get('lr', 'too few optima')}")
    return report


def validate(
    spec: ValidateSpec,
    store: str | Path,
    workers: int = 1,
    log: Log | None = None,
    out: str | Path | None = None,
    progress: Progress | None = None,
) -> ValidationResult:
    """Run the whole harness for every optimizer of ``spec.sweep``. With ``out``, write
    ``validation.json`` (schema: :mod:`oasl.validate.results`) and ``laws.json`` (the validated law, as
    ``oasl fit`` writes it) there. Returns the :class:`ValidationResult`; its ``fit`` attribute holds the
    :class:`~oasl.laws.pipeline.FitReport`."""
    from oasl.trainers.params import n_params_of

    log = log or (lambda msg: None)
    target_shape = spec.target_shape()
    n_target = spec.target_n_params()
    n_max = max(n_params_of(s, m) for s, m in spec.sweep.rungs())
    if n_target < spec.min_ratio * n_max:
        raise SweepError(
            f"target N={n_target:,} is only {n_target / n_max:.1f}x the largest swept N={n_max:,}: "
            f"the harness measures extrapolation of at least {spec.min_ratio:g}x; enlarge `target`"
        )
    sweep_runs = expand(spec.sweep)
    runner = Runner(str(store), workers, log, progress)  # the store is created once the spec is valid
    log(f"sweep: {len(sweep_runs)} runs of {len(spec.sweep.model_shapes())} shapes")
    runner.run(sweep_runs, f"sweep {spec.sweep.name}", pruning=spec.sweep.pruning, role="sweep")
    df = runner.store.to_dataframe(finished_only=True)
    df = df[df["key"].isin({r.key() for r in sweep_runs})]
    report = fit_validated_law(df, spec.law_features)
    law = report.laws["lr"]
    log(f"validated law of lr ({law.form}, {law.sharing}): {law.formula()}")
    tokens = spec.target_tokens or _target_tokens(spec, n_target)
    # which zero-run point the ladder itself prefers, its largest rung held out (issue 25, item 5); the
    # refinement risk-adjusts only where it prefers the risk-adjusted point (the library's default is the centre)
    from oasl.validate.riskcheck import risk_check

    check = risk_check(df, spec.law_features)
    why = f" ({check['why']})" if check.get("why") else ""
    log(
        f"zero-run check (largest rung held out): {check.get('prefer')}{why}; the refinement's answer: "
        f"{check.get('refine_prefer')}"
    )
    results = []
    for opt in spec.sweep.optimizer_grids():
        optima = report.optima["lr"]
        optima = optima[optima["optimizer"] == opt]
        if len(optima) < 2:
            raise FitError(f"[{opt}] fewer than 2 located optima: widen the lr grid or add shapes")
        q = pd.DataFrame({"N": [n_target], "D": [tokens], "C": [6.0 * n_target * tokens], "optimizer": [opt]})
        rec_lr = float(law.predict(q)[0])
        lo, hi = law.predict_interval(q, level=0.9)
        log(f"[{opt}] recommended lr {rec_lr:.3g} (90% interval {float(lo[0]):.3g}-{float(hi[0]):.3g})")
        template = next(
            r for r in sweep_runs if r.optimizer == opt and r.shape == spec.sweep.model_shapes()[-1]
        )
        grid = spec.sweep.optimizer_grids()[opt]["lr"]
        shape = ladder_risk(df, optima, opt)
        ctx = TargetContext(
            spec=spec,
            runner=runner,
            optimizer=opt,
            base=with_changes(
                template,
                shape=target_shape.model_dump(),
                tokens=tokens,
                seed=spec.seeds[0],
                # a user's trainer trains the target's own model config (spec.target over the largest rung)
                **({"model": spec.target_model()} if spec.sweep.trainer is not None else {}),
            ),
            optima=optima,
            sweep_flops=runner.flops([r for r in sweep_runs if r.optimizer == opt]),
            n_target=n_target,
            recommended_lr=rec_lr,
            search_range=(min(grid) / spec.oracle_widen, max(grid) * spec.oracle_widen),
            log=log,
            recommended_interval=(float(lo[0]), float(hi[0])),
            valley=with_asymmetry(ladder_valley(df, opt), shape),
            risk=shape,
            refine_check=check,
        )
        sub = law.law_for(opt)
        ov = _measure_target(ctx, (float(lo[0]), float(hi[0])), n_max)
        ov.law, ov.law_formula = sub.to_dict(), sub.formula()
        ov.target_tokens, ov.target_shape = float(tokens), target_shape.model_dump()
        ov.law_exponent_interval = {
            k: (float(a), float(b)) for k, (a, b) in sub.exponent_interval(0.9).items()
        }
        oasl_keys = [with_changes(ctx.base, lr=rec_lr, seed=s).key() for s in spec.seeds]
        regime = clip_regime(df[df["optimizer"] == opt], runner.store.curve, n_target, oasl_keys)
        ov.clipping = regime.to_dict()
        if regime.warning:
            log(f"[{opt}] {regime.warning}")
        results.append(ov)
    for ov in results:
        if ov.cost_to_regret:
            own = (check.get("optimizers") or {}).get(ov.optimizer)
            ov.cost_to_regret["zero_run_check"] = {
                **{k: v for k, v in check.items() if k != "optimizers"},
                **({"optimizer": own} if own else {}),
            }
    floors = [ov.noise_floor for ov in results if math.isfinite(ov.noise_floor)]
    result = ValidationResult(
        spec.name,
        results,
        law=law.to_dict(),
        law_formula=law.formula(),
        noise_floor=max(floors) if floors else math.nan,
        seeds=list(spec.seeds),
    )
    result.fit = report  # type: ignore[attr-defined]  # not serialised: laws.json holds it
    if out is not None:
        from oasl.laws import save_laws

        Path(out).mkdir(parents=True, exist_ok=True)
        result.to_json(Path(out) / "validation.json")
        laws = {"lr": law, **({"loss": report.loss_law} if report.loss_law is not None else {})}
        from oasl.recommend import sweep_settings

        meta = {"source": str(store), "features": list(report.features), "fixed": sweep_settings(df)}
        save_laws(Path(out) / "laws.json", laws, meta)
    return result


def _target_tokens(spec: ValidateSpec, n_target: int) -> int:
    tok = spec.sweep.tokens
    if isinstance(tok, dict):
        return int(float(tok["ratio"]) * n_target)
    if isinstance(tok, (list, tuple)):
        return int(max(tok))
    return int(tok)


def _measure_target(ctx: TargetContext, rec_interval: tuple[float, float], n_max: int) -> OptimizerValidation:
    """Every method's proposal, trained on every seed; the oracle; regrets, intervals and verdicts."""
    opt, log = ctx.optimizer, ctx.log
    oracle = Oracle().propose(ctx)
    proposals: list[tuple[str, Proposal]] = [("oasl", Oasl().propose(ctx)), ("oracle", oracle)]
    for name in ctx.spec.baselines:
        proposals.append((name, make_baseline(name).propose(ctx)))
    losses = {name: evaluate_on_seeds(ctx, p.lr, p.target) for name, p in proposals}
    # The oracle is the best lr measured at the target on every seed: its own candidates and, should one
    # be better on the seeds, a method's lr (then the oracle's grid was too coarse; the note says so).
    pool = dict(oracle.extra["evaluated"])
    pool.update({p.lr: losses[n] for n, p in proposals if p.target is None})
    means = {lr: float(np.mean(v)) if np.all(np.isfinite(v)) else math.inf for lr, v in pool.items()}
    oracle_lr = min(means, key=means.get)
    note = ""
    if oracle_lr != oracle.lr:
        by = next(n for n, p in proposals if p.target is None and p.lr == oracle_lr)
        note = (
            f"{by}'s lr {oracle_lr:.3g} beat the oracle's own {oracle.lr:.3g} on the seeds and is the oracle"
        )
        log(f"[{opt}] oracle: {note}")
        oracle.lr = oracle_lr
    oracle_losses = list(pool[oracle_lr])
    losses["oracle"] = oracle_losses
    target_flops = ctx.runner.flops([with_changes(ctx.base, lr=oracle_lr)])
    ov = OptimizerValidation(
        optimizer=opt,
        target_n_params=ctx.n_target,
        largest_swept_n_params=n_max,
        extrapolation_ratio=ctx.n_target / n_max,
        law={},
        recommended_lr=ctx.recommended_lr,
        recommended_interval=rec_interval,
        oracle_lr=oracle_lr,
        oracle_losses=oracle_losses,
        oracle_flops=oracle.tuning_flops,
        sweep_flops=ctx.sweep_flops,
        target_run_flops=target_flops,
        optima=ctx.optima.to_dict(orient="records"),
        oracle_grid=oracle.extra["grid"][["lr", "final_val_loss"]].to_dict(orient="records"),
        noise_floor=stats.noise_floor(oracle_losses),
        oracle_note=note,
    )
    oasl_regrets = stats.per_seed_regret(losses["oasl"], oracle_losses)
    for name, p in proposals:
        r = stats.per_seed_regret(losses[name], oracle_losses)
        finite = bool(np.all(np.isfinite(r)))
        m = MethodResult(
            method=name,
            lr=float(p.lr),
            losses=losses[name],
            regret_mean=float(r.mean()) if finite else math.inf,
            regret_std=float(r.std(ddof=1)) if finite and len(r) > 1 else (0.0 if finite else math.nan),
            tuning_flops=p.tuning_flops,
            tuning_runs=p.tuning_flops / target_flops if target_flops else math.nan,
            note=p.note,
            regret_ci=stats.bootstrap_mean_interval(r),
            regrets=[float(v) for v in r],
            verdict="" if name in ("oasl", "oracle") else stats.verdict(r, oasl_regrets),
        )
        if name != "oracle" and stats.beats_oracle(r):
            m.note += "; beat the oracle beyond seed noise: the oracle is not the optimum (harness fault)"
        ov.methods.append(m)
        lo, hi = m.regret_ci
        log(
            f"[{opt}] {name:>10}: lr {p.lr:.3g}  regret {m.regret_mean:+.2%} [{lo:+.2%}, {hi:+.2%}] {m.verdict}"
        )
        if p.trials:
            key = f"{p.extra.get('kind', name)}_trajectory"
            if len(p.trials) > len(ov.efficiency.get(key, [])):
                ov.efficiency[key] = list(p.trials)
    _read_off_target(ctx, ov, proposals, pool, oasl_regrets)
    ov.efficiency = _efficiency(ov)
    return ov


def _read_off_target(ctx: TargetContext, ov: OptimizerValidation, proposals, pool, oasl_regrets) -> None:
    """What the runs at the target say beyond each method's own row, without new runs: random search's
    regret over draws of the search (:func:`stats.expected_search_regret`, in ``MethodResult.expected``)
    and the regret at the two ends of oasl's 90% interval (``ov.interval_regret``), both read off the
    seed-0 curve (oracle grid, each method's seed-0 run, the search's trials) and the mean regret of each
    lr trained on every seed."""
    props = dict(proposals)
    grid = props["oracle"].extra["grid"]
    seed0 = dict(zip(grid["lr"].astype(float), grid["final_val_loss"].astype(float), strict=True))
    for m in ov.methods:
        p = props[m.method]
        if p.target is None:
            seed0[float(p.lr)] = float(m.losses[0])
        seed0.update(zip(p.extra.get("trial_lrs", []), p.trials, strict=True))
    regrets = {
        float(lr): float(np.mean(stats.per_seed_regret(v, ov.oracle_losses))) for lr, v in pool.items()
    }
    measured = [lr for lr, r in regrets.items() if math.isfinite(r)]
    if measured and all(math.isfinite(v) and v > 0 for v in ov.recommended_interval):
        ends = dict(zip(("lo", "hi"), ov.recommended_interval, strict=True))
        at = stats.regret_at(regrets, list(ends.values()))
        ov.interval_regret = {
            k: {
                "lr": float(lr),
                "regret": float(r),
                "beyond_measured": not min(measured) <= lr <= max(measured),
            }
            for (k, lr), r in zip(ends.items(), at, strict=True)
        }
        ctx.log(f"[{ctx.optimizer}] {stats.interval_regret_text(ov.interval_regret)}")
    reference = float(np.mean(oasl_regrets))
    for m in ov.methods:
        p = props[m.method]
        if p.extra.get("kind") != "random":
            continue
        m.expected = e = stats.expected_search_regret(
            seed0, regrets, ctx.search_range, int(p.extra["k"]), reference
        )
        if e:
            ctx.log(f"[{ctx.optimizer}] {stats.expected_search_text(m.method, e)}")
    if ctx.spec.curves:
        _curves(ctx, ov, seed0, pool)


def _curves(ctx: TargetContext, ov: OptimizerValidation, seed0, pool) -> None:
    """The cost-to-regret curves (:mod:`oasl.validate.curves`) read off the target's runs, and their summary."""
    valley = cost_curves.TargetValley.from_runs(seed0, pool, ov.oracle_losses)
    ov.curves = cost_curves.method_curves(
        ov.methods,
        valley,
        ctx.search_range,
        ctx.recommended_lr,
        ctx.recommended_interval,
        ctx.valley,
        which=ctx.spec.curve_methods,
        search_draws=ctx.spec.curve_search_draws,
        log=lambda msg: ctx.log(f"[{ctx.optimizer}] {msg}"),
        risk=ctx.risk,
        refine_check=ctx.refine_check,
    )
    ladder = ov.sweep_flops / ov.target_run_flops if ov.target_run_flops else math.nan
    ov.cost_to_regret = cost_curves.summary(ov.curves, ladder)
    ov.cost_to_regret["valley"] = dict(vars(ctx.valley)) if ctx.valley is not None else {}
    ov.cost_to_regret["risk_valley"] = ctx.risk.to_dict() if ctx.risk is not None else {}
    line = cost_curves.card_line(ov.cost_to_regret)
    if line:
        ctx.log(f"[{ctx.optimizer}] {line}")


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
