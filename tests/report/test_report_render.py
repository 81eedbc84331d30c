"""Render the HTML report in headless Chromium, as a reader would, and check what it shows."""

import math
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from oasl.report.html import write_report
from oasl.store import open_store

CHECK = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  const d = document.createElement('div'); d.id = 'imgcheck';
  d.textContent = `images ${ok}/${imgs.length} loaded`; document.body.appendChild(d);
});
</script>"""


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("chromium is not installed (make test installs Debian's chromium where apt-get works)")


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


def test_report_renders_with_every_image_and_key_numbers(store, tmp_path):
    exe = _chromium()
    page = write_report(store, tmp_path / "report")
    html = page.read_text()
    assert "Fitted laws" in html and "N^-0.3" in html  # the fitted exponent is printed
    probe = tmp_path / "report" / "probe.html"
    probe.write_text(html.replace("</body>", CHECK + "</body>"))
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chrome'}",
        "--virtual-time-budget=5000",
    ]
    dom = subprocess.run(
        [exe, *flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert "images 2/2 loaded" in dom.stdout, dom.stderr[-2000:]
    shot = tmp_path / "shot.png"
    subprocess.run(
        [exe, *flags, f"--screenshot={shot}", "--window-size=1200,2400", page.as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert shot.is_file() and shot.stat().st_size > 20_000
