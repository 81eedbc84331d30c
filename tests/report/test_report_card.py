"""The report's first screen is the answer: the demo miniature's report, rendered in headless Chromium,
opens on a recommendation card with the target's configuration, its law and what validation showed."""

import html
import importlib.util
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from oasl.report.card import build_card, pct, render_card


def _mini_sweep():
    # the demo miniature of tests/validate/test_demo.py, read from there so that both test one thing
    path = Path(__file__).parents[1] / "validate" / "test_demo.py"
    spec = importlib.util.spec_from_file_location("_demo_miniature", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.MINI_SWEEP


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    from oasl.validate.demo import demo_spec
    from oasl.workflows import demo as run_demo

    out = tmp_path_factory.mktemp("demo")
    result, _, page = run_demo(out, workers=2, spec=demo_spec(sweep=_mini_sweep(), target={"width": 96}))
    return result, page


def _text(page):
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def test_card_first_screen_in_chromium(mini, chromium, tmp_path):
    result, page = mini
    ov = result.optimizers[0]
    doc = page.read_text()
    assert doc.index("class='card'") < doc.index("<img")  # the card comes before every plot
    text = _text(doc)
    # the full configuration, with the lr's interval and the law behind it
    lo, hi = ov.recommended_interval
    assert f"peak learning rate {ov.recommended_lr:.3g} [{lo:.3g}, {hi:.3g}] law" in text
    for name in ("batch size 8 sequences x 32 = 256 tokens", "warmup 5% of the steps", "schedule cosine"):
        assert name in text, name
    for hp in ("beta1 0.9", "beta2 0.95", "weight decay"):
        assert hp in text, hp
    assert "R²" in text and f"extrapolated {ov.extrapolation_ratio:.1f}x beyond the largest swept N" in text
    # what validation showed, regret in % (never a bare fraction) and compute in target-run equivalents
    for m in ov.methods:
        assert f"{m.method} {m.lr:.3g} {pct(m.regret_mean)}" in text, m.method
    oasl = ov.methods[0]
    assert f"so {oasl.tuning_runs:.2f} for oasl means its whole small-model sweep" in text
    assert "regret_mean" not in doc and "Recommendation at the target" not in doc
    # as a browser shows it: every image decodes, no script error, nothing logged to the console
    probe, console = chromium.check(page)
    n_img = doc.count("<img")
    assert probe == f"images {n_img}/{n_img} loaded; errors 0" and n_img >= 3 and not console, (
        probe,
        console,
    )
    # the first screen is neither empty nor broken: varied pixels, and the card's tint fills much of it
    shot = chromium.screenshot(page, tmp_path / "first.png", 1200, 900)
    px = (shot.reshape(-1, 3) * 255).round().astype(int)
    assert (np.abs(px - 255).sum(axis=1) > 30).mean() > 0.03  # enough ink on the page
    tint = (np.abs(px - [246, 251, 247]).sum(axis=1) <= 3).mean()
    assert tint > 0.15, tint  # the card (#f6fbf7) is on the first screen


def test_card_shows_intervals_verdicts_and_noise_floor_when_validation_has_them(mini):
    result, _ = mini
    ov = result.optimizers[0]
    ov.noise_floor = float("nan")  # the demo's own floor (2 seeds) would stand in for the one given below
    for m, (lo, hi, verdict) in zip(
        ov.methods, [(0.001, 0.02, None), (0.0, 0.0, None), (0.004, 0.03, "worse")], strict=False
    ):
        m.regret_ci, m.verdict = [lo, hi], verdict
    text = _text(render_card(build_card(ov, None, noise_floor=0.005)))
    assert "+0.10% to +2.00% (90%)" in text and "worse than oasl" in text
    assert "Noise floor: the oracle's own spread over seeds is 0.50%" in text
    assert "only the learning rate is shown" in text  # no store: the configuration is not guessed
    assert "clipping changes regime" not in text
    ov.clipping = {"warning": "sgd: the ladder's optima clip on 4%-8% of steps"}
    assert "Gradient clipping changes regime at the target: sgd: the ladder's optima clip on 4%-8%" in _text(
        render_card(build_card(ov, None))
    )
    ov.clipping = {}
    # what the target's runs say beyond the rows: the cost of the interval's ends, a search over its draws
    assert "At the ends of oasl's 90% interval the target's measured regret is" in text
    assert f"{ov.interval_regret['hi']['lr']:.3g}: " in text
    import dataclasses

    search = dataclasses.replace(ov.methods[-1], method="random:4")
    search.expected = {
        "k": 4,
        "draws": 4000,
        "mean": 0.04,
        "median": 0.02,
        "range90": [0.0, 0.2],
        "share_le_reference": 0.3,
        "reference": 0.008,
    }
    ov.methods.append(search)
    drawn = _text(render_card(build_card(ov, None)))
    assert (
        "Over draws of its search, random:4 over 4000 draws of its 4 lrs: regret +4.00% on average" in drawn
    )
    assert "at most oasl's +0.80% in 30% of draws" in drawn
    ov.methods.pop()
    for m in ov.methods:
        del m.regret_ci, m.verdict
    plain = _text(render_card(build_card(ov, None)))
    assert "(90%)" not in plain and "Noise floor" not in plain and pct(ov.methods[0].regret_mean) in plain


def test_log_axis_labels_never_overlap_and_degenerate_bands_are_left_out(tmp_path, monkeypatch):
    from oasl.report import plots_optima
    from oasl.report.axes import log_ticks_between, pyplot

    rng = np.random.default_rng(0)
    for _ in range(300):
        lo = 10 ** rng.uniform(-6, 6)
        hi = lo * 10 ** rng.uniform(0.01, 8)
        ticks = log_ticks_between(lo, hi)
        assert 1 <= len(ticks) <= 5 and all(lo <= t <= hi * (1 + 1e-9) for t in ticks), (lo, hi, ticks)
    # the SGD panels of the issue (lr 0.04 .. 0.64): drawn, their tick labels do not overlap
    runs = pd.DataFrame(
        {"optimizer": "sgd", "n_params": 1e4, "tokens": 1e5, "lr": np.geomspace(0.04, 0.64, 7)}
    )
    runs["final_val_loss"] = 3 + 0.1 * np.log(runs["lr"] / 0.16) ** 2
    opt = pd.DataFrame(
        [
            {
                "optimizer": "sgd",
                "n_params": 1e4,
                "tokens": 1e5,
                "opt": 0.16,
                "ci_low": 0.12,
                "ci_high": 0.2,
                "band_low": 0.1010,
                "band_high": 0.1010,
                "note": "",
            },
            {
                "optimizer": "sgd",
                "n_params": 1e4,
                "tokens": 1e5,
                "opt": 0.16,
                "ci_low": 0.12,
                "ci_high": 0.2,
                "band_low": 0.1,
                "band_high": 0.25,
                "note": "",
            },
        ]
    )
    labels, overlaps = [], []
    original = plots_optima.legend_below

    def spy(fig, axes, **kw):
        fig.canvas.draw()
        for ax in axes:
            boxes = [t.get_window_extent() for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
            overlaps.append(any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :]))
            labels.append(ax.get_legend_handles_labels()[1])
        original(fig, axes, **kw)

    monkeypatch.setattr(plots_optima, "legend_below", spy)
    plots_optima.plot_optima(runs, opt, "lr", ["optimizer", "n_params", "tokens"], tmp_path / "o.png")
    pyplot().close("all")
    assert overlaps == [False, False]
    assert "near-optimal band" not in labels[0] and "near-optimal band" in labels[1]
    assert not any("0.0101-0.0101" in lab for lab in labels[0])
    assert math.isfinite(float(opt["opt"].iloc[0]))
