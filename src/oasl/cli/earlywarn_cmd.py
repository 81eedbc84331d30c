"""``oasl earlywarn fit|eval``: the divergence early warning. Thin: parse, call
:mod:`oasl.train.earlywarn`, print."""

from __future__ import annotations

import math
from pathlib import Path

import typer
from rich.table import Table

from oasl.cli.common import console


def _fmt(v: float) -> str:
    return "-" if isinstance(v, float) and math.isnan(v) else f"{v:.2f}"


def _score_table(title: str, rows: dict[str, dict]) -> Table:
    table = Table(title=title)
    for c in ("runs", "n", "positives", "precision", "recall", "F1"):
        table.add_column(c, justify="left" if c == "runs" else "right")
    for name, s in rows.items():
        table.add_row(
            name, str(s["n"]), str(s["n_pos"]), _fmt(s["precision"]), _fmt(s["recall"]), _fmt(s["f1"])
        )
    return table


def register(app: typer.Typer) -> None:
    ew = typer.Typer(
        no_args_is_help=True, help="Divergence early warning: flag doomed runs from their first steps."
    )
    app.add_typer(ew, name="earlywarn")

    @ew.command("fit")
    def fit_cmd(
        store: list[str] = typer.Option(..., "--store", help="Store(s) with finished runs (repeatable)."),
        out: Path = typer.Option(Path("earlywarn.json"), "--out", help="Where to write the predictor."),
        frac: float = typer.Option(0.2, "--frac", help="Fraction of a run's steps the warning may look at."),
        far: float = typer.Option(
            0.05, "--far", help="'Far from best': final loss this much above the group's."
        ),
        threshold: float = typer.Option(0.5, "--threshold", help="Probability that triggers the warning."),
        folds: int = typer.Option(5, "--folds", help="Folds over groups for the held-out scores."),
    ) -> None:
        """Train the early warning on the stores' runs; print held-out precision/recall/F1; save it."""
        from oasl.train.earlywarn import DivergencePredictor, cross_validate
        from oasl.workflows import earlywarn_table

        table = earlywarn_table(store, frac, far)
        cv = cross_validate(table, folds=folds, frac=frac, far=far, threshold=threshold)
        console.print(
            _score_table(
                f"held out ({folds} folds over {table['group'].nunique()} groups)",
                {"all runs": cv["all"], "alive at the window's end": cv["alive"]},
            )
        )
        pred = DivergencePredictor(frac, threshold, far).fit(table)
        path = pred.save(out)
        console.print(
            f"trained on {len(table)} runs ({int(table['label'].sum())} diverged or far from best); "
            f"predictor written to {path}"
        )

    @ew.command("eval")
    def eval_cmd(
        store: list[str] = typer.Option(..., "--store", help="Store(s) whose runs to score (repeatable)."),
        predictor: Path = typer.Option(
            Path("earlywarn.json"), "--predictor", help="File from `oasl earlywarn fit`."
        ),
    ) -> None:
        """Score a saved predictor on the runs of other stores."""
        from oasl.train.earlywarn import DivergencePredictor, scores
        from oasl.workflows import earlywarn_table

        pred = DivergencePredictor.load(predictor)
        table = earlywarn_table(store, pred.frac, pred.far)
        table["pred"] = pred.predict(table)
        alive = table[table["nonfinite"] == 0]
        console.print(
            _score_table(
                f"{predictor} on {', '.join(store)}",
                {
                    "all runs": scores(table["label"], table["pred"]),
                    "alive at the window's end": scores(alive["label"], alive["pred"]),
                },
            )
        )
