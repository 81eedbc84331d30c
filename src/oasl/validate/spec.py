"""The validation spec: a ladder to sweep, a larger target, and the methods to compare at the target."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, model_validator

from oasl.config import ModelShape, _Spec, build, load_yaml
from oasl.sweep.spec import SweepSpec

BASELINES = ("naive", "defaults", "mup", "step-law", "random", "tpe")
_METHOD = re.compile(r"^(naive|defaults|mup|step-law)$|^(random|tpe):(\d+)$")


class ValidateSpec(_Spec):
    """What :func:`oasl.validate.validate` measures.

    ``sweep`` is the ladder of small shapes (its optimizers and lr grids). ``target`` overrides the
    shape of the target model (e.g. ``{width: 192}``); ``target_tokens`` is its budget (default: the
    sweep's token rule applied to the target's N). The oracle is an lr grid at the target spanning
    the sweep's lr range widened by ``oracle_widen`` on each side (``oracle_num`` points, extended
    while its optimum sits at an edge), refined by the optima module. ``seeds`` are the evaluation
    seeds of every method's final configuration. ``oracle_mode="neighbours"`` (the demo's cheap
    check) trains the recommendation and its two neighbours at x/÷ ``neighbour_factor`` instead. ``baselines`` names the methods compared with oasl:
    naive, defaults, mup, step-law, random:K, tpe:K.
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
    law_features: tuple[str, ...] = ("N",)
    min_ratio: float = Field(default=8.0, gt=1.0)

    @model_validator(mode="after")
    def _check(self) -> ValidateSpec:
        for b in self.baselines:
            if not _METHOD.match(b):
                raise ValueError(
                    f"unknown baseline {b!r}: use naive, defaults, mup, step-law, random:K or tpe:K"
                )
        if not self.seeds:
            raise ValueError("seeds is empty: give at least one evaluation seed")
        return self

    def target_shape(self) -> ModelShape:
        base = self.sweep.model_shapes()[-1].model_dump()
        return build(ModelShape, {**base, **self.sweep.shape_defaults, **self.target}, what="target shape")


def load_validate(path) -> ValidateSpec:
    """Load a validation YAML file (one ConfigError line on any problem)."""
    return load_yaml(path, ValidateSpec)
