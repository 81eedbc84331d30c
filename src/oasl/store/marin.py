"""Runs from Marin's optimizer sweeps: a tree of ``result.json`` files, one per coordinate-descent sweep.

Source: Wen et al. 2025, "Fantastic Pretraining Optimizers and Where to Find Them" (arXiv 2509.02046),
released as ``marin-community/marin``, ``experiments/optimizer_sweep/Analysis/Results/``. A file
``<optimizer>/<size>/<multiple>/result.json`` ends one sweep: ``best_config`` (every HP), ``baseline``
(the run at it) and ``ablations`` (one change at a time around it: ``param``, ``value``, ``loss``).

Each baseline and each ablation becomes one imported run with flat columns: ``optimizer``,
``model_size`` ("130m"), ``multiple`` (Chinchilla multiple k), ``n_params`` (non-embedding, below),
``width``, ``depth``, ``tokens`` = k x 20 x N, ``seq_len`` 4096, ``batch_seqs`` (Marin's
``train_batch_size``), ``batch_tokens``, ``steps``, ``lr``, ``weight_decay``, ``warmup`` (steps, as
Marin sets it), ``warmup_frac``, ``beta1``, ``beta2``, ``eps``, ``grad_clip``, the optimizer's own HPs
under Marin's names (``momentum``, ``muon_to_adam_lr``, ``decay``, ...), ``final_val_loss`` (Paloma
c4_en), ``diverged``, and the coordinate columns ``sweep`` ("muon/130m/1"), ``ablated`` (the changed HP,
"baseline" for the run at ``best_config``) and ``ablated_value``.

Facts (from the repository's code; ../shared/data/marin_optimizer_sweep/NOTES.md): 32-layer Llama-style
decoders, N = 32 (3 d ff + 4 d^2); sequence length 4096; ``train_batch_size`` counts sequences.

Diverged: a non-finite loss, or a loss more than :data:`DIVERGED_EXCESS` nats above the sweep's best.
In the released files finite losses sit either within 0.46 nats of their sweep's best or 1.06 nats and
more above it (most at 7-8 nats, the unigram level), so any cut in that gap gives the same split.
A loss of ``null`` (no value logged: missing or crashed runs, e.g. every ablation of ``cautious/130m/4``)
is stored with status "failed": it says nothing about the loss there and is left out of optima.

Keys: ``marin-`` + a hash of (optimizer, size, multiple, ablated HP, value), so a re-import adds
nothing and keys never collide with oasl's own runs (a spec hash) or CSV imports (``imp-``).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from oasl.errors import DataError

SEQ_LEN = 4096
DEPTH = 32
# model size folder -> (d_model, d_ff, n_heads), from the repository's experiment definitions (NOTES.md)
SHAPES = {"130m": (512, 2048, 8), "300m": (768, 3072, 12), "520m": (1024, 4096, 16)}
DIVERGED_EXCESS = 0.75  # nats above the sweep's best loss (module docstring)
OPTIMIZERS = (
    "adamw",
    "nadamw",
    "muon",
    "soape",
    "cautious",
    "kron",
    "lion",
    "mars",
    "mini",
    "scion",
    "sophia",
)
# Marin's HP names -> oasl's columns (the rest keep Marin's names)
RENAME = {
    "learning_rate": "lr",
    "train_batch_size": "batch_seqs",
    "epsilon": "eps",
    "max_grad_norm": "grad_clip",
    "lr_schedule": "schedule",
}
CITATION = (
    "Wen et al. 2025, 'Fantastic Pretraining Optimizers and Where to Find Them', arXiv 2509.02046 "
    "(marin-community/marin, experiments/optimizer_sweep/Analysis/Results)"
)


def non_embedding_params(size: str) -> int:
    """N of a Marin model size folder ("130m", "300m", "520m"): 32 (3 d ff + 4 d^2) (NOTES.md)."""
    if size not in SHAPES:
        raise DataError(f"unknown Marin model size {size!r}: expected one of {', '.join(SHAPES)}")
    d, ff, _ = SHAPES[size]
    return DEPTH * (3 * d * ff + 4 * d * d)


def find_results(folder: str | Path) -> list[Path]:
    """The ``<optimizer>/<size>/<multiple>/result.json`` files under ``folder`` (searched recursively)."""
    import os

    found = []
    for d, _, files in os.walk(folder, followlinks=True):  # symlinked subtrees count (a chosen subset)
        if "result.json" in files and Path(d).name.isdigit():
            found.append(Path(d) / "result.json")
    return sorted(found)


def is_marin_tree(path: str | Path) -> bool:
    """True when ``path`` is a folder holding Marin ``result.json`` files (with a ``best_config``)."""
    p = Path(path)
    if not p.is_dir():
        return False
    for f in find_results(p)[:3]:
        try:
            return "best_config" in json.loads(f.read_text())
        except (OSError, ValueError):
            return False
    return False


def _loss(v: Any) -> float | None:
    """A logged loss: a float (NaN/inf kept), or None when nothing was logged."""
    if v is None:
        return None
    if isinstance(v, str):
        try:
            return float(v)  # "NaN", "inf"
        except ValueError:
            return None
    return float(v)


def _key(optimizer: str, size: str, multiple: int, param: str, value: Any) -> str:
    text = json.dumps([optimizer, size, multiple, param, value], default=str)
    return "marin-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def _row(config: dict, sweep: dict, ablated: str, value: Any, loss: float | None, best: float) -> dict:
    row = dict(sweep)
    for k, v in config.items():
        row[RENAME.get(k, k)] = v
    bs = int(row["batch_seqs"])
    row["batch_tokens"] = bs * SEQ_LEN
    row["steps"] = int(row["tokens"] // (SEQ_LEN * bs))
    if isinstance(row.get("warmup"), (int, float)):
        w = float(row["warmup"])
        row["warmup_frac"] = w if w < 1 else w / max(row["steps"], 1)
    row.update(ablated=ablated, ablated_value=value, final_val_loss=loss)
    row["diverged"] = loss is not None and (not math.isfinite(loss) or loss > best + DIVERGED_EXCESS)
    return row


def read_marin_tree(folder: str | Path) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Every run of a Marin results tree as ``(frame, keys, statuses)``: one row per baseline and per
    ablation (columns in the module docstring), its stable key, and its status ("done", "diverged",
    or "failed" when no loss was logged). DataError when the folder holds no Marin file or a file is
    malformed (the message names it)."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(
            f"{root} is not a folder: give the folder holding <optimizer>/<size>/<multiple>/result.json"
        )
    files = find_results(root)
    if not files:
        raise DataError(
            f"no <optimizer>/<size>/<multiple>/result.json under {root}: is it Marin's "
            "experiments/optimizer_sweep/Analysis/Results folder?"
        )
    rows, keys, statuses = [], [], []
    for f in files:
        multiple, size, optimizer = int(f.parent.name), f.parent.parent.name, f.parent.parent.parent.name
        try:
            d = json.loads(f.read_text())
            config = dict(d["best_config"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(
                f"{f} is not a Marin result file ({type(exc).__name__}: {exc}): fix or remove it"
            ) from None
        if size not in SHAPES:
            raise DataError(f"{f}: unknown model size folder {size!r} (known: {', '.join(SHAPES)})")
        n = non_embedding_params(size)
        width, ff, heads = SHAPES[size]
        sweep = {
            "optimizer": optimizer,
            "model_size": size,
            "multiple": multiple,
            "n_params": n,
            "width": width,
            "depth": DEPTH,
            "d_ff": ff,
            "n_heads": heads,
            "tokens": multiple * 20 * n,
            "seq_len": SEQ_LEN,
            "sweep": f"{optimizer}/{size}/{multiple}",
        }
        base = d.get("baseline") or {}
        base_loss = _loss(base.get("loss"))
        if base_loss is None and not d.get("ablations"):
            base_loss = _loss(d.get("min_loss"))  # 16x files: the best run's loss is min_loss
        finite = [
            x
            for x in [base_loss, *(_loss(a.get("loss")) for a in d.get("ablations") or [])]
            if x is not None and math.isfinite(x)
        ]
        best = min(finite) if finite else math.inf
        runs = [("baseline", None, base_loss, base.get("wandb_id"))]
        for a in d.get("ablations") or []:
            runs.append((str(a["param"]), a["value"], _loss(a.get("loss")), a.get("wandb_id")))
        for param, value, loss, wid in runs:
            cfg = dict(config)
            if param != "baseline":
                cfg[param] = value
            row = _row(cfg, sweep, param, value, loss, best)
            row["wandb_id"] = wid
            rows.append(row)
            keys.append(_key(optimizer, size, multiple, param, value))
            statuses.append("failed" if loss is None else "diverged" if row["diverged"] else "done")
    return pd.DataFrame(rows), keys, statuses


def import_marin(folder: str | Path, store):
    """Add every run of a Marin results tree to ``store`` (a Store or a path, created if absent);
    idempotent (stable keys). Returns an :class:`~oasl.store.ImportResult` whose warnings count the
    diverged and the failed (no loss logged) runs."""
    from oasl.store import ImportResult, open_store

    df, keys, statuses = read_marin_tree(folder)
    n = open_store(store).import_frame(df, source="import:marin", keys=keys, statuses=statuses)
    warnings = []
    n_div, n_fail = statuses.count("diverged"), statuses.count("failed")
    if n_div:
        warnings.append(
            f"{n_div} run(s) diverged (loss non-finite or > {DIVERGED_EXCESS} nats above their sweep's best)"
        )
    if n_fail:
        warnings.append(f"{n_fail} run(s) logged no loss: stored as failed and left out of optima")
    return ImportResult(len(df), n, warnings)
