"""Memory estimates for training, and the check that refuses a run too big for its device.

:func:`train` and :func:`train_batched` call :func:`check_fits_memory` before they allocate anything,
so an oversized model fails at once with a one-line :class:`~oasl.errors.TrainError` (the CLI prints
it) instead of swapping or being killed by the out-of-memory killer. Two estimates, for two uses:
:func:`training_memory_bytes` is a lower bound (refuse only what cannot fit), :func:`member_bytes` a
fuller estimate (how many members a batch can take without running out).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from oasl.config import RunSpec
from oasl.errors import ConfigError, TrainError

__all__ = [
    "MEMORY_LIMIT_ENV",
    "available_memory_bytes",
    "check_fits_memory",
    "member_bytes",
    "training_memory_bytes",
]

# Caps the memory the check counts as free, in bytes ("8e9"): for a device shared with other work.
MEMORY_LIMIT_ENV = "OASL_MEMORY_LIMIT"

_STATE_TENSORS = {
    "adamw": 2,
    "sgd": 1,
    "lion": 1,
}  # optimizer state per parameter, in parameter-sized tensors


def training_memory_bytes(spec: RunSpec) -> float:
    """A lower bound on the bytes needed to train ``spec``: fp32 weights, gradients and two optimizer
    states per parameter (16 B), activations kept for the backward pass (Korthikanti et al. 2022, Sec. 4.1:
    ``34 s b h`` bytes per layer in 16-bit, doubled for fp32; their ``5 a s^2 b`` attention-score term is
    left out because fused attention does not store the scores) and the logits (3 fp32 copies)."""
    from oasl.models import count_params

    sh = spec.shape
    tokens = spec.batch_seqs * sh.seq_len
    per_layer = tokens * 34 * sh.width * 2
    return 16.0 * count_params(sh).n_params_total + sh.depth * per_layer + 12.0 * tokens * sh.vocab_size


def member_bytes(spec: RunSpec) -> int:
    """Estimated device memory of one member of a batch, in bytes (fp32): :func:`training_memory_bytes`
    plus what that lower bound leaves out, namely the update-ratio snapshot and the optimizer's actual
    state count (4 B per parameter for each parameter-sized tensor beyond the two states it counts) and
    the attention scores (Korthikanti et al. 2022, arXiv 2205.05198, Sec. 4.1: ``5 a s`` bytes per token
    and layer in 16-bit, doubled here for fp32)."""
    from oasl.models import count_params

    shape = spec.shape
    state = _STATE_TENSORS.get(spec.optimizer, 2)
    tokens = spec.batch_seqs * shape.seq_len
    extra = 4 * count_params(shape).n_params_total * (state - 1)
    scores = tokens * shape.depth * 2 * 5 * shape.heads * shape.seq_len
    return int(training_memory_bytes(spec) + extra + scores)


def available_memory_bytes(device: str) -> tuple[str, float | None]:
    """(device name, bytes free on it) for ``device`` (auto, cpu, cuda...); None when unknown.
    ``$OASL_MEMORY_LIMIT`` (bytes), when set, caps the figure."""
    import torch

    dev = resolve_device(device)
    name, free = dev.type, None
    if dev.type == "cuda":
        name, free = str(dev), float(torch.cuda.mem_get_info(dev)[0])
    else:
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    name, free = "cpu", float(line.split()[1]) * 1024
        except OSError:
            pass
    limit = _memory_limit()
    if limit is not None:
        free = limit if free is None else min(free, limit)
    return name, free


def _memory_limit() -> float | None:
    text = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if not text:
        return None
    try:
        limit = float(text)
    except ValueError:
        limit = math.nan
    if not math.isfinite(limit) or limit <= 0:
        raise ConfigError(
            f"${MEMORY_LIMIT_ENV}={text!r} is not a positive number of bytes: set it as 8e9 or unset it"
        )
    return limit


def check_fits_memory(specs: RunSpec | Sequence[RunSpec]) -> None:
    """TrainError, before anything is allocated, when ``specs`` (one run, or the members of one batch,
    which share a shape and device) need more memory than their device has free
    (:func:`training_memory_bytes` against :func:`available_memory_bytes`); returns None otherwise."""
    from oasl.models import count_params

    specs = [specs] if isinstance(specs, RunSpec) else list(specs)
    if not specs:
        return
    spec = specs[0]
    need = sum(training_memory_bytes(s) for s in specs)
    where, free = available_memory_bytes(spec.device)
    if free is None or need <= free:
        return
    what = f"width {spec.shape.width}, depth {spec.shape.depth} ({count_params(spec.shape).n_params_total:.3g} parameters)"
    if len(specs) == 1:
        raise TrainError(
            f"{what} needs at least {_bytes(need)} to train but {where} has {_bytes(free)} free: "
            "lower --width, --depth or --batch-seqs"
        )
    raise TrainError(
        f"{len(specs)} runs of {what} batched need at least {_bytes(need)} to train but {where} has "
        f"{_bytes(free)} free: batch fewer runs (--members), or lower --width, --depth or --batch-seqs"
    )


def _bytes(n: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n / 2**10:.3g} KiB"


def resolve_device(device: str):
    """``auto`` -> cuda if available, else cpu; otherwise the named device (TrainError if unusable).
    Returns a ``torch.device``."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise TrainError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainError(f"device {device!r} asked for but CUDA is not available: use --device cpu or auto")
    return dev
