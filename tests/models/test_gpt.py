import copy
import io
import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from oasl.config import ModelShape
from oasl.errors import ConfigError
from oasl.models import GPT, Parametrization, count_params, flops_per_token, measure_matmul_peak
from oasl.models.gpt import MUP_OUTPUT_MULT

ROLES = {"embedding", "position", "hidden", "readout", "norm", "bias"}


@pytest.fixture(autouse=True)
def _one_thread():
    """These tensors are tiny: one thread is faster, and on a shared machine far faster, than several."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@st.composite
def shapes(draw):
    heads = draw(st.integers(1, 4))
    width = heads * draw(st.integers(1, 12))
    mlp_ratio = draw(st.sampled_from([1.0, 2.0, 2.5, 8 / 3, 4.0]) | st.floats(0.1, 5.0))
    assume(round(mlp_ratio * width) >= 1)
    n_heads = draw(st.sampled_from([heads, None]))
    assume(n_heads is not None or width % max(1, width // 32) == 0)
    return ModelShape(
        width=width,
        depth=draw(st.integers(1, 3)),
        n_heads=n_heads,
        mlp_ratio=mlp_ratio,
        seq_len=draw(st.integers(1, 40)),
        vocab_size=draw(st.integers(2, 300)),
        tie_embeddings=draw(st.booleans()),
    )


@settings(max_examples=60, deadline=None)
@given(shapes(), st.sampled_from(["sp", "mup"]))
def test_count_params_equals_torch_count(shape, kind):
    model = GPT(shape, Parametrization(kind, base_width=16))
    counts = count_params(shape)
    assert counts.n_params_total == sum(p.numel() for p in model.parameters())
    roles = model.param_roles()
    embedding = sum(
        p.numel() for n, p in model.named_parameters() if roles[n] in ("embedding", "position", "readout")
    )
    assert counts.n_params == counts.n_params_total - embedding == counts.n_params_total - counts.n_embedding


@pytest.mark.parametrize(
    "shape",
    [
        ModelShape(width=64, depth=2, seq_len=32),
        ModelShape(
            width=48, depth=3, n_heads=3, mlp_ratio=8 / 3, seq_len=20, vocab_size=97, tie_embeddings=False
        ),
    ],
)
def test_flops_per_token_matches_counted_matmul_flops(shape):
    """Independent count: torch's FlopCounterMode over one forward+backward, with the math attention
    kernel so the two attention matmuls are visible. The formula also charges 6 FLOPs per LayerNorm weight
    (part of N), which the counter, counting matmuls only, does not see."""
    model = GPT(shape)
    B, T = 3, shape.seq_len
    idx = torch.randint(0, shape.vocab_size, (B, T))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        _, loss = model(idx, idx)
        loss.backward()
    norm_params = (2 * shape.depth + 1) * shape.width
    assert counter.get_total_flops() / (B * T) + 6 * norm_params == pytest.approx(
        flops_per_token(shape), rel=1e-12
    )


@pytest.mark.parametrize("kind", ["sp", "mup"])
@pytest.mark.parametrize("tie", [True, False])
def test_forward_shapes_and_loss_at_init(kind, tie):
    torch.manual_seed(0)
    shape = ModelShape(width=64, depth=2, seq_len=16, tie_embeddings=tie)
    model = GPT(shape, Parametrization(kind, base_width=32))
    idx = torch.randint(0, 256, (2, 16))
    logits, loss = model(idx, torch.randint(0, 256, (2, 16)))
    assert logits.shape == (2, 16, 256) and loss.shape == ()
    # near-uniform predictions at init; muP's tied readout at the default a_out = 8 starts with logits of
    # std ~0.7 here (a_out / m = 4; SP's ~0.16), which costs a few tenths of a nat over log V
    tied_mup = tie and kind == "mup"
    assert logits.std().item() < (1.0 if tied_mup else 0.3)
    assert loss.item() == pytest.approx(math.log(256), abs=0.5 if tied_mup else 0.05)
    assert model(idx[:, :5])[1] is None  # shorter inputs are fine, no targets -> no loss


def test_causality():
    torch.manual_seed(0)
    model = GPT(ModelShape(width=32, depth=2, seq_len=16), Parametrization("mup", 16))
    for p in model.parameters():  # move off the init so that attention is far from uniform
        p.data.add_(0.3 * torch.randn_like(p))
    idx = torch.randint(0, 256, (2, 16))
    idx2 = idx.clone()
    idx2[:, 10] = (idx2[:, 10] + 1) % 256
    logits, _ = model(idx)
    logits2, _ = model(idx2)
    assert torch.equal(logits[:, :10], logits2[:, :10])
    assert not torch.allclose(logits[:, 10:], logits2[:, 10:])


def test_same_seed_same_init():
    shape = ModelShape(width=64, depth=2, tie_embeddings=False)
    models = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        models.append(GPT(shape, Parametrization("mup", 32)))
    a, b, c = (dict(m.named_parameters()) for m in models)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert not torch.equal(a["blocks.0.attn.qkv.weight"], c["blocks.0.attn.qkv.weight"])


def test_mup_at_base_width_is_sp_up_to_the_output_multiplier():
    """TP-V: a parametrization is a rule for scaling *from* a base model; at the base width muP with
    mup's output_mult = 1 and SP coincide (tied embeddings, so there is no zero-initialised readout to
    tell them apart). oasl's default muP base differs from SP by its output multiplier a_out alone."""
    shape = ModelShape(width=64, depth=2, n_heads=4, seq_len=16)
    idx = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(0))
    logits = {}
    for name, par in [
        ("sp", Parametrization("sp")),
        ("mup1", Parametrization("mup", base_width=64, output_mult=1.0)),
        ("mup", Parametrization("mup", base_width=64)),
    ]:
        torch.manual_seed(3)
        model = GPT(shape, par)
        logits[name] = model(idx)[0]
        assert (
            set(model.lr_multipliers("adam").values()) == set(model.lr_multipliers("sgd").values()) == {1.0}
        )
    assert torch.equal(logits["sp"], logits["mup1"])
    assert MUP_OUTPUT_MULT != 1.0
    torch.testing.assert_close(logits["mup"], MUP_OUTPUT_MULT * logits["sp"])


