"""The spec of ``oasl demo`` (run by :func:`oasl.workflows.demo`): the whole pipeline on embedded
defaults, sized for 2 CPU cores in under 15 minutes.

Sweep a ladder of four widths (24, 32, 48, 64; depth 2) with AdamW and SGD+momentum over 7-point lr grids
(x1.6 apart) on the default corpus, locate the optima, fit lr*(N) per optimizer, recommend for a target of width 192
(about 9x the largest swept N), train the target at the recommendation and its two neighbours (x/÷2)
and at the naive transfer (the largest swept shape's optimum) on two seeds, and report regrets with
paired intervals, the noise floor and a verdict, and how many target runs the law-guided refinement and
random search, TPE and GP-BO need (cost-to-regret curves read off those runs, :mod:`oasl.validate.curves`). The law is the one `oasl fit` writes (laws.json). Every run goes to the
store in ``out/``, so an interrupted demo resumes where it stopped.
"""

from __future__ import annotations

from oasl.config import build
from oasl.validate.spec import ValidateSpec

DEMO = {
    "name": "demo",
    "sweep": {
        "name": "demo-ladder",
        "ladder": {"widths": [24, 32, 48, 64], "depth": 2},
        "shape_defaults": {"seq_len": 64},
        "optimizers": {
            "adamw": {"lr": {"log_range": [1e-3, 1.6e-2], "num": 7}},
            "sgd": {"lr": {"log_range": [0.04, 0.64], "num": 7}, "momentum": 0.9},
        },
        "batch_seqs": 16,
        "tokens": 393216,
        "schedule": {"name": "cosine", "warmup_frac": 0.05},
        "run": {"eval_interval": 64, "eval_tokens": 16384, "device": "cpu"},
    },
    "target": {"width": 192},
    # two seeds: the least that gives a noise floor and paired intervals (the benchmark uses three)
    "seeds": [0, 1],
    "oracle_mode": "neighbours",
    "oracle_refine": False,
    "neighbour_factor": 2.0,
    "oracle_max_extend": 1,
    "baselines": ["naive"],
    # the cost-to-regret curves (law-guided refinement, random search, TPE, GP-BO) are read off the target
    # runs above, at no new run; TPE and GP-BO over 4 sampler seeds each (GP-BO's suggestions cost ~0.5 s)
    "curve_search_draws": 4,
}


def demo_spec(**overrides) -> ValidateSpec:
    """The demo's :class:`ValidateSpec`; ``overrides`` replace top-level keys (tests shrink it)."""
    data = {**DEMO, **overrides}
    return build(ValidateSpec, data, what="demo spec")
