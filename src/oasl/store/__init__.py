"""The run store: every run's spec, status, metrics and curve, keyed by the hash of its spec.

The store is the source of truth for runs (DESIGN.md), and ALL SQL of oasl lives in this package.
:class:`Store` is a small interface (:mod:`~oasl.store.base`); the default implementation
:class:`SQLiteStore` (:mod:`~oasl.store.sqlite`: schema, migrations, run records; with
:mod:`~oasl.store.claims` and :mod:`~oasl.store.roles` mixed in) keeps one SQLite file in WAL mode; :mod:`~oasl.store.schema` checks that
a file is an oasl store before anything is written to it, and each row as it is read (one StoreError
line naming the file or the run's key, never a KeyError). ``open_store(path, readonly=True)`` opens it in
SQLite's read-only mode for commands that only read.
As with Optuna's storages, callers only see :func:`open_store` and the interface; a server database
would be another subclass behind the same methods. :mod:`~oasl.store.csv_runs` reads runs from other
training code as a CSV.
"""

from oasl.store.base import CURVE_COLUMNS, FINISHED, ROLES, STATUSES, Store, flatten_row
from oasl.store.csv_runs import (
    HP_COLUMNS,
    ImportResult,
    convert_runs,
    import_runs_csv,
    load_runs,
    parse_pairs,
    read_runs_csv,
    validate_runs,
)
from oasl.store.sqlite import _SCHEMA, SCHEMA_VERSION, SQLiteStore, open_store

__all__ = [
    "CURVE_COLUMNS",
    "FINISHED",
    "HP_COLUMNS",
    "ROLES",
    "SCHEMA_VERSION",
    "STATUSES",
    "ImportResult",
    "SQLiteStore",
    "Store",
    "_SCHEMA",
    "convert_runs",
    "flatten_row",
    "import_runs_csv",
    "load_runs",
    "open_store",
    "parse_pairs",
    "read_runs_csv",
    "validate_runs",
]
