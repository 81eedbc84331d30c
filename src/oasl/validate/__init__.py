"""Validation of recommendations against an oracle and baselines at a larger target; the demo.

``harness`` runs the measurement, ``baselines`` holds the methods compared (plug-ins), ``stats`` the
paired intervals and verdicts, ``results`` the dataclasses and ``validation.json``, ``refine`` the
law-guided refinement (k target runs around the law), ``curves`` the cost-to-regret curves."""

from oasl.validate.baselines import BASELINES, Baseline, Proposal, TargetContext, make_baseline
from oasl.validate.harness import fit_validated_law, validate
from oasl.validate.refine import RefineResult
from oasl.validate.results import MethodResult, OptimizerValidation, ValidationResult, load_validation
from oasl.validate.spec import ValidateSpec, load_validate

__all__ = [
    "BASELINES",
    "Baseline",
    "MethodResult",
    "OptimizerValidation",
    "Proposal",
    "RefineResult",
    "TargetContext",
    "ValidateSpec",
    "ValidationResult",
    "fit_validated_law",
    "load_validate",
    "load_validation",
    "make_baseline",
    "validate",
]
