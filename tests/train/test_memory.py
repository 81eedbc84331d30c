import pytest

from oasl.errors import ConfigError, TrainError
from oasl.testing import tiny_run
from oasl.train import check_fits_memory, member_bytes, train, train_batched, training_memory_bytes
from oasl.train.memory import MEMORY_LIMIT_ENV, available_memory_bytes


def test_library_training_refuses_a_model_too_big_for_memory(monkeypatch):
    """train() and train_batched() raise the CLI's one-line TrainError before allocating anything;
    $OASL_MEMORY_LIMIT caps the free memory, so a tiny spec stands in for an oversized model."""
    spec = tiny_run(data_seed=0)
    need = training_memory_bytes(spec)
    assert 0 < need <= member_bytes(spec)  # the refusal's lower bound never exceeds the batch planner's
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(1.5 * need))  # one run fits, two batched do not
    assert available_memory_bytes("cpu") == ("cpu", 1.5 * need)
    check_fits_memory(spec)
    with pytest.raises(TrainError) as err:
        train_batched([spec, tiny_run(data_seed=0, seed=2)])
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("2 runs of width 32, depth 2") and "batch fewer runs" in msg
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(need / 2))
    with pytest.raises(TrainError) as err:
        train(spec)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("width 32, depth 2") and "needs at least" in msg
    assert msg.endswith("lower --width, --depth or --batch-seqs")
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "lots")
    with pytest.raises(ConfigError, match=r"\$OASL_MEMORY_LIMIT='lots' is not a positive number"):
        train(spec)
