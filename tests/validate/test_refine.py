"""Law-guided refinement on synthetic valleys, the cost-to-regret curves, the GP-BO baseline, and
validation.json with curves (and without: older files)."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from oasl.errors import ConfigError
from oasl.validate import curves as cc
from oasl.validate.baselines import GPSearch, make_baseline
from oasl.validate.refine import Valley, fit_runs, ladder_valley, refine

X_STAR = math.log(2e-3)


def valley_loss(c=0.04, asym=0.0, noise=0.0, seed=0, x_star=X_STAR):
    """train(lrs) -> losses of a parabola in log lr (relative curvature ``c``), steeper above with ``asym``."""
    rng = np.random.default_rng(seed)

    def train(lrs):
        out = []
        for lr in lrs:
            u = math.log(lr) - x_star
            out.append(3.0 * (1 + c * u * u + asym * max(u, 0.0) ** 3 + noise * rng.normal()))
        return out

    return train


@pytest.mark.parametrize("offset", [-0.6, -0.2, 0.0, 0.3, 0.6])
def test_two_runs_find_the_optimum_when_the_interval_covers_it(offset):
    center = math.exp(X_STAR + offset)
    interval = (center / 3.0, center * 3.0)  # covers the optimum
    # the parabola's own machinery: every run fitted (cliff="fit"; the cliff rule is tested below)
    r = refine(center, interval, 2, valley_loss(noise=0.0005), Valley(0.04, 0.002, cliff="fit"))
    assert len(r.lrs) == 2 and r.lrs[0] < center < r.lrs[1]
    # within 15% in lr: under 0.1% regret on this valley, where the law alone was off by up to 1.8x
    assert abs(math.log(r.lr) - X_STAR) < 0.15
    assert r.interval[0] < r.lr < r.interval[1] and r.flags == []


def test_one_run_is_the_law_and_more_runs_get_closer():
    center = math.exp(X_STAR + 0.5)
    train = valley_loss(c=0.05, asym=0.03, noise=0.0005)
    errs = [
        abs(math.log(refine(center, (center / 3, center * 3), k, train, Valley()).lr) - X_STAR)
        for k in (1, 2, 4)
    ]
    assert errs[0] == pytest.approx(0.5, abs=1e-3)  # one run: the posterior is the prior
    assert errs[2] < 0.15 and errs[2] < errs[0]


def test_an_interval_that_misses_the_valley_is_flagged():
    center = math.exp(X_STAR + 3.0)  # 20x too high, with a narrow interval, on a parabola 20x wide
    parabola = Valley(0.04, 0.002, cliff="fit")
    r = refine(center, (center / 1.5, center * 1.5), 2, valley_loss(), parabola)
    assert "beyond" in r.flags and "below" in r.messages[0]
    # more runs walk down the valley to it
    r4 = refine(center, (center / 1.5, center * 1.5), 4, valley_loss(), parabola)
    assert abs(math.log(r4.lr) - X_STAR) < 0.3
    # the cliff rule reads the upper run's steep rise as a cliff: the answer is bounded below it, and
    # walks down more slowly (on a real valley, runs 13-30x above the optimum sit on the plateau anyway)
    rc = refine(center, (center / 1.5, center * 1.5), 4, valley_loss(), Valley(0.04, 0.002))
    assert "cliff" in rc.flags and rc.lr < max(rc.lrs[:2]) and math.log(rc.lr) - X_STAR < 2.0


def cliff_loss(c=0.04, wall=1.0, plateau=0.6, noise=0.0005, seed=0):
    """train(lrs) -> losses of the CPU ladders' valley shape: a parabola below the optimum; above it a
    much steeper rise that flattens into a plateau (``plateau`` relative loss above the optimum)."""
    rng = np.random.default_rng(seed)

    def train(lrs):
        out = []
        for lr in lrs:
            u = math.log(lr) - X_STAR
            rise = c * u * u if u <= 0 else min((c + wall) * u * u, plateau)
            out.append(3.0 * (1 + rise + noise * rng.normal()))
        return out

    return train


@pytest.mark.parametrize("offset", [-0.3, 0.0, 0.3])
def test_a_run_over_the_cliff_bounds_the_optimum_instead_of_bending_the_parabola(offset):
    center = math.exp(X_STAR + offset)
    iv = (center / 3, center * 3)
    fitted = refine(center, iv, 3, cliff_loss(), Valley(0.04, 0.002, cliff="fit"))
    bounded = refine(center, iv, 3, cliff_loss(), Valley(0.04, 0.002))
    # every run in the parabola: the plateau reads as a valley centred far below the optimum (x3-5 low)
    assert math.log(fitted.lr) - X_STAR < -0.7 and fitted.flags == []
    # the run on the plateau only bounds the optimum: the answer lands within x1.2 of it
    assert abs(math.log(bounded.lr) - X_STAR) < 0.2
    assert "cliff" in bounded.flags and "below them" in bounded.messages[0]
    # with two runs, one over the cliff: the message says the answer leans on the law and what to do
    two = refine(center, iv, 2, cliff_loss(), Valley(0.04, 0.002))
    assert "cliff" in two.flags and "raise k" in two.messages[0]
    assert "raise k" not in bounded.messages[0]  # three runs: two are left to fit


def test_only_runs_above_the_best_one_can_be_over_the_cliff():
    from oasl.validate.refine import over_cliff

    v = Valley(0.04, 0.002)  # limit: 0.04 x 1.2^2 = 5.8% above the lowest run
    lrs = [1e-3, 2e-3, 4e-3, 8e-3]
    # the lowest-lr run 30% above the best is fitted (the slow side); the highest, 30% above, is a bound
    assert list(over_cliff(lrs, [3.9, 3.0, 3.1, 3.9], v)) == [False, False, False, True]
    assert not over_cliff(lrs, [3.9, 3.0, 3.1, 3.1], v).any()
    assert not over_cliff(lrs, [3.9, 3.0, 3.1, 3.9], Valley(0.04, 0.002, cliff="fit")).any()
    # a diverged run is never "over the cliff" (it is a bound already); one finite run: nothing to compare
    assert list(over_cliff(lrs, [3.0, math.nan, 3.9, math.nan], v)) == [False, False, True, False]
    assert not over_cliff(lrs[:2], [3.0, math.nan], v).any()
    with pytest.raises(Exception, match="valley cliff 'maybe'"):
        Valley(cliff="maybe")


def test_a_valley_flatter_than_the_noise_is_flagged():
    r = refine(2e-3, (1e-3, 4e-3), 3, valley_loss(c=0.0005), Valley(0.04, 0.002))
    assert r.flags == ["flat"] and "flatter than the noise" in r.messages[0]


def test_a_diverged_run_pushes_the_answer_below_it():
    r = fit_runs(2e-3, (1e-3, 4e-3), [1.5e-3, 3e-3], [3.0, math.nan], Valley())
    assert "diverged" in r.flags and r.lr < 3e-3 and r.interval[1] <= 3e-3


def test_the_likelihood_takes_the_valleys_measured_asymmetry():
    from oasl.laws.risk import ValleyShape
    from oasl.validate.refine import with_asymmetry

    # a valley 3x steeper above the optimum than below (mean curvature 0.04), the law's centre on it
    def train(lrs):
        return [3.0 * (1 + (0.06 if (u := math.log(v) - X_STAR) > 0 else 0.02) * u * u) for v in lrs]

    centre, iv = math.exp(X_STAR), (math.exp(X_STAR - 1.5), math.exp(X_STAR + 1.5))
    sym = refine(centre, iv, 2, train, Valley(0.04, 0.002))
    shape = ValleyShape(curv_below=0.02, curv_above=0.06)
    asym_valley = with_asymmetry(Valley(0.04, 0.002), shape)
    assert asym_valley.asym == pytest.approx(3.0) and "asymmetry 3.00" in asym_valley.source
    asym = refine(centre, iv, 2, train, asym_valley)
    # the symmetric parabola reads the steep side's higher loss as an optimum further down; the
    # asymmetric likelihood puts it back near the truth
    err_sym, err_asym = math.log(sym.lr) - X_STAR, math.log(asym.lr) - X_STAR
    assert err_sym < -0.3 and abs(err_asym) < 0.2 and abs(err_asym) < abs(err_sym) / 2
    # no shape, or a broken one: the valley is left as it was
    assert with_asymmetry(Valley(0.04, 0.002), None).asym == 1.0
    assert with_asymmetry(Valley(0.04, 0.002), ValleyShape(curv_below=0.0, curv_above=0.06)).asym == 1.0


def test_independent_sides_read_an_unexpectedly_steep_side_less_as_a_shift():
    from dataclasses import replace

    # the ladder said symmetric; the target's upper side is 3x steeper, the optimum at the law's centre
    c, d = 1e-3, 1.0
    lrs, losses = [c * math.exp(-d), c * math.exp(d)], [3.0 * (1 + 0.05 * d * d), 3.0 * (1 + 0.15 * d * d)]
    valley = Valley(curvature=0.05, noise=0.003, scatter=0.003, cliff="fit")
    tied = fit_runs(c, (c / 3, c * 3), lrs, losses, valley)
    free = fit_runs(c, (c / 3, c * 3), lrs, losses, replace(valley, sides="independent"))
    # tied sides must read the excess rise as an optimum below the centre; free sides keep more doubt
    assert math.log(tied.lr / c) < -0.4
    assert math.log(tied.lr / c) < math.log(free.lr / c) < 0
    assert math.log(free.interval[1] / free.interval[0]) > math.log(tied.interval[1] / tied.interval[0])
    with pytest.raises(ConfigError, match="valley sides 'both'"):
        Valley(sides="both")


def test_refine_rejects_a_bad_budget_and_centre():

    with pytest.raises(ConfigError, match="at least one"):
        refine(1e-3, None, 0, valley_loss())
    with pytest.raises(ConfigError, match="positive"):
        refine(float("nan"), None, 2, valley_loss())


def test_ladder_valley_measures_curvature_of_the_largest_size():
    rows = []
    for n, c in ((1e4, 0.08), (5e4, 0.03)):
        for lr in np.geomspace(2e-4, 2e-2, 9):
            u = math.log(lr / 2e-3)
            rows.append(
                {
                    "n_params": n,
                    "lr": lr,
                    "final_val_loss": 3.0 * (1 + c * u * u),
                    "optimizer": "adamw",
                    "status": "done",
                }
            )
    v = ladder_valley(pd.DataFrame(rows), "adamw")
    assert v.curvature == pytest.approx(0.03, rel=0.05) and v.source.startswith("ladder")
    assert ladder_valley(pd.DataFrame(rows[:3]), "adamw") == Valley()  # too few points: defaults


def test_ladder_valley_noise_is_one_runs_not_a_seed_means():
    """Two seeds scattered +-1% about an exact parabola: the seed means sit on it, but one target run (a
    single seed) scatters by 1%, and that is the noise the refinement's likelihood needs."""
    rows = []
    for n in (1e4, 5e4):
        for i, lr in enumerate(np.geomspace(2e-4, 2e-2, 9)):
            u = math.log(lr / 2e-3)
            for seed, sign in ((0, 1.0), (1, -1.0)):
                e = 0.01 * sign * (1 if i % 2 else -1)
                rows.append(
                    {
                        "n_params": n,
                        "lr": lr,
                        "seed": seed,
                        "final_val_loss": 3.0 * (1 + 0.04 * u * u + e),
                        "optimizer": "adamw",
                        "status": "done",
                    }
                )
    v = ladder_valley(pd.DataFrame(rows), "adamw")
    assert v.curvature == pytest.approx(0.04, rel=0.05)
    assert 0.008 < v.noise < 0.013  # the seed means alone would give the floor (5e-4)
    # the run-to-run scatter (seeds at one lr) sets the placement; the parabola here fits exactly, so it
    # is all the noise there is
    assert 0.008 < v.scatter < 0.016
    assert v.min_step() == pytest.approx(math.sqrt(4 * v.scatter / v.curvature))
    one_seed = ladder_valley(pd.DataFrame([r for r in rows if r["seed"] == 0]), "adamw")
    assert one_seed.scatter is None and one_seed.min_step() == pytest.approx(
        math.sqrt(4 * one_seed.noise / one_seed.curvature)
    )


