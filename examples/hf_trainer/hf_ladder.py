"""A Hugging Face ``Trainer`` ladder of tiny GPT-2 configs, to a law of the optimal lr, a recommendation
and a validation at a 9x larger target.

The models are built from ``GPT2Config`` (no download); the text is oasl's default corpus (the Python
standard library's sources) as bytes, so no tokenizer is needed (vocabulary 256). ``hf_train(trial)`` is
oasl's function trainer: it reads ``trial.params``, trains with ``transformers.Trainer``, reports each
evaluation through :func:`oasl.integrations.hf.oasl_callback`, and returns the final evaluation loss and
the model's non-embedding parameter count. Run it:

    python examples/hf_trainer/hf_ladder.py --out hf-out
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

LADDER = [
    {"name": "xs", "n_embd": 16, "n_layer": 2},
    {"name": "s", "n_embd": 24, "n_layer": 2},
    {"name": "m", "n_embd": 32, "n_layer": 2},
]
TARGET = {"name": "l", "n_embd": 96}  # 9x the N of "m" (N grows as width^2)
SEQ_LEN, EVAL_WINDOWS = 64, 64


class Windows:
    """Fixed windows of byte tokens as the dicts a causal LM Trainer wants (labels = inputs; the model
    shifts them)."""

    def __init__(self, tokens: np.ndarray, n: int, seed: int):
        starts = np.random.default_rng(seed).integers(0, len(tokens) - SEQ_LEN - 1, size=n)
        self.rows = np.stack([np.asarray(tokens[s : s + SEQ_LEN], dtype=np.int64) for s in starts])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        import torch

        ids = torch.from_numpy(self.rows[i])
        return {"input_ids": ids, "labels": ids}


def hf_train(trial) -> dict:
    """oasl's function trainer for one run of the ladder (or of the target)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, PrinterCallback, Trainer, TrainingArguments
    from transformers.utils import logging as hf_logging

    from oasl.config import CorpusSpec
    from oasl.data import TokenDataset
    from oasl.integrations.hf import non_embedding_params, oasl_callback, training_arguments

    hf_logging.set_verbosity_error()
    torch.set_num_threads(1)
    p = trial.params
    data = TokenDataset.from_spec(CorpusSpec())  # byte-level, cached after the first run
    width = int(p["n_embd"])
    torch.manual_seed(p["seed"])
    model = GPT2LMHeadModel(
        GPT2Config(
            n_embd=width,
            n_layer=int(p["n_layer"]),
            n_head=max(1, width // 32),
            n_positions=SEQ_LEN,
            vocab_size=256,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
    )
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            eval_strategy="steps",
            eval_steps=50,
            logging_steps=50,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            use_cpu=True,
            dataloader_num_workers=0,
            per_device_eval_batch_size=32,
            **training_arguments(trial),
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=Windows(data.train, p["steps"] * p["batch_seqs"], p["data_seed"]),
            eval_dataset=Windows(data.val, EVAL_WINDOWS, 1234),
            callbacks=[oasl_callback(trial)],
        )
        trainer.remove_callback(PrinterCallback)  # the Trainer prints every log when tqdm is off
        trainer.train()
        loss = trainer.evaluate()["eval_loss"]
    return {"loss": loss, "n_params": non_embedding_params(model), "tokens": p["tokens"]}


def validate_spec() -> dict:
    """The validation spec (a dict, as YAML would give it): the ladder, its grid, the 9x target."""
    return {
        "name": "hf-gpt2",
        "sweep": {
            "name": "hf-gpt2-ladder",
            "trainer": {"function": "hf_ladder:hf_train", "version": "v1"},
            "ladder": LADDER,
            "shape_defaults": {"seq_len": SEQ_LEN},
            "optimizers": {"adamw": {"lr": {"log_range": [2e-3, 3.2e-2], "num": 5}, "weight_decay": 0.1}},
            "batch_seqs": 8,
            "tokens": 100 * 8 * SEQ_LEN,
            "schedule": {"name": "cosine", "warmup_frac": 0.05, "final_frac": 0.1},
            "run": {"device": "cpu"},
        },
        "target": TARGET,
        "seeds": [0, 1],
        "oracle_mode": "neighbours",
        "oracle_refine": False,
        "oracle_max_extend": 1,
        "baselines": ["naive"],
    }


def main(argv=None) -> dict:
    import sys

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="hf-out")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # pool workers import hf_ladder by name

    from oasl.config import build
    from oasl.recommend import recommend
    from oasl.validate.harness import validate
    from oasl.validate.spec import ValidateSpec

    spec = build(ValidateSpec, validate_spec())
    out = Path(args.out)
    result = validate(spec, out / "runs.db", workers=args.workers, out=out, log=print)
    ov = result.optimizers[0]
    rec = recommend("adamw", spec.target_n_params(), spec.sweep.tokens, laws=result.fit.laws)
    summary = {
        "law": result.law_formula,
        "target_n_params": ov.target_n_params,
        "recommended_lr": ov.recommended_lr,
        "recommendation": {k: v.value for k, v in rec.items.items()},
        "validation": json.loads((out / "validation.json").read_text()),
    }
    print(f"law: {result.law_formula}; recommended lr at N={ov.target_n_params:,}: {ov.recommended_lr:.3g}")
    return summary


if __name__ == "__main__":
    main()
