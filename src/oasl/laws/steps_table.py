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
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from oasl.errors import DataError, FitError
from oasl.laws.batch_tradeoff import nnls_tradeoff
from oasl.laws.power import PowerLaw

CITATION = "McCandlish et al. 2018, Sec. 2.3, Eq. 2.11 (S(B) = S_min (1 + B_noise / B))"
ZHANG_CITATION = (
    "Zhang et al. 2024 (arXiv 2410.21676), Sec. 2: B* where steps exceed linear scaling from B_ref by 20%; "
    "notebook plots/chinchilla.ipynb: B_ref = 256 sequences, S(B) fitted in log steps"
)
#: Zhang et al.'s notebook fit of B* over 85M-1.2B (Chinchilla-scaled, seq_len 512): sequences
ZHANG_PUBLISHED = {"coef_n_millions": 93.2, "exponent": 0.468}
PLATEAU = 0.05  # a batch whose steps fell by less than this fraction from the next-smaller batch's
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


def _positive(df: pd.DataFrame, col: str, where: str) -> pd.Series:
    v = pd.to_numeric(df[col], errors="coerce")
    bad = ~(np.isfinite(v) & (v > 0))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{where} row {i + 2}: {col} must be a positive number, got {df[col].iloc[i]!r}: fix or drop that row"
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
    where = "the steps table"
    if isinstance(src, pd.DataFrame):
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
    out = pd.DataFrame({"n_params": _positive(df, "n_params", where), "batch": _positive(df, bcol, where)})
    out["steps"] = _positive(df, "steps", where)
    seq_len = None
    if unit == "seqs" and "batch_tokens" in df.columns:
        sl = _positive(df, "batch_tokens", where) / out["batch"]
        seq_len = float(sl.iloc[0]) if np.allclose(sl, sl.iloc[0]) else None
    elif "seq_len" in df.columns:
        sl = _positive(df, "seq_len", where)
        seq_len = float(sl.iloc[0]) if np.allclose(sl, sl.iloc[0]) else None
    if "target_loss" in df.columns:
        out["target_loss"] = pd.to_numeric(df["target_loss"], errors="coerce")
    if "tokens" in df.columns:
        out["tokens"] = _positive(df, "tokens", where)
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


