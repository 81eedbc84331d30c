"""The refine workflow: k runs of the target around the law's recommendation, trained through the store
and its executors, the local valley fitted (the rule: :mod:`oasl.validate.refine`, docs/refine.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def law_at_target(laws_path: str | Path, spec) -> tuple[float, tuple[float, float], str]:
    """The law of lr in the laws file ``laws_path`` (from ``oasl fit``) at the target run ``spec`` (a
    :class:`~oasl.config.RunSpec`; N is its model rung's ``n_params`` when given, else oasl's count of its
    shape): (lr, its 90% interval, the law's formula). ConfigError, one line, when
    the file has no lr law or it cannot predict for the spec's optimizer."""
    import pandas as pd

    from oasl.errors import ConfigError
    from oasl.laws import load_laws
    from oasl.trainers.params import n_params_of

    laws, _ = load_laws(laws_path)
    if "lr" not in laws:
        raise ConfigError(f"{laws_path} has no law of lr: fit one with `oasl fit --hp lr`")
    law = laws["lr"]
    n = n_params_of(spec.shape, spec.model)  # a user's model: its stated N, as the sweep and validation use
    q = pd.DataFrame(
        {"N": [n], "D": [spec.tokens], "C": [6.0 * n * spec.tokens], "optimizer": [spec.optimizer]}
    )
    try:
        lr = float(law.predict(q)[0])
        lo, hi = law.predict_interval(q, level=0.9)
    except (KeyError, ValueError) as exc:
        raise ConfigError(
            f"the law in {laws_path} cannot predict for {spec.optimizer} ({exc}): fit it on that optimizer"
        ) from None
    return lr, (float(lo[0]), float(hi[0])), law.formula()


def refine_in_store(
    base,
    center: float,
    interval: tuple[float, float] | None,
    k: int,
    store,
    workers: int = 1,
    valley=None,
    log=None,
    risk: Any = "check",
):
    """:func:`oasl.validate.refine.refine` with the target's runs trained through the store (and its
    executors, as :func:`oasl.sweep.run_sweep` does; finished runs are reused, not retrained) and marked
    role "target" (so ``oasl fit`` leaves them out). ``base`` is the target's :class:`~oasl.config.RunSpec`
    (its lr is replaced); ``valley`` defaults to :func:`~oasl.validate.refine.ladder_valley` of the store's
    sweep runs of ``base.optimizer``. ``risk`` says whether the runs and the answer are risk-adjusted on
    the ladder's asymmetric valley (:func:`~oasl.validate.refine.ladder_risk`): ``"check"`` (default) only
    where the ladder's own check (:func:`~oasl.validate.riskcheck.risk_check`, its largest rung held out)
    prefers risk-adjusting a refinement of ``k`` runs (:func:`~oasl.validate.riskcheck.uses_risk`), as
    validation does; ``"ladder"`` always; None never (the answer is
    the posterior mean); or a ValleyShape. The result's ``rule`` says which was used and why. Returns a
    :class:`~oasl.validate.RefineResult`."""
    from oasl.validate.baselines import with_changes
    from oasl.validate.harness import Runner
    from oasl.validate.refine import Valley, ladder_valley, refine, with_asymmetry

    runner = Runner(str(store), workers, log or (lambda msg: None))
    rule = "the posterior mean" if risk is None else "risk-adjusted on the valley given"
    if valley is None or risk in ("ladder", "check"):
        df = runner.store.to_dataframe(finished_only=True)
        if len(df) and "role" in df:
            df = df[df["role"].fillna("sweep") == "sweep"]
        shape = _store_risk(df, base.optimizer)  # the ladder's asymmetric valley (None: not measured)
        if valley is None:
            valley = with_asymmetry(ladder_valley(df, base.optimizer) if len(df) else Valley(), shape)
        if risk == "check":
            risk, rule = _checked_risk(df, shape, k)
        elif risk == "ladder":
            risk = shape
            rule = (
                "risk-adjusted on the ladder's valley (asked)"
                if risk is not None
                else "the posterior mean (no valley shape measured)"
            )

    def train(lrs: list[float]) -> list[float]:
        return runner.losses([with_changes(base, lr=float(v)) for v in lrs], role="target")

    result = refine(center, interval, k, train, valley, batch_seqs=None, risk=risk)
    result.rule = rule
    return result


def _checked_risk(df, shape, k: int) -> tuple[Any, str]:
    """``shape`` (the ladder's valley, :func:`_store_risk`) if the ladder's own check prefers risk-adjusting
    a refinement of ``k`` runs (:func:`~oasl.validate.riskcheck.uses_risk`), else None; with the sentence
    saying which and why."""
    from oasl.errors import OaslError
    from oasl.validate.riskcheck import risk_check, uses_risk

    try:
        check = (
            risk_check(df) if len(df) and "n_params" in df else {"prefer": "centre", "why": "no sweep runs"}
        )
    except (OaslError, KeyError, ValueError) as exc:
        check = {"prefer": "centre", "why": f"the check failed ({exc})"}
    which = "zero-run check" if k <= 1 else "check of the refinement's answer"
    keys = (
        ("risk_regret_pct", "centre_regret_pct")
        if k <= 1
        else ("refine_risk_regret_pct", "refine_mean_regret_pct")
    )
    why = (
        f"{check[keys[0]]:+.2f}% risk-adjusted vs {check[keys[1]]:+.2f}% at the held-out rung"
        if keys[0] in check
        else check.get("why", "no valley shape at the held-out rung")
    )
    if uses_risk(check, k) and shape is not None:
        return shape, f"risk-adjusted: the ladder's {which} prefers it ({why})"
    return None, f"the posterior mean: the ladder's {which} does not prefer the risk-adjusted answer ({why})"


def _store_risk(df, optimizer: str):
    """:func:`~oasl.validate.refine.ladder_risk` of a store's sweep runs of ``optimizer`` (optima located
    as ``oasl optima`` does); None when they do not give one."""
    from oasl.errors import OaslError
    from oasl.optima import locate_optima
    from oasl.validate.refine import ladder_risk

    sub = df[df["optimizer"] == optimizer] if len(df) and "optimizer" in df else df
    if len(sub) < 3:
        return None
    try:
        group = [c for c in ("optimizer", "n_params", "tokens") if c in sub]
        return ladder_risk(sub, locate_optima(sub, over="lr", group_by=group), optimizer)
    except (OaslError, KeyError, ValueError):
        return None
