"""One training run, end to end, with divergence detection."""

from oasl.train.run import RunResult, evaluate, get_dataset, resolve_device, train

__all__ = ["RunResult", "evaluate", "get_dataset", "resolve_device", "train"]
