"""Laws of optimal hyperparameters: forms, fitting with uncertainty, optimizer-aware selection, the
Chinchilla loss law, published laws, and the laws file.

Works on any table of optima (a pandas DataFrame with feature columns N, D, C, B, width, depth and
the target), independent of oasl's training code; schedule-aware loss laws (multi-power, annealing) on
(step, lr, loss) curves.
"""

from oasl.laws.base import FEATURE_UNITS, FEATURES, best_runs, near_optimal
from oasl.laws.forms import ConstantLaw, LogLinearLaw, OneMinusPowerLaw
from oasl.laws.io import law_from_dict, load_laws, save_laws
from oasl.laws.loss import LossLaw
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

__all__ = [
    "FEATURES",
    "FEATURE_UNITS",
    "FORMS",
    "PUBLISHED",
    "SHARING",
    "AnnealingLaw",
    "ConstantLaw",
    "Curve",
    "LogLinearLaw",
    "LossLaw",
    "MultiPowerLaw",
    "OneMinusPowerLaw",
    "OptimizerLaw",
    "PowerLaw",
    "PublishedLawSet",
    "ScaledScheduleLaw",
    "best_runs",
    "deepseek_flops",
    "deepseek_flops_from_6nd",
    "describe_published",
    "fit_law",
    "get_published",
    "law_from_dict",
    "load_laws",
    "near_optimal",
    "rank_schedules",
    "save_laws",
    "select_law",
]

# The schedule laws need torch (autograd fits); import them on first use so `oasl laws list` and the
# optimal-HP laws stay light.
_SCHEDULE_NAMES = {"AnnealingLaw", "Curve", "MultiPowerLaw", "ScaledScheduleLaw", "rank_schedules"}


def __getattr__(name: str):
    if name in _SCHEDULE_NAMES:
        from oasl.laws import schedule

        return getattr(schedule, name)
    raise AttributeError(f"module 'oasl.laws' has no attribute {name!r}")
