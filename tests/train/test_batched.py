import math

import pytest

from oasl.errors import TrainError
from oasl.testing import tiny_run
from oasl.train import BATCHED_OPTIMIZERS, batch_signature, member_bytes, train, train_batched

# Members of a grid share the data order (data_seed) but not the init (seed); tiny_run trains 60 steps.
GRIDS = {
    # muP (width 32 over base 16): per-tensor lr multipliers and the wd_mult of decayed hidden weights
    "adamw": [
        dict(lr=3e-3, seed=1, parametrization="mup", base_width=16, hps={"weight_decay": 0.1}),
        dict(lr=1e-3, seed=2, parametrization="mup", base_width=16, hps={"beta2": 0.99}, grad_clip=None),
    ],
    "sgd": [
        dict(lr=0.1, seed=1, hps={"weight_decay": 1e-3}),
        dict(lr=0.2, seed=2, hps={"nesterov": 1.0}, schedule={"name": "linear"}),
    ],
    "lion": [dict(lr=1e-3, seed=1, hps={"weight_decay": 0.1}), dict(lr=3e-4, seed=2)],
}


def _specs(opt, members):
    return [tiny_run(optimizer=opt, data_seed=0, **m) for m in members]


@pytest.mark.parametrize("opt", sorted(GRIDS))
def test_a_batched_member_is_the_run_trained_alone(opt):
    specs = _specs(opt, GRIDS[opt])
    batched = train_batched(specs)
    for b, spec in zip(batched, specs, strict=True):
        alone = train(spec)
        assert b.spec == spec and b.status == alone.status == "done"
        assert b.steps_done == alone.steps_done == spec.steps
        assert [set(p) for p in b.curve] == [set(p) for p in alone.curve]  # same keys at the same steps
        for p, q in zip(b.curve, alone.curve, strict=True):
            assert p["lr"] == q["lr"]
            for k in ("train_loss", "grad_norm", "val_loss", "update_ratio"):
                if k in p:
                    assert p[k] == pytest.approx(q[k], rel=1e-3, abs=1e-4), (k, p["step"])
        assert b.initial_val_loss == pytest.approx(alone.initial_val_loss, rel=1e-6)
        assert b.final_val_loss == pytest.approx(alone.final_val_loss, rel=1e-4)
        assert b.final_val_loss < b.initial_val_loss - 0.3


def test_a_diverging_member_leaves_the_others_bit_identical():
    good = [dict(lr=3e-3, seed=1), dict(lr=1e-3, seed=2)]
    bad = dict(lr=50.0, seed=3, grad_clip=None, schedule={"warmup_frac": 0.0})
    with_bad = train_batched(_specs("adamw", [good[0], bad, good[1]]))
    without = train_batched(_specs("adamw", good))
    assert (
        with_bad[1].status == "diverged" and with_bad[1].diverged and math.isnan(with_bad[1].final_val_loss)
    )
    assert with_bad[1].steps_done < with_bad[1].spec.steps and with_bad[1].diverge_reason
    assert len(with_bad[1].curve) == with_bad[1].steps_done
    alone = train(with_bad[1].spec)  # diverges at the same step when trained alone
    assert alone.status == "diverged" and alone.steps_done == with_bad[1].steps_done
    for a, b in zip([with_bad[0], with_bad[2]], without, strict=True):
        assert a.status == b.status == "done"
        assert a.curve == b.curve and a.final_val_loss == b.final_val_loss


def test_a_stopped_member_stops_and_the_others_go_on():
    specs = _specs("sgd", GRIDS["sgd"])
    stop = [lambda step, loss, curve: "pruned" if step >= 20 else None, None]
    seen = []
    res = train_batched(specs, progress=[None, seen.append], should_stop=stop)
    assert res[0].status == "stopped" and res[0].stop_reason == "pruned" and res[0].steps_done == 20
    assert res[0].final_val_loss == res[0].curve[-1]["val_loss"] and math.isfinite(res[0].final_val_loss)
    assert res[1].status == "done" and res[1].steps_done == specs[1].steps
    assert [p["step"] for p in seen] == list(range(1, specs[1].steps + 1))
    alone = train(specs[0], should_stop=stop[0])
    assert alone.status == "stopped" and alone.steps_done == 20
    assert res[0].final_val_loss == pytest.approx(alone.final_val_loss, rel=1e-4)


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(TrainError, match="no specs"):
        train_batched([])
    with pytest.raises(TrainError, match="cannot be batched"):
        train_batched([tiny_run(optimizer="muon", lr=1e-2)])
    with pytest.raises(TrainError, match="differ in data order"):
        train_batched([tiny_run(seed=1), tiny_run(seed=2)])  # default data_seed = seed
    with pytest.raises(TrainError, match="differ in shape"):
        train_batched([tiny_run(), tiny_run(shape={"width": 64})])
    with pytest.raises(TrainError, match="2 should_stop hooks for 1 specs"):
        train_batched([tiny_run()], should_stop=[None, None])
    for exc in (TrainError,):
        try:
            train_batched([tiny_run(), tiny_run(batch_seqs=4)])
        except exc as e:
            assert "\n" not in str(e) and "batch_seqs" in str(e)


def test_signature_and_memory_estimate():
    a = tiny_run(lr=1e-3, seed=1, data_seed=0, hps={"beta1": 0.8}, grad_clip=None)
    assert batch_signature(a) == batch_signature(tiny_run(lr=1e-2, seed=5, data_seed=0))
    assert batch_signature(a) != batch_signature(tiny_run(data_seed=0, tokens=8 * 32 * 30))
    assert {"adamw", "sgd", "lion"} <= BATCHED_OPTIMIZERS
    small, wide = member_bytes(tiny_run()), member_bytes(tiny_run(shape={"width": 64}))
    assert 0 < small < wide and member_bytes(tiny_run(optimizer="sgd", lr=0.1)) < small
