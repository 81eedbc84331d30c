"""The fast-transfer section of the report: the optimal HP and the optimal loss vs N on log-log axes
with their fitted approaches to a limit (:mod:`oasl.laws.transfer` computes; this only draws)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from oasl.report.axes import legend_below, log_axis, pyplot


def plot_transfer(result, path: str | Path) -> Path:
    """Two log-log panels for a :class:`~oasl.laws.transfer.TransferResult`: h*(N) with
    ``h_inf exp(a N^-beta)``, and L*(N) - L_inf with ``b N^-alpha`` (left out when no group has a loss
    law); the target size marked. Returns the path."""
    plt = pyplot()
    has_loss = any(math.isfinite(g.alpha) for g in result.groups)
    if has_loss:
        fig, (ax_h, ax_l) = plt.subplots(1, 2, figsize=(10, 3.8))
    else:  # no loss law could be fitted: one panel, not an empty one beside it
        fig, ax_h = plt.subplots(1, 1, figsize=(6, 3.8))
        ax_l = None
    for i, g in enumerate(result.groups):
        color = f"C{i % 10}"
        label = " ".join(str(v) for v in g.group.values()) or "all"
        n = np.asarray(g.n_params, float)
        hi = max(n.max(), g.target_params if math.isfinite(g.target_params) else 0)
        grid = np.geomspace(n.min(), hi, 100)
        ax_h.scatter(n, g.h_opt, color=color, s=18)
        ax_h.plot(grid, g.predict_h(grid), color=color, label=f"{label}: beta {g.beta:.2f} ({g.verdict})")
        if math.isfinite(g.target_params):
            ax_h.scatter([g.target_params], [g.target_h], color=color, marker="*", s=80)
        if ax_l is not None and math.isfinite(g.alpha):
            excess = np.asarray(g.loss_opt, float) - g.l_inf
            ok = excess > 0
            ax_l.scatter(n[ok], excess[ok], color=color, s=18)
            ax_l.plot(grid, g.b * grid**-g.alpha, color=color, label=f"{label}: alpha {g.alpha:.2f}")
    ax_h.set(
        xscale="log", yscale="log", xlabel="N (non-embedding parameters)", ylabel=f"optimal {result.over}"
    )
    ax_h.set_title("optimal HP: h_inf exp(a N^-beta) (star: target)", fontsize=9)
    if ax_l is not None:
        ax_l.set(
            xscale="log",
            yscale="log",
            xlabel="N (non-embedding parameters)",
            ylabel="L*(N) - L_inf (nats/token)",
        )
        ax_l.set_title("optimal loss: L_inf + b N^-alpha", fontsize=9)
    shown = [ax for ax in (ax_h, ax_l) if ax is not None and ax.has_data()]
    for ax in shown:
        log_axis(ax, "x")
        log_axis(ax, "y")
    legend_below(fig, shown or [ax_h], ncol=2)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def transfer_section(result, out: Path) -> tuple[Path, pd.DataFrame]:
    """(figure path, table) of the report's transfer section."""
    return plot_transfer(result, out / "transfer.png"), result.table()
