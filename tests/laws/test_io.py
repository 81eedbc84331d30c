"""The laws file: round trip of every kind of law, fitted ranges kept, clear errors on bad files."""

import json

import numpy as np
import pandas as pd
import pytest

from oasl.errors import ConfigError
from oasl.laws import ConstantLaw, OptimizerLaw, PowerLaw, get_published, load_laws, save_laws


def optima(rng):
    N = np.geomspace(1e6, 1e8, 6)
    rows = [
        {"optimizer": o, "N": n, "D": 20 * n * f, "lr": c * n**-0.4 * np.exp(rng.normal(0, 0.05))}
        for o, c in (("adamw", 1.0), ("sgd", 30.0))
        for n, f in zip(N, (1, 2, 1, 2, 1, 2), strict=True)
    ]
    return pd.DataFrame(rows)


def test_round_trip(tmp_path):
    df = optima(np.random.default_rng(4))
    laws = {
        "lr": OptimizerLaw("power", ("N",), "lr", "shared_exponents").fit(df),
        "lr_nd": PowerLaw(("N", "D")).fit(df[df["optimizer"] == "adamw"]),
        "wd": ConstantLaw(("N",), target="lr").fit(df[df["optimizer"] == "sgd"]),
        "batch_tokens": get_published("deepseek")["batch_tokens"],
    }
    path = save_laws(tmp_path / "laws.json", laws, {"store": "x.db"})
    raw = json.loads(path.read_text())
    assert raw["format"] == "oasl-laws" and raw["format_version"] == 1
    assert raw["laws"]["lr_nd"]["range"]["N"] == pytest.approx([1e6, 1e8])
    back, meta = load_laws(path)
    assert meta == {"store": "x.db"}
    q = pd.DataFrame({"optimizer": ["sgd"], "N": [3e9], "D": [1e11], "C": [1e21]})
    for k, law in laws.items():
        assert back[k].predict(q) == pytest.approx(law.predict(q)), k
        assert np.allclose(back[k].predict_interval(q), law.predict_interval(q)), k
        assert back[k].extrapolation_ratio(q) == pytest.approx(law.extrapolation_ratio(q)), k
    assert back["lr"].law_for("sgd").range_ == laws["lr"].law_for("sgd").range_
    assert back["batch_tokens"].citation.startswith("DeepSeek") and back["batch_tokens"].valid_range
    small = save_laws(tmp_path / "small.json", laws, data=False)
    assert "data" not in json.loads(small.read_text())["laws"]["lr_nd"]
    assert load_laws(small)[0]["lr_nd"].predict(q) == pytest.approx(laws["lr_nd"].predict(q))


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist: create it with `oasl fit"):
        load_laws(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_laws(bad)
    bad.write_text(json.dumps({"laws": {"lr": {"kind": "spline"}}}))
    with pytest.raises(ConfigError, match="unknown law kind 'spline'"):
        load_laws(bad)
    bad.write_text(json.dumps({"format_version": 99, "laws": {}}))
    with pytest.raises(ConfigError, match="upgrade oasl"):
        load_laws(bad)
    bad.write_text(json.dumps({"laws": {"lr": {"kind": "power", "features": ["N"], "coef_vector": [1.0]}}}))
    with pytest.raises(ConfigError, match=r"has 1 coefficient\(s\), its form needs 2"):
        load_laws(bad)
    bad.write_text(json.dumps({"laws": {"loss": {"kind": "loss_law", "params": {"E": 1.7}}}}))
    with pytest.raises(ConfigError, match="not a valid oasl laws file"):
        load_laws(bad)
    with pytest.raises(ConfigError, match="cannot be saved"):
        save_laws(tmp_path / "x.json", {"lr": 0.001})


def test_law_at_target_reads_n_from_the_users_rung(tmp_path):
    """`oasl refine --laws` at a user's model: the law is evaluated at the rung's stated N (as the sweep and
    validation use it), not at oasl's count of a GPT of that width and depth."""
    from oasl.config import RunSpec
    from oasl.models import count_params
    from oasl.workflows import law_at_target

    df = optima(np.random.default_rng(5))
    path = save_laws(
        tmp_path / "laws.json", {"lr": OptimizerLaw("power", ("N",), "lr", "shared_exponents").fit(df)}
    )
    base = {"shape": {"width": 64, "depth": 2}, "lr": 1e-3, "tokens": 10**6}
    own = RunSpec(**base)
    user = RunSpec(**base, model={"name": "xl", "d_model": 64, "n_layers": 2, "n_params": 5_000_000})
    lr_own, _, _ = law_at_target(path, own)
    lr_user, _, _ = law_at_target(path, user)
    n_own = count_params(own.shape).n_params
    assert lr_user / lr_own == pytest.approx((5e6 / n_own) ** -0.4, rel=0.1)  # the law's N^-0.4, at 5e6
