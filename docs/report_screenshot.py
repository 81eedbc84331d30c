"""Write docs/report.png, the README's picture of the report's first screen.

    python docs/report_screenshot.py oasl-demo/report/index.html   # after `oasl demo`

Renders the page in headless Chromium at 1100x820 CSS pixels and stores it with a 64-colour palette
(text and flat fills survive; the file stays well under 200 KB).
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

OUT = Path(__file__).resolve().parent / "report.png"


def main(page: str) -> None:
    exe = next(
        (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
    )
    if exe is None:
        sys.exit("chromium is not installed (make system-deps)")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.png"
        subprocess.run(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={tmp}/c",
             f"--screenshot={raw}", "--window-size=1100,820", "--force-device-scale-factor=1",
             Path(page).resolve().as_uri()],
            capture_output=True, timeout=120, check=True,
        )  # fmt: skip
        Image.open(raw).convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(
            OUT, optimize=True
        )
    print(f"{OUT} ({OUT.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "oasl-demo/report/index.html")
