"""The JSON layout of a :class:`~oasl.laws.power.PowerLaw` (and its variants in :mod:`oasl.laws.forms`):
form, source, fitted state (coefficients, posterior, fitted range, diagnostics) and, optionally, the optima
it was fitted on. Duck-typed on the law object, so :mod:`oasl.laws.power` imports this module and not the
other way round (the laws file, :mod:`oasl.laws.io`, sits above both)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from oasl.errors import ConfigError


def _num(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _f(v) -> float:
    return math.nan if v is None else float(v)


def power_law_to_dict(law, data: bool = True) -> dict[str, Any]:
    """The JSON form of a :class:`PowerLaw` (or variant): form, source, fitted state, and optionally its data."""
    d: dict[str, Any] = {"kind": law.kind, **law.get_params(), "features": list(law.features)}
    d["source"] = {
        "optimizer": law.optimizer,
        "setup": law.setup,
        "units": dict(law.units),
        "valid_range": {k: list(v) for k, v in law.valid_range.items()},
    }
    if not hasattr(law, "coef_vector_"):
        return d
    d.update(
        coef_vector=law.coef_vector_.tolist(),
        levels=law.levels_,
        exponents=law.exponents_,
        coef=law.coef_,
        formula=law.formula(),
    )
    if hasattr(law, "unscaled_cov_"):
        d.update(
            unscaled_cov=law.unscaled_cov_.tolist(),
            sigma2=_num(law.sigma2_),
            new_group_var=float(getattr(law, "new_group_var_", 1.0)),
            dof=int(law.dof_),
            n=int(law.n_),
            n_groups=int(law.n_groups_),
            r2=_num(law.r2_),
            rmse_log=_num(law.rmse_log_),
            group_resid=law.group_resid_.tolist(),
            range={k: [float(a), float(b)] for k, (a, b) in getattr(law, "range_", {}).items()},
        )
    if data and hasattr(law, "X_"):
        d["data"] = {
            "X": {c: law.X_[c].tolist() for c in law.X_.columns},
            "y": law.y_.tolist(),
            "w": law.w_.tolist(),
            "groups": [str(v) for v in law.groups_],
        }
    if hasattr(law, "prior_"):
        d["prior"] = law.prior_
    if hasattr(law, "boot_coefs_"):
        d["boot_coefs"] = law.boot_coefs_.tolist()
    if hasattr(law, "jk_coefs_"):
        d["jackknife"] = {"coefs": law.jk_coefs_.tolist(), "resid": law.jk_resid_.tolist()}
    return d


def restore_power_law(law, d: dict[str, Any]) -> Any:
    """Fill an unfitted ``law`` (of the kind ``d`` names, built from ``d``'s parameters) with the source and
    fitted state of :func:`power_law_to_dict`'s output ``d``; returns ``law``."""
    src = d.get("source") or {}
    law.optimizer, law.setup, law.units = (
        src.get("optimizer", ""),
        src.get("setup", ""),
        dict(src.get("units", {})),
    )
    law.valid_range = {k: tuple(v) for k, v in (src.get("valid_range") or {}).items()}
    if "coef_vector" not in d:
        return law
    law.levels_ = list(d["levels"]) if d.get("levels") is not None else None
    beta = np.asarray(d["coef_vector"], dtype=float)
    expect = (1 if law.by is None else len(law.levels_ or [])) + len(law._design_features)
    if beta.shape != (expect,):
        raise ConfigError(f"the {law.target} law has {beta.size} coefficient(s), its form needs {expect}")
    law._set_coefs(beta)
    if "unscaled_cov" in d:
        law.unscaled_cov_ = np.asarray(d["unscaled_cov"], dtype=float)
        law.sigma2_, law.dof_ = _f(d["sigma2"]), int(d["dof"])
        law.new_group_var_ = float(d.get("new_group_var", 1.0))
        law.cov_ = law.sigma2_ * law.unscaled_cov_
        law.n_, law.n_groups_ = int(d.get("n", 0)), int(d.get("n_groups", 0))
        law.r2_, law.rmse_log_ = _f(d.get("r2")), _f(d.get("rmse_log"))
        law.group_resid_ = np.asarray(d.get("group_resid", []), dtype=float)
        law.range_ = {k: (float(a), float(b)) for k, (a, b) in (d.get("range") or {}).items()}
    if "data" in d:
        law.X_ = pd.DataFrame(d["data"]["X"])
        law.y_ = np.asarray(d["data"]["y"], dtype=float)
        law.w_ = np.asarray(d["data"]["w"], dtype=float)
        law.groups_ = np.asarray(d["data"]["groups"])
    if "prior" in d:
        law.prior_ = dict(d["prior"])
    if "boot_coefs" in d:
        law.boot_coefs_ = np.asarray(d["boot_coefs"], dtype=float)
    if "jackknife" in d:
        law.jk_coefs_ = np.asarray(d["jackknife"]["coefs"], dtype=float).reshape(-1, len(beta))
        law.jk_resid_ = np.asarray(d["jackknife"]["resid"], dtype=float)
    return law
