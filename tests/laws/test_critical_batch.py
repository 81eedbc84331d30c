"""B_crit(L) = B_* / L^(1/alpha_B) fitted on gradient-noise points (synthetic runs in a real store)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from oasl.errors import FitError
from oasl.laws.critical_batch import CriticalBatchLaw, noise_points

B_STAR, ALPHA_B = 2e4, 0.5  # tokens, exponent: B_crit = 2e4 / L^2


def fake_store(path, n_runs=8, noise=0.05, seed=0, gns=True, hessian=False):
    """A store of ``n_runs`` finished runs whose curves carry gradient norms consistent with
    B_simple = B_* / L^(1/alpha_B) (in tokens, seq_len 32) at four evaluations, times lognormal noise; with
    ``hessian`` also H-weighted forms with G^T H G = 2 and tr(H Sigma) = 3 tr(Sigma) (B_noise = 1.5 B_simple)."""
    from oasl.store import SQLiteStore
    from oasl.testing import tiny_run
    from oasl.train.run import RunResult

    rng = np.random.default_rng(seed)
    store = SQLiteStore(path)
    for r in range(n_runs):
        spec = tiny_run(lr=1e-3 * (r + 1), gns=gns)
        curve = []
        for i, loss in enumerate(np.linspace(4.0, 2.2, 4) + 0.1 * r):
            b_seqs = B_STAR / loss ** (1 / ALPHA_B) / 32 * np.exp(noise * rng.standard_normal())
            g2, bs, bb = 1.0, 4, 32  # |G|^2 = 1, tr(Sigma) = b_seqs: E|G_B|^2 = 1 + b_seqs / B
            curve.append(
                {
                    "step": 10 * (i + 1),
                    "tokens": 10 * (i + 1) * 256,
                    "lr": spec.lr * (1 - i / 4),  # a decaying schedule: lr_frac 1, 0.75, 0.5, 0.25
                    "val_loss": float(loss),
                    "gns_small_sq": g2 + b_seqs / bs,
                    "gns_big_sq": g2 + b_seqs / bb,
                    "gns_b_small": bs,
                    "gns_b_big": bb,
                    "b_simple": b_seqs,
                }
            )
            if hessian:
                curve[-1].update(gnsh_small_q=2 + 3 * b_seqs / bs, gnsh_big_q=2 + 3 * b_seqs / bb)
        store.put(
            RunResult(spec, "done", curve[-1]["val_loss"], curve, 1000, 2000, 1e9, 10240, 40, 1e4, 1.0, 5.5)
        )
    return store


def test_law_recovers_b_star_and_alpha_b_within_intervals(tmp_path):
    pts = noise_points(fake_store(tmp_path / "runs.db"), decay=0.0)
    assert len(pts) == 32 and set(pts["final"]) == {True, False}
    # the raw, unsmoothed estimates and the schedule's position ride along (oasl.laws.batch_tradeoff)
    assert pts["g2"].to_numpy() == pytest.approx(1.0)
    assert (pts["s"] * 32 * pts["loss"] ** (1 / ALPHA_B) / B_STAR).to_numpy() == pytest.approx(1.0, rel=0.2)
    assert sorted(set(pts["lr_frac"].round(6))) == [0.25, 0.5, 0.75, 1.0]
    law = CriticalBatchLaw(n_boot=200).fit(pts)
    assert law.alpha_b_interval_[0] <= ALPHA_B <= law.alpha_b_interval_[1]
    assert law.b_star_interval_[0] <= B_STAR <= law.b_star_interval_[1]
    assert law.alpha_b_ == pytest.approx(ALPHA_B, rel=0.1)
    assert " / L^2" in law.formula()  # 1 / alpha_B, Kaplan et al.'s exponent on L
    rec = law.recommend(3.0)
    assert rec["batch_tokens"] == pytest.approx(B_STAR / 9.0, rel=0.1)
    assert rec["low"] < rec["batch_tokens"] < rec["high"] and not rec["extrapolated"]
    assert json.loads(json.dumps(law.to_dict()))["kind"] == "critical_batch"


def test_noise_points_carry_the_hessian_forms_and_pool_b_noise(tmp_path):
    from oasl.laws.batch_tradeoff import b_simple_at_loss

    pts = noise_points(fake_store(tmp_path / "h.db", n_runs=2, hessian=True), decay=0.0)
    assert pts["g2_h"].to_numpy() == pytest.approx(2.0)
    assert (pts["s_h"] / pts["s"]).to_numpy() == pytest.approx(3.0)
    assert pts["g2_p"].isna().all()  # no preconditioned forms recorded
    loss = float(pts["loss"].iloc[0])
    b_noise, n = b_simple_at_loss(pts, loss, g2="g2_h", s="s_h")
    assert n >= 1 and b_noise == pytest.approx(1.5 * b_simple_at_loss(pts, loss)[0])
    assert np.isnan(b_simple_at_loss(pts, loss, g2="g2_p", s="s_p")[0])
    plain = noise_points(fake_store(tmp_path / "p.db", n_runs=2), decay=0.0)
    assert plain["g2_h"].isna().all() and len(plain) == len(pts)


def test_no_measurements_is_refused(tmp_path):
    pts = noise_points(fake_store(tmp_path / "runs.db", gns=False))
    assert len(pts) == 0
    with pytest.raises(FitError, match="gns: true"):
        CriticalBatchLaw().fit(pts)


def test_cli_recommends_and_fails_in_one_line(tmp_path, capsys):
    from oasl.testing import run_cli

    fake_store(tmp_path / "runs.db")
    out = tmp_path / "b.json"
    args = [
        "batch",
        "critical",
        "--store",
        str(tmp_path / "runs.db"),
        "--target-loss",
        "3",
        "--out",
        str(out),
    ]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    rec = json.loads(out.read_text())["recommendation"]
    # the CLI smooths over evaluations (decay 0.5): the running means lag the falling loss, so B is low
    assert rec["batch_tokens"] == pytest.approx(B_STAR / 9.0, rel=0.25)
    fake_store(tmp_path / "plain.db", gns=False)
    code, _, err = run_cli(["batch", "critical", "--store", str(tmp_path / "plain.db")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "gns" in err
    code, _, err = run_cli(args[:4] + ["--target-loss", "inf"], capsys)
    assert code == 2 and "finite" in err


def test_recommend_gets_a_second_opinion_on_the_batch(tmp_path):
    from oasl.recommend import recommend
    from oasl.recommend_gns import critical_batch_opinion

    class AtLoss3:  # a loss law that predicts 3 nats at any target
        def predict(self, n, d):
            return np.array([3.0])

    rec = recommend("adamw", n_params=1e6, tokens=1e8, published="step-law")
    item = critical_batch_opinion(rec, fake_store(tmp_path / "runs.db"), AtLoss3())
    assert rec.items["batch_tokens_gns"] is item
    assert item.value == pytest.approx(B_STAR / 9.0, rel=0.25) and item.low < item.value < item.high
    plain = recommend("adamw", n_params=1e6, tokens=1e8, published="step-law")
    assert critical_batch_opinion(plain, fake_store(tmp_path / "plain.db", gns=False)) is None
    assert "batch_tokens_gns" not in plain.items


def test_a_trend_not_measured_is_not_recommended_and_recommend_names_its_own_flag(tmp_path):
    from oasl.laws.critical_batch import CriticalBatchLaw
    from oasl.recommend import recommend
    from oasl.recommend_gns import critical_batch_opinion

    law = CriticalBatchLaw().fit(noise_points(fake_store(tmp_path / "runs.db")))
    assert law.recommend(3.0)["warning"] == ""
    law.alpha_b_interval_ = (-0.5, 2.0)  # as a fit whose bootstrap slopes cross 0
    assert "spans 0" in law.recommend(3.0)["warning"]
    rec = recommend("adamw", n_params=1e6, tokens=1e8, published="step-law")
    one_size = fake_store(tmp_path / "one.db")  # one (N, D): no loss law can be fitted on it
    with pytest.raises(FitError) as exc:
        critical_batch_opinion(rec, one_size)
    assert "--laws" in str(exc.value) and "--target-loss" not in str(exc.value)