def test_largest_rung_noise_reads_the_rung_nearest_the_target():
    """Three rungs whose seeds scatter 4%, 2% and 0.5%: the default noise and scatter are the medians over
    rungs (the middle rung's), ``noise_from="largest"`` the largest rung's, as the curvature is."""
    rows = []
    for n, amp in ((1e4, 0.04), (5e4, 0.02), (2e5, 0.005)):
        for i, lr in enumerate(np.geomspace(2e-4, 2e-2, 9)):
            u = math.log(lr / 2e-3)
            for seed, sign in ((0, 1.0), (1, -1.0)):
                e = amp * sign * (1 if i % 2 else -1)
                rows.append(
                    {"n_params": n, "lr": lr, "seed": seed, "final_val_loss": 3.0 * (1 + 0.04 * u * u + e)}
                )
    df = pd.DataFrame(rows).assign(optimizer="adamw", status="done")
    median, largest = ladder_valley(df, "adamw"), ladder_valley(df, "adamw", noise_from="largest")
    assert median.curvature == largest.curvature == pytest.approx(0.04, rel=0.05)
    assert 0.016 < median.noise < 0.026 and 0.016 < median.scatter < 0.03
    assert 0.004 < largest.noise < 0.0065 and 0.004 < largest.scatter < 0.0075
    # the largest rung alone gives the same noise: no other rung enters
    alone = ladder_valley(df[df["n_params"] == 2e5], "adamw")
    assert largest.noise == pytest.approx(alone.noise) and largest.scatter == pytest.approx(alone.scatter)
    with pytest.raises(ConfigError, match="noise_from"):
        ladder_valley(df, "adamw", noise_from="smallest")


