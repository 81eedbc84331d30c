"""The critical batch size from a steps-to-target table: per model size, the optimizer steps a run needed
to reach that size's target loss at each batch size (the form Zhang et al. 2024 release their runs in).

Model: McCandlish et al. 2018, "An Empirical Model of Large-Batch Training" (arXiv 1812.06162), Sec. 2.3,
Eq. 2.11: to reach a given loss, ``S(B) = S_min (1 + B_noise / B)`` steps at batch B, with
``E_min = S_min B_noise`` examples at the small-batch limit; the critical batch ``B_crit = E_min / S_min``
equals the model's ``B_noise`` (their Eq. 2.12 under Eq. 2.11's form), so one number is reported for both
(``b_noise``, in the table's batch unit). Per model size this module

- fits S(B) by non-negative least squares in relative error of the steps (the relative residual of S
  equals that of E = S B, so this is :func:`oasl.laws.batch_tradeoff.nnls_tradeoff`), or in log steps
  (``loss="log"``, Zhang et al.'s own fit); the default drops a batch whose steps fell by less than 5%
  from the next-smaller batch's (the plateau at the largest batches: the run no longer gained from the
  batch), chosen on the training sizes only (benchmarks/critical_batch_tables.py, docs/deviations.md);
- gives B_noise and S_min a percentile interval from a bootstrap over the table's rows (batch sizes
  resampled within each size);
- fits power laws of B_noise and S_min in N (and in D where the table gives each size's training tokens
  ``tokens``), with :class:`~oasl.laws.PowerLaw` (Bayesian predictive interval across sizes), and the
  same bootstrap carried through the laws to the predicted steps at every batch size.

The fit across sizes, its intervals and the report are in :mod:`oasl.laws.steps_laws`.

Beside it, Zhang et al. 2024 ("How Does Critical Batch Size Scale in Pre-training?", arXiv 2410.21676,
Sec. 2, and their notebook ``plots/chinchilla.ipynb``): the critical batch B* is where the fitted S(B)
takes 20% more steps than linear scaling from a reference batch B_ref: ``S(B*) = 1.2 S(B_ref) B_ref / B*``,
which under Eq. 2.11 gives ``B* = 1.2 B_ref + 0.2 B_noise`` (their notebook: B_ref = 256 sequences, S(B)
fitted in log steps on every batch), and their law ``B* = 93.2 N[M]^0.468`` sequences (fit on 85M-1.2B).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from oasl.errors import DataError, FitError
from oasl.laws.batch_tradeoff import nnls_tradeoff

CITATION = "McCandlish et al. 2018, Sec. 2.3, Eq. 2.11 (S(B) = S_min (1 + B_noise / B))"
ZHANG_CITATION = (
    "Zhang et al. 2024 (arXiv 2410.21676), Sec. 2: B* where steps exceed linear scaling from B_ref by 20%; "
    "notebook plots/chinchilla.ipynb: B_ref = 256 sequences, S(B) fitted in log steps"
)
#: Zhang et al.'s notebook fit of B* over 85M-1.2B (Chinchilla-scaled, seq_len 512): sequences
ZHANG_PUBLISHED = {"coef_n_millions": 93.2, "exponent": 0.468}
PLATEAU = 0.05  # a batch whose steps fell by less than this fraction from the next-smaller batch's
IDENTIFIABLE = 100.0  # B_noise is refused beyond 100x the largest batch or below 1/100 of the smallest
BATCH_COLUMNS = {"seqs": "batch_size_seqs", "tokens": "batch_tokens"}


@dataclass
class StepsTable:
    """A validated steps-to-target table. ``frame``: one row per (n_params, batch), columns n_params,
    batch (in ``unit``: "seqs" or "tokens"), steps, and target_loss / tokens (D, the size's training
    tokens) where given; ``seq_len`` (tokens per sequence) when known; ``notes``: what reading it decided."""

    frame: pd.DataFrame
    unit: str
    seq_len: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def batch_column(self) -> str:
        return BATCH_COLUMNS[self.unit]


def _positive(df: pd.DataFrame, col: str, where: str, csv: bool) -> pd.Series:
    v = pd.to_numeric(df[col], errors="coerce")
    bad = ~(np.isfinite(v) & (v > 0))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        at = f"line {df.index[i] + 2}" if csv else f"row {df.index[i]}"  # a CSV's line 1 is its header
        raise DataError(
            f"{where} {at}: {col} must be a positive number, got {str(df[col].iloc[i])!r}: fix or drop that row"
        )
    return v.astype(float)


def read_steps_table(src, source: str | None = None) -> StepsTable:
    """Read and check a steps-to-target table: a CSV path or a DataFrame with columns ``n_params``
    (non-embedding parameters), ``batch_size_seqs`` or ``batch_tokens``, ``steps`` (optimizer steps to the
    target loss), optional ``target_loss``, ``seq_len`` and ``tokens`` (each size's training tokens D).
    With a ``source`` column of several values, the rows of ``source`` are used (default: the first value
    in file order); several rows of one (size, batch) keep the fewest steps (the best-tuned run, as Zhang
    et al. take the minimum over a batch's runs). DataError with one line naming the fix on a missing
    column, a non-positive value, or a size with fewer than 3 batch sizes."""
    where, csv = "the steps table", not isinstance(src, pd.DataFrame)
    if not csv:
        df = src.copy()
    else:
        path = Path(src)
        where = str(path)
        if not path.is_file():
            raise DataError(f"steps table {path} not found: give a CSV with n_params, batch_size_seqs, steps")
        try:
            df = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DataError(f"{path} is not a readable CSV ({str(exc).splitlines()[0]})") from None
    unit = "seqs" if "batch_size_seqs" in df.columns else "tokens" if "batch_tokens" in df.columns else None
    missing = [c for c in ("n_params", "steps") if c not in df.columns] + (
        ["batch_size_seqs (or batch_tokens)"] if unit is None else []
    )
    if missing:
        raise DataError(
            f"{where} lacks column(s) {', '.join(missing)}: give n_params, batch_size_seqs (or batch_tokens) "
            "and steps, one row per model size and batch size"
        )
    if df.empty:
        raise DataError(f"{where} has no rows: give one row per model size and batch size")
    notes: list[str] = []
    if "source" in df.columns and df["source"].nunique() > 1:
        values = list(dict.fromkeys(df["source"].astype(str)))
        pick = values[0] if source is None else source
        if pick not in values:
            raise DataError(f"source {pick!r} is not in {where}: use one of {', '.join(values)}")
        df = df[df["source"].astype(str) == pick]
        notes.append(f"rows of source {pick!r} used ({len(values)} sources; choose with --source)")
    bcol = BATCH_COLUMNS[unit]
    out = pd.DataFrame(
        {"n_params": _positive(df, "n_params", where, csv), "batch": _positive(df, bcol, where, csv)}
    )
    out["steps"] = _positive(df, "steps", where, csv)
    seq_len = None
    if unit == "seqs" and "batch_tokens" in df.columns:
        sl = _positive(df, "batch_tokens", where, csv) / out["batch"]
        seq_len = float(sl.iloc[0]) if np.allclose(sl, sl.iloc[0]) else None
    elif "seq_len" in df.columns:
        sl = _positive(df, "seq_len", where, csv)
        seq_len = float(sl.iloc[0]) if np.allclose(sl, sl.iloc[0]) else None
    if "target_loss" in df.columns:
        out["target_loss"] = pd.to_numeric(df["target_loss"], errors="coerce")
    if "tokens" in df.columns:
        out["tokens"] = _positive(df, "tokens", where, csv)
        if (out.groupby("n_params")["tokens"].nunique() > 1).any():
            raise DataError(
                f"{where}: tokens must be one value per model size (its training tokens D); put the tokens "
                "reached at the target in another column (e.g. tokens_to_target)"
            )
    n_rows = len(out)
    out = out.sort_values(["n_params", "batch", "steps"]).drop_duplicates(["n_params", "batch"])
    if len(out) < n_rows:
        notes.append(f"{n_rows - len(out)} repeated (size, batch) row(s): the fewest steps kept")
    counts = out.groupby("n_params")["batch"].nunique()
    if (counts < 3).any():
        n = float(counts[counts < 3].index[0])
        raise DataError(
            f"model size {n:.4g} has {int(counts[n])} batch size(s) in {where}: S(B) = S_min (1 + B_noise/B) "
            "needs 3 or more per size; add batch sizes or drop that size's rows"
        )
    return StepsTable(out.reset_index(drop=True), unit, seq_len, notes)


def plateau_mask(batch: np.ndarray, steps: np.ndarray, tol: float = PLATEAU) -> np.ndarray:
    """True for the batches kept: each batch (ascending) whose steps fell by at least ``tol`` from the
    next-smaller batch's; all kept when fewer than 3 would remain."""
    order = np.argsort(batch)
    s = steps[order]
    keep_sorted = np.r_[True, s[1:] < (1.0 - tol) * s[:-1]]
    keep = np.empty(len(batch), bool)
    keep[order] = keep_sorted
    return keep if keep.sum() >= 3 else np.ones(len(batch), bool)


def fit_steps(batch, steps, loss: str = "rel") -> tuple[float, float]:
    """(S_min, B_noise) of S(B) = S_min (1 + B_noise / B) (McCandlish et al. 2018, Eq. 2.11) fitted to
    ``steps`` at ``batch``: ``loss="rel"`` non-negative least squares in relative error, ``"log"`` least
    squares in log steps (Zhang et al.'s notebook). B_noise is inf when S_min is 0 (the steps fall as 1/B
    over the whole table) and 0 when the steps do not fall with the batch."""
    b, s = np.asarray(batch, float), np.asarray(steps, float)
    e_min, s_min = nnls_tradeoff(b, s * b)
    if loss == "log":
        start = np.log(np.maximum([s_min, e_min], 1e-6 * s.min()))
        r = least_squares(lambda p: np.log(np.exp(p[0]) + np.exp(p[1]) / b) - np.log(s), start)
        s_min, e_min = (float(v) for v in np.exp(r.x))
    elif loss != "rel":
        raise FitError(f"unknown loss {loss!r}: use 'rel' or 'log'")
    return s_min, (e_min / s_min if s_min > 0 else math.inf)


def zhang_cbs(b_noise, b_ref: float = 256.0, overhead: float = 0.2):
    """Zhang et al.'s critical batch (same unit as ``b_noise`` and ``b_ref``): the batch where S(B) of
    Eq. 2.11 needs ``1 + overhead`` times the steps of linear scaling from ``b_ref``, i.e.
    ``(1 + overhead) b_ref + overhead B_noise`` (their notebook solves this with B_ref = 256 sequences)."""
    return (1.0 + overhead) * b_ref + overhead * np.asarray(b_noise, float)


def zhang_published(n_params: float) -> float:
    """Zhang et al.'s notebook law, B* = 93.2 N[M]^0.468 sequences, at ``n_params``."""
    return ZHANG_PUBLISHED["coef_n_millions"] * (n_params / 1e6) ** ZHANG_PUBLISHED["exponent"]
