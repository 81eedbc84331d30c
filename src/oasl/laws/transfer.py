"""Fast-transfer diagnostics: does the small-scale optimum of an HP transfer to a target size, or must
one tune there?

Source: "Understanding the Mechanisms of Fast Hyperparameter Transfer" (2026), Theorem 2 (informally):
if the optimal loss approaches its limit as ``L*(N) = L_inf + b N^-alpha`` and the optimal HP approaches
its limit as ``h*(N) -> h_inf`` with a log-distance shrinking as ``N^-beta``, compute-optimal grid search
with transfer matches direct tuning at the target iff ``beta = alpha / 2`` and beats it iff
``beta > alpha / 2``. The reason: near the optimum an HP error ``e`` (in log h) costs ``c e^2`` in loss
(``c`` the valley's curvature), so transfer is cheap when the HP converges faster than the square root of
the loss's excess. muTransfer (Tensor Programs V, Yang et al. 2022, arXiv 2203.03466) is the
parametrization under which h* is meant to converge at all.

Method, per group of a ladder (one optimizer x parametrization, several model sizes N):

1. the optimum of ``over`` at each size, its loss and the valley's curvature ``c`` (loss per (log h)^2),
   from :func:`oasl.optima.locate_one` (parabola in log h);
2. ``log h*(N) = log h_inf + a N^-beta`` and ``L*(N) = L_inf + b N^-alpha``, each fitted as a profile over
   the exponent (for a fixed exponent both are linear least squares);
3. bootstrap over the ladder's runs (resampled within each size) of steps 1-2, for percentile intervals
   on alpha, beta and ``beta - alpha/2`` (paired within each resample);
4. verdict on that interval: ``fast`` when it lies above 0, ``slow`` below 0, ``borderline`` otherwise
   (``undetermined`` when the loss law or the intervals could not be fitted);
5. at a target size: the predicted loss cost of naive transfer (the largest swept size's optimum used
   unchanged) ``c_t (log h*(N_t) - log h_naive)^2``, and the compute of a direct grid search at the target
   fine enough to reach the same loss.

Deviation (docs/deviations.md): the issue writes the HP law ``h_inf (1 + a N^-beta)``; oasl fits
``h_inf exp(a N^-beta)``, equal to first order in ``a N^-beta`` and linear in (log h_inf, a) for a fixed
beta. It also keeps a pure power law (SP's lr* ~ N^-gamma, no finite limit) from posing as a limit
at h = 0: in this form such data drive beta to its lower bound, which is read as "no convergence".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from oasl.errors import FitError
from oasl.optima._common import LOSS, check_frame, iter_groups, positive_values, run_masks

CITATION = (
    '"Understanding the Mechanisms of Fast Hyperparameter Transfer" (2026), Theorem 2; '
    "Tensor Programs V (Yang et al. 2022, arXiv 2203.03466)"
)
EXPONENTS = np.geomspace(0.01, 3.0, 240)  # profile grid of alpha and beta
BETA_FLOOR = 0.02  # beta at the grid's floor: the optimum shows no approach to a limit
MIN_SIZES = 3
VERDICTS = ("fast", "borderline", "slow", "undetermined")


@dataclass
class ExponentFit:
    """``y = y_inf + k x^-p`` over ``x`` > 0, fitted as a profile over p on :data:`EXPONENTS`."""

    y_inf: float
    k: float
    p: float
    rss: float

    def predict(self, x) -> np.ndarray:
        return self.y_inf + self.k * np.asarray(x, float) ** -self.p


def fit_exponent(x, y, nonneg_inf: bool = False, sign: float | None = None) -> ExponentFit:
    """Least-squares fit of ``y = y_inf + k x^-p`` (``x`` scaled by its geometric mean for conditioning).

    ``nonneg_inf`` keeps ``y_inf >= 0`` (a loss limit); ``sign`` (+1/-1) fixes the sign of ``k`` (a loss
    falls with N: +1). Exponents where a constraint fails are skipped; FitError if none is left.
    Returns an :class:`ExponentFit` in the units of ``x`` and ``y``."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    scale = float(np.exp(np.mean(np.log(x))))
    z = (x / scale)[None, :] ** -EXPONENTS[:, None]  # (P, n)
    zm, ym = z.mean(1, keepdims=True), y.mean()
    var = ((z - zm) ** 2).sum(1)
    k = ((z - zm) * (y - ym)).sum(1) / np.where(var > 0, var, np.inf)
    y_inf = ym - k * zm[:, 0]
    rss = ((y[None, :] - y_inf[:, None] - k[:, None] * z) ** 2).sum(1)
    ok = var > 0
    if nonneg_inf:
        ok &= y_inf >= 0
    if sign is not None:
        ok &= np.sign(k) * sign >= 0
    if not ok.any():
        raise FitError("no exponent in [0.01, 3] fits these optima under the constraints")
    i = int(np.flatnonzero(ok)[np.argmin(rss[ok])])
    p = float(EXPONENTS[i])
    if 0 < i < len(EXPONENTS) - 1 and ok[i - 1] and ok[i + 1]:  # refine between the grid neighbours
        from scipy.optimize import minimize_scalar

        r = minimize_scalar(
            lambda q: _solve(x / scale, y, q)[2],
            bounds=(EXPONENTS[i - 1], EXPONENTS[i + 1]),
            method="bounded",
        )
        if r.success and _solve(x / scale, y, r.x)[2] <= rss[i]:
            p = float(r.x)
    y0, k0, rss0 = _solve(x / scale, y, p)
    return ExponentFit(y0, k0 * scale**p, p, rss0)