def test_step_ratio_reads_the_first_steps_and_equal_rise_places_the_upper_run_closer():
    """Rungs whose valley rises 4x faster one step above the best lr than one step below: the ratio is
    4; a rung whose best lr sits at the grid's edge, or whose upper neighbour diverged, says nothing."""
    from dataclasses import replace

    from oasl.validate.refine import plan, step_ratio

    grid = np.geomspace(1e-4, 1e-2, 9)
    rows = []
    for n, c in ((1e4, 0.08), (3e4, 0.05)):
        for lr in grid:
            u = math.log(lr / grid[4])
            rows.append(
                {"n_params": n, "lr": lr, "final_val_loss": 3.0 * (1 + c * u * u * (4 if u > 0 else 1))}
            )
    for lr in grid:  # best lr at the edge: no ratio from this rung
        rows.append(
            {"n_params": 9e4, "lr": lr, "final_val_loss": 3.0 * (1 + 0.01 * math.log(lr / grid[0]) ** 2)}
        )
    df = pd.DataFrame(rows).assign(optimizer="adamw", status="done")
    assert step_ratio(df) == pytest.approx(4.0, rel=1e-6)
    # the upper neighbour diverged: that rung is left out; none left, so symmetric (1)
    bad = df[df["n_params"] == 1e4].copy()
    bad.loc[bad["lr"] == grid[5], ["final_val_loss", "status"]] = [float("nan"), "diverged"]
    assert step_ratio(bad) == 1.0
    # a valley flatter above than below is still placed symmetrically (ratio at least 1)
    flip = df.assign(lr=1e-6 / df["lr"])
    assert step_ratio(flip) == 1.0
    assert ladder_valley(df, "adamw").step_ratio == pytest.approx(4.0, rel=1e-6)
    v = Valley(curvature=0.05, noise=0.002, step_ratio=4.0)
    assert plan(1e-3, 0.5, 2, v) == pytest.approx([1e-3 * math.exp(-0.5), 1e-3 * math.exp(0.5)])
    rise = plan(1e-3, 0.5, 2, replace(v, placement="equal-rise"))
    assert rise == pytest.approx([1e-3 * math.exp(-0.5), 1e-3 * math.exp(0.25)])
    with pytest.raises(ConfigError, match="valley placement 'left'"):
        Valley(placement="left")


