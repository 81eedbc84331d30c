"""Fast-transfer diagnostics on synthetic ladders with known alpha and beta."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from oasl.errors import FitError
from oasl.laws.transfer import diagnose_transfer, fit_exponent, verdict_of

SIZES = (1e4, 3e4, 1e5, 3e5, 1e6)


def ladder(alpha, beta, a, noise, seed=0, sizes=SIZES, c=0.08, b=30.0, group="mup"):
    """Runs of a valley ``L*(N) + c (log h - log h*(N))^2`` + Gaussian noise, 14 lrs x 2 seeds per size,
    with ``log h*(N) = log 1e-2 + a N^-beta`` and ``L*(N) = 2 + b N^-alpha``."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        log_h = math.log(1e-2) + a * n**-beta
        l_star = 2.0 + b * n**-alpha
        for h in np.geomspace(2e-3, 2e-1, 14):
            for _ in range(2):
                loss = l_star + c * (math.log(h) - log_h) ** 2 + noise * rng.standard_normal()
                rows.append(
                    {
                        "n_params": n,
                        "lr": h,
                        "optimizer": "adamw",
                        "parametrization": group,
                        "tokens": 1e6,
                        "final_val_loss": loss,
                    }
                )
    return pd.DataFrame(rows)


def test_exponent_fit_is_exact_without_noise():
    x = np.array([1e3, 1e4, 1e5, 1e6])
    f = fit_exponent(x, 1.5 + 7.0 * x**-0.37)
    assert f.p == pytest.approx(0.37, rel=1e-4)
    assert f.y_inf == pytest.approx(1.5, rel=1e-4)
    assert f.k == pytest.approx(7.0, rel=1e-3)


def test_noise_free_ladder_recovers_the_laws_and_the_cost():
    g = diagnose_transfer(ladder(0.3, 0.6, 50.0, 0.0), target_params=1e7, n_boot=20).groups[0]
    assert g.alpha == pytest.approx(0.3, rel=1e-3)
    assert g.beta == pytest.approx(0.6, rel=1e-3)
    assert g.h_inf == pytest.approx(1e-2, rel=1e-3)
    assert g.verdict == "fast"
    # cost of copying the largest size's optimum to 1e7: c * (shift in log h)^2, c = 0.08 exactly
    shift = 50.0 * (1e7**-0.6 - 1e6**-0.6)
    assert g.curvature_target == pytest.approx(0.08, rel=1e-3)
    assert g.predicted_cost == pytest.approx(0.08 * shift**2, rel=1e-2)
    assert g.direct_runs == math.ceil(g.search_log_range / (2 * abs(shift))) + 1


@pytest.mark.parametrize("alpha,beta,a,verdict", [(0.3, 0.6, 50.0, "fast"), (0.5, 0.1, 2.0, "slow")])
def test_noisy_ladders_recover_alpha_and_beta_within_intervals(alpha, beta, a, verdict):
    covered_a = covered_b = 0
    for seed in range(5):
        g = diagnose_transfer(ladder(alpha, beta, a, 1e-3, seed), n_boot=60, seed=seed).groups[0]
        assert g.verdict == verdict
        covered_a += g.alpha_ci[0] <= alpha <= g.alpha_ci[1]
        covered_b += g.beta_ci[0] <= beta <= g.beta_ci[1]
        assert g.alpha_ci[0] <= g.alpha <= g.alpha_ci[1] or abs(g.alpha - alpha) < 0.02
    # 90% percentile intervals from 5 sizes under-cover a little (about 80% on these ladders)
    assert covered_a >= 3 and covered_b >= 3


def test_verdict_is_judged_on_the_interval():
    assert verdict_of((0.05, 0.3)) == "fast"
    assert verdict_of((-0.3, -0.01)) == "slow"
    assert verdict_of((-0.1, 0.2)) == "borderline"


def test_groups_are_diagnosed_separately_and_serialise():
    df = pd.concat([ladder(0.3, 0.6, 50.0, 0.0), ladder(0.5, 0.1, 2.0, 0.0, group="sp")])
    res = diagnose_transfer(df, n_boot=10, target_params=3e6)
    assert [g.group["parametrization"] for g in res.groups] == ["mup", "sp"]
    assert [g.verdict for g in res.groups] == ["fast", "slow"]
    text = json.dumps(res.to_dict())
    assert "Theorem 2" in text
    assert set(res.table()["verdict"]) == {"fast", "slow"}


def test_fewer_than_three_sizes_is_refused():
    with pytest.raises(FitError, match="at least 3 model sizes"):
        diagnose_transfer(ladder(0.3, 0.6, 50.0, 0.0, sizes=(1e4, 1e5)), n_boot=0)


def test_edge_optima_are_left_out_and_too_few_interior_is_refused():
    df = ladder(0.3, 0.6, 50.0, 0.0)
    df = df[df["lr"] < 1.1e-2]  # every optimum (1.01e-2 to 1.22e-2) is now above the grid's top
    with pytest.raises(FitError, match="interior optimum"):
        diagnose_transfer(df, n_boot=0)


def test_cli_writes_json_and_refuses_a_store_without_a_ladder(tmp_path, capsys):
    from oasl.store import SQLiteStore
    from oasl.testing import run_cli

    csv = tmp_path / "runs.csv"
    ladder(0.3, 0.6, 50.0, 0.0).to_csv(csv, index=False)
    out = tmp_path / "diag.json"
    code, _, err = run_cli(
        [
            "transfer",
            "diagnose",
            "--csv",
            str(csv),
            "--target-params",
            "1e7",
            "--n-boot",
            "10",
            "--out",
            str(out),
            "--plot",
            str(tmp_path / "transfer.png"),
        ],
        capsys,
    )
    assert code == 0, err
    d = json.loads(out.read_text())
    assert d["groups"][0]["verdict"] == "fast"
    assert d["groups"][0]["beta"] == pytest.approx(0.6, rel=1e-3)
    assert (tmp_path / "transfer.png").stat().st_size > 1000

    store = tmp_path / "flat.db"
    SQLiteStore(store).import_frame(ladder(0.3, 0.6, 50.0, 0.0, sizes=(1e4,)))
    code, _, err = run_cli(["transfer", "diagnose", "--store", str(store), "--n-boot", "0"], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "at least 3 model sizes" in err
    code, _, err = run_cli(["transfer", "diagnose", "--csv", str(csv), "--target-params", "nan"], capsys)
    assert code == 2 and "finite" in err and len(err.strip().splitlines()) == 1
