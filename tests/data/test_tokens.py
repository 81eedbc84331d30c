import json

import numpy as np
import pytest

from oasl.config import CorpusSpec, build
from oasl.data import TokenDataset, load_corpus
from oasl.errors import ConfigError, DataError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OASL_CACHE", str(tmp_path / "cache"))


def test_default_corpus_is_stdlib_sources_with_stable_hash():
    c = load_corpus(CorpusSpec(max_bytes=200_000))
    assert all(p.suffix == ".py" for p in c.files)
    assert list(c.files) == sorted(c.files)
    assert c.content_hash() == load_corpus(CorpusSpec(max_bytes=200_000)).content_hash()
    assert c.content_hash() != load_corpus(CorpusSpec(max_bytes=100_000)).content_hash()


def test_split_batches_and_cache_reuse():
    spec = CorpusSpec(max_bytes=400_000)
    ds = TokenDataset.from_spec(spec)
    assert ds.vocab_size == 256
    total = len(ds.train) + len(ds.val)
    assert abs(total - 400_000) < 10
    assert 0.03 < len(ds.val) / total < 0.07
    x, y = ds.batch(np.random.default_rng(0), 4, 16)
    assert x.shape == (4, 16) and bool((x[:, 1:] == y[:, :-1]).all())
    x2, _ = ds.batch(np.random.default_rng(0), 4, 16)
    assert bool((x == x2).all())
    a = ds.eval_batches(1024, 4, 16)
    b = TokenDataset.from_spec(spec).eval_batches(1024, 4, 16)  # second open reads the cache
    assert len(a) == 16 and all(bool((p[0] == q[0]).all()) for p, q in zip(a, b, strict=True))


def test_user_corpora_text_jsonl(tmp_path):
    (tmp_path / "a.txt").write_text("hello world " * 400)
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps({"text": f"doc {i} " * 50}) for i in range(20)))
    ds = TokenDataset.from_spec(
        CorpusSpec(source="files", paths=(str(tmp_path / "*.txt"), str(tmp_path / "b.jsonl")))
    )
    raw = bytes(np.asarray(ds.train[:11], dtype=np.uint8))
    assert raw == b"hello world"
    (tmp_path / "bad.jsonl").write_text('{"text": 1}\n{oops\n')
    with pytest.raises(DataError, match="bad.jsonl:2: malformed JSON"):
        TokenDataset.from_spec(CorpusSpec(source="files", paths=(str(tmp_path / "bad.jsonl"),)))
    with pytest.raises(DataError, match="matches no file"):
        load_corpus(CorpusSpec(source="files", paths=(str(tmp_path / "*.none"),)))
    with pytest.raises(ConfigError, match="paths is empty"):
        build(CorpusSpec, {"source": "files"})


def test_gzipped_corpus_files_read_as_their_inner_format(tmp_path):
    import gzip

    with gzip.open(tmp_path / "a.txt.gz", "wb") as f:
        f.write(b"gzipped prose " * 300)
    with gzip.open(tmp_path / "b.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(json.dumps({"text": f"record {i} " * 40}) for i in range(10)))
    corpus = load_corpus(CorpusSpec(source="files", paths=(str(tmp_path / "*.gz"),)))
    docs = list(corpus.documents())
    assert docs[0] == b"gzipped prose " * 300  # decompressed, not the gzip bytes
    assert docs[1:] == [(f"record {i} " * 40).encode() for i in range(10)]  # one document per record
    # a truncated archive is one clear error naming the file, not an EOFError traceback
    (tmp_path / "cut.txt.gz").write_bytes((tmp_path / "a.txt.gz").read_bytes()[:20])
    with pytest.raises(DataError, match="cut.txt.gz: not readable"):
        list(load_corpus(CorpusSpec(source="files", paths=(str(tmp_path / "cut.txt.gz"),))).documents())
    (tmp_path / "cut.jsonl.gz").write_bytes((tmp_path / "b.jsonl.gz").read_bytes()[:30])
    with pytest.raises(DataError, match="cut.jsonl.gz: not readable"):
        list(load_corpus(CorpusSpec(source="files", paths=(str(tmp_path / "cut.jsonl.gz"),))).documents())


def test_a_corpus_folder_bz2_and_xz_files_and_unreadable_archives(tmp_path):
    import bz2
    import lzma

    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("plain prose " * 100)
    with bz2.open(root / "sub" / "b.jsonl.bz2", "wt", encoding="utf-8") as f:
        f.write("\n".join(json.dumps({"text": f"bz record {i} " * 20}) for i in range(3)))
    with lzma.open(root / "sub" / "c.txt.xz", "wb") as f:
        f.write(b"xz prose " * 200)
    (root / ".cache").mkdir()
    (root / ".cache" / "junk.bin").write_bytes(b"\x00" * 50)  # hidden: left out
    corpus = load_corpus(CorpusSpec(source="files", paths=(str(root),)))
    assert [p.name for p in corpus.files] == ["a.txt", "b.jsonl.bz2", "c.txt.xz"]  # sorted, recursive
    docs = list(corpus.documents())
    assert docs[0] == b"plain prose " * 100
    assert docs[1:4] == [(f"bz record {i} " * 20).encode() for i in range(3)]  # JSON lines inside bz2
    assert docs[4] == b"xz prose " * 200
    # a truncated xz archive is one clear error naming the file
    (tmp_path / "cut.txt.xz").write_bytes((root / "sub" / "c.txt.xz").read_bytes()[:25])
    with pytest.raises(DataError, match="cut.txt.xz: not readable"):
        list(load_corpus(CorpusSpec(source="files", paths=(str(tmp_path / "cut.txt.xz"),))).documents())
    # a format that needs a third-party decompressor: named, with what to do, before any training
    (tmp_path / "pile.jsonl.zst").write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 20)
    with pytest.raises(DataError, match=r"pile.jsonl.zst.*\.zst is not read.*zstd -d"):
        load_corpus(CorpusSpec(source="files", paths=(str(tmp_path / "pile.jsonl.zst"),)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no file"):
        load_corpus(CorpusSpec(source="files", paths=(str(tmp_path / "empty"),)))


def test_bpe_tokenizer_trains_locally(tmp_path):
    pytest.importorskip("tokenizers")
    (tmp_path / "a.txt").write_text("the quick brown fox jumps over the lazy dog. " * 300)
    ds = TokenDataset.from_spec(
        CorpusSpec(source="files", paths=(str(tmp_path / "a.txt"),), tokenizer="bpe", bpe_vocab_size=300)
    )
    assert 256 < ds.vocab_size <= 300
    assert len(ds.train) < 300 * 45  # merges compress the text
    with pytest.raises(DataError, match="vocab_size"):
        ds.check_fits(8, 256)
