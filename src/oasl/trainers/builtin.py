"""oasl's own GPT as a trainer: :func:`oasl.train.train` (one run) and :func:`oasl.train.train_batched`
(K runs of one shape as one stacked model, used by the batched executor). Runs it trains have no
``trainer`` in their spec, so their store keys are those they always had."""

from __future__ import annotations

from typing import Any

from oasl.config import RunSpec
from oasl.trainers.base import Trainer, Trial


class BuiltinTrainer(Trainer):
    """The built-in GPT trainer (torch imported when a run starts)."""

    kind = "builtin"
    supports_batching = True

    def train(self, spec: RunSpec, progress=None, should_stop=None):
        from oasl.train import train

        return train(spec, progress=progress, should_stop=should_stop)

    def run(self, trial: Trial) -> dict[str, Any]:
        result = self.train(trial.spec, should_stop=trial._should_stop)
        trial.curve = result.curve
        return {"loss": result.final_val_loss, "n_params": result.n_params, "tokens": result.tokens_trained}
