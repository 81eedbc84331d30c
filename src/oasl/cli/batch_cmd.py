"""``oasl batch critical``: the critical batch size B_crit(L) from gradient-noise measurements in a store
(:mod:`oasl.laws.critical_batch`), or B_noise and S_min per model size and their laws in N from a
steps-to-target table (:mod:`oasl.laws.steps_table`). Thin: parse, call, print."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer

from oasl.cli.common import console
from oasl.config import parse_count


def register(app: typer.Typer) -> None:
    batch = typer.Typer(
        no_args_is_help=True,
        help="Critical batch size from the gradient noise scale or steps-to-target tables.",
    )
    app.add_typer(batch, name="batch")

    @batch.command("critical")
    def critical_cmd(
        store: str = typer.Option(None, "--store", help="Store of runs trained with gns: true."),
        steps_table: Path = typer.Option(
            None,
            "--steps-table",
            help="Or a CSV of steps to a target loss: n_params, batch_size_seqs (or batch_tokens), steps "
            "[, target_loss, tokens]; fits S(B) = S_min (1 + B_noise/B) per size and laws in N.",
        ),
        source: str = typer.Option(
            None, "--source", help="With --steps-table: the rows of this `source` value (default: the first)."
        ),
        fmt: str = typer.Option("table", "--format", help="With --steps-table: table or json."),
        target_loss_: float = typer.Option(
            None, "--target-loss", help="Loss (nats/token) to size the batch for."
        ),
        params: float = typer.Option(
            None,
            "--target-params",
            parser=parse_count,
            help="Or a target N (with --target-tokens); with --steps-table, the size to predict B_noise, S_min "
            "and the steps at each batch for.",
        ),
        tokens: float = typer.Option(
            None,
            "--target-tokens",
            parser=parse_count,
            help="Target D (tokens); with --steps-table only for laws in D.",
        ),
        laws: Path = typer.Option(
            None, "--laws", help="Laws file with a loss law (default: fit one on the store)."
        ),
        scale: str = typer.Option(
            "simple",
            "--scale",
            help="Noise scale to fit on: simple (B_simple), noise (B_noise, runs with gns_hessian: true) "
            "or noise-adam (AdamW's preconditioned B_noise).",
        ),
        n_boot: int = typer.Option(
            200, "--n-boot", help="Bootstrap resamples (over runs, or over a steps table's rows)."
        ),
        out: Path = typer.Option(None, "--out", help="Write the law and the recommendation as JSON here."),
    ) -> None:
        """Fit B_crit(L) = B_* / L^(1/alpha_B) (Kaplan et al. 2020, Sec. 5.1) on measured B_simple (or
        B_noise with --scale); with B_simple and a store that measured B_noise too, both laws as a bracket.
        With --steps-table: S(B) = S_min (1 + B_noise/B) per model size (McCandlish et al. 2018, Eq. 2.11),
        laws of B_noise and S_min in N, and Zhang et al. 2024's critical batch beside them."""
        from oasl.errors import ConfigError

        if steps_table is not None:
            if store is not None:
                raise ConfigError("give --store or --steps-table, not both")
            if target_loss_ is not None or laws is not None or scale != "simple":
                raise ConfigError("--target-loss, --laws and --scale apply to --store, not to --steps-table")
            for name, v in (("--target-params", params), ("--target-tokens", tokens)):
                if v is not None and not (math.isfinite(v) and v > 0):
                    raise ConfigError(f"{name} must be a positive finite number, got {v}")
            return steps_table_cmd(steps_table, source, fmt, params, tokens, n_boot, out)
        if store is None:
            raise ConfigError(
                "give --store (runs trained with gns: true) or --steps-table (a CSV of steps to a target loss)"
            )
        if source is not None or fmt != "table":
            raise ConfigError("--source and --format apply to --steps-table; with --store use --out for JSON")
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
        from oasl.workflows import target_loss

        column = scale_column(scale)
        if not Path(store).exists():
            raise StoreError(f"store {store} does not exist: run a sweep with `run: {{gns: true}}` first")
        st = open_store(store, readonly=True)
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


