"""The multi-power-law paper's released loss curves and published figures (Luo et al., ICLR 2025,
arXiv 2503.12811; repository thu-yao-01-luo/MultiPowerLaw, MIT), for validating the schedule laws.

The CSVs (``../shared/data/multipowerlaw/csv_{25,100}``, see its NOTES.md) hold every 128th step from
the end of warmup. The per-step schedule is rebuilt here from the definitions in the authors'
``src/lr_schedules.py`` and ``src/data_loader.py`` (peak 3e-4; linear warmup from 0 reaching the peak
at step 2159; end LR 3e-5) and checked against the CSV's ``lr`` column when loading.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from oasl.curves.curve import Curve
from oasl.errors import DataError

PEAK_LR, END_LR, WARMUP_STEPS = 3e-4, 3e-5, 2160
TRAIN_SCHEDULES = ("cosine_24000", "constant_24000", "wsdcon_9")
TEST_SCHEDULES = (
    "constant_72000",
    "cosine_72000",
    "wsd_20000_24000",
    "wsdld_20000_24000",
    "wsdcon_3",
    "wsdcon_18",
)
SIZES = {"25M": 25e6, "100M": 100e6, "400M": 400e6}  # nominal parameter counts of the paper's models

# The README's fitted parameters (the authors' config.py PARAMS); valid in the code's convention,
# i.e. MultiPowerLaw.from_params(PAPER_PARAMS[size], warmup="include") (not the default "exclude").
PAPER_PARAMS = {
    "25M": {
        "L0": 3.04045406,
        "A": 0.52468604,
        "alpha": 0.50786857,
        "B": 363.78751622,
        "C": 2.06560812,
        "beta": 0.58279013,
        "gamma": 0.64142257,
    },
    "100M": {
        "L0": 2.6514477,
        "A": 0.60115152,
        "alpha": 0.45295811,
        "B": 437.9464276,
        "C": 2.13245612,
        "beta": 0.59785199,
        "gamma": 0.65523644,
    },
    "400M": {
        "L0": 2.37474466,
        "A": 0.65421216,
        "alpha": 0.42878731,
        "B": 523.42464371,
        "C": 2.02462735,
        "beta": 0.59350493,
        "gamma": 0.63472457,
    },
}
# The README's test-set figures: mean over the six test curves of the per-curve mean relative error
# (PredE), of the per-curve worst relative error (WorstE), and of R^2.
PAPER_TEST_ERRORS = {
    "25M": {"mean_rel": 0.00110, "worst_rel": 0.00409, "r2": 0.9988},
    "100M": {"mean_rel": 0.00142, "worst_rel": 0.00583, "r2": 0.9983},
    "400M": {"mean_rel": 0.00168, "worst_rel": 0.00995, "r2": 0.9978},
}


def paper_lrs(name: str) -> np.ndarray:
    """Per-step LR (index = step, length = total steps) of the paper's schedule ``name`` (a CSV stem:
    cosine_T, constant_T, wsd_S_T (geometric decay from step S), wsdld_S_T (linear decay), wsdcon_X
    (3e-4 until step 8000, then X e-5; 16000 steps))."""
    kind, *nums = name.split("_")
    try:
        if kind in ("cosine", "constant") and len(nums) == 1:
            total = int(nums[0])
        elif kind in ("wsd", "wsdld") and len(nums) == 2:
            decay, total = int(nums[0]), int(nums[1])
        elif kind == "wsdcon" and len(nums) == 1:
            total, low = 16000, int(nums[0]) * 1e-5
        else:
            raise ValueError
    except ValueError:
        raise DataError(
            f"unknown schedule {name!r}: expected cosine_T, constant_T, wsd_S_T, wsdld_S_T or wsdcon_X"
        ) from None
    if total <= WARMUP_STEPS:
        raise DataError(f"schedule {name!r}: total steps must exceed the {WARMUP_STEPS} warmup steps")
    t = np.arange(total, dtype=float)
    lrs = np.full(total, PEAK_LR)
    lrs[:WARMUP_STEPS] = np.linspace(0.0, PEAK_LR, WARMUP_STEPS)
    if kind == "cosine":
        s = t[WARMUP_STEPS:]
        lrs[WARMUP_STEPS:] = END_LR + 0.5 * (PEAK_LR - END_LR) * (
            1 + np.cos(math.pi * (s - WARMUP_STEPS) / (total - WARMUP_STEPS))
        )
    elif kind in ("wsd", "wsdld"):
        if not WARMUP_STEPS <= decay < total:
            raise DataError(f"schedule {name!r}: decay start must lie between {WARMUP_STEPS} and {total}")
        frac = (t[decay:] - decay) / (total - decay)
        lrs[decay:] = (
            PEAK_LR ** (1 - frac) * END_LR**frac if kind == "wsd" else PEAK_LR * (1 - frac) + END_LR * frac
        )
    elif kind == "wsdcon":
        lrs[8000:] = low
    return lrs


def load_paper_curves(size: str = "25M", root: str | Path | None = None) -> dict[str, Curve]:
    """The paper's curves of model ``size`` ("25M" or "100M") as :class:`Curve` objects keyed by schedule
    name, with the rebuilt per-step schedule (checked against the CSV's lr column) and ``n_params``
    set to the nominal size. ``root`` defaults to ``oasl.data.shared.shared_data("multipowerlaw")``."""
    import pandas as pd

    if size not in SIZES:
        raise DataError(f"unknown model size {size!r}: expected one of {', '.join(SIZES)}")
    if root is None:
        from oasl.data.shared import shared_data

        root = shared_data("multipowerlaw")
    folder = Path(root) / f"csv_{size[:-1]}"
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise DataError(f"no multi-power-law CSVs in {folder} (see ../shared/data/multipowerlaw/NOTES.md)")
    out = {}
    for path in files:
        df = pd.read_csv(path)
        lrs = paper_lrs(path.stem)
        steps = df["step"].to_numpy()
        keep = steps < len(lrs)  # as the authors' loader: drop a point at the very end of the schedule
        gap = np.abs(lrs[steps[keep]] - df["lr"].to_numpy()[keep])
        if np.any(gap > 1e-6 * PEAK_LR):
            raise DataError(
                f"{path.name}: rebuilt LR schedule disagrees with the CSV lr column (worst gap {gap.max():.3g})"
            )
        out[path.stem] = Curve(
            steps[keep], lrs, df["loss"].to_numpy()[keep], name=path.stem, n_params=SIZES[size]
        )
    return out


def paper_slopes(
    sizes: tuple[str, str] = ("25M", "400M"), names=("L0", "A", "alpha", "B", "C", "beta", "gamma")
) -> dict[str, float]:
    """Elasticities d log(param) / d log N between two of the paper's published parameter sets, a
    transfer rule for :class:`~oasl.curves.ScaledScheduleLaw` fitted on one size."""
    a, b = sizes
    dn = math.log(SIZES[b] / SIZES[a])
    return {k: math.log(PAPER_PARAMS[b][k] / PAPER_PARAMS[a][k]) / dn for k in names}
