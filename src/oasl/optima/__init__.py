"""The optimum of swept hyperparameters per group, with uncertainty, not just an argmin.

Works on any pandas DataFrame of runs with the needed columns (so results from other training code
can be used), independent of the training code. Two entry points:

- :func:`locate_optima`: the optimum of one HP per group (parabola in log h, bootstrap CI, near-optimal
  band, edge/too-few/diverged flags, an actionable note); :func:`locate_one` does one group from arrays.
- :func:`locate_joint_optima`: the joint optimum of two HPs per group (e.g. lr x batch size) from a
  quadratic surface in log space, :func:`fit_surface`, which is also usable on its own to interpolate
  a loss landscape (:meth:`QuadraticSurface.predict`).

Beside them, :func:`clip_regime` says whether a larger target will train in the ladder's
gradient-clipping regime (the ladder's pre-clip gradient norm extrapolated in N).
"""

from oasl.optima._common import LOSS
from oasl.optima.clipping import ClipRegime, clip_regime
from oasl.optima.joint import QuadraticSurface, fit_surface, locate_joint_optima
from oasl.optima.single import Optimum, locate_one, locate_optima

__all__ = [
    "LOSS",
    "ClipRegime",
    "Optimum",
    "clip_regime",
    "QuadraticSurface",
    "fit_surface",
    "locate_joint_optima",
    "locate_one",
    "locate_optima",
]
