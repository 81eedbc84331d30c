"""A prior on the exponent of the optimal learning rate in N, so that a few flat or jagged optima cannot
override what is known: in standard parametrisation lr* falls with model size.

Why. A ladder of three widths locates three optima with errors of a x1.6 grid step or more. When they do
not fall (0.01, 0.004, 0.01 at widths 32, 48, 64 on a second corpus, issue 25), held-out selection keeps
a constant law, and its lr cost +35% at 9x the largest swept N, while every published law and the
theory of standard parametrisation say the optimum falls. The data alone cannot tell a constant from a
power law there; the prior says which power laws are plausible and the law's interval then carries that
uncertainty to the target (it widens with the log distance from the ladder).

The prior (:data:`LR_N_PRIOR`), set before it was applied to any ladder, on data that ships with oasl or
follows from theory: the exponent of lr* in N at fixed tokens D in

- Step Law (Li et al. 2025; ``lr* = 1.79 N^-0.713 D^0.307``): -0.713;
- DeepSeek LLM (Bi et al. 2024; ``lr* = 0.3118 C^-0.125``, C = 6ND): -0.125 at fixed D;
- Marin's sweeps of 11 optimizers at 130m-520m, as ``oasl fit`` fits them (shared exponent, the
  shipped ``--published marin`` law set): -0.217;
- standard parametrisation with Adam-type updates: the hidden matrices' largest stable step falls as
  1/width (Yang et al. 2021, Tensor Programs V), and N grows as width^2 at fixed depth: -0.5.

Mean and sample standard deviation of the four: Normal(-0.389, 0.269^2). :func:`prior_sources`
recomputes the three data-based values from the shipped laws (``tests/laws/test_prior.py`` checks the
constants against it). It is wide: it rules out rising optima and very steep falls, and leaves a law
fitted on well-resolved optima (exponent standard error well below 0.27) almost unchanged.

How (:func:`apply_prior`): the fitted law's coefficients have a Student-t posterior; it is approximated
by the normal with the same 90% interval, combined with the prior on the N exponent (a conjugate normal
update of all coefficients, so the optimizers' constants move with the exponent), and the law predicts
with that posterior; its leave-one-group-out refits (the jackknife+ interval) and bootstrap refits go
through the same posterior map, so every interval method carries the prior. :func:`with_exponent_prior` does it for an
:class:`~oasl.laws.select.OptimizerLaw` and, when selection chose a law constant in N, refits the power
form first (same sharing). muP ladders are exempt: there the optimum is meant not to move with width.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from oasl.errors import FitError


@dataclass(frozen=True)
class ExponentPrior:
    """A normal prior on the exponent of ``feature`` in a law of ``target``."""

    target: str
    feature: str
    mean: float
    sd: float
    sources: tuple[tuple[str, float], ...] = ()

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "feature": self.feature,
            "mean": self.mean,
            "sd": self.sd,
            "sources": dict(self.sources),
        }


#: the exponent of lr* in N at fixed D, in standard parametrisation (module docstring)
SP_THEORY = -0.5
LR_N_PRIOR = ExponentPrior(
    "lr",
    "N",
    -0.389,
    0.269,
    (("step-law", -0.713), ("deepseek", -0.125), ("marin", -0.217), ("sp-theory", SP_THEORY)),
)


def prior_sources() -> dict[str, float]:
    """The exponents behind :data:`LR_N_PRIOR`, recomputed from the laws oasl ships (rounded to 3
    decimals): Step Law's N exponent, DeepSeek's C exponent (= its N exponent at fixed D), the Marin law
    set's shared N exponent, and the theory value."""
    from oasl.laws.catalog import get_catalog
    from oasl.laws.published import PUBLISHED

    step = PUBLISHED["step-law"].laws["lr"].exponents_["N"]
    ds = PUBLISHED["deepseek"].laws["lr"].exponents_["C"]
    marin = get_catalog("marin")
    m = marin.laws["lr"].law_for("adamw")  # one exponent shared by the 11 optimizers
    return {
        "step-law": round(float(step), 3),
        "deepseek": round(float(ds), 3),
        "marin": round(float(m.exponents_["N"]), 3),
        "sp-theory": SP_THEORY,
    }


