"""Cost-to-regret curves: every method's expected regret at the target after k target runs, read off the
runs the harness already trained there wherever the method's choice can be replayed on them.

The target's valley as measured (:class:`TargetValley`): the seed-0 curve (every seed-0 run at the target,
piecewise linear in log lr; a diverged run counts as twice the worst finite loss), which is what a search
run at seed 0 would see, and the per-seed regret of every lr trained on every evaluation seed (piecewise
linear in log lr, constant beyond the outermost: a lower bound there, which favours the search). A replayed
method runs against the seed-0 curve, keeps the lr it would keep, and is scored by the per-seed regret at
that lr. Random search is replayed over :data:`~oasl.validate.stats.N_BOOT` draws, TPE and GP-BO over
``search_draws`` sampler seeds (one study of 8 trials each: its best after k trials is the k-run point),
the law-guided refinement once per budget (it is deterministic). A point's ``mean`` is the regret averaged
over draws and seeds; ``lo``/``hi`` the paired-bootstrap 90% interval of that mean over the evaluation
seeds (:func:`~oasl.validate.stats.bootstrap_mean_interval` of the per-seed averages over draws);
``range90`` the central 90% of the draws' seed-mean regrets (the luck of one search). ``source`` is
``trained`` where the point is a measured method's own lr trained on every seed (the law, naive transfer,
defaults, published laws at k = 0; a trained ``oasl-refine:k``), ``replayed`` where it is read off.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from oasl.validate import stats

#: the budgets of the curves: searches at 1..8 target runs, the refinement at 1..4
SEARCH_KS = tuple(range(1, 9))
REFINE_KS = tuple(range(1, 5))
#: methods with a zero-run point (their own lr trained on every seed)
ZERO_RUN = ("oasl", "oasl-risk", "naive", "defaults", "step-law", "mup")


@dataclass
class TargetValley:
    """The target's measured valley: ``x0``/``y0`` the seed-0 curve (log lr, loss), ``xr`` the log lrs
    trained on every seed with a finite loss on each, ``regret`` their per-seed regrets ``[len(xr), seeds]``."""

    x0: np.ndarray
    y0: np.ndarray
    xr: np.ndarray
    regret: np.ndarray

    @classmethod
    def from_runs(
        cls, seed0: dict[float, float], pool: dict[float, list[float]], oracle_losses: list[float]
    ) -> TargetValley | None:
        """From ``seed0`` (lr -> seed-0 loss, NaN = diverged) and ``pool`` (lr -> loss on every seed);
        None when fewer than 2 finite seed-0 points or no lr has a finite regret on every seed."""
        curve = stats.seed0_curve(seed0)
        if curve is None:
            return None
        rows = {lr: stats.per_seed_regret(v, oracle_losses) for lr, v in pool.items()}
        rows = {lr: r for lr, r in rows.items() if np.all(np.isfinite(r))}
        if not rows:
            return None
        xr = sorted(rows)
        return cls(
            *curve,
            np.log(np.asarray(xr, dtype=float)),
            np.asarray([rows[v] for v in xr], dtype=float),
        )

    def seed0_loss(self, lr: float) -> float:
        """The seed-0 loss a search would see at ``lr`` (interpolated; constant beyond the runs)."""
        return float(np.interp(math.log(lr), self.x0, self.y0))

    def regrets(self, lrs: Iterable[float]) -> np.ndarray:
        """Per-seed regret at each of ``lrs``: ``[len(lrs), seeds]``."""
        x = np.log(np.asarray(list(lrs), dtype=float))
        return np.stack(
            [np.interp(x, self.xr, self.regret[:, s]) for s in range(self.regret.shape[1])], axis=1
        )


def point(valley: TargetValley, picks: Iterable[float], k: int, source: str = "replayed") -> dict[str, Any]:
    """One curve point from the lrs ``picks`` that the draws of a method kept after ``k`` runs."""
    r = valley.regrets(picks)  # [draws, seeds]
    per_seed = r.mean(axis=0)
    lo, hi = stats.bootstrap_mean_interval(per_seed)
    by_draw = r.mean(axis=1)
    return {
        "k": int(k),
        "mean": float(per_seed.mean()),
        "lo": lo,
        "hi": hi,
        "range90": [float(np.quantile(by_draw, 0.05)), float(np.quantile(by_draw, 0.95))],
        "draws": int(r.shape[0]),
        "source": source,
    }


def trained_point(k: int, regrets: list[float], source: str = "trained") -> dict[str, Any]:
    """A point from a method's own lr trained on every seed (its per-seed regrets)."""
    r = np.asarray(regrets, dtype=float)
    mean = float(r.mean()) if np.all(np.isfinite(r)) else math.inf
    lo, hi = stats.bootstrap_mean_interval(r)
    return {
        "k": int(k),
        "mean": mean,
        "lo": lo,
        "hi": hi,
        "range90": [mean, mean],
        "draws": 1,
        "source": source,
    }


