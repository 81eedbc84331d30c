"""B_noise beside B_simple in the critical-batch law, the CLI and `oasl recommend`, on a store of tiny runs
actually trained with ``gns`` + ``gns_hessian`` (and one with ``gns`` only)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from oasl.laws.critical_batch import noise_points

SMALL = {"shape": {"width": 16}, "tokens": 8 * 32 * 40, "eval_interval": 8}  # 40 steps, 5 evaluations


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """(store of three gns + gns_hessian AdamW runs and two gns-only runs, store of the gns-only runs, the
    gns-only runs' keys)."""
    import torch

    from oasl.store import SQLiteStore
    from oasl.testing import tiny_run
    from oasl.train import train

    # one thread: autograd's double backward (the Hessian-vector products) slows by 100x and more when
    # its threads share the cores with another process (tests/conftest.py)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = tmp_path_factory.mktemp("noise")
        both, plain = SQLiteStore(root / "both.db"), SQLiteStore(root / "plain.db")
        for lr in (1e-3, 3e-3, 1e-2):
            both.put(train(tiny_run(**SMALL, lr=lr, gns=True, gns_hessian=True)))
        keys = set()
        for lr in (2e-3, 5e-3):
            only = train(tiny_run(**SMALL, lr=lr, gns=True))
            both.put(only)
            plain.put(only)
            keys.add(only.spec.key())
    finally:
        torch.set_num_threads(threads)
    return root / "both.db", root / "plain.db", keys


def test_noise_points_smooth_b_noise_where_measured(stores):
    from oasl.store import open_store

    both, _, plain_keys = stores
    pts = noise_points(open_store(both))
    hess, plain = pts[~pts["key"].isin(plain_keys)], pts[pts["key"].isin(plain_keys)]
    assert hess["key"].nunique() == 3 and len(plain) == 10
    # the gns-only run measured neither B_noise nor its Adam variant
    assert plain["b_noise_tokens"].isna().all() and plain["b_noise_adam_tokens"].isna().all()
    assert plain["b_simple_tokens"].notna().all()
    ok = np.isfinite(hess["b_noise_tokens"]) & (hess["b_noise_tokens"] > 0)
    assert ok.mean() >= 0.8, hess[["key", "step", "g2_h", "s_h", "b_noise_tokens"]]
    assert np.isfinite(hess["b_noise_adam_tokens"]).any()  # AdamW: the preconditioned variant too
    # with no smoothing (decay 0) each value is that evaluation's tr(H Sigma) / G^T H G, in tokens
    raw = noise_points(open_store(both), decay=0.0)
    raw = raw[~raw["key"].isin(plain_keys) & (raw["g2_h"] > 0)]
    assert len(raw) >= 10
    assert raw["b_noise_tokens"].to_numpy() == pytest.approx((raw["s_h"] / raw["g2_h"] * 32).to_numpy())
    # the default smoothing averages the pair over the run's evaluations: later values differ from the raw
    merged = hess.merge(raw[["key", "step", "b_noise_tokens"]], on=["key", "step"], suffixes=("", "_raw"))
    later = merged[merged["step"] > merged.groupby("key")["step"].transform("min")]
    assert not np.allclose(later["b_noise_tokens"], later["b_noise_tokens_raw"])


def run_batch(capsys, store, *extra):
    from oasl.testing import run_cli

    return run_cli(["batch", "critical", "--store", str(store), "--n-boot", "50", *extra], capsys)


def test_cli_scale_noise_fits_b_noise_and_the_default_prints_the_bracket(stores, tmp_path, capsys):
    both, _, _ = stores
    simple_json, noise_json = tmp_path / "simple.json", tmp_path / "noise.json"
    code, out, err = run_batch(capsys, both, "--target-loss", "4.5", "--out", str(simple_json))
    assert code == 0, err
    assert "B_simple" in out and "(upper)" in out and "B_noise" in out and "(lower)" in out
    assert "4 of 4 shapes" in out and "critical_batch_noise_constant_pooled" in out
    d = json.loads(simple_json.read_text())
    assert d["scale"] == "simple" and d["law"]["column"] == "b_simple_tokens"
    assert d["b_noise"]["law"]["column"] == "b_noise_tokens"
    assert d["b_noise"]["law"]["n_runs"] == 3 and d["law"]["n_runs"] == 5  # gns-only runs: B_simple only
    assert d["recommendation"]["batch_tokens"] > 0 and d["b_noise"]["recommendation"]["batch_tokens"] > 0
    assert isinstance(d["bracket"]["ordered"], bool)

    code, out, err = run_batch(
        capsys, both, "--scale", "noise", "--target-loss", "4.5", "--out", str(noise_json)
    )
    assert code == 0, err
    n = json.loads(noise_json.read_text())
    assert n["scale"] == "noise" and n["law"]["column"] == "b_noise_tokens" and "b_noise" not in n
    # the same fit as the default's lower end, and a different law from B_simple's
    assert n["law"]["b_star"] == pytest.approx(d["b_noise"]["law"]["b_star"])
    assert n["law"]["b_star"] != pytest.approx(d["law"]["b_star"], rel=1e-3)
    code, _, err = run_batch(capsys, both, "--scale", "noise-adam")
    assert code == 0, err


def test_cli_scale_noise_without_hessian_measurements_and_bad_scale_fail_in_one_line(stores, capsys):
    both, plain, _ = stores
    code, out, err = run_batch(capsys, plain, "--scale", "noise")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "gns_hessian: true" in err
    code, out, err = run_batch(capsys, plain, "--scale", "noise-adam")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "gns_hessian: true" in err and "AdamW" in err
    code, out, err = run_batch(capsys, plain, "--target-loss", "4.5")  # B_simple alone, no bracket
    assert code == 0, err
    assert "B_simple" in out and "B_noise" not in out and "(lower)" not in out
    code, _, err = run_batch(capsys, both, "--scale", "hessian")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "simple, noise, noise-adam" in err


def test_recommend_shows_both_ends_of_the_bracket(stores):
    from oasl.recommend import recommend
    from oasl.recommend_gns import critical_batch_opinion

    class At45:  # a loss law that predicts 4.5 nats at any target
        def predict(self, n, d):
            return np.array([4.5])

    both, plain, _ = stores
    rec = recommend("adamw", n_params=1e6, tokens=1e8, published="step-law")
    item = critical_batch_opinion(rec, both, At45())
    assert rec.items["batch_tokens_gns"] is item
    noise = rec.items["batch_tokens_gns_noise"]
    assert noise.value > 0 and noise.value != pytest.approx(item.value, rel=1e-3)
    assert "lower end" in noise.source and "batch_tokens_gns" in noise.source
    shown = json.loads(json.dumps(rec.to_dict(), default=str))["items"]  # what --format json prints
    assert {"batch_tokens_gns", "batch_tokens_gns_noise"} <= set(shown)
    assert set(rec.to_frame()["name"]) >= {"batch_tokens_gns", "batch_tokens_gns_noise"}
    # a gns-only store gives the one opinion it gave before
    one = recommend("adamw", n_params=1e6, tokens=1e8, published="step-law")
    assert critical_batch_opinion(one, plain, At45()) is not None
    assert "batch_tokens_gns" in one.items and "batch_tokens_gns_noise" not in one.items
