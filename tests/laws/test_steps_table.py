"""Steps-to-target tables: S(B) = S_min (1 + B_noise / B) per size, laws in N, the CLI (oasl.laws.steps_table)."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oasl.errors import DataError, FitError
from oasl.laws.steps_laws import StepsTableFit
from oasl.laws.steps_table import (
    fit_steps,
    plateau_mask,
    read_steps_table,
    zhang_cbs,
)
from oasl.testing import run_cli, shared_data

SIZES = [50e6, 100e6, 200e6, 400e6]
BATCHES = [2**i for i in range(6, 15)]


def s_min_true(n):
    return 0.5 * n**0.4


def b_noise_true(n):
    return 0.02 * n**0.6


def synthetic(noise=0.03, seed=0, sizes=SIZES, batches=BATCHES, **extra) -> pd.DataFrame:
    """Steps from S(B) = S_min (1 + B_noise/B) with known laws, times log-normal noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        for b in batches:
            s = s_min_true(n) * (1 + b_noise_true(n) / b) * np.exp(noise * rng.standard_normal())
            rows.append({"n_params": n, "batch_size_seqs": b, "steps": round(s), **extra})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("loss", ["rel", "log"])
def test_fit_recovers_s_min_and_b_noise_from_a_noisy_table(loss):
    fit = StepsTableFit(loss=loss, drop_plateau=False, n_boot=200).fit(read_steps_table(synthetic()))
    sz = fit.sizes_
    assert np.allclose(sz["s_min"], s_min_true(sz["n_params"]), rtol=0.15)
    assert np.allclose(sz["b_noise"], b_noise_true(sz["n_params"]), rtol=0.2)
    # the row bootstrap brackets the point fit; the truth lies inside for most sizes
    assert (sz["b_noise_low"] <= sz["b_noise"]).all() and (sz["b_noise"] <= sz["b_noise_high"]).all()
    inside = (sz["b_noise_low"] <= b_noise_true(sz["n_params"])) & (
        b_noise_true(sz["n_params"]) <= sz["b_noise_high"]
    )
    assert inside.sum() >= 3
    assert fit.b_noise_law_.exponents_["N"] == pytest.approx(0.6, abs=0.1)
    assert fit.s_min_law_.exponents_["N"] == pytest.approx(0.4, abs=0.1)
    lo, hi = fit.b_noise_law_.exponent_interval(0.9)["N"]
    assert lo < 0.6 < hi
    # extrapolating to twice the largest size: steps at every batch within 10% of the truth
    p = fit.predict(800e6)
    assert p["extrapolated"] and len(p["steps"]) == len(BATCHES)
    truth = s_min_true(800e6) * (1 + b_noise_true(800e6) / np.array(BATCHES))
    assert np.allclose([s["steps"] for s in p["steps"]], truth, rtol=0.1)
    assert p["b_noise_law_interval"][0] < b_noise_true(800e6) < p["b_noise_law_interval"][1]


def test_noise_free_fit_is_exact_and_zhang_definition_is_20pct_over_linear():
    b = np.array(BATCHES, float)
    s = 1000 * (1 + 3000 / b)
    for loss in ("rel", "log"):
        s_min, bn = fit_steps(b, s, loss)
        assert s_min == pytest.approx(1000, rel=1e-4) and bn == pytest.approx(3000, rel=1e-4)
    # B* from the closed form needs 1.2x the steps of linear scaling from B_ref = 256
    bstar = float(zhang_cbs(3000.0))
    steps = lambda x: 1000 * (1 + 3000 / x)  # noqa: E731
    assert steps(bstar) == pytest.approx(1.2 * steps(256) * 256 / bstar)


def test_plateau_batches_are_dropped_only_while_three_remain():
    b = np.array([64, 128, 256, 512, 1024], float)
    assert plateau_mask(b, np.array([800, 400, 210, 200, 199.0])).tolist() == [True, True, True, False, False]
    assert plateau_mask(b[:3], np.array([800, 790, 789.0])).all()


