"""The laws file: fitted laws as JSON (written by ``oasl fit``, read by ``oasl recommend``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from oasl import __version__
from oasl.errors import ConfigError
from oasl.laws.loss import LossLaw
from oasl.laws.power import PowerLaw
from oasl.laws.select import OptimizerLaw


def law_from_dict(d: dict[str, Any]):
    kind = d.get("kind")
    if kind == "optimizer_law":
        return OptimizerLaw.from_dict(d)
    if kind == "loss_law":
        return LossLaw.from_dict(d)
    return PowerLaw.from_dict(d)


def save_laws(path: str | Path, laws: dict[str, Any], meta: dict[str, Any] | None = None) -> None:
    """Write ``laws`` (target -> law object) and ``meta`` (what they were fitted on) as JSON."""
    payload = {"oasl_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "meta": meta or {},
               "laws": {k: v.to_dict() for k, v in laws.items()}}
    Path(path).write_text(json.dumps(payload, indent=2, default=float))


def load_laws(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a laws file; returns (laws by target, meta). ConfigError on a missing or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"laws file {p} does not exist: create it with `oasl fit --out {p}`")
    try:
        payload = json.loads(p.read_text())
        return {k: law_from_dict(v) for k, v in payload["laws"].items()}, payload.get("meta", {})
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"laws file {p} is not a valid oasl laws file ({exc})") from None
