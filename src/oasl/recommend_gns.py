"""A second opinion on a recommendation's batch: the critical batch B_crit(L) (Kaplan et al. 2020,
Sec. 5.1) fitted on a store's gradient-noise measurements, at the target's predicted loss
(``oasl recommend --gns-store``). Split from :mod:`oasl.recommend` along that seam."""

from __future__ import annotations

import math

from oasl.recommend import Item, Recommendation


def critical_batch_opinion(rec: Recommendation, store, loss_law=None, level: float = 0.9) -> Item | None:
    """A second opinion on the batch: B_crit(L) (Kaplan et al. 2020, Sec. 5.1) fitted on the gradient-noise
    measurements of ``store``, at the target's loss predicted by ``loss_law`` (or one fitted on the
    store). Added to ``rec.items`` as ``batch_tokens_gns`` and returned; None when the store has no
    measurements (runs trained with ``gns: true``). Where the store measured B_noise too (``gns_hessian:
    true``), the law fitted on B_noise is added as ``batch_tokens_gns_noise``, the lower end of a bracket
    whose upper end is ``batch_tokens_gns`` (:data:`oasl.laws.critical_batch.BRACKET_EVIDENCE`)."""
    from oasl.errors import FitError
    from oasl.laws.critical_batch import (
        BRACKET_EVIDENCE,
        CriticalBatchLaw,
        bracket_at,
        loss_at,
        measured,
        noise_points,
    )
    from oasl.store import open_store

    st = open_store(store)
    pts = noise_points(st)
    if not len(pts):
        return None
    law = CriticalBatchLaw(level=level).fit(pts)
    loss, how = loss_at(
        st,
        rec.n_params,
        rec.tokens,
        loss_law,
        hint="pass --laws with a laws file holding a loss law (`oasl fit` writes one where N and D both vary)",
    )
    item = _gns_item(
        "batch_tokens_gns", law, loss, f"at L = {loss:.3g} ({how}); second opinion beside batch_tokens"
    )
    rec.items[item.name] = item
    if measured(pts, "b_noise_tokens"):
        try:
            lower = CriticalBatchLaw(level=level).fit(pts, "b_noise_tokens")
        except FitError as exc:  # B_simple's opinion stands alone
            rec.notes.append(f"no B_noise law beside batch_tokens_gns: {exc}")
        else:
            noise = _gns_item(
                "batch_tokens_gns_noise",
                lower,
                loss,
                f"fitted on B_noise at L = {loss:.3g}: the lower end of a bracket whose upper end is "
                f"batch_tokens_gns (B_simple); {BRACKET_EVIDENCE}",
            )
            if not bracket_at(law, lower, loss)["ordered"]:
                inverted = "B_noise lies above B_simple here: the bracket is inverted"
                noise.warning = f"{noise.warning}; {inverted}" if noise.warning else inverted
            rec.items[noise.name] = noise
    return item


def _gns_item(name: str, law, loss: float, where: str) -> Item:
    """The :class:`Item` of a fitted :class:`~oasl.laws.critical_batch.CriticalBatchLaw` at ``loss``."""
    r = law.recommend(loss)
    return Item(
        name,
        r["batch_tokens"],
        r["low"] if math.isfinite(r["low"]) else None,
        r["high"] if math.isfinite(r["high"]) else None,
        source=f"{law.formula()} {where}",
        warning="; ".join(
            filter(
                None,
                (
                    "the target loss lies outside the losses the law was fitted on"
                    if r["extrapolated"]
                    else "",
                    r.get("warning", ""),
                ),
            )
        ),
    )
