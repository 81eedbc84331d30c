"""Headless Chromium for the report tests: render a page as a reader's browser would."""

import re
import shutil
import subprocess

import pytest

# Injected before </body>: reports in the DOM how many images decoded and how many script errors fired.
PROBE = """<script>
window.__errors = 0;
window.addEventListener('error', () => { window.__errors += 1; }, true);
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  const d = document.createElement('div'); d.id = 'probe';
  d.textContent = `images ${ok}/${imgs.length} loaded; errors ${window.__errors}`;
  document.body.appendChild(d);
});
</script>"""


@pytest.fixture
def chromium(tmp_path):
    """``run(url, *flags)``: Chromium headless on ``url``; returns the CompletedProcess (text)."""
    exe = next(
        (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
    )
    if exe is None:
        pytest.skip("chromium is not installed (make test installs Debian's chromium where apt-get works)")
    base = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'chrome'}",
        "--virtual-time-budget=5000",
    ]

    class Browser:
        def run(self, url, *flags):
            return subprocess.run([*base, *flags, url], capture_output=True, text=True, timeout=120)

        def check(self, page):
            """Load ``page`` (a path) with the probe; returns (probe line, console messages)."""
            probe = page.with_name("probe-" + page.name)
            probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
            out = self.run(probe.as_uri(), "--dump-dom", "--enable-logging=stderr", "--v=0")
            found = re.search(r"images \d+/\d+ loaded; errors \d+", out.stdout)
            console = [line for line in out.stderr.splitlines() if ":CONSOLE" in line]
            return (found.group(0) if found else out.stderr[-2000:]), console

        def screenshot(self, page, path, width=1200, height=900):
            """A PNG of the first ``width`` x ``height`` pixels of ``page``; returns its RGB array."""
            import matplotlib.image

            self.run(page.as_uri(), f"--screenshot={path}", f"--window-size={width},{height}")
            return matplotlib.image.imread(path)[..., :3]

    return Browser()
