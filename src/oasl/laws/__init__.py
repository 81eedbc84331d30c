"""Law forms, fitting with uncertainty, model selection, the loss law, and published laws."""

from oasl.laws.io import load_laws, save_laws
from oasl.laws.loss import LossLaw
from oasl.laws.power import FEATURES, ConstantLaw, OneMinusPowerLaw, PowerLaw
from oasl.laws.published import PUBLISHED, PublishedLawSet, describe_published, get_published
from oasl.laws.select import OptimizerLaw, select_law

__all__ = [
    "FEATURES", "PUBLISHED", "ConstantLaw", "LossLaw", "OneMinusPowerLaw", "OptimizerLaw", "PowerLaw",
    "PublishedLawSet", "describe_published", "get_published", "load_laws", "save_laws", "select_law",
]
