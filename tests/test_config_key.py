"""Run keys stay stable when RunSpec grows: new fields are hashed only when they leave their default."""

import pytest

from oasl.config import KEY_DEFAULTS, RunSpec
from oasl.errors import ConfigError
from oasl.models.gpt import MUP_OUTPUT_MULT
from oasl.testing import tiny_run

# Keys computed on main before data_seed/compile existed (commit eb06a3a): existing stores hold these.
OLD_KEYS = {
    "dde02982f3eb1d8e": {},
    "a9490daf74e1a783": {"optimizer": "sgd", "lr": 0.1, "seed": 7},  # SP, computed on main at 2d4c330
}
# muP runs recorded before muP's output multiplier existed trained another model (a_out = 1): their keys
# must change (issue 11), so a store never serves such a run as one of today's muP.
OLD_MUP_KEYS = {
    "b404d76903153678": {
        "optimizer": "sgd",
        "lr": 0.1,
        "seed": 7,
        "parametrization": "mup",
        "base_width": 16,
    },
}
# The fields RunSpec had when stores first recorded keys; any field added since must be in KEY_DEFAULTS.
KEYED_FIELDS = {
    "shape", "parametrization", "base_width", "optimizer", "lr", "hps", "batch_seqs", "tokens", "schedule",
    "grad_clip", "seed", "device", "eval_interval", "eval_tokens", "diverge_factor", "corpus",
}  # fmt: skip


def test_keys_of_existing_specs_are_unchanged():
    for key, overrides in OLD_KEYS.items():
        assert tiny_run(**overrides).key() == key


def test_mup_keys_hold_the_output_multiplier_and_sp_keys_do_not():
    for key, overrides in OLD_MUP_KEYS.items():
        spec = tiny_run(**overrides)
        assert spec.key() != key
        # a_out is keyed by value: the default and its explicit value are one run, a_out = 1 another
        assert tiny_run(**overrides, output_mult=MUP_OUTPUT_MULT).key() == spec.key()
        assert tiny_run(**overrides, output_mult=1.0).key() not in (key, spec.key())
    with pytest.raises(ConfigError, match="under SP"):
        tiny_run(output_mult=2.0)
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ConfigError, match="output_mult"):
            tiny_run(parametrization="mup", output_mult=bad)


def test_every_new_field_is_left_out_of_the_key_at_its_default():
    new = set(RunSpec.model_fields) - KEYED_FIELDS
    assert new == set(KEY_DEFAULTS)
    for name, default in KEY_DEFAULTS.items():
        assert RunSpec.model_fields[name].default == default


def test_data_seed_and_compile_enter_the_key_only_when_they_change_the_run():
    base = tiny_run(seed=3)
    assert tiny_run(seed=3, data_seed=3).key() == base.key()  # data_seed = seed is the default order
    assert tiny_run(seed=3, data_seed=0).key() != base.key()
    assert tiny_run(seed=3, data_seed=0).key() != tiny_run(seed=3, data_seed=1).key()
    assert tiny_run(seed=3, compile=True).key() != base.key()
    assert tiny_run(seed=3, data_seed=0).data_order_seed == 0 and base.data_order_seed == 3


def test_gns_hessian_enters_the_key_only_when_set():
    base = tiny_run(gns=True)
    assert tiny_run(gns=True, gns_hessian=False).key() == base.key()
    assert tiny_run(gns=True, gns_hessian=True).key() != base.key()
