"""`oasl report` given a target and no validation opens on a card that says what `oasl recommend` says."""

import html
import json
import math
import re

import numpy as np
import pandas as pd

from oasl.testing import run_cli


def _text(page):
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def test_report_with_a_target_has_the_card_recommend_prints(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rows = []
    for n in (2e4, 5e4, 1e5, 2e5):
        best = 5.0 * n**-0.35
        for lr in best * np.geomspace(1 / 8, 8, 7):
            loss = 3.0 + 0.05 * math.log(lr / best) ** 2 + rng.normal(0, 0.002)
            rows.append(
                {"optimizer": "adamw", "n_params": n, "tokens": 20 * n, "lr": lr, "loss": loss}
                | {"batch_seqs": 16, "seq_len": 128, "warmup_frac": 0.05, "schedule": "cosine"}
            )
    csv, db = tmp_path / "runs.csv", str(tmp_path / "runs.db")
    pd.DataFrame(rows).to_csv(csv, index=False)
    assert run_cli(["import", str(csv), "--store", db], capsys)[0] == 0
    code, _, err = run_cli(["fit", "--store", db, "--out", str(tmp_path / "laws.json")], capsys)
    assert code == 0, err
    target = ["--params", "2M", "--tokens", "40M"]
    code, out, err = run_cli(
        ["recommend", "--laws", str(tmp_path / "laws.json"), *target, "--format", "json"], capsys
    )
    assert code == 0, err
    items = json.loads(out)["items"]
    code, out, err = run_cli(
        [
            "report",
            "--store",
            db,
            "--out",
            str(tmp_path / "rep"),
            "--target-params",
            "2M",
            "--target-tokens",
            "40M",
        ],
        capsys,
    )
    assert code == 0, err
    text = _text((tmp_path / "rep" / "index.html").read_text())
    assert "No target in this report" not in text and "Use for the target run: adamw" in text
    assert f"peak learning rate {items['lr']['value']:.3g}" in text
    bs, steps = items["batch_seqs"]["value"], items["total_steps"]["value"]
    assert bs == 16 and f"batch size 16 sequences x 128 = {16 * 128:,} tokens" in text
    assert f"warmup 5% of the steps = {items['warmup_steps']['value']} of {steps} steps" in text
    assert items["warmup_steps"]["source"] in text and "Not validated at the target" in text
