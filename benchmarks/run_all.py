"""`make bench`: run every benchmark in this folder in turn (each writes results/NAME.json and its
section of RESULTS.md). Pass names to run only some: `python benchmarks/run_all.py throughput`."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
# Benchmarks that read the stores of others run after them.
LAST = {"earlywarn": 1, "clipping": 1, "refine_check": 1}
# Further invocations of a benchmark that write sections of their own (after its default run).
EXTRA = {
    "critical_batch": [["--schedule", "constant"], ["--schedule", "constant", "--b-noise"]],
    # D = 32 x N per run (section transfer_scaled); the width-128 target runs would take hours on CPU.
    # issue 25's second corpus: the v3 ladder for AdamW on the GNU manuals (section extrapolation_info)
    "extrapolation": [
        [
            "--optimizers",
            "adamw",
            "--corpus",
            "/usr/share/info/*.gz",
            "--store",
            "benchmarks/results/extrapolation_info.db",
            "--name",
            "extrapolation_info",
        ],
        # a third corpus, the man pages (section extrapolation_man; the first 20 MB of them)
        [
            "--optimizers",
            "adamw",
            "--corpus",
            "/usr/share/man/man1/*.gz",
            "--corpus-max-bytes",
            "20000000",
            "--store",
            "benchmarks/results/extrapolation_man.db",
            "--name",
            "extrapolation_man",
        ],
        # Lion on the GNU manuals (section extrapolation_info_lion): more held-out cases for refine_check
        [
            "--optimizers",
            "lion",
            "--corpus",
            "/usr/share/info/*.gz",
            "--store",
            "benchmarks/results/extrapolation_info_lion.db",
            "--name",
            "extrapolation_info_lion",
        ],
        # SGD on the GNU manuals and Lion on the man pages (sections extrapolation_info_sgd and
        # extrapolation_man_lion): more held-out cases for refine_check (session 18)
        [
            "--optimizers",
            "sgd",
            "--corpus",
            "/usr/share/info/*.gz",
            "--store",
            "benchmarks/results/extrapolation_info_sgd.db",
            "--name",
            "extrapolation_info_sgd",
        ],
        [
            "--optimizers",
            "lion",
            "--corpus",
            "/usr/share/man/man1/*.gz",
            "--corpus-max-bytes",
            "20000000",
            "--store",
            "benchmarks/results/extrapolation_man_lion.db",
            "--name",
            "extrapolation_man_lion",
        ],
    ],
    "transfer": [
        ["--tokens-per-param", "32", "--no-target", "--store", "benchmarks/results/transfer_scaled.db"]
    ],
}


def main() -> int:
    wanted = set(sys.argv[1:])
    scripts = sorted(
        (p for p in HERE.glob("*.py") if not p.name.startswith("_") and p.name != "run_all.py"),
        key=lambda p: (LAST.get(p.stem, 0), p.name),
    )
    failed = []
    for script in scripts:
        if wanted and script.stem not in wanted:
            continue
        for args in [[], *EXTRA.get(script.stem, [])]:
            name = " ".join([script.name, *args])
            t0 = time.time()
            print(f"== {name}", flush=True)
            rc = subprocess.call([sys.executable, str(script), *args])
            print(f"== {name}: exit {rc} in {time.time() - t0:.0f} s", flush=True)
            if rc:
                failed.append(name)
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