def test_mup_init_follows_the_rule_table():
    """Init std by role at 1x and 4x the base width: hidden 0.02 / sqrt(m) (residual projections also
    / sqrt(2 depth)), embeddings 0.02, LayerNorm weights 1, an untied readout 0 (TP-V Table 8, mup init)."""
    stds = {}
    for width in (64, 256):
        torch.manual_seed(0)
        model = GPT(
            ModelShape(width=width, depth=2, tie_embeddings=False), Parametrization("mup", base_width=64)
        )
        stds[width] = {n: p.std().item() for n, p in model.named_parameters()}
        params = dict(model.named_parameters())
        assert all(torch.equal(params[n], torch.ones_like(params[n])) for n in params if ".ln" in f".{n}")
        assert not params["lm_head.weight"].any()
    for name in ("wte.weight", "wpe.weight"):
        assert stds[64][name] == pytest.approx(0.02, rel=0.05) and stds[256][name] == pytest.approx(
            0.02, rel=0.05
        )
    assert stds[64]["blocks.0.mlp.fc.weight"] == pytest.approx(0.02, rel=0.05)
    assert stds[64]["blocks.0.mlp.proj.weight"] == pytest.approx(0.02 / 2, rel=0.05)  # / sqrt(2 depth)
    for name in ("blocks.0.attn.qkv.weight", "blocks.0.mlp.fc.weight", "blocks.1.attn.proj.weight"):
        assert stds[256][name] / stds[64][name] == pytest.approx(0.5, rel=0.05)  # 1 / sqrt(m), m = 4


@pytest.mark.parametrize("width", [16, 64, 256])
def test_mup_readout_multiplier_follows_the_rule_table(width):
    """Logits = a_out / m * (x . W) under muP (mup MuReadout with output_mult = a_out), 1 under SP."""
    shape = ModelShape(width=width, depth=1, seq_len=8)
    for par, expect in [
        (Parametrization("sp", base_width=16), 1.0),
        (Parametrization("mup", base_width=16), MUP_OUTPUT_MULT * 16 / width),
        (Parametrization("mup", base_width=16, output_mult=2.5), 2.5 * 16 / width),
    ]:
        model = GPT(shape, par)
        assert model.readout_mult == pytest.approx(expect)
        idx = torch.randint(0, 256, (1, 8), generator=torch.Generator().manual_seed(1))
        x = model.ln_f(model.blocks[0](model.wte(idx) + model.wpe(torch.arange(8))))
        torch.testing.assert_close(model(idx)[0], expect * (x @ model.wte.weight.T))


