"""The multi-power law of the loss curve (Luo et al., ICLR 2025, "A Multi-Power Law for Loss Curve
Prediction Across Learning Rate Schedules", arXiv 2503.12811, Eq. 5)::

    L(t) = L0 + A (S1(t) + S_W)^(-alpha) - LD(t)
    LD(t) = B sum_{k<=t} (eta_{k-1} - eta_k) G(eta_k^(-gamma) S_k(t)),   G(x) = 1 - (C x + 1)^(-beta)
    S_k(t) = sum_{tau=k..t} eta_tau

Convention (docs/deviations.md, "Multi-power law: warmup convention"): with ``warmup="exclude"`` (the
default) the formula is the paper's Eq. 5 with t counted from the end of warmup: the LR changes up to the
end of warmup are left out of LD (``S1(t) + S_W`` is still the LR area of every step 0..t). With
``warmup="include"`` the loss-drop sum runs over every step, warmup included (there
``eta_{k-1} - eta_k < 0``), with ``eta_{-1} = 0``; this is the authors' released code, and the only
convention in which their published parameter sets reproduce the paper's errors, so those sets are
used with ``warmup="include"``. The default was chosen on the training curves only: fitted on two of the
paper's three training schedules and scored on the third, the paper's form predicts better than the code's
(benchmarks/schedules_mpl.py, "Choosing the default warmup convention").

Evaluating LD(t) exactly costs (observed steps) x (steps with an LR change). For fitting, consecutive
LR changes are merged into blocks of ``fit_block`` steps that never straddle an observed step or a
change of sign, each represented by its drop-weighted mean LR and mean partial area (a midpoint
quadrature of the sum; the error is below 1e-5 in loss on the paper's schedules, see the tests).
Predictions use blocks only when a (steps x changes) matrix would exceed ``MAX_CELLS`` cells.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from oasl.curves.curve import HUBER_DELTA, Curve
from oasl.curves.estimator import MAX_CELLS, RobustFit, ScheduleLaw
from oasl.errors import FitError

SHAPE = ("C", "beta", "gamma")  # the parameters of G, the shape of the loss drop


def _merge(d, eta, Pm1, k, cell, block):
    """Merge the LR changes at steps ``k`` into blocks of at most ``block`` steps that share a ``cell``
    (an interval between break points) and a sign; each block is represented by its summed drop and
    its drop-weighted mean log LR and mean preceding LR area (a midpoint quadrature of the sum). Returns
    drop, log eta, preceding area, and the first and last step of each block."""
    dk = d[k]
    brk = (np.diff(cell) != 0) | (np.diff(dk > 0) != 0) | (np.diff(k // block) != 0)
    starts = np.r_[0, np.nonzero(brk)[0] + 1]
    ends = np.r_[starts[1:] - 1, len(k) - 1]
    drop = np.add.reduceat(dk, starts)
    # eta enters as eta^-gamma: average log eta (an LR of exactly 0 is floored, giving G = 1)
    log_eta = np.log(np.maximum(eta[k], 1e-20 * max(float(eta.max()), 1e-300)))
    leta_rep = np.add.reduceat(dk * log_eta, starts) / drop
    pm1_rep = np.add.reduceat(dk * Pm1[k], starts) / drop
    return drop, leta_rep, pm1_rep, k[starts], k[ends]


def drop_blocks(
    lrs: np.ndarray,
    steps: np.ndarray,
    first_k: int,
    near_block: int = 1,
    far_block: int = 1,
    near_steps: int = 0,
) -> dict[str, np.ndarray]:
    """Terms of the loss-drop sum LD(t) at sorted observed ``steps``, as two quadratures.

    The LR changes eta_{k-1} - eta_k (eta_{-1} = 0; from step ``first_k`` on) within ``near_steps``
    steps before an observed step t, where G varies fastest, are merged into blocks of ``near_block``
    steps ("near_*" arrays: a padded n_steps x width gather); older ones into blocks of ``far_block``
    steps ("far_*": an n_steps x n_blocks matrix of partial areas S_k(t)). Block edges fall on every t
    and every t - near_steps, so each change is counted once per t; unused cells hold S = 0 and
    drop = 0, whose G(0) = 0 term vanishes. With both block sizes 1 the sum is exact. Also returns
    ``S1``, the LR area of steps 0..t."""
    T = int(steps[-1])
    eta = lrs[: T + 1]
    d = np.r_[0.0, eta[:-1]] - eta
    P = np.cumsum(eta)
    Pm1 = P - eta  # LR area of steps 0..k-1
    k = np.arange(first_k, T + 1)
    k = k[np.abs(d[k]) > 1e-12 * max(float(eta.max()), 1e-300)]
    n = len(steps)
    Pt = P[steps]
    out = {"S1": Pt}
    if len(k) == 0:  # no LR change counts: LD = 0 (one zero term keeps the shapes uniform)
        zero = np.zeros((n, 1))
        return {
            **out,
            "far_S": zero,
            "far_drop": np.zeros(1),
            "far_log_eta": np.zeros(1),
            "near_S": zero,
            "near_drop": zero.copy(),
            "near_log_eta": zero.copy(),
        }
    cut = steps - near_steps  # changes at k <= cut[i] are "far" for row i
    edges = np.unique(np.r_[steps, cut])
    cell = np.searchsorted(edges, k, side="left")
    drop_c, leta_c, pm1_c, _, end_c = _merge(d, eta, Pm1, k, cell, far_block)
    use_c = end_c[None, :] <= cut[:, None]
    out["far_S"] = np.where(use_c, np.maximum(Pt[:, None] - pm1_c[None, :], 0.0), 0.0)
    out["far_drop"], out["far_log_eta"] = drop_c, leta_c
    if near_steps > 0:
        drop_f, leta_f, pm1_f, start_f, end_f = _merge(d, eta, Pm1, k, cell, near_block)
        lo = np.searchsorted(start_f, cut, side="right")  # first block starting after the cut
        hi = np.searchsorted(end_f, steps, side="right")  # one past the last block ending by t
    else:
        drop_f, leta_f, pm1_f = np.zeros(1), np.zeros(1), np.zeros(1)
        lo = hi = np.zeros(n, dtype=int)
    width = max(int(np.max(hi - lo)), 1)
    idx = lo[:, None] + np.arange(width)[None, :]
    valid = idx < hi[:, None]
    idx = np.where(valid, idx, 0)
    out["near_S"] = np.where(valid, np.maximum(Pt[:, None] - pm1_f[idx], 0.0), 0.0)
    out["near_drop"] = np.where(valid, drop_f[idx], 0.0)
    out["near_log_eta"] = leta_f[idx]
    return out


class MultiPowerLaw(ScheduleLaw):
    """Multi-power law of the whole loss curve as a function of the LR schedule (Luo et al. 2025).

    ``MultiPowerLaw().fit(curves)`` fits L0, A, alpha, B, C, beta, gamma on curves of one model size
    (the paper fits on a constant, a cosine and a two-stage schedule); ``predict(lrs, steps)`` gives
    the loss of any schedule. See :class:`~oasl.curves.estimator.ScheduleLaw` for the shared
    settings; here ``warmup`` defaults to ``"exclude"`` (the paper's Eq. 5, see the module docstring;
    the authors' published parameters need ``"include"``). ``prior``: an optional prior on G's shape
    from another fit the user supplies (a fitted :class:`MultiPowerLaw`, or a dict with C, beta, gamma
    and ``lr``, the peak LR of the curves it was fitted on; :meth:`shape_of`); ``shape_prior``: its sd
    in log units (default 0.25 when a prior is given). Without ``prior`` the fit is the paper's plain objective: nothing outside the curves being
    fitted enters it. ``fit_block``: (near block, far block, near span) in steps of the quadrature used
    while fitting (``(1, 1, 0)`` = exact).
    """

    PARAMS = ("L0", "A", "alpha", "B", "C", "beta", "gamma")
    KIND = "multi_power"
    CITATION = "Luo et al. 2025, A Multi-Power Law for Loss Curve Prediction Across LR Schedules, arXiv 2503.12811, Eq. 5"

    def __init__(
        self,
        warmup: str = "exclude",
        warmup_steps: int | None = None,
        shape_prior: float | None = None,
        prior=None,
        fit_block: tuple[int, int, int] = (4, 64, 256),
        n_starts: int = 3,
        n_boot: int = 30,
        n_segments: int = 8,
        seed: int = 0,
        delta: float = HUBER_DELTA,
        maxiter: int = 500,
    ):
        super().__init__(warmup, warmup_steps, n_starts, n_boot, n_segments, seed, delta, maxiter)
        self.shape_prior, self.fit_block = shape_prior, fit_block
        self.prior = None if prior is None else self.shape_of(prior)

    def _settings(self):
        return {
            **super()._settings(),
            "shape_prior": self.shape_prior,
            "prior": self.prior,
            "fit_block": tuple(self.fit_block),
        }

    @staticmethod
    def shape_of(law) -> dict[str, float]:
        """G's shape (C, beta, gamma) and the peak LR ``lr`` it was fitted at, from a fitted
        :class:`MultiPowerLaw` (its ``lr_ref_``) or a dict with those keys; FitError when incomplete."""
        if isinstance(law, MultiPowerLaw):
            law._check_fitted()
            if getattr(law, "lr_ref_", None) is None:
                raise FitError(
                    "the prior law carries no reference LR: fit it, or pass a dict with C, beta, gamma, lr"
                )
            d = {**{k: law.params_[k] for k in SHAPE}, "lr": law.lr_ref_}
        else:
            d = dict(law)
        missing = [k for k in (*SHAPE, "lr") if k not in d]
        if missing:
            raise FitError(
                f"a shape prior needs C, beta, gamma and lr (the peak LR it was fitted at); missing {missing}"
            )
        out = {k: float(d[k]) for k in (*SHAPE, "lr")}
        if not all(math.isfinite(v) and v > 0 for v in out.values()):
            raise FitError(f"shape prior values must be positive and finite: {out}")
        return out

    def _penalty(self, logp):
        """Gaussian prior of sd ``shape_prior`` (log units, 0.25 by default) on C, beta and gamma, centred on
        the user-supplied ``prior``, with C's centre moved to this fit's LR scale as
        C0 (eta_ref / eta_prior)^-(1 - gamma0) (eta_ref: the largest training LR), which keeps the rate of G
        per LR-step unchanged. Without a prior the fit is the paper's plain objective (docs/deviations.md)."""
        if self.prior is None:
            if self.shape_prior is not None:
                raise FitError(
                    "shape_prior sets the sd of a prior: give its centre too (prior=another fitted law)"
                )
            return None
        sd = 0.25 if self.shape_prior is None else float(self.shape_prior)
        P = self.prior
        ref = getattr(self, "_log_eta_ref", math.log(P["lr"]))
        log_c0 = math.log(P["C"]) - (1 - P["gamma"]) * (ref - math.log(P["lr"]))
        d = torch.stack([logp[4] - log_c0, logp[5] - math.log(P["beta"]), logp[6] - math.log(P["gamma"])])
        return (d**2).sum() / (2 * sd**2)

    def _features(self, lrs, steps, fit):
        if fit:
            near, far, near_steps = self.fit_block
        else:  # exact unless the (steps x changes) matrix would be too large
            b = max(1, math.ceil(len(steps) * (int(steps[-1]) + 1) / MAX_CELLS))
            near, far, near_steps = b, b, 0
        f = drop_blocks(lrs, steps, self._first_k(lrs), near, far, near_steps)
        out = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in f.items()}
        out["peak_gap"] = torch.as_tensor(float(lrs.max()) - lrs[steps], dtype=torch.float64)
        return out

    def _pred(self, p, f):
        pred = p["L0"] + p["A"] * f["S1"] ** (-p["alpha"])
        ld = 0.0
        for part in ("far", "near"):
            x = f[f"{part}_S"] * torch.exp(-p["gamma"] * f[f"{part}_log_eta"])
            G = 1 - torch.exp(-p["beta"] * torch.log1p(p["C"] * x))
            ld = ld + (G @ f[f"{part}_drop"] if part == "far" else (G * f["near_drop"]).sum(1))
        return pred - p["B"] * ld

    def _bounds(self, curves: Sequence[Curve]):
        """Bounds of the optimizer's coordinates (log parameters; log C' for C, see ``_to_log``)."""
        lmax = max(float(c.loss.max()) for c in curves)
        return [
            (math.log(1e-3), math.log(10 * lmax)),
            (math.log(1e-6), math.log(1e4)),
            (math.log(1e-3), math.log(5.0)),
            (math.log(1e-3), math.log(1e8)),
            (-40.0, 40.0),
            (math.log(1e-3), math.log(10.0)),
            (math.log(1e-3), math.log(5.0)),
        ]

    # G depends on C eta^-gamma, and the LRs span only a decade, so log C and gamma are nearly collinear
    # (slope log eta ~ -8). The optimizer works with C' = C eta_ref^-gamma (eta_ref: the largest LR of the
    # training curves), which removes most of that correlation; results are reported as C.
    def _reference(self, curves):
        self._log_eta_ref = math.log(max(float(c.lrs.max()) for c in curves))
        self.lr_ref_ = math.exp(self._log_eta_ref)

    def _to_log(self, u):
        ref = getattr(self, "_log_eta_ref", 0.0)
        return torch.cat([u[:4], (u[4] + u[6].exp() * ref).reshape(1), u[5:]])

    def _from_log(self, x):
        x = np.array(x, dtype=float)
        x[4] = x[4] - math.exp(x[6]) * getattr(self, "_log_eta_ref", 0.0)
        return x

    def _starts(self, curves, feats):
        """The paper's two-stage start (App. C; the authors' ``fitting.py``): fit the simplified law
        ``L0 + A S1^-alpha - B (eta_max - eta_t)`` from a grid over L0, alpha, B (A by least squares),
        then combine its best optimum with a grid over C, beta, gamma."""
        lmin = min(float(c.loss.min()) for c in curves)
        simple = RobustFit(
            lambda th, i: (
                th[0].exp()
                + th[1].exp() * feats[i]["S1"] ** (-th[2].exp())
                - th[3].exp() * feats[i]["peak_gap"]
            ),
            [np.log(c.loss) for c in curves],
            self._bounds(curves)[:4],
            self.delta,
        )
        grid = []
        S1 = np.concatenate([f["S1"].numpy() for f in feats])
        gap = np.concatenate([f["peak_gap"].numpy() for f in feats])
        L = np.concatenate([c.loss for c in curves])
        for L0 in lmin - np.array([0.05, 0.2, 0.4, 0.7, 1.0]):
            if L0 <= 0:
                continue
            for alpha in (0.3, 0.5, 0.7):
                for B in (100.0, 400.0, 1000.0):
                    x = S1 ** (-alpha)
                    A = float(np.dot(x, L - L0 + B * gap) / np.dot(x, x))
                    if A > 0:
                        grid.append(np.log([L0, A, alpha, B]))
        if not grid:
            grid.append(np.log([0.5 * lmin, 1.0, 0.5, 300.0]))
        base, _ = simple.best_of(grid, n_keep=2, maxiter=300)
        return [
            np.r_[base, np.log([C, beta, gamma])]
            for C in (0.5, 2.0, 8.0)
            for beta in (0.3, 0.6)
            for gamma in (0.3, 0.6)
        ]
