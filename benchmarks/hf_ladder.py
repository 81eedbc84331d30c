"""The Hugging Face example as a measurement: a ``transformers.Trainer`` ladder of three GPT-2 configs
(widths 16, 24, 32; depth 2; byte vocabulary; 100 steps of 8 x 64 tokens) to the law of the optimal lr, the
recommendation at a 9x larger target (width 96) and its validation there (the recommendation and its two
neighbours x/÷2 on two seeds, the naive transfer), all trained by the HF Trainer through oasl's function
trainer (examples/hf_trainer/hf_ladder.py).

    .venv/bin/python benchmarks/hf_ladder.py [--out /tmp/oasl-hf] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "examples" / "hf_trainer"))

from _common import write_result  # noqa: E402


def main(argv=None) -> None:
    import hf_ladder

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    out = args.out or tempfile.mkdtemp(prefix="oasl-hf-")
    res = hf_ladder.main(["--out", out, "--workers", str(args.workers)])
    ov = res["validation"]["optimizers"][0]
    rows = "\n".join(
        f"| {m['method']} | {m['lr']:.3g} | {m['regret_mean']:+.2%} [{m['regret_ci'][0]:+.2%}, {m['regret_ci'][1]:+.2%}] |"
        for m in ov["methods"]
    )
    lo, hi = ov["recommended_interval"]
    md = f"""A Hugging Face `Trainer` ladder of GPT-2 configs (n_embd 16, 24, 32; n_layer 2; byte vocabulary; 100 steps
of 8 x 64 tokens; AdamW, cosine to 10%) through oasl's function trainer (`examples/hf_trainer/hf_ladder.py`).

Law: `{res["law"]}`. Target: n_embd 96, N = {ov["target_n_params"]:,} ({ov["extrapolation_ratio"]:.1f}x the largest
rung). Recommended lr {ov["recommended_lr"]:.3g} (90% interval {lo:.3g}-{hi:.3g}; three rungs make a wide interval).

| method | lr | regret at the target, mean over seeds [paired-bootstrap 90% interval] |
| --- | --- | --- |
{rows}

Regret is relative to the best lr measured at the target ({len(res["validation"]["seeds"])} seeds; the recommendation and its
two neighbours x/÷2, extended once at an edge: the demo's cheap check, not a full oracle grid).
"""
    write_result(
        "hf_ladder",
        {"summary": {k: v for k, v in res.items() if k != "validation"}, "validation": res["validation"]},
        md,
    )
    print(md)


if __name__ == "__main__":
    main()
