"""Plots of located optima: loss vs one HP per group (:func:`plot_optima`) and the loss surface over
two HPs per group (:func:`plot_joint_optima`). matplotlib is imported lazily with the Agg backend."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from oasl.errors import DataError
from oasl.report.axes import HP_LABELS, LOSS_LABELS, group_title, has_width, legend_below, log_axis, pyplot


def _panels(n: int, width: float = 4.4, height: float = 3.4):
    plt = pyplot()
    cols = min(3, max(1, n))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return plt, fig, list(axes.flat)


def _rows_of(runs: pd.DataFrame, row: pd.Series, group_by: Sequence[str]) -> pd.DataFrame:
    mask = np.ones(len(runs), bool)
    for g in group_by:
        v = row[g]
        col = runs[g]
        mask &= (col.isna() if pd.isna(v) else col == v).to_numpy()
    return runs[mask]


def _title(row: pd.Series, group_by: Sequence[str]) -> str:
    return group_title({g: row[g] for g in group_by})


def _finite(g: pd.DataFrame, loss: str) -> np.ndarray:
    from oasl.optima._common import run_masks

    finished, diverged = run_masks(g, loss)
    return finished & ~diverged


def _check(runs, optima, cols):
    if not isinstance(optima, pd.DataFrame) or optima.empty:
        raise DataError("nothing to plot: the optima table is empty (run locate_optima first)")
    missing = [c for c in cols if c not in runs.columns]
    if missing:
        raise DataError(f"cannot plot: the runs table has no column {', '.join(map(repr, missing))}")


def plot_optima(
    df_runs: pd.DataFrame,
    optima_df: pd.DataFrame,
    over: str = "lr",
    group_by: Sequence[str] = ("optimizer", "n_params", "tokens"),
    path: str | Path = "optima.png",
    loss: str = "final_val_loss",
) -> Path:
    """Loss vs ``over`` (log x) per group, one panel per row of ``optima_df`` (from
    :func:`oasl.optima.locate_optima`): the runs (diverged ones as red crosses at the top), the fitted
    parabola over its window, the refined optimum with its CI (grey span), the observed near-optimal
    band (green span; left out when it has no width) and the note when a flag is raised. The legend is
    one for the figure, under the panels; log-axis labels are few and plain. Saves a PNG at ``path``
    and returns it."""
    group_by = [group_by] if isinstance(group_by, str) else list(group_by)
    _check(df_runs, optima_df, [over, loss, *group_by])
    plt, fig, axes = _panels(len(optima_df))
    for ax, (_, o) in zip(axes, optima_df.iterrows(), strict=False):
        g = _rows_of(df_runs, o, group_by)
        ok = _finite(g, loss)
        h = pd.to_numeric(g[over], errors="coerce").to_numpy(float)
        y = pd.to_numeric(g[loss], errors="coerce").to_numpy(float)
        best = o.get("best_loss", np.nan)
        if ok.any():
            best = np.nanmin(y[ok]) if not np.isfinite(best) else best
            # frame the bottom of the valley: far-off runs would squash it
            lo_h, hi_h = o.get("fit_low", np.nan), o.get("fit_high", np.nan)
            in_win = ok & (h >= lo_h * 0.99) & (h <= hi_h * 1.01) if np.isfinite(lo_h) else ok
            span = max(np.nanmax(y[in_win]) - best, 1e-3 * abs(best)) if in_win.any() else 0.02 * abs(best)
            # show the valley around the window, not the far walls (or blown-up runs) that flatten it
            shown = ok & (y <= best + 5 * span)
            top = float(np.nanmax(y[shown])) + 0.3 * span
            ax.scatter(h[ok], np.minimum(y[ok], top), s=16, color="C0", zorder=3, label="runs")
            above = ok & (y > top)
            if above.any():
                ax.scatter(
                    h[above],
                    np.full(above.sum(), top),
                    marker="^",
                    color="C0",
                    s=22,
                    zorder=3,
                    label="above the view (clipped)",
                )
            ax.set_ylim(best - 0.25 * span, top + 0.1 * span)
        else:
            top = 1.0
        if (~ok).any():
            ax.scatter(
                h[~ok],
                np.full(int((~ok).sum()), ax.get_ylim()[1] if ok.any() else top),
                marker="x",
                color="C3",
                s=30,
                zorder=4,
                clip_on=False,
                label="diverged",
            )
        a = o.get("curvature", np.nan)
        if bool(o.get("refined", False)) and np.isfinite(a) and np.isfinite(o.get("fit_low", np.nan)):
            xs = np.linspace(math.log(o["fit_low"]), math.log(o["fit_high"]), 100)
            ax.plot(
                np.exp(xs),
                o["loss_at_opt"] + a * (xs - math.log(o["opt"])) ** 2,
                color="C1",
                lw=1.3,
                label="parabola",
                zorder=2,
            )
        if has_width(o.get("band_low", np.nan), o.get("band_high", np.nan)):
            ax.axvspan(o["band_low"], o["band_high"], color="C2", alpha=0.25, lw=0, label="near-optimal band")
        lo, hi = o.get("ci_low", np.nan), o.get("ci_high", np.nan)
        if (np.isfinite(lo) or np.isfinite(hi)) and not (
            np.isfinite(lo) and np.isfinite(hi) and not has_width(lo, hi)
        ):
            xl = ax.get_xlim() if len(h) else (lo, hi)
            ax.axvspan(
                lo if np.isfinite(lo) else xl[0],
                hi if np.isfinite(hi) else xl[1],
                color="k",
                alpha=0.1,
                lw=0,
                label="optimum's CI",
            )
        title = _title(o, group_by)
        if np.isfinite(o.get("opt", np.nan)):
            ax.axvline(o["opt"], color="k", lw=1.1, label="optimum")
            title += f"\noptimum {over} {o['opt']:.3g}"
        ax.set_xscale("log")
        log_axis(ax, "x")
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_xlabel(HP_LABELS.get(over, over) + " (log scale)")
        ax.set_ylabel(LOSS_LABELS.get(loss, loss))
        note = str(o.get("note", "") or "")
        ax.set_title(title, fontsize=8.5)
        if note:  # the flag and what to do, under the panel title
            lines = textwrap.wrap(note, 70)
            text = "\n".join(lines[:3]) + (" ..." if len(lines) > 3 else "")
            ax.set_title(text, fontsize=6.5, color="C3", loc="left", y=1.0)
            ax.set_title(title + "\n" * min(len(lines), 3), fontsize=8.5)
        if not ok.any():
            ax.set_yticks([])
    legend_below(fig, axes)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_joint_optima(
    df_runs: pd.DataFrame,
    joint_df: pd.DataFrame,
    over: Sequence[str] = ("lr", "batch_size"),
    group_by: Sequence[str] = ("optimizer", "n_params", "tokens"),
    path: str | Path = "joint_optima.png",
    loss: str = "final_val_loss",
    near: float | None = None,
    eps: float = 0.0025,
) -> Path:
    """The loss landscape over two HPs per group (log axes), one panel per row of ``joint_df`` (from
    :func:`oasl.optima.locate_joint_optima`): runs coloured by their loss excess over the best (%,
    clipped at 5), contours of the fitted surface (refitted with ``near``; default that of
    :func:`oasl.optima.fit_surface`), the best run (star), the refined optimum with its CI (cross)
    and the runs within ``eps`` of the best (green rings). Saves a PNG at ``path`` and returns it."""
    from oasl.errors import FitError
    from oasl.optima import fit_surface

    over = tuple(over)
    group_by = [group_by] if isinstance(group_by, str) else list(group_by)
    _check(df_runs, joint_df, [*over, loss, *group_by])
    plt, fig, axes = _panels(len(joint_df), 4.4, 3.7)
    h1, h2 = over
    for ax, (_, o) in zip(axes, joint_df.iterrows(), strict=False):
        g = _rows_of(df_runs, o, group_by)
        g = g[_finite(g, loss)]
        if g.empty:
            ax.set_title(_title(o, group_by) + " (no finite run)", fontsize=9)
            continue
        x, y = g[h1].to_numpy(float), g[h2].to_numpy(float)
        lv = g[loss].to_numpy(float)
        best = lv.min()
        excess = 100 * (lv / best - 1)
        sc = ax.scatter(x, y, c=np.minimum(excess, 5), cmap="viridis_r", s=22, vmin=0, vmax=5, zorder=3)
        try:
            surf = fit_surface(g, over, loss) if near is None else fit_surface(g, over, loss, near=near)
            gx = np.geomspace(x.min(), x.max(), 80)
            gy = np.geomspace(y.min(), y.max(), 80)
            GX, GY = np.meshgrid(gx, gy)
            Z = surf.predict(np.column_stack([GX.ravel(), GY.ravel()])).reshape(GX.shape)
            levels = best * (1 + np.array([0.0025, 0.005, 0.01, 0.02, 0.04]))
            cs = ax.contour(GX, GY, Z, levels=levels, colors="k", linewidths=0.6, alpha=0.6)
            ax.clabel(cs, fmt={lev: f"{100 * (lev / best - 1):.2g}%" for lev in levels}, fontsize=5.5)
        except FitError:
            pass
        band = excess <= 100 * eps + 1e-12
        ax.scatter(x[band], y[band], s=70, facecolors="none", edgecolors="C2", lw=1.3, zorder=4)
        ax.scatter([o[f"argmin_{h1}"]], [o[f"argmin_{h2}"]], marker="*", s=120, color="C3", zorder=5)
        if np.isfinite(o.get(f"opt_{h1}", np.nan)):
            ox, oy = o[f"opt_{h1}"], o[f"opt_{h2}"]

            def err(lo, hi, c):
                lo = c if not np.isfinite(lo) else lo
                hi = c if not np.isfinite(hi) else hi
                return [[c - lo], [hi - c]]

            ax.errorbar(
                [ox],
                [oy],
                xerr=err(o[f"ci_low_{h1}"], o[f"ci_high_{h1}"], ox),
                yerr=err(o[f"ci_low_{h2}"], o[f"ci_high_{h2}"], oy),
                fmt="P",
                color="k",
                ms=7,
                capsize=3,
                zorder=6,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        log_axis(ax, "x")
        log_axis(ax, "y")
        ax.set_xlabel(h1)
        ax.set_ylabel(h2)
        ax.set_title(_title(o, group_by), fontsize=9)
        fig.colorbar(sc, ax=ax, label="loss above best (%)", shrink=0.8)
    fig.suptitle(
        f"star: best run; cross: surface optimum with CI; rings: runs within {100 * eps:.2g}% of the best",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