def test_two_sizes_give_a_point_law_and_one_size_refuses_to_predict():
    fit = StepsTableFit(n_boot=20).fit(read_steps_table(synthetic(sizes=SIZES[:2])))
    p = fit.predict(200e6)
    assert p["b_noise_law_interval"] is None and p["steps"][0]["law_low"] is None
    assert p["b_noise"] == pytest.approx(b_noise_true(200e6), rel=0.2)
    one = StepsTableFit(n_boot=0).fit(read_steps_table(synthetic(sizes=SIZES[:1])))
    with pytest.raises(FitError, match="add a size"):
        one.predict(1e9)


def test_s_min_form_ties_s_min_to_b_noise_and_auto_checks_it_on_the_largest_size(monkeypatch):
    import tests.laws.test_steps_table as me

    # here E_min = S_min B_noise grows as N^0.9, not N: the check must keep S_min's own power law
    monkeypatch.setattr(me, "s_min_true", lambda n: 2.0 * n**0.3)
    table = read_steps_table(synthetic(noise=0.0))
    auto = StepsTableFit(n_boot=0).fit(table)
    sel = auto.s_min_selection_
    assert sel["form"] == "power" and sel["held_out_n_params"] == SIZES[-1]
    assert sel["median_abs_err"]["power"] < 0.01 < sel["median_abs_err"]["e_min"]
    assert auto.s_min_law_.exponents_["N"] == pytest.approx(0.3, abs=0.01)
    # forced: S_min = c N / B_noise(N), exponent 1 - B_noise's, and E_min / N the same at every N
    tied = StepsTableFit(n_boot=30, s_min_form="e_min").fit(table)
    beta = tied.b_noise_law_.exponents_["N"]
    assert tied.s_min_law_.exponents_["N"] == pytest.approx(1 - beta)
    e_over_n = [tied.predict(n)["s_min"] * tied.predict(n)["b_noise"] / n for n in (1e8, 1e9, 1e10)]
    assert e_over_n == pytest.approx([e_over_n[0]] * 3, rel=1e-9)
    # the bootstrap's S_min follows each resample's B_noise law the same way
    p = tied.predict(1e9)
    assert p["s_min_interval"][0] <= p["s_min"] <= p["s_min_interval"][1]
    assert tied.to_dict()["fit"]["s_min_form"] == "e_min"
    # two sizes cannot hold one out: the default form, said so
    two = StepsTableFit(n_boot=0).fit(read_steps_table(synthetic(sizes=SIZES[:2])))
    assert two.s_min_selection_["form"] == "power" and "needs 3" in two.s_min_selection_["why"]
    with pytest.raises(FitError, match="s_min_form 'chinchilla'"):
        StepsTableFit(s_min_form="chinchilla")


def test_tokens_per_size_give_laws_in_n_and_d():
    df = synthetic()
    df["tokens"] = df["n_params"].map({50e6: 2e9, 100e6: 1.5e9, 200e6: 6e9, 400e6: 5e9})
    fit = StepsTableFit(n_boot=0).fit(read_steps_table(df))
    assert fit.features_ == ("N", "D")
    with pytest.raises(FitError, match="tokens"):
        fit.predict(800e6)
    assert np.isfinite(fit.predict(800e6, tokens=1e10)["b_noise"])
    # tokens proportional to N (Chinchilla) carry no second feature
    df["tokens"] = 20 * df["n_params"]
    assert StepsTableFit(n_boot=0).fit(read_steps_table(df)).features_ == ("N",)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: d.drop(columns="steps"), "lacks column.*steps"),
        (lambda d: d.drop(columns="batch_size_seqs"), "batch_size_seqs \\(or batch_tokens\\)"),
        (lambda d: d.assign(steps=d["steps"].where(d.index != 5, -3)), "row 5: steps must be a positive"),
        (
            lambda d: d.assign(n_params=d["n_params"].astype(object).where(d.index != 0, "x")),
            "row 0: n_params",
        ),
        (lambda d: d[~((d["n_params"] == 50e6) & (d["batch_size_seqs"] > 128))], "has 2 batch size"),
        (lambda d: d.assign(tokens=np.arange(len(d)) + 1.0), "one value per model size"),
        (lambda d: d.iloc[:0], "no rows"),
    ],
)
def test_bad_tables_are_refused_in_one_line(mutate, match):
    with pytest.raises(DataError, match=match) as exc:
        read_steps_table(mutate(synthetic()))
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "steps, match",
    [(lambda b: 1e6 / b, "beyond 100x the largest batch"), (lambda b: 0 * b + 900, "below 1/100")],
)
def test_a_b_noise_the_table_cannot_pin_is_refused(steps, match):
    b = np.array(BATCHES[:4], float)
    df = pd.DataFrame({"n_params": 1e8, "batch_size_seqs": b, "steps": steps(b)})
    with pytest.raises(FitError, match=match):
        StepsTableFit(n_boot=0).fit(read_steps_table(df))


