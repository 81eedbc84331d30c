"""The use cases of oasl, one function each, returning data: what the ``oasl`` command, the benchmarks and
the package face (``import oasl``) call.

Each workflow takes paths or objects (a sweep spec or its YAML file, a store or its path, a DataFrame of
runs), does the library work and returns a dataclass or a DataFrame; printing is the caller's. Heavy
dependencies (torch, pandas, matplotlib) are imported inside the functions, so importing this package is
cheap.
"""

from oasl.workflows.earlywarn import earlywarn_table, training_table
from oasl.workflows.fit import FitResult, fit, laws_payload, read_laws_file
from oasl.workflows.optima import OptimaResult, import_runs, mixed_columns, optima
from oasl.workflows.recommend import coordinate_laws, recommend, target_loss, target_shape
from oasl.workflows.refine import law_at_target, refine_in_store
from oasl.workflows.schedules import predict_kwargs, schedule_target
from oasl.workflows.sweep import load_sweep_spec, plan_sweep, sweep, sweep_execution
from oasl.workflows.validate import demo, report, validate

__all__ = [
    "FitResult",
    "OptimaResult",
    "coordinate_laws",
    "demo",
    "earlywarn_table",
    "fit",
    "import_runs",
    "law_at_target",
    "laws_payload",
    "load_sweep_spec",
    "mixed_columns",
    "optima",
    "plan_sweep",
    "predict_kwargs",
    "read_laws_file",
    "recommend",
    "refine_in_store",
    "report",
    "schedule_target",
    "sweep",
    "sweep_execution",
    "target_loss",
    "target_shape",
    "training_table",
    "validate",
]
