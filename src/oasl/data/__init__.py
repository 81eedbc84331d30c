"""Corpora, tokenizers and token caches."""

from oasl.data.corpus import Corpus, load_corpus, stdlib_files
from oasl.data.tokens import TokenDataset, cache_dir

__all__ = ["Corpus", "TokenDataset", "cache_dir", "load_corpus", "stdlib_files"]