def steps_table_cmd(path: Path, source, fmt: str, params, tokens, n_boot: int, out: Path | None) -> None:
    """``--steps-table``: fit :class:`~oasl.laws.steps_table.StepsTableFit` and print its report."""
    from rich.table import Table

    from oasl.errors import ConfigError
    from oasl.laws.steps_laws import StepsTableFit
    from oasl.laws.steps_table import read_steps_table

    if fmt not in ("table", "json"):
        raise ConfigError(f"unknown --format {fmt!r}: use table or json")
    if n_boot < 0:
        raise ConfigError(f"--n-boot must be >= 0, got {n_boot}")
    fit = StepsTableFit(n_boot=n_boot).fit(read_steps_table(path, source))
    rep = fit.report(params, tokens)
    if out is not None:
        out.write_text(json.dumps(rep, indent=2) + "\n")
    if fmt == "json":
        typer.echo(json.dumps(rep, indent=2))
        return
    unit = "seqs" if fit.table_.unit == "seqs" else "tokens"
    table = Table(
        title=f"S(B) = S_min (1 + B_noise/B) per model size (batch in {unit}; 90% bootstrap over rows)"
    )
    for c in ("N", "target loss", "batches used", "S_min (steps)", "B_noise", "rms rel", "Zhang B*"):
        table.add_column(c, overflow="fold")
    for r in rep["sizes"]:
        table.add_row(
            f"{r['n_params']:.4g}",
            "-" if r["target_loss"] is None else f"{r['target_loss']:.4g}",
            f"{r['n_used']}/{r['n_batches']} ({r['batch_min']:.4g}-{r['batch_max']:.4g})",
            f"{r['s_min']:.4g} ({_span(r, 's_min')})",
            f"{r['b_noise']:.4g} ({_span(r, 'b_noise')})",
            f"{r['rms_rel']:.3f}",
            "-" if r["zhang_cbs"] is None else f"{r['zhang_cbs']:.4g}",
        )
    console.print(table)
    for name, law in rep["laws"].items():
        ci = law["exponent_interval"]
        ci = (
            "; ".join(f"{f} exponent 90% {a:.3g}-{b:.3g}" for f, (a, b) in ci.items())
            if ci
            else "no interval"
        )
        console.print(f"{name}: {law['formula']} ({ci})")
    sel = rep["fit"].get("s_min_selection") or {}
    if "median_abs_err" in sel:
        e = sel["median_abs_err"]
        console.print(
            f"S_min's law: {'E_min = S_min B_noise proportional to N' if sel['form'] == 'e_min' else 'its own power law'}"
            f" (predicting the {sel['held_out_n_params']:.3g} size's steps from the others: median error "
            f"{e['power']:.1%} own power law, {e['e_min']:.1%} E_min proportional to N)"
        )
    for note in rep["notes"]:
        console.print(f"[dim]{note}[/dim]")
    if params is None:
        return
    ext = " [yellow](outside the fitted sizes)[/yellow]" if rep["extrapolated"] else ""
    console.print(
        f"at N = {params:.4g}{ext}: B_noise {_g(rep['b_noise'])} {rep['b_noise_unit']} "
        f"({_pair(rep['b_noise_interval'])} rows, {_pair(rep['b_noise_law_interval'])} law), "
        f"S_min {_g(rep['s_min'])} steps ({_pair(rep['s_min_interval'])} rows)"
    )
    col = fit.table_.batch_column
    console.print("steps: " + ", ".join(f"B={s[col]:.4g}: {_g(s['steps'])}" for s in rep["steps"]))
    z = rep["zhang"]
    if z["cbs"] is not None:
        pub = f"; their published law: {z['published_cbs']:.4g}" if z["published_cbs"] is not None else ""
        console.print(
            f"Zhang et al.'s B* (refitted on this table): {z['cbs']:.4g} {rep['b_noise_unit']}{pub}"
        )


def _span(r: dict, c: str) -> str:
    lo, hi = r.get(f"{c}_low"), r.get(f"{c}_high")
    return "-" if lo is None or hi is None else f"{lo:.4g}-{hi:.4g}"


def _g(v) -> str:
    return "-" if v is None else f"{v:.4g}"


def _pair(v) -> str:
    return "-" if not v else f"{_g(v[0])}-{_g(v[1])}"


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
