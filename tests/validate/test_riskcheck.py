"""The ladder's own check of its zero-run point (oasl.validate.riskcheck) and the card line that shows it."""

import math

import numpy as np
import pandas as pd
import pytest

from oasl.laws.risk import DIVERGE_COST
from oasl.validate.curves import card_line, check_line
from oasl.validate.riskcheck import TIE_PCT, read_off, risk_check


def valley(lrs, best_lr, loss0=3.0, above=0.08, below=0.03, diverge=math.log(6), seeds=(0, 1)):
    rows = []
    for lr in lrs:
        t = math.log(lr / best_lr)
        for s in seeds:
            if t >= diverge:
                rows.append({"lr": lr, "final_val_loss": math.nan, "status": "diverged", "seed": s})
            else:
                rows.append(
                    {
                        "lr": lr,
                        "final_val_loss": loss0 + (above if t > 0 else below) * t * t,
                        "status": "done",
                        "seed": s,
                    }
                )
    return pd.DataFrame(rows)


def test_read_off_interpolates_stops_at_divergence_and_holds_the_edge():
    lrs = [1e-3 * 2**k for k in range(-3, 4)]
    v = valley(lrs, 1e-3)
    assert read_off(v, 1e-3)["regret"] == pytest.approx(0.0)
    mid = read_off(v, 1e-3 * 2**0.5)["regret"]  # halfway (in log) between 1e-3 and 2e-3
    assert mid == pytest.approx(0.5 * 0.08 * math.log(2) ** 2, rel=1e-6)
    lost = read_off(v, 8e-3)  # at the first diverged lr (x8 > x6 above the optimum)
    assert lost["diverged"] and lost["regret"] == DIVERGE_COST
    edge = read_off(v, 1e-5)  # below every tried lr: the lowest one's regret, a lower bound
    assert not edge["diverged"] and edge["regret"] == pytest.approx(0.03 * math.log(1 / 8) ** 2, rel=1e-6)


def ladder(exponent=-0.5, n=(2e4, 5e4, 1e5), opts=("adamw", "lion"), off=None):
    frames = []
    grid = np.geomspace(1e-4, 1e-1, 13)
    for opt, c in zip(opts, (0.5, 0.05), strict=False):
        for k, N in enumerate(n):
            best = c * N**exponent * ((off or {}).get(k, 1.0))
            v = valley(grid * c / 0.5, best)
            v["optimizer"], v["n_params"], v["tokens"] = opt, int(N), 1e6
            frames.append(v)
    return pd.concat(frames, ignore_index=True)


def test_risk_check_holds_out_the_largest_rung_and_applies_the_criterion():
    c = risk_check(ladder())
    assert c["held_out_n_params"] == 100000 and set(c["optimizers"]) == {"adamw", "lion"}
    for row in c["optimizers"].values():
        lo, hi = row["interval"]
        assert lo < row["centre"] < hi and row["risk"] <= row["centre"] * 1.0001
    cen = np.mean([r["centre_regret_pct"] for r in c["optimizers"].values()])
    assert c["centre_regret_pct"] == pytest.approx(cen)
    assert c["prefer"] == ("risk" if c["risk_regret_pct"] < c["centre_regret_pct"] - TIE_PCT else "centre")
    # a law that lands on the optimum: the centre wins (the rule can only move away from it)
    assert c["prefer"] == "centre" and c["centre_regret_pct"] < 0.2
    line = check_line(c)
    assert "prefers the law's centre" in line and f"{c['centre_regret_pct']:+.2f}%" in line


def test_an_overshooting_law_lets_the_risk_point_win():
    # jagged training optima (a wide interval) and a held-out optimum 3x below the trend: the centre
    # overshoots towards divergence, the risk-adjusted point stays below it
    c = risk_check(ladder(n=(1e4, 2e4, 5e4, 1e5), off={0: 1.8, 1: 0.6, 2: 1.8, 3: 1 / 3}))
    assert c["risk_regret_pct"] < c["centre_regret_pct"] and c["prefer"] == "risk"
    assert "risk-adjusted point" in check_line(c)


def test_the_refinements_answer_is_checked_on_the_held_out_rung_too():
    from oasl.validate.riskcheck import REFINE_KS, uses_risk

    c = risk_check(ladder())
    for row in c["optimizers"].values():
        assert set(row["refine"]) == {str(k) for k in REFINE_KS}
        for v in row["refine"].values():
            assert v["mean"] >= 0 and v["risk"] >= 0
    means = [v["mean"] for r in c["optimizers"].values() for v in r["refine"].values()]
    assert c["refine_mean_regret_pct"] == pytest.approx(np.mean(means))
    want = "risk" if c["refine_risk_regret_pct"] < c["refine_mean_regret_pct"] - TIE_PCT else "posterior mean"
    assert c["refine_prefer"] == want
    # two runs around a law that lands on the optimum of a symmetric-enough valley: both answers are close
    assert c["refine_mean_regret_pct"] < 0.2
    # k = 1 follows the zero-run verdict, k >= 2 the refinement's
    mixed = {"prefer": "risk", "refine_prefer": "posterior mean"}
    assert uses_risk(mixed, 1) and not uses_risk(mixed, 2) and not uses_risk(mixed, 4)
    assert not uses_risk({"prefer": "centre", "why": "2 rungs"}, 1)
    assert uses_risk({"prefer": "centre", "refine_prefer": "risk"}, 3)


def test_too_few_rungs_keep_the_centre_and_say_why():
    c = risk_check(ladder(n=(2e4, 5e4)))
    assert c["prefer"] == "centre" and "2 rung" in c["why"]
    summ = {"law": 0.01, "refine": 0.002, "refine_k": 2, "zero_run_check": c}
    assert card_line(summ).endswith(f"{check_line(c)}.")


def test_the_refinement_check_replays_every_seed_of_the_held_out_rung():
    df = ladder()
    held = df["n_params"] == df["n_params"].max()
    # seed 1 of the held-out rung tilted (losses fall with lr): a different draw of the runs' noise
    tilt = held & (df["seed"] == 1)
    df.loc[tilt, "final_val_loss"] -= 0.3 * np.log(df.loc[tilt, "lr"] / 1e-3)
    c = risk_check(df)
    for row in c["optimizers"].values():
        for k, cell in row["refine"].items():
            assert cell["seeds"] == 2 and set(cell["lrs"]) == {"0", "1"}
            assert len(cell["lrs"]["0"]) == int(k)
        # the same first two runs for both seeds; the third follows each seed's own losses
        k3 = row["refine"]["3"]["lrs"]
        assert k3["0"][:2] == k3["1"][:2] and k3["0"][2] != pytest.approx(k3["1"][2], rel=1e-3)
