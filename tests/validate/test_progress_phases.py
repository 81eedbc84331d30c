"""The demo's progress: one count and ETA per phase (sweep; target runs), never ~20 restarting counters."""

import io
from types import SimpleNamespace

from rich.console import Console

from oasl.cli.common import PlainProgress
from oasl.cli.validate_cmd import _progress_factory


def _summary(done):
    return SimpleNamespace(skipped=0, done=done, diverged=0, stopped=0, failed=0, gave_up=0, best={})


def test_one_task_per_phase_with_a_count_that_never_restarts():
    buf = io.StringIO()
    bar = PlainProgress(Console(file=buf, width=200), every_s=1000)
    factory = _progress_factory(bar)
    factory("sweep demo-ladder", 56)(_summary(56), 0)
    for label, n in (("oracle grid", 3), ("oasl", 2), ("naive", 2), ("oracle refine", 4)):
        update = factory(label, n)
        update(_summary(n), 0)
    assert len(bar._tasks) == 2
    target = bar._tasks[1]
    assert target["total"] == 11 and target["completed"] == 11
    counts = [
        line.split(": ")[1].split(",")[0] for line in buf.getvalue().splitlines() if "target runs" in line
    ]
    done = [int(c.split("/")[0]) for c in counts]
    assert done == sorted(done), counts  # the count only grows
