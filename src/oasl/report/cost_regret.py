"""The cost-to-regret plot: per optimizer, each method's expected regret at the target against the target
runs it spent (:mod:`oasl.validate.curves`), with 90% interval bands and the noise floor. It draws what
validation computed and fits nothing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from oasl.report.axes import legend_below, pyplot

#: label and matplotlib style of each method's line
STYLE = {
    "oasl": ("the law (0 runs)", "C2", "*"),
    "oasl-risk": ("the law, risk-adjusted (0 runs)", "C3", "*"),
    "oasl-refine": ("law + k runs (oasl-refine)", "C2", "o"),
    "random": ("random search", "C0", "s"),
    "tpe": ("TPE", "C1", "^"),
    "gp": ("GP-BO", "C4", "D"),
    "naive": ("naive transfer", "C7", "x"),
    "defaults": ("library default", "C5", "+"),
    "step-law": ("Step Law", "C8", "v"),
    "mup": ("muP", "C9", "P"),
}


def has_curves(validation) -> bool:
    """True when some optimizer of ``validation`` carries cost-to-regret curves."""
    return any(getattr(ov, "curves", None) for ov in getattr(validation, "optimizers", []))


def plot_cost_to_regret(validation, path: str | Path) -> Path:
    """One panel per optimizer: target runs on x, expected regret (%) on y (symlog below 0.1%), a line per
    method with its 90% band, trained points filled and replayed ones hollow, the noise floor dashed."""
    plt = pyplot()
    ovs = [ov for ov in validation.optimizers if getattr(ov, "curves", None)]
    from matplotlib.ticker import FuncFormatter

    fig, axes = plt.subplots(1, len(ovs), figsize=(max(7.0, 5.2 * len(ovs)), 4.2), squeeze=False)
    axes = list(axes.flat)
    for ax, ov in zip(axes, ovs, strict=True):
        low, high = 0.0, 0.0
        for name, pts in ov.curves.items():
            label, color, marker = STYLE.get(name, (name, "k", "."))
            pts = [p for p in pts if p.get("mean") is not None and math.isfinite(p["mean"])]
            if not pts:
                continue
            k = np.array([p["k"] for p in pts], dtype=float)
            mean = 100 * np.array([p["mean"] for p in pts])
            lo = 100 * np.array([p["lo"] if _ok(p.get("lo")) else p["mean"] for p in pts])
            hi = 100 * np.array([p["hi"] if _ok(p.get("hi")) else p["mean"] for p in pts])
            low, high = min(low, float(lo.min())), max(high, float(hi.max()))
            if len(pts) > 1:
                ax.plot(k, mean, color=color, lw=1.3, label=label)
                ax.fill_between(k, lo, hi, color=color, alpha=0.15)
            else:
                ax.errorbar(k, mean, yerr=[mean - lo, hi - mean], color=color, fmt="none", lw=1)
            trained = np.array([p.get("source") == "trained" for p in pts])
            ax.scatter(
                k[trained],
                mean[trained],
                color=color,
                marker=marker,
                s=36,
                zorder=3,
                label=None if len(pts) > 1 else label,
            )
            hollow = {"color": color} if marker in ("x", "+") else {"facecolors": "none", "edgecolors": color}
            ax.scatter(k[~trained], mean[~trained], marker=marker, s=30, zorder=3, **hollow)
        floor = getattr(ov, "noise_floor", math.nan)
        if _ok(floor):
            high = max(high, 100 * float(floor))
            ax.axhline(100 * floor, color="k", ls="--", lw=0.9, label="noise floor (oracle's seed spread)")
        ax.set_yscale("symlog", linthresh=0.1)
        ax.set_ylim(min(0.0, low), 1.6 * high if high > 0 else None)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.set_xticks(range(0, 9))
        ax.set_xlabel("target runs spent (ladder not counted)")
        ax.set_ylabel("expected regret vs oracle (%)")
        ax.set_title(f"{ov.optimizer}: cost to regret (filled: trained, hollow: read off)", fontsize=9)
    legend_below(fig, axes, ncol=3 if len(axes) == 1 else 5)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def _ok(v) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False
