"""Render the HTML report in headless Chromium, as a reader would, and check what it shows."""

import math

import numpy as np
import pandas as pd
import pytest

from oasl.report.html import write_report
from oasl.store import open_store


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for opt, c in (("adamw", 5.0), ("sgd", 60.0)):
        for n in (2e4, 5e4, 1e5, 2e5):
            best = c * n**-0.35
            for lr in best * np.geomspace(1 / 8, 8, 7):
                rows.append(
                    {
                        "optimizer": opt,
                        "n_params": n,
                        "tokens": 20 * n,
                        "lr": lr,
                        "final_val_loss": 3.0 + 0.05 * math.log(lr / best) ** 2 + rng.normal(0, 0.002),
                    }
                )
    path = tmp_path / "runs.db"
    open_store(path).import_frame(pd.DataFrame(rows))
    return path


def test_report_renders_with_every_image_and_key_numbers(store, tmp_path, chromium):
    page = write_report(store, tmp_path / "report")
    html = page.read_text()
    assert "Fitted laws" in html and "N^-0.3" in html  # the fitted exponent is printed
    probe, console = chromium.check(page)
    assert probe == "images 2/2 loaded; errors 0" and not console, (probe, console)
    shot = chromium.screenshot(page, tmp_path / "shot.png", 1200, 2400)
    assert len(set(map(tuple, shot.reshape(-1, 3)[::97].round(2)))) > 10  # not a blank page
