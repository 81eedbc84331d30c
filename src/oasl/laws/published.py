"""Published laws of optimal hyperparameters, as the same objects as fitted laws, with their sources.

Each law is a :class:`~oasl.laws.power.PowerLaw` (or :class:`~oasl.laws.power.LogLinearLaw`) built
with fixed coefficients and carrying ``citation``, ``optimizer``, ``setup`` (what it was measured
with), ``units`` and ``valid_range`` (the range of each feature it was fitted on, so a
recommendation can warn when it extrapolates a published law too). Their intervals are points
(low == high): the papers do not give a predictive scatter.

Numbers and where they were checked:

* Step Law (Li et al. 2025, arXiv 2503.04715, Sec. 3, Eq. 1-2): ``lr* = 1.79 N^-0.713 D^0.307``,
  ``B* = 0.58 D^0.571`` tokens. The means of the 1,000 bootstrap fits the authors ship
  (step-law/steplaw, data/1004_fitted_lr_bs_scaling_model_parameters.csv) are ln C = 0.586,
  -0.713, 0.307 and ln C = -0.544, 0.571: the same law.
* DeepSeek LLM (Bi et al. 2024, arXiv 2401.02954, Sec. 3.1, Eq. 1): ``lr* = 0.3118 C^-0.1250``,
  ``B* = 0.2920 C^0.3271`` tokens, with C = M D and M the non-embedding FLOPs per token including
  attention (Sec. 3.2, Eq. 2): ``M = 72 n_layer d_model^2 + 6 n_layer d_model l_seq`` — not 6 N D.
  Checked against the hyperparameters DeepSeek trained with (deepseek-ai/DeepSeek-LLM README:
  7B, 30 layers x 4096: lr 4.2e-4, 2304 x 4096-token batches; 67B, 95 x 8192: lr 3.2e-4, 4608
  batches; 2T tokens): the law gives 4.29e-4 / 2198 and 3.14e-4 / 4978.
* Kaplan et al. 2020 (arXiv 2001.08361): learning rate ``LR(N) ~ 0.003239 - 0.0001395 log(N)``
  (App. D.6, Eq. D.1) and critical batch ``B_crit(L) = B* / L^(1/alpha_B)``, ``B* ~ 2e8`` tokens,
  ``alpha_B ~ 0.21`` (Sec. 5.1, Eq. 5.3 and Table 4). The paper writes log(N) without a base; oasl
  takes the natural log, the only reading that gives a usable learning rate at their largest
  models (2.9e-4 at N = 1.5e9 vs 2.0e-3 with log10; GPT-3 trained its 1.3B model at 2e-4).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import pandas as pd

from oasl.errors import ConfigError
from oasl.laws.forms import LogLinearLaw
from oasl.laws.power import PowerLaw


@dataclass
class PublishedLawSet:
    """Laws from one paper: ``laws`` maps a target (``lr``, ``batch_tokens``, ...) to a law object."""

    name: str
    citation: str
    optimizer: str
    setup: str
    units: dict[str, str]
    laws: dict[str, PowerLaw]
    valid_range: dict[str, tuple[float, float]] = field(default_factory=dict)
    notes: str = ""

    def __getitem__(self, target: str) -> PowerLaw:
        if target not in self.laws:
            raise ConfigError(
                f"published law set {self.name} has no law of {target} (it has {', '.join(self.laws)})"
            )
        return self.laws[target]


def deepseek_flops_per_token(n_layers: int, width: int, seq_len: int) -> float:
    """DeepSeek LLM's model scale M (Bi et al. 2024, Sec. 3.2, Eq. 2): non-embedding FLOPs per token
    including attention, ``72 n_layer d_model^2 + 6 n_layer d_model l_seq``."""
    if min(n_layers, width, seq_len) <= 0:
        raise ConfigError("n_layers, width and seq_len must be positive")
    return 72.0 * n_layers * width**2 + 6.0 * n_layers * width * seq_len


def deepseek_flops(n_layers: int, width: int, seq_len: int, tokens: float) -> float:
    """DeepSeek's compute C = M D in FLOPs (the C of their laws), for ``tokens`` training tokens."""
    return deepseek_flops_per_token(n_layers, width, seq_len) * float(tokens)