def _best(valley: TargetValley, lrs: list[float], k: int) -> float:
    head = lrs[:k]
    return head[int(np.argmin([valley.seed0_loss(v) for v in head]))]


def search_curve(
    valley: TargetValley, searcher, search_range: tuple[float, float], draws: int, ks=SEARCH_KS
) -> list[dict[str, Any]]:
    """A search replayed ``draws`` times (sampler seeds 0..draws-1), one point per budget in ``ks``."""
    runs = [searcher.search(valley.seed0_loss, search_range, max(ks), seed) for seed in range(draws)]
    return [point(valley, [_best(valley, lrs, k) for lrs in runs], k) for k in ks]


def random_curve(
    valley: TargetValley,
    search_range: tuple[float, float],
    draws: int = stats.N_BOOT,
    ks=SEARCH_KS,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Random search (log-uniform in ``search_range``) over ``draws`` draws, one point per budget."""
    lo, hi = search_range
    rng = np.random.default_rng(seed)
    x = rng.uniform(math.log(lo), math.log(hi), size=(draws, max(ks)))
    y = np.interp(x, valley.x0, valley.y0)
    out = []
    for k in ks:
        picks = np.exp(x[np.arange(draws), np.argmin(y[:, :k], axis=1)])
        out.append(point(valley, picks, k))
    return out


def refine_curve(
    valley: TargetValley, center: float, interval, shape, ks=REFINE_KS, risk=None, check=None
) -> list[dict[str, Any]]:
    """The law-guided refinement replayed once per budget (it is deterministic); each point records the
    runs it placed (``lrs``) and its ``flags``. It risk-adjusts on ``risk`` only at the budgets where the
    ladder's ``check`` (:func:`oasl.validate.riskcheck.risk_check`) prefers that (never without one)."""
    from oasl.validate.refine import refine
    from oasl.validate.riskcheck import uses_risk

    out = []
    for k in ks:
        rk = risk if check and uses_risk(check, k) else None
        r = refine(center, interval, k, lambda lrs: [valley.seed0_loss(v) for v in lrs], shape, risk=rk)
        p = point(valley, [r.lr], k)
        p.update({"lr": r.lr, "lrs": r.lrs, "flags": r.flags})
        out.append(p)
    return out


def method_curves(
    methods,
    valley: TargetValley | None,
    search_range: tuple[float, float],
    center: float,
    interval,
    shape,
    which: Iterable[str] = ("random", "tpe", "gp", "oasl-refine", "oasl-risk"),
    search_draws: int = 20,
    log=lambda msg: None,
    risk=None,
    refine_check: dict | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """The curves of one optimizer: zero-run points of the measured methods (``methods``: the
    :class:`~oasl.validate.results.MethodResult` list), then the replayed searches and refinement in
    ``which`` (``oasl-risk``: the law's risk-adjusted zero-run point, read off unless trained, when the
    ladder gave a valley shape ``risk``; the refinement risk-adjusts on it where the ladder's ``refine_check``
    prefers that, never without one); a trained ``oasl-refine:k`` replaces its replayed point (keeping the replay's mean as
    ``replayed_mean``); a trained ``random:k``/``tpe:k``/``gp:k`` (one draw) is kept as ``trained_draw``."""
    from oasl.validate.baselines import GPSearch, TPESearch

    curves: dict[str, list[dict[str, Any]]] = {}
    for m in methods:
        if m.method in ZERO_RUN and m.regrets:
            curves[m.method] = [trained_point(0, m.regrets)]
    if valley is None:
        return curves
    for kind in which:
        try:
            if kind == "random":
                curves[kind] = random_curve(valley, search_range)
            elif kind in ("tpe", "gp"):
                searcher = (TPESearch if kind == "tpe" else GPSearch)(max(SEARCH_KS))
                curves[kind] = search_curve(valley, searcher, search_range, search_draws)
            elif kind == "oasl-refine":
                curves[kind] = refine_curve(valley, center, interval, shape, risk=risk, check=refine_check)
            elif kind == "oasl-risk" and risk is not None and kind not in curves:
                from oasl.validate.refine import zero_run

                lr = zero_run(center, interval, shape, risk).lr
                curves[kind] = [{**point(valley, [lr], 0), "lr": lr}]
        except ImportError as exc:  # pragma: no cover - optuna absent
            log(f"{kind} curve skipped: {exc}")
        except Exception as exc:  # a DependencyError names the extra to install
            from oasl.errors import DependencyError

            if not isinstance(exc, DependencyError):
                raise
            log(f"{kind} curve skipped: {exc}")
    for m in methods:
        kind, _, k = m.method.partition(":")
        if not k or kind not in curves or not m.regrets:
            continue
        for i, p in enumerate(curves[kind]):
            if p["k"] != int(k):
                continue
            if kind == "oasl-refine":
                tp = trained_point(int(k), m.regrets)
                tp.update({"lr": m.lr, "replayed_mean": p["mean"]})
                curves[kind][i] = tp
            else:
                p["trained_draw"] = m.regret_mean
    return curves


def summary(curves: dict[str, list[dict[str, Any]]], ladder_runs: float, refine_k: int = 2) -> dict[str, Any]:
    """What the curves say: the law's regret, the refinement's at ``refine_k`` runs, how many runs each
    search needs to match it (``">8"`` when none of its points does), the best search's, the compute
    saving (that search's runs over the refinement's, ladder included, in target-run equivalents), and at
    each k whether the refinement's interval lies below each search's mean (``below``)."""
    out: dict[str, Any] = {"refine_k": refine_k, "ladder_runs": float(ladder_runs)}
    if curves.get("oasl"):
        out["law"] = curves["oasl"][0]["mean"]
    if curves.get("oasl-risk"):
        out["law_risk"] = curves["oasl-risk"][0]["mean"]
    ref = {p["k"]: p for p in curves.get("oasl-refine", [])}
    searches = [s for s in ("random", "tpe", "gp") if curves.get(s)]
    if refine_k in ref:
        goal = ref[refine_k]["mean"]
        out["refine"] = goal
        match: dict[str, Any] = {}
        for s in searches:
            hit = [p["k"] for p in curves[s] if p["mean"] <= goal + 1e-12]
            match[s] = min(hit) if hit else f">{max(p['k'] for p in curves[s])}"
        out["runs_to_match"] = match
        numeric = {s: v for s, v in match.items() if isinstance(v, int)}
        spend = ladder_runs + refine_k
        if numeric:
            best = min(numeric, key=numeric.get)
            out["best_search"], out["saving_ratio"] = best, numeric[best] / spend if spend > 0 else math.nan
        elif match:
            out["best_search"] = None
            out["saving_ratio"] = f">{max(max(p['k'] for p in curves[s]) for s in searches) / spend:.2f}"
    out["below"] = {
        str(k): {s: bool(p["hi"] < q["mean"]) for s in searches for q in curves[s] if q["k"] == k}
        for k, p in sorted(ref.items())
    }
    return out


def card_line(summ: dict[str, Any]) -> str:
    """The answer card's line: "the law alone: +x%; with k runs around it: +y%; random search / TPE / GP
    need m runs for the same" ('' when the curves lack the law or the refinement)."""
    if "law" not in summ or "refine" not in summ:
        return ""
    names = {"random": "random search", "tpe": "TPE", "gp": "GP-BO"}
    need = "; ".join(
        f"{names[s]} needs {m if isinstance(m, int) else 'more than ' + m[1:]} run{'s' if m != 1 else ''}"
        for s, m in summ.get("runs_to_match", {}).items()
    )
    k = summ["refine_k"]
    risk = f" (risk-adjusted: {summ['law_risk']:+.2%})" if "law_risk" in summ else ""
    line = f"The law alone: {summ['law']:+.2%}{risk}; with {k} runs around it: {summ['refine']:+.2%}"
    line += f"; for the same, {need} (expected over draws, read off the target's runs)." if need else "."
    check = summ.get("zero_run_check")
    return line + (f" {check_line(check)}." if check else "")


def check_line(check: dict[str, Any]) -> str:
    """Which zero-run point the ladder's own check prefers (:func:`oasl.validate.riskcheck.risk_check`)."""
    if "centre_regret_pct" not in check:
        return f"Zero-run point: the law's centre ({check.get('why', 'no check')})"
    which = "the risk-adjusted point" if check["prefer"] == "risk" else "the law's centre"
    return (
        f"Zero-run point: the ladder's own check (its largest rung held out) prefers {which} "
        f"({check['risk_regret_pct']:+.2f}% risk-adjusted vs {check['centre_regret_pct']:+.2f}% centre there)"
    )
