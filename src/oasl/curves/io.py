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
    from pathlib import Path

    from oasl.config import read_json_file
    from oasl.curves import AnnealingLaw, MultiPowerLaw, ScaledScheduleLaw
    from oasl.errors import ConfigError

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"schedule-law file {p} does not exist: write one with `oasl schedules fit`")
    try:
        d = read_json_file(p, "schedule-law file")
        if not isinstance(d, dict) or d.get("kind") != FILE_KIND:
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
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{p} is not a schedule-law file written by oasl ({exc})") from None


CURVE_COLUMNS = ("step", "lr", "loss")


def read_curve_file(path, n_params: float | None = None):
    """A loss curve from a CSV with columns ``step``, ``lr``, ``loss`` (other columns ignored; the
    multi-power-law paper's released CSVs as they are).

    ``step``: optimizer step (0-based, the step of the update whose LR is ``lr`` and after which ``loss``
    was measured); ``lr``: that step's learning rate; ``loss``: nats per token (leave it empty on rows
    that only give the LR). The per-step schedule is rebuilt from the rows: linear between consecutive
    rows (exact for linear pieces; a cosine logged every 128 steps is off by < 1e-4 relative, and a step
    drop between two rows is spread over them), and, before the first row, a linear warmup from 0 at
    step 0 to the first row's LR. The schedule ends at the last row. ``n_params`` sets the curve's model
    size (for size-aware laws). Returns a :class:`~oasl.curves.Curve` named after the file stem;
    DataError naming the fault otherwise."""
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from oasl.curves.curve import Curve
    from oasl.errors import DataError

    p = Path(path)
    if not p.is_file():
        raise DataError(f"curve file {p} does not exist")
    try:
        df = pd.read_csv(p)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(
            f"cannot read {p} as CSV ({str(exc).splitlines()[0]}): columns step, lr, loss"
        ) from None
    missing = [c for c in CURVE_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            f"{p} lacks column(s) {', '.join(missing)}: a curve file has columns step, lr, loss "
            f"(it has {', '.join(map(str, df.columns))})"
        )
    num = {c: pd.to_numeric(df[c], errors="coerce").to_numpy(float) for c in CURVE_COLUMNS}
    for c in ("step", "lr"):
        if not np.all(np.isfinite(num[c])):
            raise DataError(f"{p}: column {c} must be a number on every row")
    step, lr, loss = num["step"], num["lr"], num["loss"]
    if np.any(step != np.round(step)) or np.any(step < 0) or np.any(np.diff(step) <= 0):
        raise DataError(f"{p}: steps must be whole, non-negative and strictly increasing")
    if np.any(lr < 0):
        raise DataError(f"{p}: learning rates must be non-negative")
    step = step.astype(np.int64)
    total = int(step[-1]) + 1
    knots_s = np.r_[0, step] if step[0] > 0 else step
    knots_lr = np.r_[0.0, lr] if step[0] > 0 else lr
    lrs = np.interp(np.arange(total), knots_s, knots_lr)
    has = np.isfinite(loss)
    return Curve(step[has], lrs, loss[has], name=p.stem, n_params=n_params)
