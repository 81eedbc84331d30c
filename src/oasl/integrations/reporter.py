"""Report a run's losses to oasl from a training script that oasl started (the ``command`` trainer).

Standard library only: it imports in milliseconds, without torch or the rest of oasl, so any script
can use it (copy this file beside your script if oasl is not installed where the script runs)::

    from oasl.integrations import reporter

    for step in range(1, steps + 1):
        ...
        if step % 50 == 0:
            if reporter.log(step=step, loss=val_loss, tokens=step * batch_tokens):
                break                      # oasl asks the run to stop (it is also ended from outside)
    reporter.final(loss=val_loss, n_params=n_non_embedding, tokens=steps * batch_tokens)

Each call appends one JSON object as a line to the file named by ``$OASL_REPORT_FILE`` (outside oasl,
when it is unset, calls do nothing, so the script runs by hand unchanged). ``log`` lines are
``{"step", "loss", "tokens", "grad_norm", "train_loss"}``; the ``final`` line adds ``"final": true`` with
the final loss, the non-embedding ``n_params`` and the ``tokens`` trained, plus any other metrics.
``params()`` returns the run's configuration (the JSON file ``$OASL_RUN_CONFIG``).
"""

from __future__ import annotations

import json
import os

REPORT_ENV = "OASL_REPORT_FILE"
CONFIG_ENV = "OASL_RUN_CONFIG"
STOP_ENV = "OASL_STOP_FILE"

__all__ = ["final", "log", "params"]


def _write(record: dict) -> None:
    path = os.environ.get(REPORT_ENV)
    if not path:
        return
    # allow_nan: a diverged run reports NaN / Infinity, which oasl reads back as such
    line = json.dumps(record, allow_nan=True) + "\n"
    with open(path, "a") as f:
        f.write(line)
        f.flush()


def log(step: int, loss: float, tokens: int | None = None, grad_norm: float | None = None, **extra) -> bool:
    """Report the evaluation ``loss`` (nats/token) after ``step`` optimizer steps and ``tokens`` trained.
    Returns True when oasl has asked the run to stop (the script may then end; oasl also ends it)."""
    rec = {"step": int(step), "loss": float(loss)}
    if tokens is not None:
        rec["tokens"] = int(tokens)
    if grad_norm is not None:
        rec["grad_norm"] = float(grad_norm)
    rec.update(extra)
    _write(rec)
    stop = os.environ.get(STOP_ENV)
    return bool(stop) and os.path.exists(stop)


def final(loss: float, n_params: int | None = None, tokens: int | None = None, **metrics) -> None:
    """Report the run's final evaluation ``loss`` (nats/token), its non-embedding parameter count
    ``n_params`` (the N of the scaling law) and the ``tokens`` it trained on; extra metrics are kept."""
    rec = {"final": True, "loss": float(loss)}
    if n_params is not None:
        rec["n_params"] = int(n_params)
    if tokens is not None:
        rec["tokens"] = int(tokens)
    rec.update(metrics)
    _write(rec)


def params() -> dict:
    """The run's configuration as oasl gave it (``$OASL_RUN_CONFIG``); {} outside oasl."""
    path = os.environ.get(CONFIG_ENV)
    if not path:
        return {}
    with open(path) as f:
        return json.load(f)
