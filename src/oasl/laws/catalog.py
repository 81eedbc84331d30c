"""Law sets fitted by oasl on released sweeps and shipped with it: ``oasl laws list`` shows them and
``oasl recommend --published NAME --optimizer OPT`` uses them, as it does the published laws.

* ``marin``: laws of every varying HP of 11 optimizers (AdamW, NAdamW, Muon, SOAP, Lion, Kron, MARS,
  Adam-mini, Cautious, Scion, Sophia) fitted on Marin's coordinate-descent sweeps at 130M-520M
  non-embedding parameters and 1-16x Chinchilla tokens (:mod:`oasl.store.marin`,
  :mod:`oasl.laws.coordinate`; docs/marin.md). The file ``data/marin_2025.json`` is written by
  ``python benchmarks/laws_marin.py --write-catalog`` from the data, never by hand.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pandas as pd

from oasl.errors import ConfigError

DATA = Path(__file__).with_name("data")
CATALOG = {"marin": "marin_2025.json"}
_ALIASES = {"marin2025": "marin", "marin-2025": "marin", "wen2025": "marin"}


def catalog_name(name: str) -> str | None:
    """The catalog key of ``name`` (aliases allowed), or None when it is not a catalog set."""
    key = str(name).strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    return key if key in CATALOG else None


@cache
def _load(key: str):
    from oasl.laws.coordinate import load_coordinate_laws

    path = DATA / CATALOG[key]
    if not path.is_file():
        raise ConfigError(
            f"the shipped law set {key} is missing ({path}): reinstall oasl, or rebuild it with "
            "`python benchmarks/laws_marin.py --write-catalog`"
        )
    return load_coordinate_laws(path)


def get_catalog(name: str):
    """The shipped :class:`~oasl.laws.coordinate.CoordinateLawSet` ``name`` (e.g. "marin");
    ConfigError naming the sets otherwise."""
    key = catalog_name(name)
    if key is None:
        raise ConfigError(f"unknown shipped law set {name!r}: choose one of {', '.join(CATALOG)}")
    return _load(key)


def describe_catalog() -> pd.DataFrame:
    """One row per (set, optimizer, HP with a law): name, target, formula, optimizer, citation, range
    (the fitted N and D), setup (the data's facts), units; the layout of
    :func:`oasl.laws.describe_published`."""
    from oasl.laws.coordinate import formula_for

    rows = []
    for key in CATALOG:
        s = get_catalog(key)
        m = s.meta
        n = m.get("n_params", [])
        d = m.get("tokens_range", [None, None])
        rng = f"N {min(n):.3g}-{max(n):.3g}, D {d[0]:.3g}-{d[1]:.3g}" if n and d[0] else "not stated"
        for opt in s.optimizers:
            for hp in s.hps(opt):
                if hp not in s.law_optimizers or opt not in s.law_optimizers[hp]:
                    continue
                rows.append(
                    {
                        "name": key,
                        "target": hp,
                        "formula": formula_for(s.laws[hp], opt),
                        "optimizer": opt,
                        "citation": m.get("citation", ""),
                        "range": rng,
                        "setup": m.get("setup", ""),
                        "units": m.get("units", ""),
                    }
                )
    return pd.DataFrame(rows)
