"""Helpers shared by the benchmarks: record a result as JSON and as a section of RESULTS.md, and a
cluster bootstrap for how well a benchmark's held-out data resolve an aim.

Every benchmark calls :func:`write_result` once at the end. The JSON file
``benchmarks/results/NAME.json`` holds the payload plus the command, the machine and the date; the
section of ``benchmarks/RESULTS.md`` between ``<!-- BEGIN NAME -->`` and ``<!-- END NAME -->`` is
replaced (or appended when absent), so re-running a benchmark updates its section in place and leaves
the others alone.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
RESULTS_MD = BENCH_DIR / "RESULTS.md"
_HEADER = "# Benchmark results\n\nEach section is written by `benchmarks/NAME.py`; re-running a benchmark replaces its section.\n"


def machine() -> dict[str, Any]:
    """Where the benchmark ran: host name, CPU count, OS, Python and (when importable) torch versions."""
    info: dict[str, Any] = {
        "node": platform.node(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:  # pragma: no cover - every oasl environment has torch
        pass
    if hasattr(os, "getloadavg"):
        info["load_avg_1min"] = round(os.getloadavg()[0], 2)
    return info


def command() -> str:
    """The command line that ran this benchmark, as a user would type it from the repository root."""
    script = Path(sys.argv[0]).resolve()
    if script.is_relative_to(BENCH_DIR.parent):
        script = script.relative_to(BENCH_DIR.parent)
    return shlex.join([".venv/bin/python", str(script), *sys.argv[1:]])


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_result(name: str, payload: dict, markdown: str) -> Path:
    """Write ``results/NAME.json`` (``payload`` + command, machine, date) and replace the NAME section of
    RESULTS.md with ``markdown`` (a heading is added). Returns the JSON path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": command(),
        "machine": machine(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(),
    }
    record = {"name": name, **meta, **payload}
    json_path = RESULTS_DIR / f"{name}.json"
    _atomic_write(json_path, json.dumps(record, indent=2, default=str) + "\n")

    m = meta["machine"]
    footer = f"\n\n_Command: `{meta['command']}` on {m['node']} ({m['cpu_count']} CPUs"
    footer += f", {m['gpu']}" if "gpu" in m else ""
    footer += f"), {meta['date'][:19]}Z. Data: `benchmarks/results/{name}.json`._\n"
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    section = f"{begin}\n## {name}\n\n{markdown.strip()}{footer}{end}\n"
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else _HEADER
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    _atomic_write(RESULTS_MD, text)
    return json_path


def cluster_bootstrap(clusters, statistic, n_boot: int = 20000, level: float = 0.9, seed: int = 0):
    """Resample whole clusters with replacement (``clusters``: one label per row) and evaluate
    ``statistic(rows)`` on each resample (``rows``: integer row indices). Returns the ``level`` percentile
    interval and the array of resampled values."""
    import numpy as np

    labels = np.asarray(clusters)
    levels = np.unique(labels)
    members = {c: np.flatnonzero(labels == c) for c in levels}
    rng = np.random.default_rng(seed)
    values = np.array(
        [
            statistic(np.concatenate([members[c] for c in rng.choice(levels, len(levels))]))
            for _ in range(n_boot)
        ]
    )
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return [float(lo), float(hi)], values
