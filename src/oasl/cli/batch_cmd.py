"""``oasl batch critical``: the critical batch size B_crit(L) from gradient-noise measurements in a store.
Thin: parse, call :mod:`oasl.laws.critical_batch`, print."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer

from oasl.cli.common import console
from oasl.config import parse_count


def target_loss(store, loss: float | None, params: float | None, tokens: float | None, laws: Path | None):
    """The loss to size the batch for: given, or predicted at (N, D) by a loss law (from ``laws`` or fitted
    on the store). Returns (loss or None, how it was obtained)."""
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


def register(app: typer.Typer) -> None:
    batch = typer.Typer(no_args_is_help=True, help="Batch size from the gradient noise scale.")
    app.add_typer(batch, name="batch")

    @batch.command("critical")
    def critical_cmd(
        store: str = typer.Option(..., "--store", help="Store of runs trained with gns: true."),
        target_loss_: float = typer.Option(
            None, "--target-loss", help="Loss (nats/token) to size the batch for."
        ),
        params: float = typer.Option(
            None, "--target-params", parser=parse_count, help="Or a target N (with --target-tokens)."
        ),
        tokens: float = typer.Option(None, "--target-tokens", parser=parse_count, help="Target D (tokens)."),
        laws: Path = typer.Option(
            None, "--laws", help="Laws file with a loss law (default: fit one on the store)."
        ),
        scale: str = typer.Option(
            "simple",
            "--scale",
            help="Noise scale to fit on: simple (B_simple), noise (B_noise, runs with gns_hessian: true) "
            "or noise-adam (AdamW's preconditioned B_noise).",
        ),
        n_boot: int = typer.Option(200, "--n-boot", help="Bootstrap resamples over runs for the intervals."),
        out: Path = typer.Option(None, "--out", help="Write the law and the recommendation as JSON here."),
    ) -> None:
        """Fit B_crit(L) = B_* / L^(1/alpha_B) (Kaplan et al. 2020, Sec. 5.1) on measured B_simple (or
        B_noise with --scale); with B_simple and a store that measured B_noise too, both laws as a bracket."""
        from oasl.errors import FitError, StoreError
        from oasl.laws.critical_batch import (
            BRACKET_EVIDENCE,
            SCALE_NAMES,
            CriticalBatchLaw,
            bracket_at,
            fit_critical_batch,
            measured,
            scale_column,
        )
        from oasl.store import open_store

        column = scale_column(scale)
        if not Path(store).exists():
            raise StoreError(f"store {store} does not exist: run a sweep with `run: {{gns: true}}` first")
        st = open_store(store)
        pts, law = fit_critical_batch(st, n_boot=n_boot, column=column)
        loss, how = target_loss(st, target_loss_, params, tokens, laws)
        # B_simple's law is the bracket's upper end; B_noise's, where the store measured it, the lower one
        lower = None
        if scale == "simple" and measured(pts, "b_noise_tokens"):
            try:
                lower = CriticalBatchLaw(n_boot=n_boot).fit(pts, "b_noise_tokens")
            except FitError as exc:  # B_simple's law stands alone; say why the bracket is missing
                typer.secho(f"warning: no B_noise law beside B_simple's ({exc})", err=True, fg="yellow")
        d = {"scale": scale, "law": law.to_dict()}
        print_law(law, SCALE_NAMES[column])
        if lower is not None:
            d["b_noise"] = {"law": lower.to_dict()}
            print_law(lower, "B_noise")
            console.print(f"B_simple is the upper end of a bracket, B_noise the lower: {BRACKET_EVIDENCE}")
        if loss is not None:
            rec = law.recommend(loss)
            d["recommendation"] = {**rec, "loss_from": how}
            if lower is None:
                ext = " [yellow](outside the fitted loss range)[/yellow]" if rec["extrapolated"] else ""
                console.print(
                    f"at L = {loss:.4g} ({how}): batch {rec['batch_tokens']:.4g} tokens "
                    f"(90% {rec['low']:.3g}-{rec['high']:.3g}){ext}"
                )
            else:
                br = bracket_at(law, lower, loss)
                d["b_noise"]["recommendation"] = {**br["lower"], "loss_from": how}
                d["bracket"] = {k: br[k] for k in ("loss", "ordered", "evidence")}
                console.print(
                    f"at L = {loss:.4g} ({how}): {end('B_simple', br['upper'])} (upper), "
                    f"{end('B_noise', br['lower'])} (lower)"
                )
                if not br["ordered"]:
                    console.print(
                        "[yellow]here B_noise lies above B_simple: the bracket is inverted[/yellow]"
                    )
        if loss is not None and d["recommendation"].get("warning"):
            typer.secho(f"warning: {d['recommendation']['warning']}", err=True, fg="yellow")
        if out is not None:
            out.write_text(json.dumps(d, indent=2) + "\n")
            console.print(f"written to {out}")


def print_law(law, name: str) -> None:
    """One line: the fitted law of the estimate ``name``, its alpha_B interval, points and loss range."""
    lo, hi = law.alpha_b_interval_
    console.print(
        f"{name}: {law.formula()}  (alpha_B {law.alpha_b_:.3g}, 90% {lo:.3g}-{hi:.3g}; {law.n_points_} points "
        f"from {law.n_runs_} runs, L {law.range_[0]:.3g}-{law.range_[1]:.3g})"
    )


def end(name: str, rec: dict) -> str:
    """``name`` and its recommendation (from :meth:`CriticalBatchLaw.recommend`) as text."""
    ext = ", outside the fitted loss range" if rec["extrapolated"] else ""
    return f"{name} {rec['batch_tokens']:.4g} tokens (90% {rec['low']:.3g}-{rec['high']:.3g}{ext})"
