"""Schedule laws on oasl's own runs: :func:`store_curves` turns finished runs of a store into
:class:`~oasl.curves.Curve` values (per-step LR rebuilt from each run's spec; training loss averaged over
short bins of steps, or the validation loss at evaluation steps)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from oasl.config import RunSpec, ScheduleSpec
from oasl.curves.curve import Curve
from oasl.errors import DataError


def schedule_label(s: ScheduleSpec) -> str:
    """Short name of a schedule in the syntax :func:`oasl.optim.schedules.parse_schedule` reads:
    ``wsd:0.2`` (decay fraction), ``cosine:0`` (final fraction, when not the default 0.1), ``constant``..."""
    if s.name == "wsd":
        return f"wsd:{s.decay_frac:g}"
    if s.name in ("cosine", "linear") and s.final_frac != ScheduleSpec.model_fields["final_frac"].default:
        return f"{s.name}:{s.final_frac:g}"
    return s.name


@dataclass
class RunCurve:
    """A stored run as a schedule-law curve, with what the run was: ``key``, ``schedule`` (short
    label), ``lr`` (peak), ``n_params``, ``steps`` (planned length), ``final_val_loss`` (nats), ``source``
    (``"val"`` or ``"train"``: which loss the curve holds)."""

    curve: Curve
    key: str
    schedule: str
    lr: float
    n_params: float
    steps: int
    final_val_loss: float
    row: dict[str, Any]
    source: str = "val"


def _matches(frame: pd.DataFrame, where: Mapping[str, Any]) -> pd.Series:
    """Rows whose column equals the value (numbers compared as numbers); a list or tuple of values, or a
    comma-separated string, matches any of them."""
    keep = pd.Series(True, index=frame.index)
    for col, value in where.items():
        if col not in frame.columns:
            raise DataError(
                f"cannot filter on {col!r}: the store's runs have no such column "
                f"(columns: {', '.join(sorted(map(str, frame.columns))[:30])})"
            )
        values = value.split(",") if isinstance(value, str) else value
        values = list(values) if isinstance(values, (list, tuple)) else [values]
        any_of = pd.Series(False, index=frame.index)
        for v in values:
            try:
                any_of |= np.isclose(pd.to_numeric(frame[col]).astype(float), float(v), rtol=1e-9, atol=0)
            except (TypeError, ValueError):
                any_of |= frame[col].astype(str) == str(v).strip()
        keep &= any_of
    return keep


def _binned(steps: np.ndarray, loss: np.ndarray, bin_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean loss over consecutive bins of ``bin_steps`` steps, placed at the bin's mean step (exact for a
    loss that is linear within a bin); the last, possibly shorter, bin ends at the last step."""
    if bin_steps <= 1:
        return steps, loss
    idx = np.arange(len(steps)) // bin_steps
    n = int(idx[-1]) + 1
    cnt = np.bincount(idx, minlength=n)
    s = np.bincount(idx, weights=steps, minlength=n) / cnt
    v = np.bincount(idx, weights=loss, minlength=n) / cnt
    return np.round(s).astype(np.int64), v


def store_curves(
    store,
    where: Mapping[str, Any] | None = None,
    source: str = "auto",
    bin_steps: int | None = None,
    min_points: int = 8,
    keys=None,
) -> list[RunCurve]:
    """Curves of the finished runs of ``store`` (a Store or a path) that match ``where`` (column ->
    value, e.g. ``{"optimizer": "adamw", "width": 64}``).

    ``source="val"``: the validation loss at evaluation steps (a fixed evaluation set, so the curve is
    smooth: the better source when runs evaluate often); ``"train"``: the per-step training loss averaged
    over bins of ``bin_steps`` steps (default: about 1/64 of the run, at least 4); ``"auto"``: val when
    every matching run has at least ``min_points`` evaluations, else train. The LR array
    is the run's own schedule (:func:`oasl.optim.schedules.lr_curve` of its spec), so runs stopped
    early (pruned) still carry their full planned schedule. Diverged and failed runs are skipped.
    ``keys`` (optional) keeps only runs with these store keys (e.g. those of one sweep spec).
    Raises DataError when nothing usable matches."""
    from oasl.optim.schedules import lr_curve
    from oasl.store import open_store

    if source not in ("train", "val", "auto"):
        raise DataError(f"curve source {source!r} is not 'train', 'val' or 'auto'")
    st = open_store(store, readonly=True)
    frame = st.to_dataframe()
    if frame.empty:
        raise DataError("the store has no runs: run a sweep first (oasl sweep run)")
    frame = frame[frame["status"].isin(["done", "stopped"]) & (frame["source"] == "oasl")]
    if where:
        frame = frame[_matches(frame, where)]
    if keys is not None:
        frame = frame[frame["key"].isin(set(keys))]
    if frame.empty:
        raise DataError(f"no finished oasl runs in the store match {dict(where or {})}")
    all_curves = st.curves(list(frame["key"]))
    by_key = dict(tuple(all_curves.groupby("key")))
    wanted = set(frame["key"])
    specs = {r["key"]: RunSpec.model_validate(r["spec"]) for r in st.rows() if r["key"] in wanted}
    if source == "auto":
        n_val = all_curves.dropna(subset=["val_loss"]).groupby("key").size()
        source = "val" if len(n_val) == len(frame) and n_val.min() >= min_points else "train"
    out: list[RunCurve] = []
    for _, row in frame.iterrows():
        spec = specs[row["key"]]
        lrs = lr_curve(spec.schedule, spec.steps, spec.lr)
        c = by_key.get(row["key"], all_curves.iloc[:0]).sort_values("step")
        col = "train_loss" if source == "train" else "val_loss"
        c = c[np.isfinite(pd.to_numeric(c[col], errors="coerce").astype(float))]
        if c.empty:
            continue
        steps = c["step"].to_numpy(dtype=np.int64) - 1  # stored steps count updates from 1
        loss = c[col].to_numpy(dtype=float)
        if source == "train":
            b = bin_steps if bin_steps is not None else max(4, spec.steps // 64)
            steps, loss = _binned(steps, loss, b)
        if len(steps) < min_points:
            continue
        label = schedule_label(spec.schedule)
        name = f"{label} lr={spec.lr:.3g} w{spec.shape.width}d{spec.shape.depth} s{spec.seed}"
        out.append(
            RunCurve(
                Curve(steps, lrs, loss, name=name, n_params=float(row["n_params"])),
                key=row["key"],
                schedule=label,
                lr=float(spec.lr),
                n_params=float(row["n_params"]),
                steps=int(spec.steps),
                final_val_loss=float(row.get("final_val_loss", math.nan)),
                row=row.to_dict(),
                source=source,
            )
        )
    if not out:
        raise DataError(
            f"the {len(frame)} matching runs have fewer than {min_points} logged points each: "
            "log every step (train loss) or evaluate more often (run.eval_interval)"
        )
    return out
