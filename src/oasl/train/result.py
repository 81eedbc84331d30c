"""What a training run produced: :class:`RunResult`, shared by one run and batched runs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from oasl.config import RunSpec


@dataclass
class RunResult:
    """What one run produced. ``status`` is "done", "diverged" or "stopped" (stopped early on purpose).

    ``final_val_loss`` is the mean cross-entropy (nats/token) over the fixed held-out batches at the
    end (NaN when diverged). ``curve`` holds one dict per step: step, tokens, lr, train_loss,
    grad_norm, and val_loss / update_ratio at evaluation steps. ``flops`` counts training FLOPs
    (``flops_per_token * tokens_trained``).
    """

    spec: RunSpec
    status: str
    final_val_loss: float
    curve: list[dict[str, float]]
    n_params: int
    n_params_total: int
    flops: float
    tokens_trained: int
    steps_done: int
    tokens_per_s: float
    wall_s: float
    initial_val_loss: float
    diverged: bool = False
    diverge_reason: str | None = None
    stop_reason: str | None = None
    corpus_hash: str = ""
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        """Scalar results as a JSON-able dict (what the store keeps beside the spec)."""
        out = {
            "final_val_loss": self.final_val_loss if math.isfinite(self.final_val_loss) else None,
            "initial_val_loss": self.initial_val_loss,
            "n_params": self.n_params,
            "n_params_total": self.n_params_total,
            "flops": self.flops,
            "tokens_trained": self.tokens_trained,
            "steps_done": self.steps_done,
            "tokens_per_s": self.tokens_per_s,
            "wall_s": self.wall_s,
            "diverged": self.diverged,
            "diverge_reason": self.diverge_reason,
            "stop_reason": self.stop_reason,
            "device": self.device,
        }
        out.update(self.extra)
        return out

    def curve_frame(self):
        import pandas as pd

        return pd.DataFrame(self.curve)