def test_side_noise_is_measured_per_side_and_trusts_a_run_above_the_optimum_less():
    """Seeds that scatter +-1% above the best lr and +-0.2% below it: ``ladder_valley`` measures each side's
    noise; with ``noise_sides="sides"`` and equal noises the posterior is the one-noise posterior (the terms
    the side adds are then constant), and a run above the optimum that came out low moves the answer less
    than under one noise as small as the lower side's."""
    from dataclasses import replace

    from oasl.validate.refine import posterior

    rows = []
    for n in (1e4, 5e4):
        for i, lr in enumerate(np.geomspace(2e-4, 2e-2, 9)):
            u = math.log(lr / 2e-3)
            for seed, sign in ((0, 1.0), (1, -1.0)):
                e = (0.01 if u > 1e-9 else 0.002) * sign * (1 if i % 2 else -1)
                rows.append(
                    {"n_params": n, "lr": lr, "seed": seed, "final_val_loss": 3.0 * (1 + 0.04 * u * u + e)}
                )
    v = ladder_valley(pd.DataFrame(rows).assign(optimizer="adamw", status="done"), "adamw")
    assert v.noise_above > 3 * v.noise_below and 0.007 < v.noise_above < 0.014
    assert v.side_noise() == (v.noise, v.noise)  # off by default: one noise for every run
    both = replace(v, noise_sides="sides")
    assert both.side_noise() == (v.noise_above, v.noise_below)
    assert replace(both, noise_above=None).side_noise()[0] == v.noise

    lrs = [2e-3 * math.exp(-1.0), 2e-3 * math.exp(1.0)]
    even = Valley(0.04, 0.004, cliff="fit")
    g1, w1 = posterior(2e-3, 0.6, lrs, [3.12, 3.12], even)
    g2, w2 = posterior(
        2e-3, 0.6, lrs, [3.12, 3.12], replace(even, noise_sides="sides", noise_above=0.004, noise_below=0.004)
    )
    assert np.allclose(g1, g2) and np.allclose(w1, w2)
    # five runs on the parabola, the optimum at the fourth, the one above it 2% low (noise above the
    # optimum): under one small noise it reads as a shift upwards; with the sides' noises (runs above the
    # lowest run the noisy ones) it counts less, and less than if the noisy side were the lower one
    xs = [-1.5, -1.0, -0.5, 0.0, 1.0]
    runs = [2e-3 * math.exp(x) for x in xs]
    low_up = [3.0 * (1 + 0.04 * x * x) - (0.06 if x > 0 else 0.0) for x in xs]
    iv = (2e-3 / 3, 2e-3 * 3)
    tight = fit_runs(2e-3, iv, runs, low_up, replace(even, noise=0.002))
    sided = fit_runs(
        2e-3, iv, runs, low_up, replace(even, noise_sides="sides", noise_above=0.01, noise_below=0.002)
    )
    flipped = fit_runs(
        2e-3, iv, runs, low_up, replace(even, noise_sides="sides", noise_above=0.002, noise_below=0.01)
    )
    errs = [math.log(r.lr / 2e-3) for r in (tight, sided, flipped)]
    assert errs[0] > errs[1] > 0 and errs[2] > errs[1]
    with pytest.raises(ConfigError, match="valley noise_sides 'two'"):
        Valley(noise_sides="two")


