"""The ladder of ../torch_script through oasl's Python-function trainer instead of a shell command.

``my_train(trial)`` reads ``trial.params`` (lr, batch_seqs, steps, the ladder rung's d_model and
n_layers, ...), trains with the same ``train()`` as the script, reports each evaluation with
``trial.report(step, loss)`` (True back: oasl pruned the run, so stop) and returns the final metrics.
It lives in a module (not in ``__main__``) so pool workers can import it by name.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "torch_script"))

from train import train  # noqa: E402  (the example script's training function)


def my_train(trial) -> dict:
    """Train one run of the ladder; returns {loss, n_params, tokens}."""
    import torch

    torch.set_num_threads(1)
    p = trial.params
    cfg = {
        "lr": p["lr"],
        "batch_size": p["batch_seqs"],
        "width": p["d_model"],
        "depth": p["n_layers"],
        "steps": p["steps"],
        "seq_len": p["seq_len"],
        "seed": p["seed"],
        "warmup_frac": p["warmup_frac"],
        "final_frac": p["final_frac"],
        "weight_decay": p["weight_decay"],
        "beta1": p["beta1"],
        "beta2": p["beta2"],
        "eval_every": 50,
        "eval_batches": 4,
        "data": None,
        "max_bytes": 1_000_000,
    }
    return train(cfg, report=trial.report)