class StepsTableFit:
    """Per-size S(B) fits and the laws of B_noise and S_min across sizes, from a :class:`StepsTable`.

    ``loss``: "rel" or "log" (:func:`fit_steps`); ``drop_plateau``: drop the plateau batches
    (:func:`plateau_mask`) before each size's fit; ``level``, ``n_boot``, ``seed``: the bootstrap over the
    table's rows; ``b_ref``, ``overhead``: Zhang et al.'s definition (:func:`zhang_cbs`; ``b_ref`` in the
    table's unit, default 256 sequences, none for a table in tokens without a ``seq_len``).

    Fitted: ``table_``, ``features_`` (("N",) or ("N", "D")), ``sizes_`` (one row per size: n_params,
    [tokens], target_loss, n_batches, n_used, batch_min, batch_max, s_min, s_min_low, s_min_high,
    b_noise, b_noise_low, b_noise_high, e_min, rms_rel, zhang_cbs), ``s_min_law_``, ``b_noise_law_``
    and ``zhang_law_`` (:class:`~oasl.laws.PowerLaw`, Bayesian intervals from 3 sizes on),
    ``boot_`` ((reps, sizes, 2): S_min and B_noise per bootstrap table) and ``boot_coefs_`` ((reps, 2,
    p): the two laws' log-space coefficients per bootstrap table)."""

    def __init__(
        self,
        loss: str = "rel",
        drop_plateau: bool = True,
        level: float = 0.9,
        n_boot: int = 200,
        seed: int = 0,
        b_ref: float | None = None,
        overhead: float = 0.2,
    ):
        self.loss, self.drop_plateau, self.level, self.n_boot, self.seed = (
            loss,
            drop_plateau,
            level,
            n_boot,
            seed,
        )
        self.b_ref, self.overhead = b_ref, overhead

    def _q(self) -> list[float]:
        return [(1 - self.level) / 2, (1 + self.level) / 2]

    def fit(self, table: StepsTable) -> StepsTableFit:
        """Fit every size of ``table`` and the laws across sizes. Returns self. FitError naming the size
        when a size's B_noise is 0 or beyond its largest batch (no law can be fitted through it)."""
        self.table_ = table
        df = table.frame
        self.features_ = ("N", "D") if self._has_d(df) else ("N",)
        b_ref = self.b_ref if self.b_ref is not None else self._default_ref(table)
        rng = np.random.default_rng(self.seed)
        rows, used, boot = [], [], []
        for n, g in df.groupby("n_params", sort=True):
            b, s = g["batch"].to_numpy(float), g["steps"].to_numpy(float)
            keep = plateau_mask(b, s) if self.drop_plateau else np.ones(len(b), bool)
            s_min, b_noise = fit_steps(b[keep], s[keep], self.loss)
            if not (0 < b_noise < math.inf):
                why = "lies beyond the largest batch (steps fall as 1/B throughout)" if b_noise else "is 0"
                raise FitError(
                    f"model size {n:.4g}: B_noise {why}; add batches on both sides of the bend or drop that size"
                )
            pred = s_min * (1 + b_noise / b[keep])
            _, zb = fit_steps(b, s, "log")  # Zhang et al.'s fit: log steps, every batch
            row = {"n_params": float(n)}
            if "tokens" in g:
                row["tokens"] = float(g["tokens"].iloc[0])
            loss = g["target_loss"].iloc[0] if "target_loss" in g else math.nan
            row |= {
                "target_loss": float(loss),
                "n_batches": len(b),
                "n_used": int(keep.sum()),
                "batch_min": float(b.min()),
                "batch_max": float(b.max()),
                "s_min": s_min,
                "b_noise": b_noise,
                "e_min": s_min * b_noise,
                "rms_rel": float(np.sqrt(np.mean((s[keep] / pred - 1) ** 2))),
                "zhang_cbs": float(zhang_cbs(zb, b_ref, self.overhead)) if b_ref else math.nan,
            }
            rows.append(row)
            used.append((b[keep], s[keep]))
        self.sizes_ = pd.DataFrame(rows)
        for _ in range(self.n_boot):
            rep = []
            for b, s in used:
                idx = rng.integers(0, len(b), len(b))
                while len(np.unique(b[idx])) < 2:
                    idx = rng.integers(0, len(b), len(b))
                rep.append(fit_steps(b[idx], s[idx], self.loss))
            boot.append(rep)
        self.boot_ = np.array(boot, float).reshape(len(boot), len(rows), 2)
        self._fit_laws()
        self._intervals()
        return self

    @staticmethod
    def _has_d(df: pd.DataFrame) -> bool:
        if "tokens" not in df:
            return False
        per = df.groupby("n_params")["tokens"].first()
        A = np.column_stack(
            [np.ones(len(per)), np.log(per.index.to_numpy(float)), np.log(per.to_numpy(float))]
        )
        return len(per) >= 4 and np.linalg.matrix_rank(A, tol=1e-6) == 3

    @staticmethod
    def _default_ref(table: StepsTable) -> float | None:
        if table.unit == "seqs":
            return 256.0
        return 256.0 * table.seq_len if table.seq_len else None

    def _law(self, target: str, y) -> PowerLaw:
        X = self._features(self.sizes_)
        law = PowerLaw(self.features_, target, citation=CITATION)
        # two sizes (or three with D) pin a law without an error estimate: the point fit only
        return law._fit(X, np.asarray(y, float), None, None, point_only=len(X) <= len(self.features_) + 1)

    def _features(self, sizes: pd.DataFrame) -> pd.DataFrame:
        X = pd.DataFrame({"N": sizes["n_params"].to_numpy(float)})
        if "D" in self.features_:
            X["D"] = sizes["tokens"].to_numpy(float)
        return X

    def _fit_laws(self) -> None:
        if len(self.sizes_) < len(self.features_) + 1:
            self.s_min_law_ = self.b_noise_law_ = self.zhang_law_ = None
            self.boot_coefs_ = np.zeros((0, 2, len(self.features_) + 1))
            return
        self.s_min_law_ = self._law("s_min", self.sizes_["s_min"])
        self.b_noise_law_ = self._law("b_noise", self.sizes_["b_noise"])
        z = self.sizes_["zhang_cbs"].to_numpy(float)
        self.zhang_law_ = self._law("zhang_cbs", z) if np.all(np.isfinite(z) & (z > 0)) else None
        A = np.column_stack([np.ones(len(self.sizes_)), np.log(self._features(self.sizes_).to_numpy(float))])
        # a resample whose S_min or B_noise is 0 or inf has no place on a log-log law: left out
        with np.errstate(divide="ignore"):
            logs = np.log(self.boot_)
        logs = logs[np.all(np.isfinite(logs), axis=(1, 2))]  # (reps, sizes, 2)
        coefs = [np.linalg.lstsq(A, logs[r], rcond=None)[0].T for r in range(len(logs))]
        self.boot_coefs_ = np.array(coefs).reshape(len(coefs), 2, A.shape[1])

    def _intervals(self) -> None:
        if len(self.boot_) < 10:
            for c in ("s_min", "b_noise"):
                self.sizes_[f"{c}_low"] = self.sizes_[f"{c}_high"] = math.nan
            return
        with np.errstate(invalid="ignore"):
            for j, c in enumerate(("s_min", "b_noise")):
                lo, hi = np.quantile(self.boot_[:, :, j], self._q(), axis=0, method="inverted_cdf")
                self.sizes_[f"{c}_low"], self.sizes_[f"{c}_high"] = lo, hi

    def predict(self, n_params: float, batches=None, tokens: float | None = None) -> dict[str, Any]:
        """The laws at a target size: {"n_params", "tokens", "b_noise" and "s_min" (with "_interval": the
        bootstrap over the table's rows, and "_law_interval": the law's Bayesian predictive across sizes,
        None from fewer sizes), "steps": [{"batch", "steps", "low", "high"}] at ``batches`` (default: every
        batch of the table), "zhang_cbs" (the law fitted on Zhang et al.'s definition), "extrapolated"}.
        FitError with fewer than 2 sizes, or without ``tokens`` when the laws use D."""
        if self.b_noise_law_ is None:
            raise FitError(
                f"{len(self.sizes_)} model size(s) in the table: the laws in N need 2 or more; add a size"
            )
        if "D" in self.features_ and tokens is None:
            raise FitError("the laws use D (the table gives tokens per size): give the target's tokens")
        X = pd.DataFrame({"N": [float(n_params)]} | ({"D": [float(tokens)]} if "D" in self.features_ else {}))
        a = np.r_[1.0, np.log(X.iloc[0].to_numpy(float))]
        s_min, b_noise = (float(law.predict(X)[0]) for law in (self.s_min_law_, self.b_noise_law_))
        bs = np.asarray(sorted(self.table_.frame["batch"].unique()) if batches is None else batches, float)
        boot = np.exp(self.boot_coefs_ @ a)  # (reps, 2): S_min, B_noise
        out: dict[str, Any] = {"n_params": float(n_params), "tokens": tokens}
        for j, (name, law, v) in enumerate(
            (("s_min", self.s_min_law_, s_min), ("b_noise", self.b_noise_law_, b_noise))
        ):
            out[name] = v
            out[f"{name}_interval"] = self._pct(boot[:, j])
            out[f"{name}_law_interval"] = (
                [float(x[0]) for x in law.predict_interval(X, self.level)] if hasattr(law, "dof_") else None
            )
        steps = []
        for b in bs:
            lo, hi = self._pct(boot[:, 0] * (1 + boot[:, 1] / b)) or (None, None)
            s = s_min * (1 + b_noise / b)
            steps.append(
                {"batch": float(b), "steps": s, "low": lo, "high": hi} | self._steps_law_interval(X, b, s)
            )
        out["steps"] = steps
        out["zhang_cbs"] = float(self.zhang_law_.predict(X)[0]) if self.zhang_law_ is not None else None
        lo, hi = self.sizes_["n_params"].min(), self.sizes_["n_params"].max()
        out["extrapolated"] = bool(not lo <= n_params <= hi)
        return out

    def _steps_law_interval(self, X: pd.DataFrame, b: float, s: float) -> dict[str, float | None]:
        """The scatter across sizes for the steps at batch ``b``: a power law in N (and D) of the sizes'
        fitted S(b), its Bayesian predictive interval in log space re-centred on the prediction ``s`` (the
        two laws' product is not itself a power law of the sizes' S(b)); None from fewer than 3 sizes."""
        if len(self.sizes_) <= len(self.features_) + 1:
            return {"law_low": None, "law_high": None}
        y = self.sizes_["s_min"] * (1 + self.sizes_["b_noise"] / b)
        law = PowerLaw(self.features_, "steps").fit(self._features(self.sizes_), y.to_numpy(float))
        lo, hi = (float(v[0]) for v in law.predict_interval(X, self.level))
        mid = float(law.predict(X)[0])
        return {"law_low": s * lo / mid, "law_high": s * hi / mid}

    def _pct(self, v: np.ndarray) -> list[float] | None:
        if len(v) < 10:
            return None
        return [float(x) for x in np.quantile(v, self._q())]

    def laws_dict(self) -> dict[str, Any]:
        """The fitted laws as JSON-able text and numbers: formula, constant, exponents and their intervals
        (Bayesian across sizes; None from too few sizes)."""
        out = {}
        for name, law in (
            ("b_noise", self.b_noise_law_),
            ("s_min", self.s_min_law_),
            ("zhang_cbs", self.zhang_law_),
        ):
            if law is None:
                continue
            out[name] = {
                "formula": law.formula(),
                "coef": law.coef_,
                "exponents": law.exponents_,
                "exponent_interval": law.exponent_interval(self.level) if hasattr(law, "dof_") else None,
                "rmse_log": getattr(law, "rmse_log_", None),
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        """Settings, per-size fits, laws and notes as a JSON-able dict."""
        t = self.table_
        return {
            "citation": CITATION,
            "unit": t.unit,
            "seq_len": t.seq_len,
            "fit": {
                "loss": self.loss,
                "drop_plateau": self.drop_plateau,
                "level": self.level,
                "n_boot": self.n_boot,
            },
            "sizes": self.sizes_.replace({np.nan: None}).to_dict("records"),
            "laws": self.laws_dict(),
            "notes": list(t.notes),
        }

    def report(self, n_params: float | None = None, tokens: float | None = None) -> dict[str, Any]:
        """What ``oasl batch critical --steps-table`` prints as JSON: :meth:`to_dict`, and with ``n_params``
        the prediction there in the table's units: ``b_noise`` (sequences, or tokens for a table in
        tokens: ``b_noise_unit``), ``s_min`` (steps), their ``_interval`` and ``_law_interval``,
        ``steps: [{batch_size_seqs (or batch_tokens), steps, low, high}]`` for each batch of the table, and
        ``zhang`` (Zhang et al.'s definition refitted on the table, and their published law)."""
        d = self.to_dict()
        d["interval"] = (
            f"{self.level:.0%} intervals. *_interval and steps low/high: percentile bootstrap over the table's "
            f"rows ({self.n_boot} resamples of the batch sizes within each size, refitted through the laws): "
            "the table's measurement noise only; *_law_interval and steps law_low/law_high: the laws' "
            "Bayesian predictive interval, the scatter of sizes about the law (None from fewer than 3 sizes)"
        )
        if n_params is None:
            return d
        p = self.predict(n_params, tokens=tokens)
        col = self.table_.batch_column
        unit = "sequences" if self.table_.unit == "seqs" else "tokens"
        steps = [{col: s.pop("batch"), **s} for s in p.pop("steps")]
        zc = p.pop("zhang_cbs")
        pred = {"target_params": float(n_params), "target_tokens": tokens, "b_noise_unit": unit}
        pred |= {k: v for k, v in p.items() if k not in ("n_params", "tokens")}
        if self.table_.seq_len and unit == "sequences":
            pred["b_noise_tokens"] = p["b_noise"] * self.table_.seq_len
        pred["steps"] = steps
        pub = zhang_published(n_params) if unit == "sequences" else None
        pred["zhang"] = {
            "definition": "B* = 1.2 B_ref + 0.2 B_noise (20% more steps than linear scaling from B_ref; "
            "S(B) fitted in log steps on every batch)",
            "citation": ZHANG_CITATION,
            "b_ref": self.b_ref if self.b_ref is not None else self._default_ref(self.table_),
            "cbs": zc,
            "published_formula": "B* = 93.2 N[M]^0.468 sequences (their notebook, fit on 85M-1.2B)",
            "published_cbs": pub,
        }
        return pred | d