def test_gp_baseline_finds_a_synthetic_optimum():
    pytest.importorskip("optuna")
    lrs = GPSearch(6).search(lambda lr: math.log(lr / 3e-3) ** 2, (1e-4, 1e-1), 6, seed=0)
    assert len(lrs) == 6 and all(1e-4 <= v <= 1e-1 for v in lrs)
    best = min(lrs, key=lambda v: abs(math.log(v / 3e-3)))
    assert abs(math.log(best / 3e-3)) < math.log(2.0)
    assert make_baseline("gp:3").name == "gp:3" and make_baseline("oasl-refine:2").k == 2
    with pytest.raises(ValueError, match="gp:K"):
        make_baseline("gp")


def _target_valley():
    """A measured-looking target: a seed-0 grid and lrs trained on 3 seeds, valley at 3e-3."""
    grid = np.geomspace(5e-4, 3.2e-2, 9)

    def loss(lr, s):
        u = math.log(lr / 3e-3)
        return 2.0 + 0.01 * s + 0.05 * u * u

    seed0 = {float(v): loss(v, 0) for v in grid}
    pool = {float(v): [loss(v, s) for s in range(3)] for v in grid}
    oracle = [loss(3e-3, s) for s in range(3)]
    pool[3e-3] = oracle
    return cc.TargetValley.from_runs(seed0, pool, oracle)


