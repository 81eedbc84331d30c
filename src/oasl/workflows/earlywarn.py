"""Early-warning workflows: the feature table the divergence early warning learns from, read from stores."""

from __future__ import annotations

import math
from pathlib import Path


def earlywarn_table(stores: list[str], frac: float, far: float):
    """:func:`training_table` of each store in ``stores`` (paths), concatenated, groups prefixed with
    their store. ConfigError when none is given, StoreError when one does not exist."""
    import pandas as pd

    from oasl.errors import ConfigError, StoreError

    if not stores:
        raise ConfigError("give at least one --store with finished runs")
    parts = []
    for s in stores:
        if not Path(s).exists():
            raise StoreError(f"store {s} does not exist")
        t = training_table(s, frac, far)
        t["group"] = f"{s}:" + t["group"]
        parts.append(t)
    return pd.concat(parts, ignore_index=True)


def training_table(store, frac: float = 0.2, far: float = 0.05):
    """One row per finished run of ``store`` (a Store or a path): key, group, optimizer, status, label
    and the features of its first ``frac``. Runs without a verdict (see
    :func:`oasl.train.earlywarn.label_runs`) are dropped."""
    import pandas as pd

    from oasl.config import RunSpec
    from oasl.errors import DataError
    from oasl.store import open_store
    from oasl.sweep.spec import group_key
    from oasl.train.earlywarn import _BIG, curve_features, label_runs

    st = open_store(store)
    df = st.to_dataframe()
    if df.empty:
        raise DataError("the store has no runs: run a sweep first (oasl sweep run)")
    df = df[df["source"] == "oasl"].copy()
    if df.empty:
        raise DataError("the store has only imported runs, which carry no training curves")
    specs = {r["key"]: RunSpec.model_validate(r["spec"]) for r in st.rows() if r["source"] == "oasl"}
    df["group"] = [group_key(specs[k]) for k in df["key"]]
    df["label"] = label_runs(df, far)
    df = df[df["label"].notna()]
    if df.empty:
        raise DataError("no finished (done or diverged) runs in the store to learn from")
    curves = dict(tuple(st.curves(list(df["key"])).groupby("key")))
    feats = {k: curve_features(curves.get(k, pd.DataFrame()), int(specs[k].steps), frac) for k in df["key"]}
    # the group reference: the lowest window-end loss among the group's other runs (what a live sweep
    # reads from the store when the warning looks; see oasl.sweep.execute.group_reference)
    ends = pd.Series({k: f["loss_end"] for k, f in feats.items()})
    members = df.groupby("group")["key"].apply(list).to_dict()
    rows = []
    for _, r in df.iterrows():
        others = [k for k in members[r["group"]] if k != r["key"]]
        ref = float(ends[others].min()) if others else math.nan
        f = feats[r["key"]]
        if math.isfinite(ref) and ref < _BIG and f["loss_end"] < _BIG:
            f["loss_vs_group"] = f["loss_end"] - ref
        rows.append(
            {
                "key": r["key"],
                "group": r["group"],
                "optimizer": r["optimizer"],
                "status": r["status"],
                "label": int(r["label"]),
                "lr": float(r["lr"]),
                **f,
            }
        )
    return pd.DataFrame(rows)
