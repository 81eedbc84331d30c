"""The laws file: fitted (or published) laws as JSON, written by ``oasl fit``, read by ``oasl recommend``.

Layout (``format_version`` 1)::

    {"format": "oasl-laws", "format_version": 1, "oasl_version": ..., "created": ...,
     "meta": {...what the laws were fitted on...},
     "laws": {"lr": {"kind": "optimizer_law", ..., "laws": {"adamw": {"kind": "power", ...}}},
              "batch_tokens": {"kind": "power", ...}, "loss": {"kind": "loss_law", ...}}}

Every law carries its coefficients, its posterior (for intervals), its fitted ``range`` (for
extrapolation warnings), its diagnostics and, unless stripped, the optima it was fitted on.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oasl import __version__
from oasl.errors import ConfigError, OaslError
from oasl.laws.forms import LAW_KINDS
from oasl.laws.loss import LossLaw
from oasl.laws.power import PowerLaw
from oasl.laws.select import OptimizerLaw

FORMAT, FORMAT_VERSION = "oasl-laws", 1


def _num(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _f(v) -> float:
    return math.nan if v is None else float(v)


def power_law_to_dict(law: PowerLaw, data: bool = True) -> dict[str, Any]:
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
    if hasattr(law, "boot_coefs_"):
        d["boot_coefs"] = law.boot_coefs_.tolist()
    return d


def power_law_from_dict(d: dict[str, Any]) -> PowerLaw:
    """Rebuild a :class:`PowerLaw` (or variant) from :func:`power_law_to_dict`'s output."""
    klass = LAW_KINDS.get(d.get("kind", "power"))
    if klass is None:
        raise ConfigError(f"unknown law kind {d.get('kind')!r} (known: {', '.join(LAW_KINDS)})")
    params = {k: d[k] for k in klass._PARAMS if k in d}
    law = klass(**params)
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
    if "boot_coefs" in d:
        law.boot_coefs_ = np.asarray(d["boot_coefs"], dtype=float)
    return law


def law_from_dict(d: dict[str, Any]):
    """Any law written by a ``to_dict`` (power, one_minus, constant, log_linear, optimizer_law, loss_law)."""
    kind = d.get("kind")
    if kind == "optimizer_law":
        return OptimizerLaw.from_dict(d)
    if kind == "loss_law":
        return LossLaw.from_dict(d)
    if kind in LAW_KINDS:
        return power_law_from_dict(d)
    raise ConfigError(
        f"unknown law kind {kind!r} (known: {', '.join([*LAW_KINDS, 'optimizer_law', 'loss_law'])})"
    )


def _clean(v):
    """JSON-safe: NaN/inf become null (JSON has no NaN), numpy scalars become Python numbers."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def save_laws(
    path: str | Path, laws: dict[str, Any], meta: dict[str, Any] | None = None, data: bool = True
) -> Path:
    """Write ``laws`` (target -> law: PowerLaw and kin, OptimizerLaw, LossLaw) and ``meta`` (what
    they were fitted on) as JSON at ``path``; ``data=False`` leaves out the fitted optima. Returns the path."""
    out = {}
    for target, law in laws.items():
        if not hasattr(law, "to_dict"):
            raise ConfigError(
                f"the law of {target} ({type(law).__name__}) cannot be saved: it has no to_dict()"
            )
        out[str(target)] = law.to_dict(data=data)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "oasl_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "meta": meta or {},
        "laws": out,
    }
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(_clean(payload), indent=1))
    os.replace(tmp, p)
    return p


def load_laws(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a laws file; returns (laws by target, meta). ConfigError on a missing, malformed or newer file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"laws file {p} does not exist: create it with `oasl fit --out {p}`")
    try:
        payload = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"laws file {p} is not valid JSON ({exc})") from None
    if not isinstance(payload, dict) or "laws" not in payload:
        raise ConfigError(f"laws file {p} has no 'laws' entry: is it an oasl laws file?")
    version = payload.get("format_version", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ConfigError(
            f"laws file {p} has format version {version}, newer than this oasl reads "
            f"({FORMAT_VERSION}): upgrade oasl"
        )
    try:
        laws = {k: law_from_dict(v) for k, v in payload["laws"].items()}
    except OaslError as exc:
        raise ConfigError(f"laws file {p}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ConfigError(
            f"laws file {p} is not a valid oasl laws file ({type(exc).__name__}: {exc})"
        ) from None
    return laws, payload.get("meta", {})