def test_curves_shapes_sources_and_monotone_bookkeeping():
    from oasl.laws.risk import ValleyShape
    from oasl.validate.results import MethodResult

    tv = _target_valley()
    methods = [
        MethodResult("oasl", 5e-3, [0, 0, 0], 0.01, 0.0, 1, 1, regrets=[0.012, 0.011, 0.010]),
        MethodResult("naive", 8e-3, [0, 0, 0], 0.03, 0.0, 1, 1, regrets=[0.03, 0.03, 0.03]),
        MethodResult("oasl-refine:2", 3.2e-3, [0, 0, 0], 0.0, 0.0, 1, 1, regrets=[0.001, 0.001, 0.001]),
    ]
    curves = cc.method_curves(
        methods,
        tv,
        (2.5e-4, 6.4e-2),
        5e-3,
        (1.5e-3, 1.6e-2),
        Valley(0.025, 0.002),
        which=("random", "tpe", "oasl-refine", "oasl-risk"),
        search_draws=3,
        risk=ValleyShape(curv_below=0.02, curv_above=0.08),
    )
    assert [p["k"] for p in curves["random"]] == list(range(1, 9)) == [p["k"] for p in curves["tpe"]]
    assert [p["k"] for p in curves["oasl-refine"]] == [1, 2, 3, 4]
    assert [p["k"] for p in curves["oasl"]] == [0] and curves["oasl"][0]["source"] == "trained"
    # the risk-adjusted zero-run point, read off (not trained here): below the law's lr 5e-3
    assert curves["oasl-risk"][0]["k"] == 0 and curves["oasl-risk"][0]["source"] == "replayed"
    assert curves["oasl-risk"][0]["lr"] < 5e-3
    for pts in curves.values():
        for p in pts:
            assert p["lo"] <= p["mean"] + 1e-12 and p["mean"] <= p["hi"] + 1e-12
    # the trained refine:2 replaces its replayed point; the others are read off
    ref = {p["k"]: p for p in curves["oasl-refine"]}
    assert ref[2]["source"] == "trained" and "replayed_mean" in ref[2] and ref[3]["source"] == "replayed"
    # more random draws per search can only find a lower seed-0 loss; on a valley with the same shape on
    # every seed, the expected regret cannot rise with k
    means = [p["mean"] for p in curves["random"]]
    assert all(b <= a + 1e-12 for a, b in zip(means, means[1:], strict=False))
    assert curves["random"][0]["draws"] == 4000 and curves["tpe"][0]["draws"] == 3
    # the replayed refinement with 1 run is the law's centre (one run cannot move it): the refinement
    # risk-adjusts only when told (validation: where the ladder's zero-run check prefers the risk point)
    assert ref[1]["lr"] == pytest.approx(5e-3)
    risky = cc.method_curves(
        [],
        tv,
        (2.5e-4, 6.4e-2),
        5e-3,
        (1.5e-3, 1.6e-2),
        Valley(0.025, 0.002),
        which=("oasl-refine",),
        risk=ValleyShape(curv_below=0.02, curv_above=0.08),
        refine_check={"prefer": "risk", "refine_prefer": "risk"},
    )["oasl-refine"]
    assert risky[0]["lr"] == pytest.approx(curves["oasl-risk"][0]["lr"])
    s = cc.summary(curves, ladder_runs=3.0)
    assert s["law"] == pytest.approx(0.011) and s["refine"] == pytest.approx(0.001)
    assert set(s["runs_to_match"]) == {"random", "tpe"}
    m = s["runs_to_match"]["random"]
    assert m == ">8" or (
        isinstance(m, int)
        and s["saving_ratio"]
        == pytest.approx(min(v for v in s["runs_to_match"].values() if isinstance(v, int)) / 5.0)
    )
    assert set(s["below"]) == {"1", "2", "3", "4"}
    line = cc.card_line(s)
    assert (
        line.startswith("The law alone: +1.10% (risk-adjusted: ")
        and "with 2 runs around it: +0.10%" in line
        and "random search needs" in line
    )