def test_attention_scale_rules():
    mup = Parametrization("mup", base_width=64)
    default_heads = ModelShape(width=512, depth=1)  # 16 heads of 32; base: 2 heads of 32
    assert mup.attn_scale(default_heads) == pytest.approx(1 / math.sqrt(32))
    fixed_heads = ModelShape(width=512, depth=1, n_heads=4)  # head dim 128; base head dim 16
    assert mup.attn_scale(fixed_heads) == pytest.approx(math.sqrt(16) / 128)
    assert Parametrization("sp").attn_scale(fixed_heads) == pytest.approx(1 / math.sqrt(128))
    model = GPT(fixed_heads, mup)
    assert all(b.attn.scale == mup.attn_scale(fixed_heads) for b in model.blocks)


@pytest.mark.parametrize("tie", [True, False])
def test_roles_and_multipliers_cover_every_parameter_and_survive_save_and_copy(tie):
    shape = ModelShape(width=64, depth=2, tie_embeddings=tie)
    torch.manual_seed(1)
    a = GPT(shape, Parametrization("mup", 32))  # width multiplier 2
    names = {n for n, _ in a.named_parameters()}
    roles, adam, sgd = a.param_roles(), a.lr_multipliers("adam"), a.lr_multipliers("sgd")
    assert set(roles) == set(adam) == set(sgd) == names and set(roles.values()) <= ROLES
    params = dict(a.named_parameters())
    for name, role in roles.items():
        assert (role == "hidden") == (name.startswith("blocks.") and params[name].ndim == 2)
        assert adam[name] == (0.5 if role == "hidden" else 1.0)
        assert sgd[name] == (1.0 if role == "hidden" else 2.0)
    assert ("lm_head.weight" in roles) == (not tie)
    if not tie:
        assert roles["lm_head.weight"] == "readout" and not params["lm_head.weight"].any()  # zero init

    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = GPT(shape, Parametrization("mup", 32))
    b.load_state_dict(torch.load(buf))
    assert b.param_roles() == roles and b.lr_multipliers("adam") == adam and b.lr_multipliers("sgd") == sgd
    c = copy.deepcopy(a)
    assert c.param_roles() == roles and c.lr_multipliers("adam") == adam
    assert (
        set(GPT(shape).lr_multipliers("adam").values())
        == set(GPT(shape).lr_multipliers("sgd").values())
        == {1.0}
    )


def test_user_errors_name_the_fix():
    with pytest.raises(ConfigError, match="'sp' or 'mup'"):
        Parametrization("ntk")
    with pytest.raises(ConfigError, match="base_width"):
        Parametrization("mup", base_width=0)
    with pytest.raises(ConfigError, match="unset under SP"):
        Parametrization("sp", output_mult=2.0)
    with pytest.raises(ConfigError, match="positive finite"):
        Parametrization("mup", output_mult=float("nan"))
    model = GPT(ModelShape(width=32, depth=1, seq_len=8))
    with pytest.raises(ConfigError, match="'adam' or 'sgd'"):
        model.lr_multipliers("lion")
    with pytest.raises(ConfigError, match="raise seq_len"):
        model(torch.zeros(1, 9, dtype=torch.long))