def deepseek_flops_from_6nd(n_params: float, tokens: float, width: int, seq_len: int) -> float:
    """DeepSeek's C from the usual N (non-embedding parameters) and D when only the width is known:
    with ``6 N ~ 72 n_layer d_model^2`` (a standard GPT block), ``M = 6 N (1 + l_seq / (12 d_model))``,
    so ``C = 6 N D (1 + l_seq / (12 d_model))``. Passing 6 N D instead understates C by that factor
    (8% for DeepSeek 7B, 33% at width 512 with 2048-token sequences)."""
    return 6.0 * n_params * tokens * (1.0 + seq_len / (12.0 * width))


# Range of the released dense runs (step-law/steplaw data/dense_lr_bs_loss.csv, N 2.1e8-1.07e9,
# D 4e9-1e11); the paper's fit used more runs than were released (about 3,700 models).
_STEP_RANGE = {"N": (2.1e8, 1.08e9), "D": (4.0e9, 1.0e11)}
# Approximate compute budgets of DeepSeek's hyperparameter grid search (their Fig. 3).
_DS_RANGE = {"C": (1e17, 3e20)}
# Kaplan et al.'s models span 768 to 1.5e9 non-embedding parameters (their abstract and Sec. 1).
_KAPLAN_RANGE = {"N": (768.0, 1.5e9)}

_STEP = "Li et al. 2025, 'Predictable Scale: Part I', arXiv 2503.04715"
_STEP_SETUP = (
    "dense decoder-only LLMs, AdamW, cosine-style decay to a minimum lr of 1e-5, sequence length 2048; "
    "optimum = every run within 0.25% of its (N, D)'s best loss"
)
_STEP_UNITS = {
    "lr": "peak learning rate",
    "batch_tokens": "tokens per batch (sequences x 2048)",
    "N": "non-embedding parameters",
    "D": "training tokens",
}
_DS = "DeepSeek-AI (Bi et al.) 2024, 'DeepSeek LLM', arXiv 2401.02954"
_DS_SETUP = (
    "LLaMA-style decoders, AdamW (beta1 0.9, beta2 0.95, wd 0.1), multi-step schedule (2000 warmup steps, "
    "drops to 31.6% and 10% at 80% and 90% of tokens), sequence length 4096"
)
_DS_UNITS = {
    "lr": "peak learning rate",
    "batch_tokens": "tokens per batch",
    "C": "FLOPs as C = M D, M = 72 n_layer d^2 + 6 n_layer d l_seq (NOT 6 N D; see deepseek_flops)",
}
_KAPLAN = "Kaplan et al. 2020, 'Scaling Laws for Neural Language Models', arXiv 2001.08361"
_KAPLAN_SETUP = "Adam, 3000 warmup steps then cosine decay to zero, WebText2, sequence length 1024"

