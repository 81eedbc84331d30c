"""Validation of recommendations against an oracle and baselines at a larger target; the demo."""

from oasl.validate.harness import MethodResult, OptimizerValidation, ValidationResult, validate
from oasl.validate.spec import ValidateSpec, load_validate

__all__ = [
    "MethodResult",
    "OptimizerValidation",
    "ValidateSpec",
    "ValidationResult",
    "load_validate",
    "validate",
]