def apply_prior(law, prior: ExponentPrior) -> dict:
    """Combine the fitted :class:`~oasl.laws.power.PowerLaw` ``law`` (in place) with ``prior`` on its
    exponent of ``prior.feature``; returns what was done (``data`` exponent, its sd, ``posterior``
    exponent and sd) or ``{"applied": False, "why": ...}`` when the law has no such exponent or no error
    estimate."""
    from scipy import stats

    feats = list(law._design_features)
    if prior.feature not in feats:
        return {"applied": False, "why": f"the law has no {prior.feature} exponent"}
    s2, dof = float(getattr(law, "sigma2_", math.nan)), int(getattr(law, "dof_", 0))
    if not (math.isfinite(s2) and s2 > 0 and dof > 0):
        return {"applied": False, "why": "the law has no error estimate (as many coefficients as optima)"}
    beta = np.asarray(law.coef_vector_, dtype=float)
    p = len(beta)
    j = p - len(feats) + feats.index(prior.feature)
    k = (stats.t.ppf(0.95, dof) / stats.norm.ppf(0.95)) ** 2  # the normal with the t's 90% interval
    S = np.asarray(law.cov_, dtype=float) * k
    P = np.linalg.pinv(S)
    P_post = P.copy()
    P_post[j, j] += 1.0 / prior.sd**2
    S_post = np.linalg.inv(P_post)
    e = np.zeros(p)
    e[j] = prior.mean / prior.sd**2
    b_post = S_post @ (P @ beta + e)
    out = {
        "applied": True,
        "data": float(beta[j]),
        "data_sd": float(math.sqrt(max(S[j, j], 0.0))),
        "posterior": float(b_post[j]),
        "posterior_sd": float(math.sqrt(max(S_post[j, j], 0.0))),
    }
    law._set_coefs(b_post)
    law.unscaled_cov_ = S_post / (s2 * k)
    law.cov_ = s2 * law.unscaled_cov_
    # the leave-one-group-out refits (jackknife+) and bootstrap refits go through the same posterior map
    # b -> S_post (P b + e), so those intervals carry the prior too
    M = S_post @ P
    for a in ("jk_coefs_", "boot_coefs_"):
        if hasattr(law, a):
            setattr(law, a, np.asarray(getattr(law, a), dtype=float) @ M.T + S_post @ e)
    law.prior_ = {**prior.to_dict(), **out}
    return out


def with_exponent_prior(law, table: pd.DataFrame, prior: ExponentPrior = LR_N_PRIOR, weights="weight"):
    """The :class:`~oasl.laws.select.OptimizerLaw` ``law`` (fitted on ``table``) combined with ``prior``:
    a copy, refitted in the power form (same features and sharing) when ``law`` is constant in
    ``prior.feature``. Returns ``(law, info)``; ``info`` says whether the law was replaced and, per
    fitted sub-law, what :func:`apply_prior` did. The input law is not modified."""
    from oasl.laws.select import OptimizerLaw

    info: dict = {"prior": prior.to_dict(), "replaced": None, "laws": {}}
    if prior.feature not in law.features:
        info["why"] = f"the law is not in {prior.feature}"
        return law, info
    if law.form != "power":
        if law.form != "constant":
            info["why"] = f"the prior applies to power laws, not {law.form}"
            return law, info
        params = {**law.get_params(), "form": "power"}
        try:
            out = OptimizerLaw(**params).fit(table, weights=weights if weights in table else None)
        except FitError as exc:
            info["why"] = f"the power form could not be fitted: {exc}"
            return law, info
        info["replaced"] = f"constant/{law.sharing} -> power/{law.sharing}"
    else:
        out = copy.deepcopy(law)
    for key, sub in out.laws_.items():
        info["laws"][key] = apply_prior(sub, prior)
    return out, info


def prior_line(target: str, info: dict) -> str | None:
    """One line saying what the prior did to the law of ``target`` (None when it did nothing)."""
    done = {k: v for k, v in (info.get("laws") or {}).items() if v.get("applied")}
    if not done:
        return None
    pr = info["prior"]
    parts = ", ".join(
        f"{pr['feature']} exponent {v['data']:+.3f} (sd {v['data_sd']:.2g}) -> {v['posterior']:+.3f} (sd {v['posterior_sd']:.2g})"
        + ("" if k == "*" else f" [{k}]")
        for k, v in done.items()
    )
    head = f"{target}: prior on the {pr['feature']} exponent, Normal({pr['mean']:+.3f}, {pr['sd']:.3f}^2) (docs/extrapolation.md): "
    if info.get("replaced"):
        head += f"the optima could not tell a constant from a power law ({info['replaced']}); "
    return head + parts
