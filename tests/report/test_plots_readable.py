"""Plots a person can read (issue 26): short numbers with units in titles, the schedule prediction's band,
no empty transfer panel."""

import math
from types import SimpleNamespace

import matplotlib.figure
import numpy as np

from oasl.report.axes import group_title, human


def test_titles_use_short_numbers_and_units():
    assert (
        human(760_000_000) == "760M"
        and human(3120) == "3.12K"
        and human(2.5e12) == "2.5T"
        and human(12) == "12"
    )
    assert group_title({"optimizer": "adamw", "n_params": 7.6e8, "tokens": 1.28e4}) == (
        "adamw, N = 760M, D = 12.8K tokens"
    )


def _capture(monkeypatch):
    figs = []
    orig = matplotlib.figure.Figure.savefig

    def savefig(self, *a, **k):
        figs.append(self)
        return orig(self, *a, **k)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    return figs


def test_schedule_prediction_draws_its_interval_band(tmp_path, monkeypatch):
    from oasl.report.schedules import plot_schedules

    class Law:
        boot_thetas_ = np.zeros((3, 2))

        def predict(self, lrs, steps):
            return 4.0 - 0.3 * np.log1p(np.asarray(steps, float)) / 7

        def predict_interval(self, lrs, steps, level=0.9):
            p = self.predict(lrs, steps)
            return p - 0.02, p + 0.02

    figs = _capture(monkeypatch)
    plot_schedules(Law(), ["cosine"], 200, 1e-3, 10, tmp_path / "p.png")
    ax = figs[-1].axes[0]
    assert len(ax.collections) == 1  # the band (fill_between)
    labels = [t.get_text() for t in figs[-1].legends[0].get_texts()]
    assert labels == ["cosine (predicted)", "cosine, 90% interval"]


def test_transfer_plot_has_no_empty_panel(tmp_path, monkeypatch):
    from oasl.report.transfer import plot_transfer

    g = SimpleNamespace(
        group={"optimizer": "adamw"},
        n_params=[1e4, 3e4, 1e5],
        h_opt=[1e-2, 7e-3, 5e-3],
        predict_h=lambda n: 1e-2 * (np.asarray(n) / 1e4) ** -0.3,
        target_params=1e6,
        target_h=3e-3,
        alpha=math.nan,
        beta=0.3,
        verdict="transfers",
    )
    figs = _capture(monkeypatch)
    plot_transfer(SimpleNamespace(groups=[g], over="lr"), tmp_path / "t.png")
    assert len(figs[-1].axes) == 1 and figs[-1].axes[0].has_data()