def _solve(x: np.ndarray, y: np.ndarray, p: float) -> tuple[float, float, float]:
    """(y_inf, k, rss) of the linear least squares ``y = y_inf + k x^-p`` at a fixed exponent."""
    z = x**-p
    zc = z - z.mean()
    k = float((zc * (y - y.mean())).sum() / (zc * zc).sum())
    y_inf = float(y.mean() - k * z.mean())
    return y_inf, k, float(((y - y_inf - k * z) ** 2).sum())


@dataclass
class TransferDiagnosis:
    """Transfer diagnostics of one group. HP values ``h`` in raw units of ``over``; losses in nats/token.

    ``n_params``/``h_opt``/``loss_opt``/``curvature``: per ladder size, the located optimum, its loss and
    the valley curvature (loss per (log h)^2; NaN where the parabola was refused). ``h_inf``, ``a``,
    ``beta`` (+ ``beta_ci``): ``h*(N) = h_inf exp(a N^-beta)``; ``l_inf``, ``b``, ``alpha`` (+ ``alpha_ci``):
    ``L*(N) = L_inf + b N^-alpha``; ``margin`` = beta - alpha/2 with its paired bootstrap interval
    ``margin_ci``; ``verdict``: fast / borderline / slow / undetermined. At ``target_params``: ``naive_h`` (the largest
    swept size's optimum), ``target_h`` (predicted optimum, with ``target_h_ci``), ``shift`` (log
    target_h/naive_h), ``curvature_target``, ``predicted_cost`` (loss, nats/token) and
    ``predicted_cost_rel`` (relative to the predicted ``L*``), ``target_loss``, and the direct tuning
    that reaches the same loss: ``direct_runs`` grid points spaced 2|shift| over ``search_log_range``
    (natural log), costing ``direct_flops`` (6 N_t D_t each), against ``ladder_flops`` spent on the ladder.
    ``notes``: what limits the diagnosis.
    """

    group: dict[str, Any]
    over: str
    n_params: list[float]
    h_opt: list[float]
    loss_opt: list[float]
    curvature: list[float]
    h_inf: float
    a: float
    beta: float
    beta_ci: tuple[float, float]
    l_inf: float
    b: float
    alpha: float
    alpha_ci: tuple[float, float]
    margin: float
    margin_ci: tuple[float, float]
    verdict: str
    level: float
    n_boot: int
    target_params: float = math.nan
    target_tokens: float = math.nan
    naive_h: float = math.nan
    target_h: float = math.nan
    target_h_ci: tuple[float, float] = (math.nan, math.nan)
    shift: float = math.nan
    curvature_target: float = math.nan
    target_loss: float = math.nan
    predicted_cost: float = math.nan
    predicted_cost_rel: float = math.nan
    search_log_range: float = math.nan
    direct_runs: float = math.nan
    direct_flops: float = math.nan
    ladder_flops: float = math.nan
    notes: list[str] = field(default_factory=list)

    def predict_h(self, n) -> np.ndarray:
        """The fitted optimal HP (raw units) at sizes ``n`` (non-embedding parameters)."""
        return self.h_inf * np.exp(self.a * np.asarray(n, float) ** -self.beta)

    def predict_loss(self, n) -> np.ndarray:
        """The fitted optimal loss (nats/token) at sizes ``n``."""
        return self.l_inf + self.b * np.asarray(n, float) ** -self.alpha

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-able dict (NaN as None)."""
        return _clean(asdict(self))


@dataclass
class TransferResult:
    """Diagnostics of every group, with the citation of the rule behind the verdicts."""

    over: str
    groups: list[TransferDiagnosis]
    citation: str = CITATION

    def table(self) -> pd.DataFrame:
        """One row per group: group columns, alpha, beta, margin with intervals, verdict, costs."""
        rows = []
        for g in self.groups:
            rows.append(
                {
                    **g.group,
                    "alpha": g.alpha,
                    "alpha_low": g.alpha_ci[0],
                    "alpha_high": g.alpha_ci[1],
                    "beta": g.beta,
                    "beta_low": g.beta_ci[0],
                    "beta_high": g.beta_ci[1],
                    "margin": g.margin,
                    "margin_low": g.margin_ci[0],
                    "margin_high": g.margin_ci[1],
                    "verdict": g.verdict,
                    "naive_h": g.naive_h,
                    "target_h": g.target_h,
                    "predicted_cost": g.predicted_cost,
                    "predicted_cost_rel": g.predicted_cost_rel,
                    "direct_runs": g.direct_runs,
                }
            )
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        return {"over": self.over, "citation": self.citation, "groups": [g.to_dict() for g in self.groups]}


def _clean(x):
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def verdict_of(margin_ci: tuple[float, float]) -> str:
    """fast / slow when the interval of beta - alpha/2 lies above / below 0, else borderline (Theorem 2)."""
    lo, hi = margin_ci
    if lo > 0:
        return "fast"
    if hi < 0:
        return "slow"
    return "borderline"


def _optima_by_size(n, h, y, div, over):
    """Per distinct size with an interior optimum: (N, opt h, loss at opt, curvature) from locate_one (no
    inner bootstrap); a size whose optimum sits at a grid edge is a bound, not a point, and is left out."""
    from oasl.optima import locate_one

    out = []
    for size in np.unique(n):
        m = n == size
        o = locate_one(h[m], y[m], div[m], name=over, n_boot=0)
        if not math.isfinite(o.opt) or o.at_edge:
            continue
        out.append((float(size), o.opt, o.loss_at_opt, o.curvature if o.refined else math.nan))
    return out


def _fit_pair(points) -> tuple[ExponentFit, ExponentFit | None]:
    """The HP law and the loss law on per-size optima; the loss law is None when the optimal loss does
    not fall with N as a power law towards a limit >= 0 (then alpha is undefined on this ladder)."""
    n = np.array([p[0] for p in points])
    hfit = fit_exponent(n, np.log([p[1] for p in points]))
    try:
        lfit = fit_exponent(n, np.array([p[2] for p in points]), nonneg_inf=True, sign=1.0)
    except FitError:
        lfit = None
    return hfit, lfit


def diagnose_group(
    df: pd.DataFrame,
    over: str = "lr",
    loss: str = LOSS,
    *,
    target_params: float | None = None,
    target_tokens: float | None = None,
    level: float = 0.9,
    n_boot: int = 200,
    seed: int = 0,
    group: dict[str, Any] | None = None,
) -> TransferDiagnosis:
    """Diagnostics of one group's runs (columns ``n_params``, ``over``, ``loss``; optional ``tokens``,
    ``flops``, ``diverged``/``status``). See :func:`diagnose_transfer`. Raises FitError with fewer than 3
    sizes that have an interior optimum."""
    check_frame(df, ["n_params", over, loss], "diagnose transfer")
    finished, div = run_masks(df, loss)
    df, div = df[finished], div[finished]
    n = positive_values(df, "n_params")
    h = positive_values(df, over)
    y = pd.to_numeric(df[loss], errors="coerce").to_numpy(float)
    where = f" in group {group}" if group else ""
    sizes = np.unique(n)
    if len(sizes) < MIN_SIZES:
        raise FitError(
            f"transfer diagnostics need a ladder of at least {MIN_SIZES} model sizes{where}; found "
            f"{len(sizes)}: sweep {over} at more widths (e.g. `ladder: {{widths: [24, 32, 48, 64]}}`)"
        )
    points = _optima_by_size(n, h, y, div, over)
    notes = []
    n_edge = len(sizes) - len(points)
    if n_edge:
        notes.append(
            f"{n_edge} size(s) with the optimum at a grid edge or no finite run left out: extend the {over} grid"
        )
    if len(points) < MIN_SIZES:
        raise FitError(
            f"only {len(points)} size(s){where} have an interior optimum of {over} (at least {MIN_SIZES} needed): "
            f"extend the {over} grid where the optimum sits at its edge"
        )
    hfit, lfit = _fit_pair(points)
    rng = np.random.default_rng(seed)
    idx_by_size = [np.flatnonzero(n == s) for s in sizes]
    boot = []  # (beta, alpha, margin, log h_inf, a); alpha and margin NaN where the loss law failed
    for _ in range(n_boot):
        take = np.concatenate([rng.choice(ix, len(ix)) for ix in idx_by_size])
        pts = _optima_by_size(n[take], h[take], y[take], div[take], over)
        if len(pts) < MIN_SIZES:
            continue
        bh, bl = _fit_pair(pts)
        ba = bl.p if bl is not None else math.nan
        boot.append((bh.p, ba, bh.p - ba / 2, bh.y_inf, bh.k))
    q = ((1 - level) / 2, 1 - (1 - level) / 2)
    nan2 = (math.nan, math.nan)
    arr = np.array(boot) if boot else np.zeros((0, 5))
    enough = max(10, n_boot // 2)

    def ci(col: int) -> tuple[float, float]:
        v = arr[:, col][np.isfinite(arr[:, col])] if len(arr) else arr
        return tuple(float(x) for x in np.quantile(v, q)) if len(v) >= enough else nan2

    beta_ci, alpha_ci, margin_ci = ci(0), ci(1), ci(2)
    if n_boot and not math.isfinite(beta_ci[0]):
        notes.append(f"only {len(boot)} of {n_boot} resamples could be fitted: no intervals")
    alpha = lfit.p if lfit is not None else math.nan
    if lfit is None:
        notes.append(
            "the optimal loss does not fall towards a limit >= 0 as a power law of N on this ladder: alpha "
            "is undefined (train longer or add sizes)"
        )
    margin = hfit.p - alpha / 2
    verdict = (
        verdict_of(margin_ci) if math.isfinite(margin) and math.isfinite(margin_ci[0]) else "undetermined"
    )
    if hfit.p <= BETA_FLOOR:
        notes.append(
            f"beta at its floor: the optimal {over} shows no approach to a limit over this ladder "
            "(a power law without a finite limit, as lr* under SP); transfer copies a moving target"
        )
    d = TransferDiagnosis(
        group=dict(group or {}),
        over=over,
        n_params=[p[0] for p in points],
        h_opt=[p[1] for p in points],
        loss_opt=[p[2] for p in points],
        curvature=[p[3] for p in points],
        h_inf=float(math.exp(hfit.y_inf)),
        a=hfit.k,
        beta=hfit.p,
        beta_ci=beta_ci,
        l_inf=lfit.y_inf if lfit is not None else math.nan,
        b=lfit.k if lfit is not None else math.nan,
        alpha=alpha,
        alpha_ci=alpha_ci,
        margin=margin,
        margin_ci=margin_ci,
        verdict=verdict,
        level=level,
        n_boot=n_boot,
        notes=notes,
    )
    if "flops" in df.columns:
        d.ladder_flops = float(pd.to_numeric(df["flops"], errors="coerce").fillna(0).sum())
    if target_params is not None:
        tokens = target_tokens
        if tokens is None and "tokens" in df.columns:
            tokens = float(pd.to_numeric(df["tokens"], errors="coerce").max())
        _at_target(d, float(target_params), tokens, arr, np.log(h), level)
    return d


def _at_target(d: TransferDiagnosis, nt: float, tokens, boot: np.ndarray, logh, level) -> None:
    """Fill the target fields of ``d``: predicted shift, curvature, naive-transfer cost, direct tuning."""
    if not (math.isfinite(nt) and nt > 0):
        raise FitError(f"target params must be a positive finite number, got {nt}")
    d.target_params, d.target_tokens = nt, float(tokens) if tokens else math.nan
    largest = int(np.argmax(d.n_params))
    d.naive_h = d.h_opt[largest]
    d.target_h = float(d.predict_h(nt))
    if len(boot) >= 10:
        logs = boot[:, 3] + boot[:, 4] * nt ** -boot[:, 0]
        q = ((1 - level) / 2, 1 - (1 - level) / 2)
        d.target_h_ci = tuple(float(v) for v in np.exp(np.quantile(logs, q)))
    d.shift = math.log(d.target_h / d.naive_h)
    d.curvature_target = _curvature_at(d.n_params, d.curvature, nt)
    d.target_loss = float(d.predict_loss(nt)) if math.isfinite(d.alpha) else d.loss_opt[largest]
    d.predicted_cost = d.curvature_target * d.shift**2
    if d.target_loss > 0:
        d.predicted_cost_rel = d.predicted_cost / d.target_loss
    d.search_log_range = float(logh.max() - logh.min())
    if abs(d.shift) > 0 and math.isfinite(d.shift):
        # a grid with spacing 2|shift| leaves every optimum within |shift| of a grid point: the same
        # worst-case loss c shift^2 as naive transfer (the argument of Theorem 2)
        d.direct_runs = float(math.ceil(d.search_log_range / (2 * abs(d.shift))) + 1)
        if math.isfinite(d.target_tokens):
            d.direct_flops = d.direct_runs * 6.0 * nt * d.target_tokens
    if nt > 4 * max(d.n_params):
        d.notes.append(
            f"the target is {nt / max(d.n_params):.0f}x the largest swept size: predictions extrapolate"
        )


def _curvature_at(n: list[float], c: list[float], nt: float) -> float:
    """Valley curvature at size ``nt``: a log-log line through the measured ones (3+), else the largest's."""
    n_arr, c_arr = np.asarray(n, float), np.asarray(c, float)
    ok = np.isfinite(c_arr) & (c_arr > 0)
    if ok.sum() >= 3:
        slope, icpt = np.polyfit(np.log(n_arr[ok]), np.log(c_arr[ok]), 1)
        return float(np.exp(icpt + slope * math.log(nt)))
    if ok.any():
        return float(c_arr[ok][np.argmax(n_arr[ok])])
    return math.nan


