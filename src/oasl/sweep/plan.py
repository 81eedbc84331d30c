"""Planning a sweep before it runs: how many runs, their FLOPs, and a time estimate from measured speed."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import pandas as pd

from oasl.config import RunSpec


@dataclass
class SweepPlan:
    """Runs of a sweep with their cost. ``table`` has one row per (optimizer, shape) group."""

    n_runs: int
    n_todo: int
    flops: float
    flops_todo: float
    est_seconds: float
    table: pd.DataFrame
    tokens_per_s: dict[str, float] = field(default_factory=dict)


def measure_tokens_per_s(spec: RunSpec, steps: int = 3) -> float:
    """Training tokens/s of ``spec``'s model and batch on this machine (a few timed steps after one warm-up)."""
    import torch

    from oasl.models import GPT, Parametrization
    from oasl.optim import make_optimizer
    from oasl.train import resolve_device

    device = resolve_device(spec.device)
    torch.manual_seed(0)
    model = GPT(spec.shape, Parametrization(spec.parametrization, spec.base_width)).to(device)
    opt = make_optimizer(model, spec.optimizer, spec.lr, spec.hps)
    x = torch.randint(0, spec.shape.vocab_size, (spec.batch_seqs, spec.shape.seq_len), device=device)
    elapsed = 0.0
    for i in range(steps + 1):
        t0 = time.perf_counter()
        _, loss = model(x, x)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            elapsed += time.perf_counter() - t0
    return steps * spec.batch_tokens / elapsed


def plan(runs: list[RunSpec], store=None, workers: int = 1, measure: bool = True) -> SweepPlan:
    """Cost of ``runs``: FLOPs (6N + attention per token, times tokens) and estimated wall time.

    Speed per (shape, batch) comes from finished runs in ``store`` when there are any, else from a
    short measurement on this machine (``measure``). Parallel workers are assumed to share the cores,
    so the estimate divides by ``workers`` only as far as cores allow.
    """
    from oasl.models import count_params, flops_per_token
    from oasl.sweep.execute import todo

    pending = runs if store is None else todo(runs, store)[0]
    pending_keys = {r.key() for r in pending}
    speed: dict[str, float] = {}
    if store is not None:
        df = store.to_dataframe(finished_only=True)
        if not df.empty and "tokens_per_s" in df:
            for (w, d, b), grp in df.groupby(["width", "depth", "batch_seqs"]):
                speed[f"w{w}d{d}b{b}"] = float(grp["tokens_per_s"].median())
    rows = []
    for r in runs:
        sk = f"w{r.shape.width}d{r.shape.depth}b{r.batch_seqs}"
        if sk not in speed and measure:
            speed[sk] = measure_tokens_per_s(r)
        f = flops_per_token(r.shape) * r.steps * r.batch_tokens
        rows.append(
            {
                "optimizer": r.optimizer,
                "width": r.shape.width,
                "depth": r.shape.depth,
                "n_params": count_params(r.shape).n_params,
                "flops": f,
                "todo": r.key() in pending_keys,
                "seconds": r.steps * r.batch_tokens / speed[sk] if sk in speed else float("nan"),
            }
        )
    df = pd.DataFrame(rows)
    table = (
        df.groupby(["optimizer", "width", "depth", "n_params"])
        .agg(runs=("flops", "size"), todo=("todo", "sum"), flops=("flops", "sum"), seconds=("seconds", "sum"))
        .reset_index()
    )
    parallel = max(1, min(workers, os.cpu_count() or 1))
    todo_s = float(df.loc[df["todo"], "seconds"].sum())
    return SweepPlan(
        n_runs=len(runs),
        n_todo=int(df["todo"].sum()),
        flops=float(df["flops"].sum()),
        flops_todo=float(df.loc[df["todo"], "flops"].sum()),
        est_seconds=todo_s / parallel,
        table=table,
        tokens_per_s=speed,
    )
