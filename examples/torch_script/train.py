"""A standalone PyTorch training script: a small GPT-style decoder on bytes of text.

It knows nothing of oasl except the optional reporter: run it by hand (``python train.py --lr 3e-3``)
or let oasl drive a ladder of it (``oasl sweep run sweep.yaml``, see sweep.yaml beside it). The model
is a pre-LayerNorm decoder without biases, tied input/output embeddings, learned positions, GELU MLP
(4x), heads of dimension 32, N(0, 0.02) initialization with residual projections scaled by
1/sqrt(2 depth) (GPT-2, Radford et al. 2019, Sec. 2.3); AdamW with linear warmup, cosine decay to a floor,
gradient clipping at 1; a byte-level vocabulary (256), so no tokenizer is needed. By default it reads
the Python standard library's ``.py`` files (text on every machine), as oasl's default corpus does.
"""

from __future__ import annotations

import argparse
import math
import sysconfig
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

try:  # oasl's stdlib-only reporter; the script runs without oasl too
    from oasl.integrations import reporter
except ImportError:  # pragma: no cover - oasl not installed where the script runs
    reporter = None


# -- data ---------------------------------------------------------------------------------------------


def read_bytes(path: str | None, max_bytes: int) -> torch.Tensor:
    """The corpus as a tensor of byte values: the file ``path``, else the stdlib's .py files in sorted order."""
    if path:
        data = Path(path).read_bytes()[:max_bytes]
    else:
        root = Path(sysconfig.get_paths()["stdlib"])
        chunks, size = [], 0
        for f in sorted(root.rglob("*.py")):
            if "site-packages" in f.parts:
                continue
            try:
                b = f.read_bytes()
            except OSError:
                continue
            chunks.append(b)
            size += len(b)
            if size >= max_bytes:
                break
        data = b"".join(chunks)[:max_bytes]
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).long()


def batch(
    data: torch.Tensor, n: int, seq_len: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random windows of ``seq_len`` + 1 bytes: inputs and next-byte targets."""
    starts = torch.randint(0, len(data) - seq_len - 1, (n,), generator=gen)
    x = torch.stack([data[s : s + seq_len] for s in starts.tolist()])
    y = torch.stack([data[s + 1 : s + seq_len + 1] for s in starts.tolist()])
    return x, y


# -- model --------------------------------------------------------------------------------------------


class Block(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm_attn = nn.LayerNorm(width, bias=False)
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.out = nn.Linear(width, width, bias=False)
        self.norm_mlp = nn.LayerNorm(width, bias=False)
        self.up = nn.Linear(width, 4 * width, bias=False)
        self.down = nn.Linear(4 * width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.norm_attn(x)).chunk(3, dim=-1)
        q, k, v = (z.reshape(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.out(a.transpose(1, 2).reshape(b, t, c))
        return x + self.down(F.gelu(self.up(self.norm_mlp(x))))


class TinyGPT(nn.Module):
    def __init__(self, width: int, depth: int, seq_len: int, vocab: int = 256):
        super().__init__()
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Embedding(seq_len, width)
        self.blocks = nn.ModuleList(Block(width, max(1, width // 32)) for _ in range(depth))
        self.norm = nn.LayerNorm(width, bias=False)
        for name, p in self.named_parameters():
            if p.ndim == 2:
                std = 0.02 / math.sqrt(2 * depth) if name.endswith(("out.weight", "down.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def n_params(self) -> int:
        """Non-embedding parameters (the N of scaling laws): all but the token and position tables."""
        return sum(p.numel() for p in self.parameters()) - self.tok.weight.numel() - self.pos.weight.numel()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.tok(x) + self.pos(torch.arange(x.shape[1], device=x.device))
        for blk in self.blocks:
            h = blk(h)
        logits = self.norm(h) @ self.tok.weight.T  # tied readout
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


# -- training -----------------------------------------------------------------------------------------


def lr_at(step: int, steps: int, peak: float, warmup: int, floor: float) -> float:
    """Linear warmup over ``warmup`` steps, then cosine from ``peak`` to ``floor`` x peak at ``steps``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def evaluate(model: TinyGPT, val: torch.Tensor, batches: int, n: int, seq_len: int) -> float:
    gen = torch.Generator().manual_seed(1234)  # the same held-out windows at every evaluation
    model.eval()
    loss = sum(float(model(*batch(val, n, seq_len, gen))) for _ in range(batches)) / batches
    model.train()
    return loss


def train(cfg: dict, report=None) -> dict:
    """Train one model of ``cfg`` (the flags below as a dict); ``report(step, loss, tokens=...)`` is called at
    each evaluation and may return True to stop. Returns the final metrics: loss, n_params, tokens."""
    torch.manual_seed(cfg["seed"])
    data = read_bytes(cfg.get("data"), cfg["max_bytes"])
    cut = int(len(data) * 0.95)
    train_data, val = data[:cut], data[cut:]
    model = TinyGPT(cfg["width"], cfg["depth"], cfg["seq_len"])
    decay = [p for p in model.parameters() if p.ndim == 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg["weight_decay"]}, {"params": rest, "weight_decay": 0.0}],
        lr=cfg["lr"],
        betas=(cfg["beta1"], cfg["beta2"]),
    )
    steps, n, t = cfg["steps"], cfg["batch_size"], cfg["seq_len"]
    warmup = int(cfg["warmup_frac"] * steps)
    gen = torch.Generator().manual_seed(cfg["seed"])
    loss = evaluate(model, val, cfg["eval_batches"], n, t)
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, cfg["lr"], warmup, cfg["final_frac"])
        train_loss = model(*batch(train_data, n, t, gen))
        train_loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        done = step + 1
        if not math.isfinite(float(train_loss.detach())):
            loss = float("nan")
            if report is not None:
                report(done, loss, tokens=done * n * t)
            break
        if done % cfg["eval_every"] == 0 or done == steps:
            loss = evaluate(model, val, cfg["eval_batches"], n, t)
            if report is not None and report(
                done, loss, tokens=done * n * t, train_loss=float(train_loss.detach())
            ):
                break
    return {"loss": loss, "n_params": model.n_params(), "tokens": done * n * t}


def parse(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    p.add_argument("--batch-size", type=int, default=16, help="sequences per step")
    p.add_argument("--width", "--d-model", type=int, default=64, dest="width")
    p.add_argument("--depth", "--n-layers", type=int, default=2, dest="depth")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warmup-frac", type=float, default=0.05)
    p.add_argument("--final-frac", type=float, default=0.1, help="cosine floor as a fraction of the peak lr")
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.95)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--eval-batches", type=int, default=4)
    p.add_argument("--data", default=None, help="a text file (default: the Python stdlib's .py files)")
    p.add_argument("--max-bytes", type=int, default=4_000_000)
    p.add_argument("--threads", type=int, default=None)
    return vars(p.parse_args(argv))


def main(argv=None) -> None:
    cfg = parse(argv)
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    t0 = time.perf_counter()

    def report(step, loss, tokens=None, train_loss=None):
        print(f"step {step}: val loss {loss:.4f}", flush=True)
        return bool(reporter and reporter.log(step=step, loss=loss, tokens=tokens, train_loss=train_loss))

    out = train(cfg, report)
    if reporter is not None:
        reporter.final(**out)
    print(f"final val loss {out['loss']:.4f}, N = {out['n_params']:,}, {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
