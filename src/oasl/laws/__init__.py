"""Laws of optimal hyperparameters: forms, fitting with uncertainty, optimizer-aware selection, the
Chinchilla loss law, published laws, and the laws file.

Works on any table of optima (a pandas DataFrame with feature columns N, D, C, B, width, depth and
the target), independent of oasl's training code. Schedule-aware loss-curve laws (multi-power,
annealing) live in the sibling package :mod:`oasl.curves`.
"""

from oasl.laws.base import FEATURE_UNITS, FEATURES, best_runs, near_optimal
from oasl.laws.forms import ConstantLaw, LogLinearLaw, OneMinusPowerLaw
from oasl.laws.io import law_from_dict, load_laws, save_laws
from oasl.laws.loss import LossLaw
from oasl.laws.overtraining import OvertrainingLossLaw
from oasl.laws.pipeline import FitReport, fit_laws
from oasl.laws.power import PowerLaw
from oasl.laws.published import (
    PUBLISHED,
    PublishedLawSet,
    deepseek_flops,
    deepseek_flops_from_6nd,
    describe_published,
    get_published,
)
from oasl.laws.select import FORMS, SHARING, OptimizerLaw, fit_law, select_law
from oasl.laws.steps_laws import StepsTableFit
from oasl.laws.steps_table import StepsTable, read_steps_table

__all__ = [
    "FitReport",
    "FEATURES",
    "FEATURE_UNITS",
    "FORMS",
    "PUBLISHED",
    "SHARING",
    "ConstantLaw",
    "LogLinearLaw",
    "LossLaw",
    "OneMinusPowerLaw",
    "OptimizerLaw",
    "OvertrainingLossLaw",
    "PowerLaw",
    "PublishedLawSet",
    "StepsTable",
    "StepsTableFit",
    "best_runs",
    "deepseek_flops",
    "deepseek_flops_from_6nd",
    "describe_published",
    "fit_law",
    "fit_laws",
    "get_published",
    "law_from_dict",
    "load_laws",
    "near_optimal",
    "read_steps_table",
    "save_laws",
    "select_law",
]