def test_card_shows_the_cost_line(tmp_path):
    from oasl.report.card import build_card
    from oasl.validate.results import OptimizerValidation

    ov = OptimizerValidation(
        "adamw", 10**6, 10**5, 10.0, {}, 1e-3, (5e-4, 2e-3), 1e-3, [3.0, 3.1], 1.0, 1.0, 1.0
    )
    ov.cost_to_regret = {
        "law": 0.021,
        "refine": 0.003,
        "refine_k": 2,
        "runs_to_match": {"random": 6, "tpe": ">8"},
    }
    notes = " ".join(build_card(ov).notes)
    assert "The law alone: +2.10%; with 2 runs around it: +0.30%" in notes
    assert "random search needs 6 runs" in notes and "TPE needs more than 8 runs" in notes
    ov.cost_to_regret = {}
    assert "The law alone" not in " ".join(build_card(ov).notes)


def test_validation_json_round_trip_with_curves_and_old_files(tmp_path):
    from oasl.report.cost_regret import plot_cost_to_regret
    from oasl.validate.results import MethodResult, OptimizerValidation, ValidationResult, load_validation

    ov = OptimizerValidation(
        "adamw", 10**6, 10**5, 10.0, {}, 1e-3, (5e-4, 2e-3), 1e-3, [3.0, 3.1], 1.0, 1.0, 1.0
    )
    ov.methods = [MethodResult("oasl", 1e-3, [3.0, 3.1], 0.0, 0.0, 1.0, 1.0, regrets=[0.0, 0.0])]
    ov.curves = {
        "oasl": [cc.trained_point(0, [0.01, 0.02])],
        "random": [
            {
                "k": 1,
                "mean": 0.05,
                "lo": 0.04,
                "hi": math.inf,
                "range90": [0.0, 0.1],
                "draws": 9,
                "source": "replayed",
            }
        ],
    }
    ov.cost_to_regret = {"law": 0.015, "runs_to_match": {"random": ">8"}}
    res = ValidationResult("t", [ov], seeds=[0, 1])
    res.to_json(tmp_path / "validation.json")
    back = load_validation(tmp_path / "validation.json")
    b = back.optimizers[0]
    assert b.curves["oasl"][0]["mean"] == pytest.approx(0.015) and b.curves["oasl"][0]["source"] == "trained"
    assert math.isnan(b.curves["random"][0]["hi"])  # inf is written as null, read back as NaN
    assert b.cost_to_regret["runs_to_match"] == {"random": ">8"}
    assert plot_cost_to_regret(back, tmp_path / "c.png").stat().st_size > 1000
    # a file written before the curves loads with empty ones
    d = json.loads((tmp_path / "validation.json").read_text())
    for o in d["optimizers"]:
        del o["curves"], o["cost_to_regret"]
    (tmp_path / "old.json").write_text(json.dumps(d))
    old = load_validation(tmp_path / "old.json").optimizers[0]
    assert old.curves == {} and old.cost_to_regret == {}


