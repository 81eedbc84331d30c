"""Plots people would rather see than read: laws on log-log axes with their interval bands, validation
bars, predicted loss curves (loss vs HP with optima lives in :mod:`oasl.report.plots_optima`).
matplotlib is imported lazily (Agg backend)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from oasl.report.axes import HP_LABELS, human, legend_below, log_axis, pyplot

_plt = pyplot


def _grid(n: int):
    plt = _plt()
    cols = min(3, max(1, n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return plt, fig, list(axes.flat)


def plot_laws(report, path: str | Path, target_n: float | None = None, target_d: float | None = None) -> Path:
    """Each fitted law on log-log axes vs N: the optima, the fitted line and its 90% band, the target."""
    items = [(t, law, report.optima[t]) for t, law in report.laws.items()]
    plt, fig, axes = _grid(len(items))
    for ax, (target, law, opt) in zip(axes, items, strict=False):
        for i, (optimizer, sub) in enumerate(opt.groupby("optimizer")):
            color = f"C{i}"
            N = sub["n_params"].astype(float)
            yerr = None
            if "ci_low" in sub and np.isfinite(sub["ci_low"]).all():
                yerr = [sub["opt"] - sub["ci_low"], sub["ci_high"] - sub["opt"]]
            ax.errorbar(N, sub["opt"], yerr=yerr, fmt="o", color=color, label=f"{optimizer} optima", ms=4)
            hi_n = max(N.max(), target_n or 0) * 1.5
            ns = np.geomspace(N.min() / 1.5, hi_n, 60)
            D = float(target_d or sub["tokens"].max())
            q = pd.DataFrame({"N": ns, "D": np.full(60, D), "C": 6 * ns * D, "optimizer": optimizer})
            if "D" in law.features and not target_d:
                q["D"] = np.interp(np.log(ns), np.log(N), sub["tokens"].astype(float))
            pred = law.predict(q)
            lo, hi = law.predict_interval(q, 0.9)
            ax.plot(ns, pred, color=color, lw=1.2, label=f"{optimizer} law")
            if np.any(np.asarray(hi) > np.asarray(lo) * (1 + 1e-6)):  # a zero-width band is left out
                ax.fill_between(ns, lo, hi, color=color, alpha=0.2, label=f"{optimizer} law, 90% band")
        if target_n:
            ax.axvline(target_n, color="k", ls="--", lw=1, label=f"target, N = {human(target_n)}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        log_axis(ax, "x")
        log_axis(ax, "y")
        ax.set_xlabel("N (non-embedding parameters)")
        ax.set_ylabel(f"optimal {HP_LABELS.get(target, target)}")
        sharing = {"separate": "one law per optimizer", "shared": "shared across optimizers"}.get(
            law.sharing, law.sharing
        )
        ax.set_title(f"optimal {target} vs N\n{law.form} law, {sharing}", fontsize=9)
    legend_below(fig, axes, ncol=3)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_validation(table: pd.DataFrame, path: str | Path) -> Path:
    """Bars of regret in % (error bars: the 90% interval when the table has ``regret_lo/regret_hi``, else
    the seed spread) and tuning compute per method, one panel pair per optimizer."""
    opts = list(dict.fromkeys(table["optimizer"]))
    plt = _plt()
    fig, axes = plt.subplots(len(opts), 2, figsize=(11, 3.4 * len(opts)), squeeze=False)
    for row, opt in zip(axes, opts, strict=True):
        sub = table[table["optimizer"] == opt]
        x = np.arange(len(sub))
        reg = sub["regret_mean"].replace([np.inf], np.nan) * 100
        yerr = sub["regret_std"].fillna(0).to_numpy() * 100
        if {"regret_lo", "regret_hi"} <= set(sub.columns):  # the 90% interval, where validation gives one
            lo, hi = (sub[c].to_numpy(float) * 100 for c in ("regret_lo", "regret_hi"))
            ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(reg.to_numpy(float))
            mid = reg.to_numpy(float)
            yerr = np.where(ok, [np.maximum(mid - lo, 0), np.maximum(hi - mid, 0)], [yerr, yerr])
        row[0].bar(
            x,
            reg.fillna(0),
            yerr=yerr,
            color=["C2" if m == "oasl" else "C7" if m == "oracle" else "C0" for m in sub["method"]],
        )
        for xi, r in zip(x, reg, strict=True):
            if not np.isfinite(r):
                row[0].text(xi, 0, "diverged", rotation=90, ha="center", va="bottom", fontsize=7)
        row[0].set_xticks(x, sub["method"], rotation=45, ha="right", fontsize=8)
        row[0].set_ylabel("regret vs oracle (%)")
        row[0].set_title(f"{opt}: final-loss regret", fontsize=9)
        row[1].bar(x, sub["tuning_runs"], color="C1")
        row[1].set_xticks(x, sub["method"], rotation=45, ha="right", fontsize=8)
        row[1].set_ylabel("tuning compute (target-run equivalents)")
        row[1].set_title(f"{opt}: tuning compute", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_curves(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    path: str | Path,
    title: str = "",
    observed: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    zoom_from: float | None = None,
    bands: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    level: float = 0.9,
) -> Path:
    """Loss curves (step, loss) by name: predicted as lines, observed as dots when given. ``zoom_from``:
    frame the y axis on the values at steps >= it, where schedules differ (the first steps' fast drop
    would otherwise flatten every difference). ``bands`` by name: (low, high) at the same steps, drawn
    as the ``level`` interval around the predicted line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    lo, hi = np.inf, -np.inf
    for i, (name, (x, y)) in enumerate(curves.items()):
        ax.plot(x, y, color=f"C{i % 10}", lw=1.2, label=f"{name} (predicted)")
        series = [(np.asarray(x), np.asarray(y))]
        if bands and name in bands:
            blo, bhi = (np.asarray(b, float) for b in bands[name])
            ax.fill_between(
                x, blo, bhi, color=f"C{i % 10}", alpha=0.2, lw=0, label=f"{name}, {level:.0%} interval"
            )
            series += [(np.asarray(x), blo), (np.asarray(x), bhi)]
        if observed and name in observed:
            ox, oy = observed[name]
            ax.scatter(ox, oy, s=6, color=f"C{i % 10}", alpha=0.5, label=f"{name} (observed)")
            series.append((np.asarray(ox), np.asarray(oy)))
        for sx, sy in series:
            keep = (sx >= zoom_from) & np.isfinite(sy) if zoom_from is not None else np.isfinite(sy)
            if keep.any():
                lo, hi = min(lo, float(sy[keep].min())), max(hi, float(sy[keep].max()))
    if zoom_from is not None and np.isfinite(lo) and hi > lo:
        pad = 0.05 * (hi - lo)
        ax.set_ylim(lo - pad, hi + pad)
        right = max((float(np.max(x)) for x, _ in curves.values() if len(x)), default=zoom_from)
        if right > zoom_from:  # equal limits would make matplotlib warn and draw nothing
            ax.set_xlim(zoom_from, right)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title, fontsize=9)
    legend_below(fig, [ax], ncol=3)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
