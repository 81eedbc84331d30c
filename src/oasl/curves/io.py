"""Files of the schedule laws: the schedule-law JSON written by ``oasl schedules fit``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FILE_KIND = "oasl-schedule-law"


def save_schedule_law(path, law, context: Mapping[str, Any] | None = None):
    """Write ``law`` (a fitted schedule law, with its bootstrap draws when computed) and ``context``
    (what it was fitted on: steps, lr, warmup_frac, n_params, filters) to a JSON file; returns the path."""
    import json
    from pathlib import Path

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(
        json.dumps(
            {"kind": FILE_KIND, "law": law.to_dict(), "context": dict(context or {})}, indent=1, default=float
        )
    )
    return p


def load_schedule_law(path):
    """Read a file written by :func:`save_schedule_law`; returns ``(law, context)``."""
    import json
    from pathlib import Path

    from oasl.curves import AnnealingLaw, MultiPowerLaw, ScaledScheduleLaw
    from oasl.errors import ConfigError

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"schedule-law file {p} does not exist: write one with `oasl schedules fit`")
    try:
        d = json.loads(p.read_text())
        if d.get("kind") != FILE_KIND:
            raise KeyError("kind")
        kinds = {c.KIND: c for c in (MultiPowerLaw, AnnealingLaw)}
        ld = d["law"]
        if ld.get("kind") == "scaled_schedule":
            law = ScaledScheduleLaw.from_dict(ld)
        elif ld.get("kind") in kinds:
            law = kinds[ld["kind"]].from_dict(ld)
        else:
            raise KeyError(f"law kind {ld.get('kind')!r}")
        return law, d.get("context", {})
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{p} is not a schedule-law file written by oasl ({exc})") from None