def diagnose_transfer(
    df: pd.DataFrame,
    over: str = "lr",
    group_by: Sequence[str] = ("optimizer", "parametrization"),
    loss: str = LOSS,
    *,
    target_params: float | None = None,
    target_tokens: float | None = None,
    level: float = 0.9,
    n_boot: int = 200,
    seed: int = 0,
) -> TransferResult:
    """Fast-transfer diagnostics of HP ``over`` for each group of a ladder's runs.

    ``df``: one row per run (``Store.to_dataframe()`` or a CSV) with ``n_params`` (non-embedding
    parameters), ``over`` (raw units, > 0), ``loss`` (nats/token), the ``group_by`` columns, and optionally
    ``tokens`` (the target's D for direct-tuning FLOPs when ``target_tokens`` is not given) and ``flops``.
    ``target_params``: the size to predict naive-transfer cost at. ``level``: interval level of the
    ``n_boot`` bootstrap resamples (runs resampled within each size; ``seed`` fixes them).
    Returns a :class:`TransferResult`; raises FitError when a group has fewer than 3 sizes with an
    interior optimum (a store without a ladder).
    """
    group_by = [group_by] if isinstance(group_by, str) else list(group_by)
    check_frame(df, ["n_params", over, loss, *group_by], "diagnose transfer")
    if not 0 < level < 1:
        raise FitError(f"level must be in (0, 1), got {level}: e.g. 0.9")
    groups = [
        diagnose_group(
            g,
            over,
            loss,
            target_params=target_params,
            target_tokens=target_tokens,
            level=level,
            n_boot=n_boot,
            seed=seed,
            group=key,
        )
        for key, g in iter_groups(df, group_by)
    ]
    return TransferResult(over, groups)
