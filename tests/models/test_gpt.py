import copy
import io
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from oasl.config import ModelShape
from oasl.models import GPT, Parametrization, count_params, flops_per_token


@st.composite
def shapes(draw):
    heads = draw(st.integers(1, 4))
    head_dim = draw(st.integers(1, 12))
    return ModelShape(width=heads * head_dim, depth=draw(st.integers(1, 3)), n_heads=heads,
                      mlp_ratio=draw(st.sampled_from([1.0, 2.0, 2.5, 4.0])), seq_len=draw(st.integers(1, 40)),
                      vocab_size=draw(st.integers(2, 300)), tie_embeddings=draw(st.booleans()))


@settings(max_examples=60, deadline=None)
@given(shapes())
def test_count_params_equals_torch_count(shape):
    model = GPT(shape)
    counts = count_params(shape)
    assert counts.n_params_total == sum(p.numel() for p in model.parameters())
    embedding = sum(p.numel() for n, p in model.named_parameters() if model.param_roles()[n] in
                    ("embedding", "position", "readout"))
    assert counts.n_params == counts.n_params_total - embedding
    assert flops_per_token(shape) >= 6 * counts.n_params


def test_forward_loss_at_init_and_causality():
    torch.manual_seed(0)
    shape = ModelShape(width=32, depth=2, seq_len=16)
    model = GPT(shape)
    idx = torch.randint(0, 256, (2, 16))
    logits, loss = model(idx, torch.randint(0, 256, (2, 16)))
    assert logits.shape == (2, 16, 256)
    assert loss.item() == pytest.approx(math.log(256), abs=0.1)
    idx2 = idx.clone()
    idx2[:, 10] = (idx2[:, 10] + 1) % 256
    logits2, _ = model(idx2)
    assert torch.allclose(logits[:, :10], logits2[:, :10], atol=1e-6)
    assert not torch.allclose(logits[:, 10:], logits2[:, 10:])


def test_same_seed_same_init_and_metadata_survives_save_and_copy():
    shape = ModelShape(width=64, depth=2, tie_embeddings=False)
    torch.manual_seed(1)
    a = GPT(shape, Parametrization("mup", 32))
    torch.manual_seed(1)
    b = GPT(shape, Parametrization("mup", 32))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    roles, mults = a.param_roles(), a.lr_multipliers("adam")
    assert set(roles) == {n for n, _ in a.named_parameters()} == set(mults)
    assert mults["blocks.0.attn.qkv.weight"] == pytest.approx(0.5) and mults["wte.weight"] == 1.0
    assert a.lr_multipliers("sgd")["wte.weight"] == pytest.approx(2.0)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    c = GPT(shape, Parametrization("mup", 32))
    c.load_state_dict(torch.load(buf))
    assert c.param_roles() == roles and c.lr_multipliers("adam") == mults
    assert copy.deepcopy(a).lr_multipliers("adam") == mults
    assert GPT(shape).lr_multipliers("adam") == {n: 1.0 for n in roles}  # SP


def _coord_sizes(kind: str, width: int, lr: float, steps: int = 10) -> dict[str, float]:
    """Mean |activation| of each layer's output after a few Adam steps (microsoft/mup coord check)."""
    torch.manual_seed(0)
    shape = ModelShape(width=width, depth=2, seq_len=16, n_heads=max(1, width // 16))
    model = GPT(shape, Parametrization(kind, base_width=32))
    mults = model.lr_multipliers("adam")
    params = dict(model.named_parameters())
    opt = torch.optim.Adam([{"params": [p], "lr": lr * mults[n]} for n, p in params.items()])
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 256, (8, 16), generator=g)
    for _ in range(steps):
        _, loss = model(idx, idx.roll(-1, 1))
        loss.backward()
        opt.step()
        opt.zero_grad()
    sizes: dict[str, float] = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, name=name: sizes.__setitem__(name, o.abs().mean().item()))
             for name, m in [("wte", model.wte), ("block0", model.blocks[0]), ("block1", model.blocks[1])]]
    with torch.no_grad():
        logits, _ = model(idx)
    sizes["logits"] = logits.abs().mean().item()
    for h in hooks:
        h.remove()
    return sizes


def test_mup_coordinate_check():
    """Under muP the size of every layer's output stays flat with width; under SP the logits grow."""
    widths = [32, 64, 128, 256]
    slopes = {}
    for kind in ("mup", "sp"):
        sizes = [_coord_sizes(kind, w, lr=1e-2) for w in widths]
        for layer in sizes[0]:
            y = np.log([s[layer] for s in sizes])
            slopes[kind, layer] = np.polyfit(np.log(widths), y, 1)[0]
    for layer in ("wte", "block0", "block1", "logits"):
        assert abs(slopes["mup", layer]) < 0.2, (layer, slopes)
    for layer in ("block1", "logits"):
        assert slopes["sp", layer] > 0.4, (layer, slopes)
        assert slopes["sp", layer] > slopes["mup", layer] + 0.4, (layer, slopes)
