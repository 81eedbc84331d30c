"""Error types of oasl.

Every failure a user can cause (bad config, unknown optimizer, too few points to fit, corrupt store)
raises an :class:`OaslError` subclass whose message names the problem and, where possible, the fix.
The CLI prints that message on one line and exits with code 2; tracebacks appear only with ``--debug``.
"""

from __future__ import annotations


class OaslError(Exception):
    """Base class of every error oasl raises on purpose; the message is meant for the user."""


class ConfigError(OaslError):
    """A spec (YAML, CLI flags, Python object) is malformed or inconsistent."""


class DataError(OaslError):
    """A corpus cannot be read or tokenized, or input data (CSV, curves) is malformed."""


class StoreError(OaslError):
    """The run store cannot be opened, is corrupt, or is of an incompatible schema."""


class TrainError(OaslError):
    """A training run cannot be set up (divergence is a result, not an error)."""


class SweepError(OaslError):
    """A sweep cannot be planned or executed."""


class FitError(OaslError):
    """A law or optimum cannot be fitted: too few points, degenerate inputs, non-finite values."""


class DependencyError(OaslError):
    """An optional dependency is missing; the message names the extra to install."""


def require(module: str, extra: str):
    """Import an optional dependency lazily, or raise DependencyError naming ``pip install oasl[extra]``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DependencyError(
            f"{module} is not installed: run `pip install 'oasl[{extra}]'` to use this feature"
        ) from exc


class TrainerError(TrainError):
    """A user's trainer (command, function) failed a run: exit code, no final loss, timeout. The sweep records
    the run as failed with this message and goes on. ``detail`` holds the tail of the trainer's stderr."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.detail = detail
