"""Recommend workflows: a full configuration for a target, and the target's loss for batch sizing."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def target_shape(width: int | None, depth: int | None, seq_len: int):
    """The target's :class:`~oasl.config.ModelShape` from ``width`` and ``depth`` (None when neither is
    given; ConfigError when only one is)."""
    from oasl.config import ModelShape, build
    from oasl.errors import ConfigError

    if width is None and depth is None:
        return None
    if width is None or depth is None:
        raise ConfigError("give both --width and --depth for a target shape")
    return build(ModelShape, {"width": width, "depth": depth, "seq_len": seq_len}, what="target shape")


def coordinate_laws(laws: Any, published: str | None):
    """The coordinate law set (Marin's coordinate-descent laws, docs/marin.md) a recommendation reads and
    where it comes from, as (lawset, source line): ``laws`` a file written by ``oasl fit`` on coordinate
    sweeps, or ``published`` the name of a shipped set; None for any other laws."""
    from oasl.laws.catalog import catalog_name, get_catalog
    from oasl.laws.coordinate import is_coordinate_file, load_coordinate_laws

    if isinstance(laws, (str, Path)) and is_coordinate_file(laws):
        return load_coordinate_laws(laws), f"coordinate laws {laws}"
    if laws is None and published and catalog_name(published):
        return get_catalog(published), f"shipped {catalog_name(published)} laws"
    return None


def recommend(
    optimizer: str = "adamw",
    *,
    tokens: float,
    params: float | None = None,
    width: int | None = None,
    depth: int | None = None,
    seq_len: int | None = None,
    laws: Any = None,
    published: str | None = None,
    force: bool = False,
    warn_ratio: float = 4.0,
    gns_store: str | Path | None = None,
    risk: bool = False,
):
    """A full HP configuration for a target of ``params`` non-embedding parameters (or a ``width`` x
    ``depth`` shape) trained on ``tokens`` tokens, from fitted laws (``laws``: a laws file from
    :func:`oasl.workflows.fit`, a :class:`~oasl.workflows.FitResult`, or a dict of laws) and/or a
    published law set (``published``: step-law, deepseek, kaplan). ``seq_len`` defaults to 2048 for both
    kinds of target. ``gns_store``: a store of runs with gradient-noise measurements adds B_crit(L) as
    ``batch_tokens_gns`` (absent from the result when the store has none). Coordinate laws (a file
    from ``oasl fit`` on coordinate sweeps, or ``published="marin"``) take ``params``; ``risk=True`` moves lr and
    batch from the law's centre by the asymmetric-risk rule (off by default; docs/marin.md).
    Returns a :class:`~oasl.recommend.Recommendation` (values, intervals, sources, warnings)."""
    from oasl.errors import ConfigError
    from oasl.recommend import DEFAULT_SEQ_LEN, recommend_coordinate
    from oasl.recommend import recommend as recommend_from_laws
    from oasl.recommend_gns import critical_batch_opinion
    from oasl.workflows.fit import FitResult, read_laws_file

    coordinate = (
        (laws.coordinate, "coordinate laws")
        if isinstance(laws, FitResult) and laws.coordinate is not None
        else None
    ) or coordinate_laws(laws, published)
    if coordinate is not None:
        if params is None:
            raise ConfigError("coordinate laws take --params and --tokens and print --format table or json")
        lawset, where = coordinate
        return recommend_coordinate(
            lawset, optimizer, params, tokens, seq_len, warn_ratio=warn_ratio, risk=risk, laws_source=where
        )

    fitted, source, loss_law, fixed = {}, "fitted laws", None, {}
    if isinstance(laws, FitResult):
        fitted = dict(laws.laws)
        loss_law = fitted.pop("loss", None)
        source = f"fitted laws (on {laws.meta.get('source', '?')})"
        fixed = laws.meta.get("fixed") or {}
    elif isinstance(laws, dict):
        fitted = dict(laws)
        loss_law = fitted.pop("loss", None)
    elif laws is not None:
        fitted, loss_law, source, fixed = read_laws_file(laws)
    # one rule whether the target is params or a shape: the sweep's seq_len, else the default
    seq_len = seq_len or fixed.get("seq_len") or DEFAULT_SEQ_LEN
    shape = target_shape(width, depth, seq_len)
    if not fitted and not published:
        raise ConfigError("give --laws laws.json (from `oasl fit`) or --published step-law|deepseek|kaplan")
    rec = recommend_from_laws(
        optimizer,
        n_params=params,
        tokens=tokens,
        shape=shape,
        laws=fitted,
        published=published,
        seq_len=seq_len,
        warn_ratio=warn_ratio,
        laws_source=source,
        force=force,
        fixed=fixed,
    )
    if gns_store is not None:
        critical_batch_opinion(rec, gns_store, loss_law)
    return rec


def target_loss(store, loss: float | None, params: float | None, tokens: float | None, laws: Path | None):
    """The loss to size the batch for: given, or predicted at (N, D) by a loss law (from ``laws`` or fitted
    on the store). Returns (loss or None, how it was obtained)."""
    import math

    from oasl.errors import ConfigError
    from oasl.laws.critical_batch import loss_at

    for name, v in (("--target-loss", loss), ("--target-params", params), ("--target-tokens", tokens)):
        if v is not None and not (math.isfinite(v) and v > 0):
            raise ConfigError(f"{name} must be a positive finite number, got {v}")
    if loss is not None:
        return loss, "given"
    if params is None or tokens is None:
        return None, ""
    law = None
    if laws is not None:
        from oasl.laws import load_laws

        fitted, _ = load_laws(laws)
        if "loss" not in fitted:
            raise ConfigError(f"{laws} holds no loss law: refit with `oasl fit` on runs of several N and D")
        law = fitted["loss"]
    return loss_at(store, params, tokens, law)