def _coord_sizes(
    kind: str, width: int, tie: bool, seed: int, lr: float = 3e-3, steps: int = 5
) -> dict[str, float]:
    """Mean |coordinate| of each layer's output after ``steps`` Adam steps on one fixed batch (the
    microsoft/mup coordinate check), with the muP LR multipliers as per-parameter groups."""
    torch.manual_seed(seed)
    # Two heads at every width, so the head dimension grows with width and the 1/d attention rule is in play.
    shape = ModelShape(width=width, depth=2, n_heads=2, seq_len=16, tie_embeddings=tie)
    model = GPT(shape, Parametrization(kind, base_width=32))
    mults = model.lr_multipliers("adam")
    opt = torch.optim.Adam([{"params": [p], "lr": lr * mults[n]} for n, p in model.named_parameters()])
    idx = torch.randint(0, 256, (4, 16), generator=torch.Generator().manual_seed(seed))
    for _ in range(steps):
        _, loss = model(idx, idx.roll(-1, 1))
        loss.backward()
        opt.step()
        opt.zero_grad()
    sizes: dict[str, float] = {}
    layers = [("embedding", model.wte)] + [(f"block{i}", b) for i, b in enumerate(model.blocks)]
    hooks = [
        m.register_forward_hook(lambda _m, _i, o, k=k: sizes.__setitem__(k, o.abs().mean().item()))
        for k, m in layers
    ]
    with torch.no_grad():
        sizes["logits"] = model(idx)[0].abs().mean().item()
    for h in hooks:
        h.remove()
    return sizes


@pytest.mark.parametrize("tie", [True, False])
def test_mup_coordinate_check(tie):
    """Slope of log(mean |activation|) against log(width), averaged over two seeds: flat under muP for the
    embedding, every block and the logits; under SP with the same LR the blocks and logits blow up with
    width (TP-V Fig. 5; mup README "Coord Check"). Widths 32-256 are finite, so "flat" is |slope| < 0.15."""
    widths = [32, 64, 128, 256]
    slopes = {}
    for kind in ("mup", "sp"):
        per_seed = []
        for seed in (0, 1):
            sizes = [_coord_sizes(kind, w, tie, seed) for w in widths]
            per_seed.append(
                {k: np.polyfit(np.log(widths), np.log([s[k] for s in sizes]), 1)[0] for k in sizes[0]}
            )
        slopes[kind] = {k: float(np.mean([s[k] for s in per_seed])) for k in per_seed[0]}
    assert set(slopes["mup"]) == {"embedding", "block0", "block1", "logits"}
    for layer, slope in slopes["mup"].items():
        assert abs(slope) < 0.15, (layer, slopes)
    assert slopes["sp"]["logits"] > 0.4, slopes
    for layer in ("block0", "block1"):
        assert slopes["sp"][layer] > 0.8, slopes


def test_measure_matmul_peak():
    flops = measure_matmul_peak(seconds=0.05, size=128)
    assert math.isfinite(flops) and flops > 1e6  # any CPU of this century does > 1 MFLOP/s
    with pytest.raises(ConfigError):
        measure_matmul_peak(seconds=0)


@pytest.mark.parametrize("kind", ["sp", "mup"])
def test_logits_skip_the_unit_output_multiplier_bit_for_bit(kind):
    """Under SP (multiplier 1) forward skips the logits' output multiplier; logits, loss and every
    gradient equal, bit for bit, the path that always multiplies. Under muP (a_out / m = 4) it multiplies."""
    shape = ModelShape(width=64, depth=2, seq_len=16, tie_embeddings=False)
    torch.manual_seed(0)
    model = GPT(shape, Parametrization(kind, base_width=32))
    assert model.readout_mult == (1.0 if kind == "sp" else MUP_OUTPUT_MULT / 2)
    for p in model.parameters():  # off the init: muP's zero readout would make every logit 0
        p.data.add_(0.3 * torch.randn_like(p))
    idx, targets = torch.randint(0, 256, (2, 16)), torch.randint(0, 256, (2, 16))

    def always_multiplied():  # the forward before the skip, spelled out
        x = model.wte(idx) + model.wpe(torch.arange(16))
        for block in model.blocks:
            x = block(x)
        logits = torch.nn.functional.linear(model.ln_f(x), model.lm_head.weight) * model.readout_mult
        return logits, torch.nn.functional.cross_entropy(logits.float().view(-1, 256), targets.reshape(-1))

    runs = []
    for fwd in (always_multiplied, lambda: model(idx, targets)):
        model.zero_grad()
        logits, loss = fwd()
        loss.backward()
        runs.append((logits.detach(), loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (la, sa, ga), (lb, sb, gb) = runs
    assert torch.equal(la, lb) and torch.equal(sa, sb)
    assert all(torch.equal(a, b) for a, b in zip(ga, gb, strict=True))