def test_sources_and_repeats():
    a, b = synthetic(source="a"), synthetic(seed=1, source="b")
    t = read_steps_table(pd.concat([a, b]))
    assert len(t.frame) == len(a) and "source 'a'" in t.notes[0]
    assert read_steps_table(pd.concat([a, b]), source="b").frame["steps"].sum() == b["steps"].sum()
    with pytest.raises(DataError, match="use one of a, b"):
        read_steps_table(pd.concat([a, b]), source="c")
    # repeated (size, batch) rows without a source: the fewest steps count
    rep = pd.concat([a.drop(columns="source"), a.drop(columns="source").assign(steps=a["steps"] + 10)])
    t = read_steps_table(rep)
    assert t.frame["steps"].sum() == a["steps"].sum() and "fewest steps" in t.notes[0]


def test_cli_json_shape_and_one_line_errors(tmp_path, capsys):
    path = tmp_path / "steps.csv"
    df = synthetic()
    df.assign(batch_tokens=df["batch_size_seqs"] * 512).to_csv(path, index=False)
    args = ["batch", "critical", "--steps-table", str(path), "--n-boot", "50"]
    code, out, err = run_cli([*args, "--target-params", "8e8", "--format", "json"], capsys)
    assert code == 0, err
    d = json.loads(out)
    assert d["b_noise_unit"] == "sequences" and d["b_noise"] > 0 and d["s_min"] > 0
    assert d["b_noise_tokens"] == pytest.approx(d["b_noise"] * 512)
    assert [s["batch_size_seqs"] for s in d["steps"]] == BATCHES
    for s in d["steps"]:
        assert s["low"] <= s["steps"] <= s["high"] and s["law_low"] < s["steps"] < s["law_high"]
    for k in ("b_noise_interval", "s_min_interval", "b_noise_law_interval", "s_min_law_interval"):
        assert len(d[k]) == 2 and d[k][0] < d[k][1]
    assert d["zhang"]["cbs"] > 0 and d["zhang"]["published_cbs"] == pytest.approx(93.2 * 800**0.468)
    assert len(d["sizes"]) == 4 and set(d["laws"]) == {"b_noise", "s_min", "zhang_cbs"}
    # the table format prints per-size fits and the laws
    code, out, err = run_cli([*args, "--target-params", "8e8"], capsys)
    assert code == 0 and "b_noise = " in out and "s_min = " in out and "Zhang" in out
    # a table in tokens only: batches and B_noise in tokens
    df.assign(batch_tokens=df["batch_size_seqs"] * 512).drop(columns="batch_size_seqs").to_csv(
        path, index=False
    )
    code, out, err = run_cli([*args, "--target-params", "8e8", "--format", "json"], capsys)
    d = json.loads(out)
    assert code == 0 and d["b_noise_unit"] == "tokens" and d["steps"][0]["batch_tokens"] == 64 * 512
    bad = tmp_path / "bad.csv"
    df.drop(columns="steps").to_csv(bad, index=False)
    neg = tmp_path / "neg.csv"
    df.assign(steps=df["steps"].where(df.index != 3, 0)).to_csv(neg, index=False)
    code, out, err = run_cli(["batch", "critical", "--steps-table", str(neg)], capsys)
    assert code == 2 and f"{neg} line 5: steps must be a positive number, got '0'" in err
    for argv in (
        ["batch", "critical", "--steps-table", str(bad)],
        ["batch", "critical", "--steps-table", str(tmp_path / "none.csv")],
        [*args, "--format", "yaml"],
        [*args, "--target-params", "-1"],
        [*args, "--target-loss", "3"],
        [*args, "--store", "runs.db"],
        ["batch", "critical", "--store", "runs.db", "--format", "json"],
        ["batch", "critical"],
    ):
        code, out, err = run_cli(argv, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error:"), (argv, err)


@pytest.fixture(scope="module")
def zhang_csv():
    path = shared_data("critical_batch_zhang2024") / "steps_to_target.csv"
    if not path.exists():
        pytest.skip(
            f"Zhang et al.'s table not found at {path} (see ../shared/data/critical_batch_zhang2024/NOTES.md)"
        )
    return path


def test_real_table_reproduces_the_notebooks_critical_batch(zhang_csv):
    t = read_steps_table(zhang_csv)
    assert "cell5" in t.notes[0] and t.unit == "seqs" and len(t.frame) == 36
    # the notebook's log-steps fit of 85M: S = 1293.83 + 2834258 / B
    g = t.frame[t.frame["n_params"] == 85e6]
    s_min, bn = fit_steps(g["batch"], g["steps"], "log")
    assert s_min == pytest.approx(1293.83, rel=1e-3) and s_min * bn == pytest.approx(2834258, rel=1e-3)
    fit = StepsTableFit(n_boot=50).fit(t)
    # their B* per size (notebook cell 5): 745.3, 955.2, 1393.7 sequences for 85M, 151M, 302M
    assert fit.sizes_["zhang_cbs"].iloc[:3].tolist() == pytest.approx([745.32, 955.16, 1393.73], rel=1e-3)
    # B_noise grows with N, and B* of their definition lies far below it
    assert fit.sizes_["b_noise"].is_monotonic_increasing
    assert (fit.sizes_["zhang_cbs"] < fit.sizes_["b_noise"]).all()
    assert 0.3 < fit.b_noise_law_.exponents_["N"] < 0.9
    # Chinchilla-scaled targets: from 85M+151M, E_min proportional to N predicts 302M's steps better
    # (median error 6.7%) than S_min's own power law (14.7%), so the training sizes choose it
    train = read_steps_table(zhang_csv)
    train.frame = train.frame[train.frame["n_params"] < 6e8].reset_index(drop=True)
    sel = StepsTableFit(n_boot=0).fit(train).s_min_selection_
    assert sel["form"] == "e_min" and sel["held_out_n_params"] == 302e6
    assert sel["median_abs_err"]["e_min"] == pytest.approx(0.0668, abs=0.002)
    assert sel["median_abs_err"]["power"] == pytest.approx(0.1469, abs=0.002)


def test_real_table_through_the_cli(zhang_csv, capsys):
    code, out, err = run_cli(
        [
            "batch",
            "critical",
            "--steps-table",
            str(zhang_csv),
            "--target-params",
            "1.2e9",
            "--format",
            "json",
            "--n-boot",
            "50",
        ],
        capsys,
    )
    assert code == 0, err
    d = json.loads(out)
    assert [s["batch_size_seqs"] for s in d["steps"]] == BATCHES and d["extrapolated"]
    # the steps fall with the batch, and the bend (B_noise) lies inside the table's batches
    assert all(a["steps"] > b["steps"] for a, b in zip(d["steps"], d["steps"][1:], strict=False))
    assert BATCHES[0] < d["b_noise"] < BATCHES[-1] and d["b_noise_tokens"] == pytest.approx(
        512 * d["b_noise"]
    )
    assert d["zhang"]["published_cbs"] == pytest.approx(93.2 * 1200**0.468)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([1e7, 3e7, 1e8]),
            st.sampled_from([8.0, 16.0, 32.0, 64.0, 128.0]),
            st.one_of(st.floats(min_value=-10, max_value=1e7), st.just(float("nan"))),
        ),
        min_size=1,
        max_size=15,
    )
)
def test_any_table_gives_a_fit_or_one_oasl_error(rows):
    """Whatever numbers a table holds, reading and fitting it ends in a fit or one OaslError line."""
    from oasl.errors import OaslError

    df = pd.DataFrame(rows, columns=["n_params", "batch_size_seqs", "steps"])
    try:
        fit = StepsTableFit(n_boot=5).fit(read_steps_table(df))
    except OaslError as exc:
        assert "\n" not in str(exc)
        return
    assert (fit.sizes_["b_noise"] > 0).all() and np.isfinite(fit.sizes_["s_min"]).all()
