"""The laws file: fitted (or published) laws as JSON, written by ``oasl fit``, read by ``oasl recommend``.

Layout (``format_version`` 1)::

    {"format": "oasl-laws", "format_version": 1, "oasl_version": ..., "created": ...,
     "meta": {...what the laws were fitted on...},
     "laws": {"lr": {"kind": "optimizer_law", ..., "laws": {"adamw": {"kind": "power", ...}}},
              "batch_tokens": {"kind": "power", ...}, "loss": {"kind": "loss_law", ...}}}

Every law carries its coefficients, its posterior (for intervals), its fitted ``range`` (for
extrapolation warnings), its diagnostics and, unless stripped, the optima it was fitted on; a law with
``"interval": "jackknife+"`` (``oasl fit``'s default) also its leave-one-group-out refits and residuals
(``"jackknife": {"coefs": [...], "resid": [...]}``), so that ``oasl recommend`` needs no refit.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from oasl._version import __version__
from oasl.errors import ConfigError, OaslError
from oasl.laws.forms import LAW_KINDS
from oasl.laws.loss import LossLaw
from oasl.laws.overtraining import OvertrainingLossLaw
from oasl.laws.power import PowerLaw
from oasl.laws.select import OptimizerLaw

FORMAT, FORMAT_VERSION = "oasl-laws", 1


def law_from_dict(d: dict[str, Any]):
    """Any law written by a ``to_dict`` (power, one_minus, constant, log_linear, optimizer_law, loss_law)."""
    kind = d.get("kind")
    if kind == "optimizer_law":
        return OptimizerLaw.from_dict(d)
    if kind == "loss_law":
        return LossLaw.from_dict(d)
    if kind == "overtraining_loss_law":
        return OvertrainingLossLaw.from_dict(d)
    if kind in LAW_KINDS:
        return PowerLaw.from_dict(d)
    raise ConfigError(
        f"unknown law kind {kind!r} (known: {', '.join([*LAW_KINDS, 'optimizer_law', 'loss_law', 'overtraining_loss_law'])})"
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
