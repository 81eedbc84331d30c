"""Where external data for tests, benchmarks and paper checks lives: ``../shared/data`` beside the
repository, or ``$OASL_SHARED_DATA``."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


def shared_data(name: str = "") -> Path:
    """Path of ``../shared/data/<name>`` beside the repository (or ``$OASL_SHARED_DATA/<name>``)."""
    base = Path(os.environ.get("OASL_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
    return base / name if name else base