def test_cli_refine_on_a_tiny_store(tmp_path, capsys):
    from oasl.store import SQLiteStore
    from oasl.testing import run_cli

    rows = []
    for n in (1e4, 4e4, 1.6e5):
        lr_star = 0.3 * n**-0.5
        for lr in lr_star * np.exp(np.linspace(-1.5, 1.5, 7)):
            rows.append(
                {
                    "optimizer": "adamw",
                    "n_params": n,
                    "tokens": 2048,
                    "lr": lr,
                    "final_val_loss": 3.0 + 0.1 * math.log(lr / lr_star) ** 2,
                }
            )
    store = SQLiteStore(tmp_path / "runs.db")
    store.import_frame(pd.DataFrame(rows))
    laws = tmp_path / "laws.json"
    code, _, err = run_cli(["fit", "--store", str(store.path), "--out", str(laws), "--hp", "lr"], capsys)
    assert code == 0, err
    target = [
        "--width",
        "16",
        "--depth",
        "1",
        "--seq-len",
        "32",
        "--batch-seqs",
        "4",
        "--tokens",
        "2048",
        "--optimizer",
        "adamw",
        "--device",
        "cpu",
        "--store",
        str(store.path),
    ]
    out = tmp_path / "refined.json"
    code, text, err = run_cli(["refine", "--laws", str(laws), "-k", "2", "--json", str(out), *target], capsys)
    assert code == 0, err
    r = json.loads(out.read_text())
    assert len(r["lrs"]) == 2 and r["lrs"][0] < r["center"] < r["lrs"][1]
    assert r["valley"]["source"].startswith("ladder") and "refined lr" in text
    assert r["interval"][0] < r["lr"] < r["interval"][1]
    # which answer rule, decided by the ladder's own zero-run check (3 rungs: the largest held out); on
    # these symmetric valleys the risk-adjusted point cannot beat the centre by the margin
    assert (
        "check of the refinement's answer does not prefer" in r["rule"] and "rule: the posterior mean" in text
    )
    # the target runs are in the store, marked as target runs (not sweep runs for `oasl fit`)
    roles = SQLiteStore(store.path).roles()
    assert list(roles.values()).count("target") == 2
    # the same command again trains nothing new and gives the same answer
    code, _, err = run_cli(["refine", "--laws", str(laws), "-k", "2", "--json", str(out), *target], capsys)
    assert code == 0 and json.loads(out.read_text())["lr"] == pytest.approx(r["lr"])
    assert list(SQLiteStore(store.path).roles().values()).count("target") == 2
    # bad input: one line, exit 2
    for bad, msg in (
        (["--lr", "1e-3", "--laws", str(laws)], "either"),
        (["--lr", "1e-3", "--low", "2e-3", "--high", "4e-3"], "--low < --lr < --high"),
        (["--lr", "1e-3", "-k", "0"], "between 1 and 8"),
        (["--laws", str(tmp_path / "none.json")], "does not exist"),
    ):
        code, _, err = run_cli(["refine", *bad, *target], capsys)
        assert code == 2 and msg in err and "Traceback" not in err, err


def test_zero_run_point_is_risk_adjusted_on_an_asymmetric_valley():
    from oasl.laws.risk import ValleyShape
    from oasl.validate.refine import zero_run

    steep_above = ValleyShape(curv_below=0.02, curv_above=0.08, diverge_at=0.7)
    centre = zero_run(2e-3, (1e-3, 4e-3))
    risky = zero_run(2e-3, (1e-3, 4e-3), risk=steep_above)
    assert centre.lr == pytest.approx(2e-3, rel=1e-3) and centre.k == 0
    # a steeper, diverging side above: the point moves below the centre, further for a wider interval
    assert risky.lr < 0.9 * 2e-3 and risky.risk["curv_above"] == 0.08
    wider = zero_run(2e-3, (2.5e-4, 1.6e-2), risk=steep_above)
    assert wider.lr < risky.lr
    # with one run, refine trains at that point; with two, its answer is risk-adjusted as well
    r1 = refine(2e-3, (1e-3, 4e-3), 1, valley_loss(), risk=steep_above)
    assert r1.lrs == [pytest.approx(risky.lr)]
    symmetric = ValleyShape(curv_below=0.05, curv_above=0.05)
    assert zero_run(2e-3, (1e-3, 4e-3), risk=symmetric).lr == pytest.approx(2e-3, rel=0.02)


def test_ladder_risk_measures_asymmetry_and_divergence():
    from oasl.validate.refine import ladder_risk

    rows, optima = [], []
    for n in (1e4, 5e4):
        for lr in 2e-3 * np.exp(np.linspace(-1.4, 1.4, 9)):
            u = math.log(lr / 2e-3)
            loss = math.nan if u > 1.0 else 3.0 + (0.02 if u < 0 else 0.08) * u * u
            rows.append(
                {
                    "n_params": n,
                    "lr": lr,
                    "final_val_loss": loss,
                    "optimizer": "adamw",
                    "status": "diverged" if u > 1.0 else "done",
                }
            )
        optima.append({"n_params": n, "opt": 2e-3, "loss_at_opt": 3.0, "optimizer": "adamw"})
    shape = ladder_risk(pd.DataFrame(rows), pd.DataFrame(optima), "adamw")
    assert shape.curv_below == pytest.approx(0.02, rel=0.05) and shape.curv_above == pytest.approx(
        0.08, rel=0.05
    )
    assert 0.7 < shape.diverge_at < 1.4
    assert ladder_risk(pd.DataFrame(rows), pd.DataFrame(optima).assign(opt=math.nan), "adamw") is None
