"""fit_laws fits what can be fitted and says what it skipped and why: a run with warmup 0 (`oasl train`'s
default) beside a sweep, or a joint lr x batch surface refused with two batch sizes, does not stop lr."""

import math

import numpy as np
import pandas as pd
import pytest

from oasl.errors import FitError
from oasl.laws.pipeline import fit_laws
from oasl.optima._common import positive_values


def _sweep(batches=(None,), warmup=0.05, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for n in (2e4, 5e4, 1e5, 2e5):
        best = 5.0 * n**-0.35
        for bt in batches:
            for lr in best * np.geomspace(1 / 8, 8, 7):
                loss = 3.0 + 0.05 * math.log(lr / best) ** 2 + rng.normal(0, 0.002)
                row = {"key": f"k{len(rows)}", "optimizer": "adamw", "n_params": n, "tokens": 20 * n}
                row.update(lr=lr, final_val_loss=loss, warmup_frac=warmup)
                if bt is not None:
                    row["batch_tokens"] = bt
                rows.append(row)
    return pd.DataFrame(rows)


def test_a_run_with_warmup_zero_does_not_stop_the_fit():
    df = _sweep()
    one = df.iloc[[0]].assign(key="trainrun0", warmup_frac=0.0, final_val_loss=3.2)
    report = fit_laws(pd.concat([df, one], ignore_index=True))
    assert "lr" in report.laws
    assert "warmup_frac" not in report.laws
    assert "trainrun0" in report.skipped["warmup_frac"] and "np.float64" not in report.skipped["warmup_frac"]


def test_two_batch_sizes_fit_lr_and_say_why_batch_was_skipped():
    report = fit_laws(_sweep(batches=(8192, 16384)))
    assert "lr" in report.laws
    assert "batch_tokens" not in report.laws
    assert "at most 2 distinct batch_tokens value(s)" in report.skipped["batch_tokens"]


def test_bad_value_messages_print_plain_numbers_and_name_the_run():
    df = pd.DataFrame({"key": ["a1", "b2"], "lr": [np.float64(0.0), 1e-3]})
    with pytest.raises(FitError) as exc:
        positive_values(df, "lr")
    assert "found 0.0 (run a1) in 1 run(s)" in str(exc.value)


def test_no_mean_of_empty_slice_warning_for_laws_without_r2():
    import warnings

    from oasl.laws.select import _nanmean

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Mean of empty slice" would raise here
        assert math.isnan(_nanmean([math.nan, math.nan])) and _nanmean([0.5, math.nan, 0.7]) == 0.6
