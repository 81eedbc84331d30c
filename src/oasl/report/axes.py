"""Axis and legend helpers shared by the report's plots: log-axis ticks that cannot overlap, one
legend outside the data, bands drawn only when they have a width. matplotlib is imported lazily."""

from __future__ import annotations

import math

MAX_TICKS = 5  # labels per log axis; 5 short plain labels fit a 4-inch panel at 7-8 pt


def pyplot():
    """matplotlib.pyplot on the Agg backend (imported here so that `import oasl` stays light)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


HP_LABELS = {
    "lr": "peak learning rate",
    "batch_tokens": "batch (tokens)",
    "batch_seqs": "batch (sequences)",
    "warmup_frac": "warmup (fraction of steps)",
    "weight_decay": "weight decay",
    "beta1": "beta1",
    "beta2": "beta2",
    "momentum": "momentum",
}
LOSS_LABELS = {"final_val_loss": "final validation loss (nats/token)", "loss": "loss (nats/token)"}


def human(v) -> str:
    """A count people read at a glance: 760000000 -> 760M, 3120 -> 3.12K, 2.5e12 -> 2.5T, 12 -> 12."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(x):
        return str(v)
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def group_title(values: dict) -> str:
    """A panel title from a group's values: ``adamw, N = 3.12K, D = 12.8K tokens`` (units, short numbers)."""
    parts = []
    for k, v in values.items():
        if k == "optimizer":
            parts.append(str(v))
        elif k == "n_params":
            parts.append(f"N = {human(v)}")
        elif k == "tokens":
            parts.append(f"D = {human(v)} tokens")
        else:
            parts.append(f"{k} = {human(v) if isinstance(v, (int, float)) else v}")
    return ", ".join(parts) or "all runs"


def plain(v: float) -> str:
    """A tick label without mathtext: 0.05, 2, 30000, 1e-05, 1e+06 (never 2x10^-2)."""
    return f"{v:g}"


def log_ticks_between(lo: float, hi: float, max_ticks: int = MAX_TICKS) -> list[float]:
    """At most ``max_ticks`` round values (1, 2, 5 x 10^k; then 1 x 10^k; then every other decade)
    in ``[lo, hi]``, so that labels never crowd; at least the two ends' round neighbours when the range
    holds none."""
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
        return []
    k0, k1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    for subs in ((1, 2, 5), (1, 3), (1,)):
        ticks = [m * 10.0**k for k in range(k0, k1 + 1) for m in subs if lo <= m * 10.0**k <= hi * (1 + 1e-9)]
        if 2 <= len(ticks) <= max_ticks:
            return ticks
    decades = [10.0**k for k in range(k0, k1 + 1) if lo <= 10.0**k <= hi * (1 + 1e-9)]
    if len(decades) > max_ticks:
        step = math.ceil(len(decades) / max_ticks)
        return decades[::step]
    if len(decades) >= 2:
        return decades
    # a range inside one 1-2-5 step: label two points inside it, rounded to 3 digits where that keeps
    # them apart
    a, b = lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo)
    ra, rb = float(f"{a:.3g}"), float(f"{b:.3g}")
    return [ra, rb] if ra < rb else [a, b]


def log_axis(ax, axis: str = "x") -> None:
    """Put at most MAX_TICKS plainly formatted labels on a log ``axis`` of ``ax`` and no minor labels.
    Call after the data and limits are set."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    a = ax.xaxis if axis == "x" else ax.yaxis
    lo, hi = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
    ticks = log_ticks_between(lo, hi)
    if ticks:
        a.set_major_locator(FixedLocator(ticks))
    a.set_major_formatter(FuncFormatter(lambda v, _pos: plain(v)))
    a.set_minor_formatter(NullFormatter())


def legend_below(fig, axes, ncol: int = 6, fontsize: float = 7.5) -> None:
    """One legend for the whole figure, under the panels (never over data); entries de-duplicated by
    label across panels. Leaves room for it with ``fig.subplots_adjust``."""
    seen: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if not label.startswith("_"):
                seen.setdefault(label, handle)
    if not seen:
        return
    rows = math.ceil(len(seen) / ncol)
    height = fig.get_figheight()
    room = min(0.4, (0.2 * rows + 0.12) / height)  # the legend's inches as a fraction of the figure
    fig.tight_layout(rect=(0, room, 1, 1))
    fig.legend(
        list(seen.values()),
        list(seen),
        loc="lower center",
        ncol=min(ncol, len(seen)),
        fontsize=fontsize,
        frameon=False,
    )


def has_width(lo: float, hi: float, rel: float = 1e-6) -> bool:
    """True when ``[lo, hi]`` is a real band (finite, hi above lo by more than ``rel``), not a point."""
    return math.isfinite(lo) and math.isfinite(hi) and hi > lo * (1 + rel) if lo > 0 else hi > lo
