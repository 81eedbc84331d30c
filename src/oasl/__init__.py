"""oasl: optimization-aware scaling laws.

From sweeps of small GPT-style models to fitted laws of the optimal hyperparameters, and a
recommendation (with intervals) for a much larger training run.

The package face, as ``optuna.create_study`` is Optuna's: the use cases of :mod:`oasl.workflows`, one
function each, returning data::

    import oasl

    summary = oasl.sweep("sweep.yaml", store="runs.db")      # -> SweepSummary
    fitted = oasl.fit("runs.db", out="laws.json")            # -> FitResult
    rec = oasl.recommend("adamw", params=1e9, tokens=2e10, laws=fitted)   # -> Recommendation
    result = oasl.validate("validate.yaml", store="runs.db")  # -> ValidationResult
    page = oasl.write_report("runs.db", "report")             # -> Path of index.html

and the few types a user touches (``SweepSpec``, ``RunSpec``, ``Recommendation``, ``open_store``, ...),
loaded on first use. Importing ``oasl`` imports neither torch nor numpy nor pandas: the functions import
their workflow when called.

``sweep``, ``validate``, ``recommend``, ``optima`` and ``report`` are also the names of subpackages
(``oasl.sweep``, ``oasl.validate``, ...). Python sets a package's attribute to a submodule when that
submodule is first imported, which would replace the function; the face's module class keeps the
function, and the function forwards attribute access to the submodule, so ``oasl.sweep(spec)``,
``oasl.sweep.expand`` and ``from oasl.sweep import expand`` all work in any import order.
"""

from __future__ import annotations

import importlib
import sys
import types

from oasl._version import __version__
from oasl.errors import OaslError

# face name -> (module, name) of the workflow it calls
_API = {
    "sweep": ("oasl.workflows.sweep", "sweep"),
    "plan_sweep": ("oasl.workflows.sweep", "plan_sweep"),
    "fit": ("oasl.workflows.fit", "fit"),
    "recommend": ("oasl.workflows.recommend", "recommend"),
    "validate": ("oasl.workflows.validate", "validate"),
    "write_report": ("oasl.workflows.validate", "report"),
    "optima": ("oasl.workflows.optima", "optima"),
    "import_runs": ("oasl.workflows.optima", "import_runs"),
    "demo": ("oasl.workflows.validate", "demo"),
    "refine": ("oasl.workflows.refine", "refine_in_store"),
}

# type name -> module that defines it, imported on first access
_TYPES = {
    "SweepSpec": "oasl.sweep.spec",
    "RunSpec": "oasl.config",
    "ModelShape": "oasl.config",
    "ValidateSpec": "oasl.validate.spec",
    "ValidationResult": "oasl.validate.results",
    "Recommendation": "oasl.recommend",
    "SweepSummary": "oasl.sweep.execute",
    "FitResult": "oasl.workflows.fit",
    "OptimaResult": "oasl.workflows.optima",
    "Store": "oasl.store.base",
    "open_store": "oasl.store.sqlite",
    "fit_laws": "oasl.laws.pipeline",
}


class _Workflow:
    """A face function: calling it calls the workflow (imported on the first call); any other attribute
    comes from the same-named submodule where there is one (``oasl.sweep.expand``), so the function and
    the subpackage share the name without either hiding the other."""

    def __init__(self, name: str, module: str, attr: str):
        self.__name__ = self.__qualname__ = name
        self.__module__ = "oasl"
        self._target = (module, attr)
        self._fn = None

    def _load(self):
        if self._fn is None:
            fn = getattr(importlib.import_module(self._target[0]), self._target[1])
            self.__doc__ = fn.__doc__
            self._fn = fn
        return self._fn

    def __call__(self, *args, **kwargs):
        return self._load()(*args, **kwargs)

    @property
    def __wrapped__(self):  # inspect.signature and help() read the workflow's signature through it
        return self._load()

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        sub = f"oasl.{self.__name__}"
        try:
            module = importlib.import_module(sub)
        except ModuleNotFoundError as exc:
            if exc.name != sub:
                raise
            raise AttributeError(f"oasl.{self.__name__} has no attribute {name!r}") from None
        return getattr(module, name)

    def __repr__(self) -> str:
        return f"<oasl.{self.__name__}: the workflow {self._target[0]}.{self._target[1]}>"


class _Face(types.ModuleType):
    """The module class of ``oasl``: keeps the face functions when a same-named submodule is imported
    (the import system then sets the package attribute to the submodule)."""

    def __setattr__(self, name: str, value) -> None:
        if name in _API and isinstance(value, types.ModuleType):
            return  # the submodule stays reachable through sys.modules and the function's attributes
        super().__setattr__(name, value)


def __getattr__(name: str):
    if name in _TYPES:
        value = getattr(importlib.import_module(_TYPES[name]), name)
        globals()[name] = value
        return value
    if name == "workflows":
        return importlib.import_module("oasl.workflows")
    raise AttributeError(f"module 'oasl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_TYPES})


for _name, (_module, _attr) in _API.items():
    globals()[_name] = _Workflow(_name, _module, _attr)
del _name, _module, _attr

sys.modules[__name__].__class__ = _Face

__all__ = ["OaslError", "__version__", *_API, *_TYPES]
