"""A long profile of the CLI fuzz (issue 27): malformed invocations of every subcommand, several seeds.

The generator and the checks are :mod:`oasl.testing_fuzz` (the test ``tests/test_fuzz_cli.py`` runs 500 of
them with seed 0): corrupt copies of a small real store, files that are UTF-16, binary or nested
thousands deep, huge/negative/nan numbers, names with rich markup, ESC/OSC bytes and mathtext, bad
output paths. Each invocation runs in-process through ``oasl.cli.main`` in its own folder with a 30 s
timeout; the contract: exit 0, or exit 2 with one ``error:`` line on stderr; no traceback, no
``internal error`` line, no hang, no raw control character printed, and a failing command changes no
file that existed before it (sha256) and creates no store.

Run: ``.venv/bin/python benchmarks/fuzz_cli.py [N_PER_SEED] [SEEDS...]`` (default 1000 x seeds 1 2 3,
about 3 minutes); writes ``benchmarks/results/fuzz_cli.json`` and the fuzz_cli section of
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import collections
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402


def main() -> None:
    from oasl.testing_fuzz import run_fuzz

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    seeds = [int(s) for s in sys.argv[2:]] or [1, 2, 3]
    t0 = time.time()
    per_seed, faults, by_command, codes, slowest = [], [], collections.Counter(), collections.Counter(), []
    for seed in seeds:
        with tempfile.TemporaryDirectory(prefix="oasl-fuzz-bench-") as d:
            t = time.time()
            outcomes = run_fuzz(Path(d), n, seed=seed, timeout_s=30.0)
        bad = [o for o in outcomes if o.faults]
        per_seed.append(
            {"seed": seed, "invocations": len(outcomes), "faults": len(bad), "s": round(time.time() - t, 1)}
        )
        for o in outcomes:
            cmd = " ".join(a for a in o.args[:2] if not a.startswith("-") and "/" not in a)
            by_command[cmd] += 1
            codes[str(o.code)] += 1
            slowest.append((o.seconds, cmd))
        faults += [{"seed": seed, "args": o.args, "faults": o.faults, "stderr": o.err[-400:]} for o in bad]
    total = sum(s["invocations"] for s in per_seed)
    kinds = collections.Counter(f.split(":")[0] for x in faults for f in x["faults"])
    payload = {
        "invocations": total,
        "faulty_invocations": len(faults),
        "fault_kinds": dict(kinds),
        "exit_codes": dict(codes),
        "per_seed": per_seed,
        "by_command": dict(sorted(by_command.items())),
        "slowest_s": round(max(slowest)[0], 2) if slowest else None,
        "faults": faults[:50],
        "wall_s": round(time.time() - t0, 1),
    }
    md = [
        f"{total} malformed invocations over {len(by_command)} subcommands ({', '.join(map(str, seeds))} as "
        f"seeds, {n} each), in-process, 30 s timeout each: **{len(faults)} faulty** "
        f"(tracebacks, internal errors, hangs, more than one error line, raw control characters, a failing "
        f"command that changed or created a file). Exit codes: "
        + ", ".join(f"{k}: {v}" for k, v in sorted(codes.items()))
        + f". Slowest invocation {payload['slowest_s']} s; wall {payload['wall_s']} s.",
        "",
        "| seed | invocations | faulty | seconds |",
        "|---:|---:|---:|---:|",
        *[f"| {s['seed']} | {s['invocations']} | {s['faults']} | {s['s']} |" for s in per_seed],
    ]
    if faults:
        md += ["", "First faults:", ""] + [
            f"- `{' '.join(x['args'])[-160:]}`: {x['faults'][0][:160]}" for x in faults[:10]
        ]
    write_result("fuzz_cli", payload, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
