"""Tokenization into a cached memmap, a deterministic train/validation split, and random batches.

Like nanoGPT's ``prepare.py``, the corpus is tokenized once into flat ``uint16`` arrays on disk and
then read through ``np.memmap``, so many runs and worker processes share one copy. The cache key is
the corpus content hash plus the tokenizer, so a changed corpus never reuses stale tokens.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from oasl.config import CorpusSpec
from oasl.data.corpus import SEPARATOR, Corpus, load_corpus
from oasl.errors import DataError, require

BLOCK_TOKENS = 4096  # the train/validation split assigns whole blocks of this many tokens
EVAL_SEED = 1_234_567  # the held-out batches are the same for every run, whatever its seed


def cache_dir() -> Path:
    """Token cache folder: ``$OASL_CACHE`` or ``~/.cache/oasl``."""
    return Path(os.environ.get("OASL_CACHE", Path.home() / ".cache" / "oasl")) / "tokens"


@dataclass
class TokenDataset:
    """Train and validation token streams of one (corpus, tokenizer), read through memmaps."""

    train: np.ndarray
    val: np.ndarray
    vocab_size: int
    corpus_hash: str
    tokenizer: str

    @classmethod
    def from_spec(cls, spec: CorpusSpec) -> TokenDataset:
        """Tokenize ``spec``'s corpus (once; cached) and open its train/validation memmaps."""
        corpus = load_corpus(spec)
        corpus_hash = corpus.content_hash()
        tok_name = "byte" if spec.tokenizer == "byte" else f"bpe{spec.bpe_vocab_size}"
        folder = cache_dir() / f"{corpus_hash[:20]}-{tok_name}-val{spec.val_fraction:g}"
        meta_path = folder / "meta.json"
        if not meta_path.is_file():
            _build_cache(corpus, spec, folder)
        meta = json.loads(meta_path.read_text())
        train = np.memmap(folder / "train.bin", dtype=np.uint16, mode="r")
        val = np.memmap(folder / "val.bin", dtype=np.uint16, mode="r")
        return cls(train, val, meta["vocab_size"], corpus_hash, tok_name)

    def check_fits(self, seq_len: int, vocab_size: int) -> None:
        """Raise DataError if sequences of ``seq_len`` or the model's vocab do not fit this data."""
        if vocab_size < self.vocab_size:
            raise DataError(
                f"model vocab_size {vocab_size} is smaller than the tokenizer's {self.vocab_size}: "
                f"set shape.vocab_size >= {self.vocab_size}"
            )
        for name, arr in (("train", self.train), ("validation", self.val)):
            if len(arr) <= seq_len + 1:
                raise DataError(f"the {name} split has {len(arr)} tokens, too few for seq_len {seq_len}")

    def batch(self, rng: np.random.Generator, batch_seqs: int, seq_len: int, split: str = "train"):
        """A random batch ``(x, y)`` of LongTensors [batch_seqs, seq_len]; y is x shifted by one."""
        data = self.train if split == "train" else self.val
        starts = rng.integers(0, len(data) - seq_len - 1, size=batch_seqs)
        rows = np.stack([np.asarray(data[s : s + seq_len + 1], dtype=np.int64) for s in starts])
        t = torch.from_numpy(rows)
        return t[:, :-1], t[:, 1:]

    def eval_batches(
        self, eval_tokens: int, batch_seqs: int, seq_len: int
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The fixed held-out batches covering about ``eval_tokens`` validation tokens (same for all runs)."""
        rng = np.random.default_rng(EVAL_SEED)
        n = max(1, round(eval_tokens / (batch_seqs * seq_len)))
        return [self.batch(rng, batch_seqs, seq_len, split="val") for _ in range(n)]


def _encode(corpus: Corpus, spec: CorpusSpec, folder: Path) -> tuple[np.ndarray, int]:
    if spec.tokenizer == "byte":
        data = SEPARATOR.join(corpus.documents())
        if not data:
            raise DataError(f"corpus ({corpus.description}) is empty")
        return np.frombuffer(data, dtype=np.uint8).astype(np.uint16), 256
    tk = require("tokenizers", "corpus")
    tokenizer = tk.Tokenizer(tk.models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(
        vocab_size=spec.bpe_vocab_size,
        initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    docs = [d.decode("utf-8", errors="replace") for d in corpus.documents()]
    if not docs:
        raise DataError(f"corpus ({corpus.description}) is empty")
    tokenizer.train_from_iterator(docs, trainer=trainer)
    tokenizer.save(str(folder / "tokenizer.json"))
    ids = [i for enc in tokenizer.encode_batch(docs) for i in (*enc.ids, *tokenizer.encode("\n\n").ids)]
    return np.asarray(ids, dtype=np.uint16), tokenizer.get_vocab_size()


def _build_cache(corpus: Corpus, spec: CorpusSpec, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tokens, vocab = _encode(corpus, spec, folder)
    # Deterministic split by whole blocks: every k-th block is validation, spread over the corpus so
    # validation text is not one library module at the end of the sorted file list.
    k = max(2, round(1 / spec.val_fraction))
    block = min(
        BLOCK_TOKENS, max(16, len(tokens) // (20 * k))
    )  # small corpora: smaller blocks, >= ~20 val blocks
    n_blocks = -(-len(tokens) // block)
    if n_blocks < k:
        raise DataError(f"corpus ({corpus.description}) has only {len(tokens)} tokens: too small to split")
    is_val = (np.arange(n_blocks) % k) == k - 1
    block_of = np.arange(len(tokens)) // block
    val_mask = is_val[block_of]
    for name, arr in (("train.bin", tokens[~val_mask]), ("val.bin", tokens[val_mask])):
        _atomic_write(folder / name, arr.tobytes())
    meta = {
        "vocab_size": vocab,
        "n_train": int((~val_mask).sum()),
        "n_val": int(val_mask.sum()),
        "corpus": corpus.description,
        "block_tokens": block,
        "tokenizer": spec.tokenizer,
    }
    _atomic_write(folder / "meta.json", json.dumps(meta).encode())  # written last: marks the cache complete


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
