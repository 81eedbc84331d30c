"""Stand-in training functions for the function-trainer tests (importable by pool workers by name)."""

import math


def quadratic(trial):
    """A loss with its optimum at lr = 10^-2.5, reported every 5 steps; returns a dict of metrics."""
    p = trial.params
    n = 12 * p["d_model"] ** 2 * p["n_layers"]
    loss = math.nan
    for step in range(5, p["steps"] + 1, 5):
        loss = 3 + 4 * (math.log10(p["lr"]) + 2.5) ** 2 + 100 / n**0.3 / step**0.2
        if trial.report(step, loss, tokens=step * p["batch_tokens"]):
            return {"loss": loss, "n_params": n}
    return {"loss": loss, "n_params": n, "tokens": p["tokens"], "my_metric": 1.5}


def diverges(trial):
    trial.report(5, 3.0)
    trial.report(10, float("inf"))
    return float("nan")


def returns_nothing(trial):
    return None
