"""The critical batch size as a function of the loss, from gradient-noise-scale measurements.

Source: Kaplan et al. 2020, "Scaling Laws for Neural Language Models" (arXiv 2001.08361), Sec. 5.1,
Eq. 5.3: ``B_crit(L) = B_* / L^(1/alpha_B)`` (their fit on LMs: B_* ~ 2e8 tokens, alpha_B ~ 0.21), with
B_crit measured as the noise scale ``B_simple`` of McCandlish et al. 2018 (arXiv 1812.06162), which
:mod:`oasl.train.gns` records in a run's curve at each evaluation (``RunSpec.gns``).

Points: for each measured evaluation of each run, the validation loss L (nats/token) and B_simple in
tokens from running averages of |G|^2 and tr(Sigma) taken separately over the run's evaluations so
far (McCandlish et al. 2018, App. A.1). The law is a straight line in (log L, log B), fitted by least
squares; intervals come from a bootstrap over runs (a run's points are correlated, so runs are the unit).

The same law can be fitted on B_noise = tr(H Sigma) / (G^T H G) (McCandlish et al. 2018, Sec. 2.2; runs
with ``gns_hessian``, :mod:`oasl.train.gns_hessian`), smoothed the same way. On oasl's runs B_simple
mostly overestimates the measured critical batch and B_noise mostly underestimates it, so the two laws
are reported as a bracket (:func:`bracket_at`, :data:`BRACKET_EVIDENCE`; docs/deviations.md "B_noise").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from oasl.errors import FitError

CITATION = "Kaplan et al. 2020, Sec. 5.1 (B_crit(L) = B_* / L^(1/alpha_B)); McCandlish et al. 2018 (B_simple)"

# ``--scale`` names -> the noise_points column the law is fitted on, and how that estimate is called
SCALES = {"simple": "b_simple_tokens", "noise": "b_noise_tokens", "noise-adam": "b_noise_adam_tokens"}
SCALE_NAMES = {
    "b_simple_tokens": "B_simple",
    "b_noise_tokens": "B_noise",
    "b_noise_adam_tokens": "B_noise,Adam",
}
# What oasl's own runs say about the two estimates (benchmarks/RESULTS.md, section
# critical_batch_noise_constant_pooled and the per-seed sections; docs/deviations.md "B_noise")
BRACKET_EVIDENCE = (
    "on oasl's own runs (constant schedule, 4 seeds' curves averaged) the measured critical batch "
    "(steps/tokens trade-off) lay between B_noise and B_simple for 4 of 4 shapes at their best-resolved "
    "losses, at 1.2-1.7x B_noise and "
    "0.4-0.5x B_simple; a single seed's measured B_crit varies by up to 6x (benchmarks/RESULTS.md, "
    "critical_batch_noise_constant_pooled)"
)


def scale_column(scale: str) -> str:
    """The :func:`noise_points` column of a ``--scale`` name (simple, noise, noise-adam); ConfigError for
    another name."""
    from oasl.errors import ConfigError

    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}: use {', '.join(SCALES)}")
    return SCALES[scale]


def measured(points: pd.DataFrame, column: str) -> bool:
    """Whether ``points`` (from :func:`noise_points`) hold at least one positive finite value of ``column``."""
    if points is None or column not in getattr(points, "columns", ()):
        return False
    v = pd.to_numeric(points[column], errors="coerce").to_numpy(float)
    return bool(np.any(np.isfinite(v) & (v > 0)))


def noise_points(store, keys=None, decay: float = 0.5) -> pd.DataFrame:
    """Noise-scale points of the runs in ``store`` (a :class:`~oasl.store.Store`) that measured it.

    ``keys`` restricts to those runs. Returns a DataFrame, one row per measured evaluation: key,
    optimizer, parametrization, n_params, tokens, batch_seqs, batch_tokens, seq_len, step, loss (val,
    nats/token), lr_frac (the lr at that step over the run's peak lr), g2 and s (that evaluation's
    unbiased |G|^2 and tr(Sigma) per sequence, unsmoothed), g2_h and s_h (G^T H G and tr(H Sigma), the
    same for B_noise; NaN unless the run had ``gns_hessian``), g2_p and s_p (Adam's preconditioned pair),
    b_simple_seqs, b_simple_tokens (smoothed; see the module doc), b_noise_tokens and b_noise_adam_tokens
    (B_noise and its Adam variant in tokens, smoothed the same way from their pairs; NaN at evaluations
    that did not measure them), final (the run's last point). Empty when no run measured it."""
    from oasl.store import flatten_row
    from oasl.train.gns import curve_noise, smoothed_b_simple

    rows = []
    wanted = None if keys is None else set(keys)
    for row in store.rows():
        if row["status"] != "done" or row["source"] != "oasl" or (wanted and row["key"] not in wanted):
            continue
        if not row["spec"].get("gns"):
            continue
        curve = store.curve(row["key"])
        g2, s, loss = curve_noise(curve)
        if not len(g2):
            continue
        b = smoothed_b_simple(g2, s, decay)
        flat = flatten_row(row)
        evals = curve.dropna(subset=["gns_small_sq"])
        # G^T H G and tr(H Sigma) (and Adam's preconditioned pair) where the run measured B_noise too, and
        # B_noise smoothed like B_simple (App. A.1: the pair averaged separately, then divided), NaN at the
        # evaluations that did not measure the pair (no Hessian form, or no Adam moments yet)
        extra, smoothed = {}, {}
        for tag, small, big, name in (
            ("h", "gnsh_small_q", "gnsh_big_q", "b_noise_tokens"),
            ("p", "gnsp_small_q", "gnsp_big_q", "b_noise_adam_tokens"),
        ):
            cols = {small, big} <= set(evals.columns)
            both = evals[[small, big]].notna().all(axis=1).to_numpy() if cols else np.zeros(len(g2), bool)
            a, c, _ = curve_noise(evals, small, big) if cols else (np.zeros(0), np.zeros(0), None)
            full_a, full_c = np.full(len(g2), math.nan), np.full(len(g2), math.nan)
            full_a[both], full_c[both] = a, c
            extra[f"g2_{tag}"], extra[f"s_{tag}"] = full_a, full_c
            smoothed[name] = np.where(
                both, smoothed_b_simple(full_a, full_c, decay) * flat["seq_len"], math.nan
            )
        steps = evals["step"].to_numpy()
        # the schedule's lr at the measurement over the peak lr: B_simple at one loss depends on it (a run
        # that reaches the loss late in its decay has a smaller |G|^2; benchmarks/critical_batch.py)
        lr_frac = pd.to_numeric(evals["lr"], errors="coerce").to_numpy(float) / float(flat["lr"])
        for i in range(len(g2)):
            rows.append(
                {
                    "key": row["key"],
                    **{
                        k: flat.get(k)
                        for k in (
                            "optimizer",
                            "parametrization",
                            "n_params",
                            "tokens",
                            "batch_seqs",
                            "seq_len",
                        )
                    },
                    "batch_tokens": flat["batch_seqs"] * flat["seq_len"],
                    "step": int(steps[i]),
                    "lr_frac": float(lr_frac[i]),
                    "loss": float(loss[i]),
                    "g2": float(g2[i]),
                    "s": float(s[i]),
                    **{name: float(v[i]) for name, v in extra.items()},
                    "b_simple_seqs": float(b[i]),
                    "b_simple_tokens": float(b[i]) * flat["seq_len"],
                    **{name: float(v[i]) for name, v in smoothed.items()},
                    "final": i == len(g2) - 1,
                }
            )
    return pd.DataFrame(rows)


@dataclass
class CriticalBatchLaw:
    """``B_crit(L) = B_* / L^(1/alpha_B)`` in tokens, L in nats/token (Kaplan et al. 2020, Sec. 5.1).

    ``level``/``n_boot``/``seed``: the bootstrap over runs. Fitted: ``b_star_``, ``alpha_b_`` and their
    intervals ``b_star_interval_``/``alpha_b_interval_``, ``boot_`` (resampled (log B_*, slope) pairs),
    ``range_`` (loss range of the points), ``n_points_``, ``n_runs_``."""

    level: float = 0.9
    n_boot: int = 200
    seed: int = 0

    def fit(self, points: pd.DataFrame, column: str = "b_simple_tokens") -> CriticalBatchLaw:
        """Fit on :func:`noise_points` output (columns key, loss, b_simple_tokens), or on any frame with
        columns key (the bootstrap's unit), loss and ``column`` (a critical batch in tokens, e.g. one read
        off the steps/tokens trade-off, :mod:`oasl.laws.batch_tradeoff`). Returns self. FitError with
        fewer than 3 usable points or 2 runs, or a loss range of nothing; for a B_noise column
        (b_noise_tokens, b_noise_adam_tokens) without a measured value, FitError naming ``gns_hessian``."""
        if column in ("b_noise_tokens", "b_noise_adam_tokens") and not measured(points, column):
            adam = " with AdamW (the variant reads Adam's second moments)" if "adam" in column else ""
            raise FitError(
                f"no {SCALE_NAMES[column]} measurements in these runs: train them with "
                f"`run: {{gns: true, gns_hessian: true}}`{adam}, or use B_simple (`--scale simple`)"
            )
        need = {"key", "loss", column}
        if points is None or len(points) == 0 or not need <= set(points.columns):
            raise FitError(
                "no gradient-noise measurements: run the sweep with `run: {gns: true}` "
                "(RunSpec.gns) so each evaluation records B_simple"
            )
        name = SCALE_NAMES.get(column, column)
        why = (
            f" ({name} is undefined while the noise swamps the gradient; evaluate later in training)"
            if column in SCALE_NAMES
            else ""
        )
        ok = (
            np.isfinite(points["loss"])
            & np.isfinite(points[column])
            & (points[column] > 0)
            & (points["loss"] > 0)
        )
        p = points[ok]
        if len(p) < 3 or p["key"].nunique() < 2:
            raise FitError(
                f"{len(p)} usable {name} point(s) from {p['key'].nunique()} run(s): need 3 points from "
                f"2+ runs{why}"
            )
        x, y = np.log(p["loss"].to_numpy(float)), np.log(p[column].to_numpy(float))
        if np.ptp(x) == 0:
            raise FitError("every point has the same loss: the slope in L cannot be fitted")
        slope, icpt = np.polyfit(x, y, 1)
        self.b_star_, self.alpha_b_ = float(math.exp(icpt)), _alpha(slope)
        self.slope_ = float(slope)
        self.resid_sd_ = float(np.std(y - (icpt + slope * x), ddof=min(2, len(x) - 1)))
        keys = p["key"].to_numpy()
        runs = np.unique(keys)
        by_run = {k: np.flatnonzero(keys == k) for k in runs}
        rng = np.random.default_rng(self.seed)
        boot = []
        for _ in range(self.n_boot):
            idx = np.concatenate([by_run[k] for k in rng.choice(runs, len(runs))])
            if np.ptp(x[idx]) == 0:
                continue
            s, c = np.polyfit(x[idx], y[idx], 1)
            boot.append((c, s))
        self.boot_ = np.array(boot) if boot else np.zeros((0, 2))
        q = self._q()
        if len(self.boot_) >= 10:
            self.b_star_interval_ = tuple(float(v) for v in np.exp(np.quantile(self.boot_[:, 0], q)))
            al = np.array([_alpha(s) for s in self.boot_[:, 1]])
            self.alpha_b_interval_ = tuple(float(v) for v in np.quantile(al, q))
        else:
            self.b_star_interval_ = self.alpha_b_interval_ = (math.nan, math.nan)
        self.range_ = (float(p["loss"].min()), float(p["loss"].max()))
        self.n_points_, self.n_runs_ = len(p), len(runs)
        self.column_ = column
        return self

    def _q(self) -> tuple[float, float]:
        return ((1 - self.level) / 2, 1 - (1 - self.level) / 2)

    def _check(self) -> None:
        if not hasattr(self, "b_star_"):
            raise FitError("this CriticalBatchLaw is not fitted yet: call fit() first")

    def predict(self, loss) -> np.ndarray:
        """Critical batch in tokens at loss(es) ``loss`` (nats/token)."""
        self._check()
        return self.b_star_ * np.asarray(loss, float) ** self.slope_

    def predict_interval(self, loss, level: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Percentile interval of the prediction over the bootstrap (NaN without one)."""
        self._check()
        loss = np.atleast_1d(np.asarray(loss, float))
        if len(self.boot_) < 10:
            nan = np.full(len(loss), math.nan)
            return nan, nan
        lv = self.level if level is None else level
        logs = self.boot_[:, :1] + self.boot_[:, 1:] * np.log(loss)[None, :]
        lo, hi = np.quantile(logs, [(1 - lv) / 2, 1 - (1 - lv) / 2], axis=0)
        return np.exp(lo), np.exp(hi)

    def recommend(self, loss: float) -> dict[str, Any]:
        """The batch (tokens) for a target loss, with its interval, whether L lies outside the fit, and a
        ``warning`` (empty when none) where alpha_B's interval spans 0: the law's trend is not measured."""
        if not (math.isfinite(loss) and loss > 0):
            raise FitError(f"target loss must be a positive finite number (nats/token), got {loss}")
        lo, hi = self.predict_interval(loss)
        a_lo, a_hi = self.alpha_b_interval_
        warning = ""
        if not (math.isfinite(a_lo) and math.isfinite(a_hi)) or a_lo * a_hi <= 0 or self.slope_ >= 0:
            warning = (
                f"alpha_B's 90% interval [{a_lo:.3g}, {a_hi:.3g}] spans 0 (or is unknown): the measurements "
                "do not pin how B_crit moves with the loss, so this batch is not a recommendation; measure "
                "more sizes or longer runs (gns: true)"
            )
        return {
            "loss": float(loss),
            "batch_tokens": float(self.predict(loss)),
            "low": float(lo[0]),
            "high": float(hi[0]),
            "extrapolated": not (self.range_[0] <= loss <= self.range_[1]),
            "warning": warning,
        }

    def formula(self) -> str:
        self._check()
        return (
            f"B_crit(L) = {self.b_star_:.3g} / L^{-self.slope_:.3g} tokens"
            if self.slope_ < 0
            else (
                f"B_crit(L) = {self.b_star_:.3g} L^{self.slope_:.3g} tokens (rises with L: not Kaplan's shape)"
            )
        )

    def to_dict(self) -> dict[str, Any]:
        self._check()
        return {
            "kind": "critical_batch",
            "citation": CITATION,
            "column": self.column_,
            "estimate": SCALE_NAMES.get(self.column_, self.column_),
            "b_star": self.b_star_,
            "alpha_b": self.alpha_b_,
            "slope": self.slope_,
            "b_star_interval": list(self.b_star_interval_),
            "alpha_b_interval": list(self.alpha_b_interval_),
            "loss_range": list(self.range_),
            "n_points": self.n_points_,
            "n_runs": self.n_runs_,
            "formula": self.formula(),
        }


def _alpha(slope: float) -> float:
    """alpha_B from the fitted slope d log B / d log L = -1/alpha_B (inf for a flat line)."""
    return -1.0 / slope if slope != 0 else math.inf


def loss_at(
    store,
    n_params: float,
    tokens: float,
    loss_law=None,
    hint: str = "give --target-loss or a laws file with a loss law",
) -> tuple[float, str]:
    """Predicted loss (nats/token) at (N, D) from ``loss_law`` (a fitted :class:`~oasl.laws.LossLaw`), or
    from one fitted here on the store's best run per (optimizer, N, D). Returns (loss, where it came from).
    FitError when the store's runs cannot carry a loss law (fewer than 6 groups, N or D constant); its
    message ends with ``hint``, the fix in the words of the command that asked."""
    how = "the given loss law"
    if loss_law is None:
        from oasl.laws import LossLaw, best_runs

        df = store.to_dataframe(finished_only=True)
        df = df[np.isfinite(pd.to_numeric(df.get("final_val_loss"), errors="coerce"))]
        best = best_runs(df, loss="final_val_loss", group_by=("optimizer", "n_params", "tokens"))
        try:
            loss_law = LossLaw().fit(best["n_params"], best["tokens"], best["final_val_loss"])
        except FitError as exc:
            raise FitError(f"no loss law for the target ({exc}): {hint}") from None
        how = "a loss law fitted on the store's best runs"
    return float(loss_law.predict([n_params], [tokens])[0]), how


def fit_critical_batch(
    store, keys=None, level: float = 0.9, n_boot: int = 200, seed: int = 0, column: str = "b_simple_tokens"
):
    """:func:`noise_points` of ``store`` and the :class:`CriticalBatchLaw` fitted on their ``column``
    (b_simple_tokens, b_noise_tokens or b_noise_adam_tokens: :data:`SCALES`). FitError naming
    ``gns_hessian`` when a B_noise column was asked of runs that did not measure it."""
    pts = noise_points(store, keys)
    return pts, CriticalBatchLaw(level, n_boot, seed).fit(pts, column)


def bracket_at(upper: CriticalBatchLaw, lower: CriticalBatchLaw, loss: float) -> dict[str, Any]:
    """Both laws' recommendations at ``loss`` (nats/token): ``upper`` (fitted on B_simple) and ``lower``
    (on B_noise), the ends of the bracket that held the measured critical batch on oasl's runs
    (:data:`BRACKET_EVIDENCE`). Returns {"loss", "upper", "lower" (each :meth:`CriticalBatchLaw.recommend`),
    "ordered" (False where the lower end lies above the upper one), "evidence"}."""
    up, lo = upper.recommend(loss), lower.recommend(loss)
    return {
        "loss": float(loss),
        "upper": up,
        "lower": lo,
        "ordered": bool(lo["batch_tokens"] <= up["batch_tokens"]),
        "evidence": BRACKET_EVIDENCE,
    }
