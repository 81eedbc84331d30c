"""One training run, and K runs of one shape batched in one process, with divergence detection."""

from oasl.train.batched import BATCHED_OPTIMIZERS, batch_signature, train_batched
from oasl.train.memory import check_fits_memory, member_bytes, training_memory_bytes
from oasl.train.result import RunResult
from oasl.train.run import evaluate, get_dataset, resolve_device, train

__all__ = [
    "BATCHED_OPTIMIZERS",
    "RunResult",
    "batch_signature",
    "check_fits_memory",
    "evaluate",
    "get_dataset",
    "member_bytes",
    "resolve_device",
    "train",
    "train_batched",
    "training_memory_bytes",
]