PUBLISHED: dict[str, PublishedLawSet] = {
    "step-law": PublishedLawSet(
        name="step-law",
        citation=_STEP + ", Sec. 3, Eq. 1-2",
        optimizer="adamw",
        setup=_STEP_SETUP,
        units=_STEP_UNITS,
        valid_range=_STEP_RANGE,
        laws={
            "lr": PowerLaw.fixed(
                1.79,
                {"N": -0.713, "D": 0.307},
                "lr",
                _STEP + ", Eq. 1",
                "adamw",
                _STEP_SETUP,
                _STEP_UNITS,
                _STEP_RANGE,
            ),
            "batch_tokens": PowerLaw.fixed(
                0.58,
                {"D": 0.571},
                "batch_tokens",
                _STEP + ", Eq. 2",
                "adamw",
                _STEP_SETUP,
                _STEP_UNITS,
                _STEP_RANGE,
            ),
        },
    ),
    "deepseek": PublishedLawSet(
        name="deepseek",
        citation=_DS + ", Sec. 3.1, Eq. 1",
        optimizer="adamw",
        setup=_DS_SETUP,
        units=_DS_UNITS,
        valid_range=_DS_RANGE,
        notes="C is DeepSeek's M D (non-embedding FLOPs/token incl. attention x tokens): compute it with "
        "deepseek_flops(n_layers, width, seq_len, tokens) or deepseek_flops_from_6nd(N, D, width, seq_len)",
        laws={
            "lr": PowerLaw.fixed(
                0.3118, {"C": -0.1250}, "lr", _DS + ", Eq. 1", "adamw", _DS_SETUP, _DS_UNITS, _DS_RANGE
            ),
            "batch_tokens": PowerLaw.fixed(
                0.2920,
                {"C": 0.3271},
                "batch_tokens",
                _DS + ", Eq. 1",
                "adamw",
                _DS_SETUP,
                _DS_UNITS,
                _DS_RANGE,
            ),
        },
    ),
    "kaplan": PublishedLawSet(
        name="kaplan",
        citation=_KAPLAN,
        optimizer="adam",
        setup=_KAPLAN_SETUP,
        units={
            "lr": "learning rate (peak)",
            "batch_tokens": "critical batch size in tokens",
            "N": "non-embedding parameters",
            "L": "loss in nats/token (WebText2)",
        },
        valid_range=_KAPLAN_RANGE,
        notes="log in Eq. D.1 read as the natural log; B_crit is the critical batch (Sec. 5.1), an upper bound on "
        "a compute-efficient batch rather than a loss-optimal one, and a function of the loss reached",
        laws={
            "lr": LogLinearLaw.fixed(
                0.003239,
                {"N": -0.0001395},
                "lr",
                _KAPLAN + ", App. D.6, Eq. D.1",
                "adam",
                _KAPLAN_SETUP,
                {"lr": "learning rate", "N": "non-embedding parameters"},
                _KAPLAN_RANGE,
            ),
            "batch_tokens": PowerLaw.fixed(
                2e8,
                {"L": -1 / 0.21},
                "batch_tokens",
                _KAPLAN + ", Sec. 5.1, Eq. 5.3, Table 4",
                "adam",
                _KAPLAN_SETUP,
                {"batch_tokens": "critical batch in tokens", "L": "loss in nats/token"},
                {},
            ),
        },
    ),
}

_ALIASES = {
    "steplaw": "step-law",
    "step": "step-law",
    "li2025": "step-law",
    "deepseek-llm": "deepseek",
    "bi2024": "deepseek",
    "kaplan2020": "kaplan",
    "openai": "kaplan",
}


def get_published(name: str) -> PublishedLawSet:
    """A copy of the published law set ``name`` ("step-law", "deepseek", "kaplan"), so that changing
    it (refitting a law, say) leaves the registry alone; ConfigError listing the valid names otherwise."""
    key = str(name).strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in PUBLISHED:
        raise ConfigError(f"unknown published law {name!r}: choose one of {', '.join(PUBLISHED)}")
    return copy.deepcopy(PUBLISHED[key])


def describe_published() -> pd.DataFrame:
    """One row per published law: name, target, formula, optimizer, citation, valid range, setup, units."""
    rows = []
    for s in PUBLISHED.values():
        for target, law in s.laws.items():
            rng = law.valid_range
            rows.append(
                {
                    "name": s.name,
                    "target": target,
                    "formula": law.formula(),
                    "optimizer": s.optimizer,
                    "citation": law.citation or s.citation,
                    "range": ", ".join(f"{k} {lo:.3g}-{hi:.3g}" for k, (lo, hi) in rng.items())
                    or "not stated",
                    "setup": s.setup,
                    "units": "; ".join(
                        f"{k}: {v}" for k, v in law.units.items() if k in (target, *law.features)
                    ),
                }
            )
    return pd.DataFrame(rows)
