"""Coordinate laws: per-optimizer laws of each varying HP from coordinate sweeps, constants, risk, JSON."""

import math

import numpy as np
import pandas as pd
import pytest

from oasl.laws.coordinate import CoordinateLawSet, formula_for, load_coordinate_laws
from oasl.laws.coordinate_fit import fit_coordinate_laws


def lr_star(opt, n, d):
    return (3.0 if opt == "a" else 0.5) * n**-0.3 * (d / n) ** -0.1


def sweeps(seed=0):
    """Two optimizers x 3 sizes x 3 multiples; lr valleys on a x2 grid around lr*(N, D) (optimum off-grid),
    one batch ablation, weight decay chosen but never varied, a diverged lr 4x above the optimum."""
    rng = np.random.default_rng(seed)
    rows = []
    for opt in ("a", "b"):
        for n in (1e8, 3e8, 9e8):
            for k in (1, 2, 4):
                d = 20 * k * n
                star = lr_star(opt, n, d)
                grid = 2.0 ** np.round(np.log2(star))  # the sweep's chosen lr: the grid point nearest lr*
                common = {
                    "optimizer": opt,
                    "n_params": n,
                    "tokens": d,
                    "seq_len": 4096,
                    "sweep": f"{opt}/{n:.0e}/{k}",
                    "batch_seqs": 128,
                    "weight_decay": 0.1,
                }

                def loss(lr, star=star):
                    return 3.0 + 0.04 * math.log(lr / star) ** 2 + rng.normal(0, 1e-4)

                rows.append(
                    {
                        **common,
                        "ablated": "baseline",
                        "lr": grid,
                        "final_val_loss": loss(grid),
                        "status": "done",
                    }
                )
                for f in (0.5, 2.0, 4.0):
                    lr = grid * f
                    div = lr > 3 * star
                    rows.append(
                        {
                            **common,
                            "ablated": "learning_rate",
                            "lr": lr,
                            "status": "diverged" if div else "done",
                            "final_val_loss": 7.5 if div else loss(lr),
                        }
                    )
                rows.append(
                    {
                        **common,
                        "ablated": "train_batch_size",
                        "lr": grid,
                        "batch_seqs": 256,
                        "final_val_loss": loss(grid) + 0.01,
                        "status": "done",
                    }
                )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def lawset():
    return fit_coordinate_laws(sweeps(), meta={"source": "synthetic"})


def test_laws_recover_the_lr_law_and_keep_constants(lawset):
    assert (
        lawset.optimizers == ["a", "b"]
        and "lr" in lawset.laws
        and set(lawset.law_optimizers["lr"]) == {"a", "b"}
    )
    # weight decay never varies: a constant, not a law
    assert lawset.constants["a"]["weight_decay"] == 0.1 and "weight_decay" not in lawset.laws
    for opt in ("a", "b"):
        for n, k in ((2e9, 2), (9e8, 8)):
            p = lawset.predict(opt, n, 20 * k * n, risk=False)
            assert abs(math.log(p["lr"]["value"] / lr_star(opt, n, 20 * k * n))) < 0.25
            assert p["lr"]["low"] < p["lr"]["value"] < p["lr"]["high"] and p["lr"]["shift"] == 0
    assert "N^" in formula_for(lawset.laws["lr"], "a")


def test_risk_moves_lr_down_never_up(lawset):
    v = lawset.valleys["a"]["lr"]
    assert v.curv_above > 0 and v.curv_below > 0 and math.isfinite(v.diverge_at)
    p = lawset.predict("a", 2e9, 4e10, risk=True)
    assert p["lr"]["risk_value"] == pytest.approx(p["lr"]["value"])
    plain = lawset.predict("a", 2e9, 4e10)  # the default: the law's centre, the rule's value beside it
    assert plain["lr"]["value"] == plain["lr"]["center"] and plain["lr"]["shift"] == 0
    assert plain["lr"]["risk_value"] == pytest.approx(p["lr"]["value"])
    assert p["lr"]["shift"] <= 0 and p["lr"]["value"] == pytest.approx(
        p["lr"]["center"] * math.exp(p["lr"]["shift"])
    )
    assert "risk-adjusted" in p["lr"]["source"]


def test_json_round_trip_gives_the_same_predictions(lawset, tmp_path):
    for compact in (False, True):
        path = lawset.save(tmp_path / f"laws{compact}.json", compact=compact)
        back = load_coordinate_laws(path)
        assert isinstance(back, CoordinateLawSet) and back.constants == lawset.constants
        a, b = lawset.predict("b", 2e9, 4e10), back.predict("b", 2e9, 4e10)
        for h in a:
            assert b[h]["value"] == pytest.approx(a[h]["value"], rel=1e-5), h
    with pytest.raises(Exception, match="no laws for optimizer 'adam'"):
        lawset.predict("adam", 1e9, 2e10)
