"""Laws across model sizes from a steps-to-target table: :class:`StepsTableFit` fits each size's
S(B) = S_min (1 + B_noise / B) (McCandlish et al. 2018, Sec. 2.3, Eq. 2.11; :mod:`oasl.laws.steps_table`
reads the table and fits one size), a bootstrap over the table's rows, power laws of B_noise and S_min in N
(and D) with :class:`~oasl.laws.PowerLaw`, Zhang et al. 2024's critical batch beside them, and the report
``oasl batch critical --steps-table`` prints (docs/critical_batch_tables.md).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from oasl.errors import FitError
from oasl.laws.power import PowerLaw
from oasl.laws.steps_table import (
    CITATION,
    IDENTIFIABLE,
    ZHANG_CITATION,
    StepsTable,
    fit_steps,
    plateau_mask,
    zhang_cbs,
    zhang_published,
)

S_MIN_FORMS = ("auto", "power", "e_min")


class StepsTableFit:
    """Per-size S(B) fits and the laws of B_noise and S_min across sizes, from a :class:`StepsTable`.

    ``loss``: "rel" or "log" (:func:`fit_steps`); ``drop_plateau``: drop the plateau batches
    (:func:`plateau_mask`) before each size's fit; ``level``, ``n_boot``, ``seed``: the bootstrap over the
    table's rows; ``b_ref``, ``overhead``: Zhang et al.'s definition (:func:`zhang_cbs`; ``b_ref`` in the
    table's unit, default 256 sequences, none for a table in tokens without a ``seq_len``).

    ``s_min_form``: the law of S_min. ``"power"``: its own power law in N. ``"e_min"``: the examples the
    target takes at small batch, E_min = S_min B_noise, proportional to N (so S_min = c N / B_noise(N), a
    power law with exponent 1 - the B_noise exponent): what a table whose targets are each size's
    compute-optimal loss implies (the target is reached at D proportional to N; Zhang et al.'s targets are
    Chinchilla-scaled). ``"auto"`` (default): the one that predicts the largest size's steps better from the
    other sizes (median over its batches of |predicted / steps - 1|), with 3 or more sizes and laws in N
    alone; "power" otherwise. ``s_min_selection_`` records the choice and both errors.

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
        s_min_form: str = "auto",
    ):
        if s_min_form not in S_MIN_FORMS:
            raise FitError(f"s_min_form {s_min_form!r}: use one of {', '.join(S_MIN_FORMS)}")
        self.s_min_form = s_min_form
        self.loss, self.drop_plateau, self.level = loss, drop_plateau, level
        self.n_boot, self.seed = n_boot, seed
        self.b_ref, self.overhead = b_ref, overhead

    def _q(self) -> list[float]:
        return [(1 - self.level) / 2, (1 + self.level) / 2]

    def fit(self, table: StepsTable) -> StepsTableFit:
        """Fit every size of ``table`` and the laws across sizes. Returns self. FitError naming the size
        whose batches do not pin its B_noise (beyond 100x its largest batch or below 1/100 of its
        smallest: :data:`~oasl.laws.steps_table.IDENTIFIABLE`)."""
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
            # beyond these bounds the table does not pin B_noise: S_min's share of the steps at the
            # largest batch (or B_noise/B at the smallest) is under 1%
            if not (b.min() / IDENTIFIABLE < b_noise < IDENTIFIABLE * b.max()):
                why = (
                    f"lies beyond {IDENTIFIABLE:g}x the largest batch (the steps fall as 1/B throughout)"
                    if b_noise > b.min()
                    else f"lies below 1/{IDENTIFIABLE:g} of the smallest batch (the steps barely fall with B)"
                )
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
            self.s_min_selection_ = {"form": None, "why": f"{len(self.sizes_)} size(s): no law"}
            return
        self.b_noise_law_ = self._law("b_noise", self.sizes_["b_noise"])
        self.s_min_selection_ = self._select_s_min_form()
        form = self.s_min_selection_["form"]
        self.s_min_law_ = (
            self._e_min_law(self.sizes_, self.b_noise_law_)
            if form == "e_min"
            else self._law("s_min", self.sizes_["s_min"])
        )
        z = self.sizes_["zhang_cbs"].to_numpy(float)
        self.zhang_law_ = self._law("zhang_cbs", z) if np.all(np.isfinite(z) & (z > 0)) else None
        A = np.column_stack([np.ones(len(self.sizes_)), np.log(self._features(self.sizes_).to_numpy(float))])
        # a resample whose S_min or B_noise is 0 or inf has no place on a log-log law: left out
        with np.errstate(divide="ignore"):
            logs = np.log(self.boot_)
        logs = logs[np.all(np.isfinite(logs), axis=(1, 2))]  # (reps, sizes, 2)
        coefs = [np.linalg.lstsq(A, logs[r], rcond=None)[0].T for r in range(len(logs))]
        if form == "e_min" and coefs:  # S_min's law follows each resample's B_noise law: E_min = c N
            log_n = np.log(self.sizes_["n_params"].to_numpy(float))
            for r, c in enumerate(coefs):
                k = float(np.mean(logs[r][:, 0] + logs[r][:, 1] - log_n))
                c[0] = np.r_[k - c[1][0], 1.0 - c[1][1]]
        self.boot_coefs_ = np.array(coefs).reshape(len(coefs), 2, A.shape[1])

    def _e_min_law(self, sizes: pd.DataFrame, b_noise_law: PowerLaw) -> PowerLaw:
        """S_min = c N / B_noise(N): E_min = S_min B_noise proportional to N (``s_min_form="e_min"``), ``c``
        the geometric mean of the sizes' E_min / N; its scatter (log sd of the sizes' S_min about it) is
        the law's interval."""
        n = sizes["n_params"].to_numpy(float)
        k = float(np.mean(np.log(sizes["e_min"].to_numpy(float) / n)))
        a_b, beta = math.log(b_noise_law.coef_), float(b_noise_law.exponents_["N"])
        resid = np.log(sizes["s_min"].to_numpy(float)) - (k - a_b + (1.0 - beta) * np.log(n))
        sigma = float(np.sqrt(np.sum(resid**2) / max(len(n) - 1, 1)))
        return PowerLaw.fixed(
            math.exp(k - a_b),
            {"N": 1.0 - beta},
            "s_min",
            citation=CITATION + "; E_min = S_min B_noise proportional to N",
            valid_range={"N": (float(n.min()), float(n.max()))},
            sigma_log=sigma,
        )

    def _select_s_min_form(self) -> dict[str, Any]:
        """Which law of S_min (``s_min_form``): the given one, or with "auto" the one that predicts the
        largest size's steps better from the smaller sizes' fits (a held-out check on the table itself)."""
        if self.s_min_form != "auto":
            return {"form": self.s_min_form, "why": "given"}
        sz = self.sizes_
        if self.features_ != ("N",) or len(sz) < 3:
            why = "laws in (N, D)" if self.features_ != ("N",) else f"{len(sz)} sizes: the check needs 3"
            return {"form": "power", "why": f"{why}; the default"}
        train, held = sz.iloc[:-1], sz.iloc[-1]
        X = pd.DataFrame({"N": train["n_params"].to_numpy(float)})
        point = len(X) <= 2
        b_law = PowerLaw(("N",), "b_noise")._fit(
            X, train["b_noise"].to_numpy(float), None, None, point_only=point
        )
        laws = {
            "power": PowerLaw(("N",), "s_min")._fit(
                X, train["s_min"].to_numpy(float), None, None, point_only=point
            ),
            "e_min": self._e_min_law(train, b_law),
        }
        g = self.table_.frame[self.table_.frame["n_params"] == held["n_params"]]
        b, s = g["batch"].to_numpy(float), g["steps"].to_numpy(float)
        q = pd.DataFrame({"N": [float(held["n_params"])]})
        bn = float(b_law.predict(q)[0])
        errs = {
            f: float(np.median(np.abs(float(law.predict(q)[0]) * (1 + bn / b) / s - 1.0)))
            for f, law in laws.items()
        }
        form = "e_min" if errs["e_min"] < errs["power"] else "power"
        return {
            "form": form,
            "why": f"the {held['n_params']:.3g}-parameter size's steps from the smaller sizes",
            "held_out_n_params": float(held["n_params"]),
            "median_abs_err": errs,
        }

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
        tied = self.s_min_selection_["form"] == "e_min"
        if tied and "s_min" in out and out["b_noise"]["exponent_interval"]:
            # S_min's exponent is 1 - B_noise's: its interval is B_noise's, mirrored
            lo, hi = out["b_noise"]["exponent_interval"]["N"]
            out["s_min"]["exponent_interval"] = {"N": (1.0 - hi, 1.0 - lo)}
            out["s_min"]["rmse_log"] = math.sqrt(self.s_min_law_.sigma2_)
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
                "s_min_form": self.s_min_selection_["form"],
                "s_min_selection": self.s_min_selection_,
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
            return _finite(d)
        with np.errstate(over="ignore", invalid="ignore"):  # a far target overflows to inf: written as null
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
        return _finite(pred | d)


def _finite(v):
    """``v`` with every non-finite float replaced by None (strict JSON has no inf or nan)."""
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_finite(x) for x in v]
    if isinstance(v, float | np.floating):
        return float(v) if math.isfinite(v) else None
    return v
