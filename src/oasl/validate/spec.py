"""The validation spec: a ladder to sweep, a larger target, and the methods to compare at the target."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from oasl.config import ModelShape, _Spec, build, load_yaml
from oasl.sweep.spec import SweepSpec


class ValidateSpec(_Spec):
    """What :func:`oasl.validate.validate` measures.

    ``sweep`` is the ladder of small shapes (its optimizers and lr grids). ``target`` overrides the
    shape of the target model (e.g. ``{width: 192}``); ``target_tokens`` is its budget (default: the
    sweep's token rule applied to the target's N). The oracle is an lr grid at the target spanning
    the sweep's lr range widened by ``oracle_widen`` on each side (``oracle_num`` points, extended
    while its optimum sits at an edge); its refined optimum, its best run and (``oracle_refine``) the
    points half a grid step either side are trained on every seed and the best mean wins. ``seeds`` are
    the evaluation seeds of every method's final configuration (use 3 or more for intervals that mean
    something). ``law_features`` fixes the law's features (default: chosen as ``oasl fit`` does). ``oracle_mode="neighbours"`` (the demo's cheap
    check) trains the recommendation and its two neighbours at x/÷ ``neighbour_factor`` instead. ``baselines`` names the methods compared with oasl:
    naive, defaults, mup, step-law, random:K, tpe:K, gp:K, oasl-refine:K. ``curves`` adds every method's
    cost-to-regret curve read off the target's runs (``curve_methods`` among random, tpe, gp, oasl-refine,
    oasl-risk;
    TPE and GP-BO replayed over ``curve_search_draws`` sampler seeds).
    """

    name: str = "validate"
    sweep: SweepSpec
    target: dict[str, Any]
    target_tokens: int | None = Field(default=None, gt=0)
    seeds: tuple[int, ...] = (0, 1)
    oracle_mode: Literal["grid", "neighbours"] = "grid"
    neighbour_factor: float = Field(default=2.0, gt=1.0)
    oracle_num: int = Field(default=7, ge=3)
    oracle_widen: float = Field(default=2.0, ge=1.0)
    oracle_max_extend: int = Field(default=3, ge=0)
    oracle_refine: bool = True
    baselines: tuple[str, ...] = (
        "naive",
        "defaults",
        "mup",
        "step-law",
        "random:4",
        "random:8",
        "tpe:4",
        "tpe:8",
    )
    law_features: tuple[str, ...] | None = None
    # the cost-to-regret curves (oasl.validate.curves), read off the target's runs: which methods to replay,
    # and over how many sampler seeds TPE and GP-BO are replayed (each one study of 8 trials)
    curves: bool = True
    curve_methods: tuple[str, ...] = ("random", "tpe", "gp", "oasl-refine", "oasl-risk")
    curve_search_draws: int = Field(default=20, ge=1)
    min_ratio: float = Field(default=8.0, gt=1.0)

    @model_validator(mode="after")
    def _check(self) -> ValidateSpec:
        from oasl.validate.baselines import check_baseline_name

        for b in self.baselines:
            check_baseline_name(b)
        if self.sweep.trainer is not None and "mup" in self.baselines:  # muP is a way to build oasl's GPT
            if "baselines" in self.model_fields_set:
                raise ValueError(
                    "baseline mup trains oasl's own muP GPT, not your trainer's model: leave it out"
                )
            object.__setattr__(self, "baselines", tuple(b for b in self.baselines if b != "mup"))
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds {list(self.seeds)} repeat a seed: give distinct evaluation seeds")
        if not self.seeds:
            raise ValueError("seeds is empty: give at least one evaluation seed")
        bad = [m for m in self.curve_methods if m not in ("random", "tpe", "gp", "oasl-refine", "oasl-risk")]
        if bad:
            raise ValueError(f"curve_methods {bad}: use random, tpe, gp, oasl-refine or oasl-risk")
        return self

    def target_shape(self) -> ModelShape:
        model = self.target_model()
        if model is not None:  # a user's trainer: oasl's reading of the target's model config
            from oasl.trainers.params import rung_shape

            return rung_shape(model, self.sweep.shape_defaults, "target")[0]
        base = self.sweep.model_shapes()[-1].model_dump()
        return build(ModelShape, {**base, **self.sweep.shape_defaults, **self.target}, what="target shape")

    def target_model(self) -> dict[str, Any] | None:
        """The target's model config for a user's trainer (the largest rung's fields with ``target`` over
        them, e.g. ``{name: xl, d_model: 192}``); None for oasl's built-in GPT."""
        if self.sweep.trainer is None:
            return None
        last = self.sweep.rungs()[-1][1] or {}
        return {**last, **self.target}

    def target_n_params(self) -> int:
        """N of the target: its config's ``n_params`` when given, else oasl's count of its shape."""
        from oasl.trainers.params import n_params_of

        return n_params_of(self.target_shape(), self.target_model())


def load_validate(path) -> ValidateSpec:
    """Load a validation YAML file (one ConfigError line on any problem). A sweep's ``trainer.command``
    without ``cwd`` runs in the YAML file's folder, as in :func:`oasl.sweep.load_sweep`."""
    from pathlib import Path

    spec = load_yaml(path, ValidateSpec)
    tr = spec.sweep.trainer
    if tr is not None and tr.command is not None and tr.cwd is None:
        tr = tr.model_copy(update={"cwd": str(Path(path).resolve().parent)})
        spec = spec.model_copy(update={"sweep": spec.sweep.model_copy(update={"trainer": tr})})
    return spec
