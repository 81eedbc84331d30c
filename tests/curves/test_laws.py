"""Schedule-aware loss laws on synthetic curves: the formulas against a brute-force implementation, fits
that recover the generating law, input validation, intervals, persistence and schedule ranking."""

import json
import math

import numpy as np
import pytest

from oasl.curves import (
    AnnealingLaw,
    Curve,
    MultiPowerLaw,
    ScaledScheduleLaw,
    annealing_area,
    infer_warmup_steps,
    rank_schedules,
)
from oasl.curves.multipower import drop_blocks
from oasl.curves.paper import PAPER_PARAMS, load_paper_curves, paper_lrs
from oasl.errors import DataError, FitError
from oasl.optim.schedules import lr_curve, parse_schedule

P25 = PAPER_PARAMS["25M"]
PEAK, END, T, W = 3e-4, 3e-5, 4000, 200


def schedule(kind: str, total: int = T) -> np.ndarray:
    """Warmup from 0 over W steps, then a decay of ``kind`` (paper-style, short)."""
    t = np.arange(total, dtype=float)
    lrs = np.full(total, PEAK)
    lrs[:W] = np.linspace(0, PEAK, W)
    post = t >= W
    if kind == "cosine":
        lrs[post] = END + 0.5 * (PEAK - END) * (1 + np.cos(math.pi * (t[post] - W) / (total - W)))
    elif kind == "step":
        lrs[total // 2 :] = 9e-5
    elif kind == "wsd":
        start = int(0.8 * total)
        lrs[start:] = PEAK + (END - PEAK) * (t[start:] - start) / (total - start)
    return lrs


def mpl_brute(p: dict, lrs: np.ndarray, steps: np.ndarray, first_k: int = 0) -> np.ndarray:
    """Eq. 5 of Luo et al. 2025 summed term by term (eta_{-1} = 0)."""
    out = []
    for t in steps:
        eta = lrs[: t + 1]
        prev = np.r_[0.0, eta[:-1]]
        k = np.arange(first_k, t + 1)
        S = np.cumsum(eta[::-1])[::-1][k]  # S_k(t) = sum_{tau=k..t} eta_tau
        with np.errstate(divide="ignore"):
            x = np.where(eta[k] > 0, eta[k], 1e-300) ** (-p["gamma"]) * S
        G = 1 - (p["C"] * x + 1) ** (-p["beta"])
        LD = p["B"] * np.sum((prev[k] - eta[k]) * G)
        out.append(p["L0"] + p["A"] * eta.sum() ** (-p["alpha"]) - LD)
    return np.array(out)


def anneal_brute(p: dict, lrs: np.ndarray, steps: np.ndarray, lam: float) -> np.ndarray:
    """Eq. 1 of Tissue et al. 2024 with the momentum recursion written out."""
    m, S2, out = 0.0, 0.0, {}
    prev = 0.0
    for i, eta in enumerate(lrs[: steps.max() + 1]):
        m = lam * m + (prev - eta)
        S2 += m
        prev = eta
        out[i] = S2
    S1 = np.cumsum(lrs)[steps]
    return p["L0"] + p["A"] * S1 ** (-p["alpha"]) - p["C"] * np.array([out[s] for s in steps])


def synth(kind: str, law: str = "mpl", params=P25, noise=3e-4, seed=0, every=40, lam=0.999) -> Curve:
    lrs = schedule(kind)
    steps = np.arange(W, T, every)
    # the multi-power law in its default convention (warmup="exclude": LR changes from step W on)
    clean = mpl_brute(params, lrs, steps, W) if law == "mpl" else anneal_brute(params, lrs, steps, lam)
    rng = np.random.default_rng(seed)
    return Curve(steps, lrs, clean * np.exp(rng.normal(0, noise, len(steps))), name=kind)


# -- formulas ------------------------------------------------------------------------------------
@pytest.mark.parametrize("warmup", ["include", "exclude"])
def test_multipower_prediction_matches_term_by_term_sum(warmup):
    law = MultiPowerLaw.from_params(P25, warmup=warmup)
    for kind in ("cosine", "step", "wsd", "constant"):
        lrs = schedule(kind)
        steps = np.array([W - 1, W, 333, 2000, 2001, T - 1])
        first_k = 0 if warmup == "include" else W  # the LR first reaches the peak at step W - 1
        np.testing.assert_allclose(law.predict(lrs, steps), mpl_brute(P25, lrs, steps, first_k), rtol=1e-10)


def test_warmup_conventions_differ_by_the_warmup_term():
    lrs = schedule("cosine")
    inc = MultiPowerLaw.from_params(P25, warmup="include").predict_final(lrs)
    exc = MultiPowerLaw.from_params(P25).predict_final(lrs)
    # the default is the paper's Eq. 5 (warmup excluded); the annealing law keeps the code's convention
    assert MultiPowerLaw().warmup == "exclude" and AnnealingLaw().warmup == "include"
    assert exc == MultiPowerLaw.from_params(P25, warmup="exclude").predict_final(lrs)
    # the warmup's LR increases count as negative drops: they raise the loss by about B * peak
    assert 0.5 * P25["B"] * PEAK < inc - exc < P25["B"] * PEAK


def test_fit_quadrature_is_close_to_the_exact_sum():
    import torch

    law = MultiPowerLaw.from_params(P25)
    lrs = paper_lrs("cosine_24000")
    steps = np.arange(2160, 24000, 128)
    f_exact = drop_blocks(lrs, steps, 0)
    f_fit = drop_blocks(lrs, steps, 0, *law.fit_block)
    assert f_fit["far_S"].size + f_fit["near_S"].size < 0.05 * f_exact["far_S"].size
    p = law._unpack(torch.as_tensor(law.theta_))
    exact = law._pred(p, {k: torch.as_tensor(v) for k, v in f_exact.items()}).numpy()
    approx = law._pred(p, {k: torch.as_tensor(v) for k, v in f_fit.items()}).numpy()
    np.testing.assert_allclose(exact[::40], mpl_brute(P25, lrs, steps[::40]), rtol=1e-10)
    assert np.max(np.abs(approx - exact)) < 5e-5


def test_annealing_area_matches_the_recursion():
    lrs = schedule("wsd")
    steps = np.array([10, W, 3500, T - 1])
    p = {"L0": 2.0, "A": 0.5, "alpha": 0.5, "C": 0.3}
    law = AnnealingLaw.from_params(p, lam=0.99)
    np.testing.assert_allclose(law.predict(lrs, steps), anneal_brute(p, lrs, steps, 0.99), rtol=1e-10)
    assert annealing_area(schedule("constant"), np.array([T - 1]), 0.999, first_k=W)[0] == 0.0


def test_infer_warmup_steps():
    assert infer_warmup_steps(paper_lrs("cosine_24000")) == 2159
    spec = parse_schedule("cosine", warmup_steps=50)
    assert infer_warmup_steps(lr_curve(spec, 500, 1e-3)) == 49
    assert infer_warmup_steps(lr_curve(parse_schedule("cosine"), 500, 1e-3)) == 0


# -- fitting -------------------------------------------------------------------------------------
def test_multipower_fit_recovers_the_generating_curve_and_predicts_an_unseen_schedule():
    train = [synth(k, seed=i) for i, k in enumerate(("cosine", "constant", "step"))]
    law = MultiPowerLaw(n_starts=2).fit(train)
    held = synth("wsd", noise=0)
    err = law.score(held)
    assert err["mean_rel"] < 1e-3, err
    assert abs(err["final_abs"]) < 4e-3
    # the fitted curve beats a constant-only power law by far on the annealing phase
    assert law.params_["B"] > 10


def test_annealing_fit_recovers_parameters():
    p = {"L0": 2.5, "A": 0.6, "alpha": 0.45, "C": 0.2}
    train = [synth(k, law="anneal", params=p, seed=i) for i, k in enumerate(("cosine", "constant"))]
    law = AnnealingLaw().fit(train)
    for k in ("L0", "alpha", "C"):
        assert law.params_[k] == pytest.approx(p[k], rel=0.05), (k, law.params_)
    assert law.score(synth("wsd", law="anneal", params=p, noise=0))["mean_rel"] < 5e-4


def test_single_schedule_warns_and_no_annealing_refuses():
    p = {"L0": 2.5, "A": 0.6, "alpha": 0.45, "C": 0.2}
    with pytest.warns(UserWarning, match="single schedule"):
        AnnealingLaw(n_starts=1).fit([synth("cosine", law="anneal", params=p)])
    with pytest.raises(FitError, match="annealing term is not identified"):
        AnnealingLaw().fit([synth("constant", law="anneal", params=p)])
    with pytest.raises(FitError, match="annealing term is not identified"):
        MultiPowerLaw().fit([synth("constant"), synth("constant", seed=1)])


# -- input validation ----------------------------------------------------------------------------
def test_bad_curves_raise_data_errors():
    lrs = schedule("cosine")
    steps = np.arange(W, T, 100)
    loss = np.linspace(4, 3, len(steps))
    with pytest.raises(DataError, match="NaN"):
        Curve(steps, lrs, np.r_[np.nan, loss[1:]])
    with pytest.raises(DataError, match="NaN"):
        Curve(steps, np.r_[lrs[:-1], np.inf], loss)
    with pytest.raises(DataError, match="lengths|losses"):
        Curve(steps, lrs, loss[:-1])
    with pytest.raises(DataError, match="LR schedule covers"):
        Curve(np.r_[steps, T + 5], lrs, np.r_[loss, 3.0])
    with pytest.raises(DataError, match="increasing"):
        Curve(steps[::-1], lrs, loss)
    with pytest.raises(DataError, match="positive"):
        Curve(steps, lrs, -loss)
    with pytest.raises(DataError, match="non-negative"):
        Curve(steps, -lrs, loss)
    with pytest.raises(DataError, match="before any positive LR"):
        Curve(np.array([0, 10, 20]), lrs, np.array([5.0, 4.0, 3.9]))


def test_too_few_points_and_unfitted_use_raise_fit_errors():
    c = synth("cosine")
    with pytest.raises(FitError, match="at least 3"):
        MultiPowerLaw().fit([Curve(c.steps[:2], c.lrs, c.loss[:2]), c])
    with pytest.raises(FitError, match="observed points"):
        MultiPowerLaw().fit([Curve(c.steps[-4:], c.lrs, c.loss[-4:]), Curve(c.steps[:4], c.lrs, c.loss[:4])])
    with pytest.raises(FitError, match="no curves"):
        AnnealingLaw().fit([])
    with pytest.raises(FitError, match="not fitted"):
        MultiPowerLaw().predict(c.lrs)
    with pytest.raises(FitError, match="warmup must be"):
        MultiPowerLaw.from_params(P25, warmup="sometimes").predict(c.lrs)
    with pytest.raises(DataError, match="steps must lie"):
        MultiPowerLaw.from_params(P25).predict(c.lrs, [T + 1])


def test_unknown_paper_schedule_name():
    with pytest.raises(DataError, match="unknown schedule"):
        paper_lrs("triangle_24000")
    with pytest.raises(DataError, match="unknown schedule"):
        paper_lrs("cosine_x")
    with pytest.raises(DataError, match="unknown model size"):
        load_paper_curves("7M")


# -- intervals, persistence, ranking ---------------------------------------------------------------
def test_interval_brackets_the_prediction_and_persists():
    law = AnnealingLaw(n_boot=8).fit(
        [
            synth(k, law="anneal", params={"L0": 2.5, "A": 0.6, "alpha": 0.45, "C": 0.2}, seed=i, noise=2e-3)
            for i, k in enumerate(("cosine", "constant"))
        ]
    )
    lrs = schedule("wsd", total=2 * T)  # a longer run: extrapolation
    lo, hi = law.predict_interval(lrs, [T - 1, 2 * T - 1], level=0.9)
    pred = law.predict(lrs, [T - 1, 2 * T - 1])
    assert np.all(lo <= pred + 1e-9) and np.all(pred <= hi + 1e-9) and np.all(hi > lo)
    d = json.loads(json.dumps(law.to_dict()))
    again = AnnealingLaw.from_dict(d)
    np.testing.assert_allclose(again.predict(lrs, [T - 1]), law.predict(lrs, [T - 1]), rtol=1e-12)
    np.testing.assert_allclose(again.predict_interval(lrs, [T - 1])[0], law.predict_interval(lrs, [T - 1])[0])
    with pytest.raises(FitError, match="not a MultiPowerLaw"):
        MultiPowerLaw.from_dict(d)


def test_multipower_round_trip_keeps_settings():
    law = MultiPowerLaw.from_params(P25, warmup="exclude", warmup_steps=100)
    again = MultiPowerLaw.from_dict(json.loads(json.dumps(law.to_dict())))
    assert again.warmup == "exclude" and again.warmup_steps == 100
    lrs = schedule("cosine")
    assert again.predict_final(lrs) == pytest.approx(law.predict_final(lrs), rel=1e-12)


def test_rank_schedules_orders_oasl_schedules_by_predicted_final_loss():
    law = MultiPowerLaw.from_params(P25)
    total = 24000  # the paper's horizon: there its cosine and WSD runs end below the constant run
    cands = {
        name: lr_curve(parse_schedule(name, warmup_steps=2160), total, PEAK)
        for name in ("cosine", "wsd:0.2", "linear", "constant")
    }
    df = rank_schedules(law, cands)
    assert list(df.columns[:4]) == ["schedule", "total_steps", "final_loss", "gap_to_best"]
    assert df["final_loss"].is_monotonic_increasing and df["gap_to_best"].iloc[0] == 0
    assert df["schedule"].iloc[-1] == "constant" and df["schedule"].iloc[0] == "wsd:0.2"
    for name, lrs in cands.items():
        assert df.set_index("schedule").loc[name, "final_loss"] == pytest.approx(law.predict_final(lrs))
    with pytest.raises(DataError, match="no schedules"):
        rank_schedules(law, {})


def test_rank_schedules_with_intervals():
    p = {"L0": 2.5, "A": 0.6, "alpha": 0.45, "C": 0.2}
    law = AnnealingLaw(n_boot=6).fit(
        [synth(k, law="anneal", params=p, seed=i) for i, k in enumerate(("cosine", "constant"))]
    )
    cands = {"cosine": schedule("cosine"), "constant": schedule("constant"), "wsd": schedule("wsd")}
    df = rank_schedules(law, cands, level=0.8)
    assert df["schedule"].tolist() == sorted(cands, key=lambda k: law.predict_final(cands[k]))
    assert np.all(df["final_loss_lo"] <= df["final_loss"]) and np.all(df["final_loss"] <= df["final_loss_hi"])


# -- size scaling ----------------------------------------------------------------------------------
def _anneal_at(n: float) -> dict:
    u = math.log(n / 1e8)
    return {
        "L0": 2.6 * math.exp(-0.09 * u),
        "A": 0.6 * math.exp(0.08 * u),
        "alpha": 0.45 * math.exp(-0.06 * u),
        "C": 0.25,
    }


def test_scaled_law_learns_slopes_from_two_sizes_and_predicts_a_third():
    curves = []
    for n in (25e6, 100e6):
        for i, k in enumerate(("cosine", "constant")):
            c = synth(k, law="anneal", params=_anneal_at(n), seed=int(n) % 7 + i)
            curves.append(Curve(c.steps, c.lrs, c.loss, f"{k}", n))
    law = ScaledScheduleLaw(base=AnnealingLaw(), scaled=("L0", "A", "alpha")).fit(curves)
    assert law.slopes_["L0"] == pytest.approx(-0.09, abs=0.02)
    assert law.slopes_["C"] == 0.0
    target = synth("wsd", law="anneal", params=_anneal_at(400e6), noise=0)
    pred = law.predict(target.lrs, target.steps, n_params=400e6)
    assert np.mean(np.abs(pred - target.loss) / target.loss) < 2e-3
    again = ScaledScheduleLaw.from_dict(json.loads(json.dumps(law.to_dict())))
    np.testing.assert_allclose(again.predict(target.lrs, n_params=4e8), law.predict(target.lrs, n_params=4e8))


def test_scaled_law_warns_when_a_slope_is_not_determined():
    # L0 moves by e^-3 over one e-fold of N: far beyond the +-2 bound of a slope, so the fit pins it there
    curves = []
    for n, l0 in ((25e6, 2.6), (25e6 * math.e, 2.6 * math.exp(-3))):
        for i, k in enumerate(("cosine", "constant")):
            c = synth(k, law="anneal", params={**_anneal_at(1e8), "L0": l0}, seed=i)
            curves.append(Curve(c.steps, c.lrs, c.loss, k, n))
    with pytest.warns(UserWarning, match="hit its bound"):
        law = ScaledScheduleLaw(base=AnnealingLaw(), scaled=("L0",)).fit(curves)
    assert law.slopes_["L0"] == pytest.approx(-2.0, abs=1e-2) and "L0" in law.warnings_[0]


def test_scaled_law_transfers_one_size_with_given_slopes():
    slopes = {"L0": -0.09, "A": 0.08, "alpha": -0.06, "B": 0.13}

    def at(n):
        u = math.log(n / 25e6)
        return {k: v * math.exp(slopes.get(k, 0.0) * u) for k, v in P25.items()}

    train = [
        Curve(c.steps, c.lrs, c.loss, c.name, 25e6)
        for c in (synth(k, params=at(25e6), seed=i) for i, k in enumerate(("cosine", "constant", "step")))
    ]
    with pytest.raises(FitError, match="one model size"):
        ScaledScheduleLaw().fit(train)
    with pytest.raises(FitError, match="model size"):
        ScaledScheduleLaw(slopes=slopes).fit([Curve(c.steps, c.lrs, c.loss) for c in train])
    law = ScaledScheduleLaw(slopes=slopes, base=MultiPowerLaw(n_starts=1)).fit(train)
    target = synth("cosine", params=at(100e6), noise=0)
    pred = law.predict(target.lrs, target.steps, n_params=100e6)
    assert np.mean(np.abs(pred - target.loss) / target.loss) < 2e-3
    assert law.law_at(100e6).predict_final(target.lrs) == pytest.approx(
        law.predict_final(target.lrs, n_params=1e8)
    )
