"""`oasl validate` through a user's trainer: the target's runs use the same function, on the target's own
model config."""

import sys
from pathlib import Path

from oasl.config import build
from oasl.store import open_store
from oasl.validate.harness import validate
from oasl.validate.spec import ValidateSpec

sys.path.insert(0, str(Path(__file__).parent))


def test_validate_trains_the_target_through_the_function(tmp_path):
    spec = build(
        ValidateSpec,
        {
            "sweep": {
                "trainer": {"function": "fake_fn:quadratic", "version": "1"},
                "ladder": [
                    {"name": "s", "d_model": 32, "n_layers": 2},
                    {"name": "m", "d_model": 48, "n_layers": 2},
                    {"name": "l", "d_model": 64, "n_layers": 2},
                ],
                "optimizers": {"adamw": {"lr": {"log_range": [1e-4, 1e-1], "num": 7}}},
                "tokens": 40 * 8 * 128,
                "batch_seqs": 8,
            },
            "target": {"name": "xl", "d_model": 192},
            "seeds": [0, 1],
            "oracle_mode": "neighbours",
            "oracle_refine": False,
            "oracle_max_extend": 1,
            "baselines": ["naive"],
        },
    )
    assert spec.target_model() == {"name": "xl", "d_model": 192, "n_layers": 2}
    result = validate(spec, tmp_path / "s.db")
    ov = result.optimizers[0]
    assert ov.target_n_params == 12 * 192**2 * 2 + 5 * 192  # oasl's count of the target's GPT shape
    rows = [r for r in open_store(tmp_path / "s.db").rows() if (r.get("role") or "sweep") != "sweep"]
    assert rows and all(r["spec"]["model"]["name"] == "xl" for r in rows)
    assert all(r["spec"]["trainer"]["function"] == "fake_fn:quadratic" for r in rows)
    # the stand-in loss has its optimum at lr = 10^-2.5 at every size: the recommendation is near it
    assert abs(ov.recommended_lr / 10**-2.5 - 1) < 0.5
