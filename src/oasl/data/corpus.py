"""Corpora: where training text comes from, and its content hash.

The default corpus is the running interpreter's own standard library: every ``.py`` file under
``sysconfig.get_paths()["stdlib"]`` (``site-packages`` excluded), in sorted path order, joined with a
blank line. It is real, varied text (code, docstrings, comments) that is on every machine without a
download, about 30 MB for CPython 3.11. Two interpreters of different patch versions give different
corpora, so every result records the corpus hash.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from oasl.config import CorpusSpec
from oasl.errors import DataError

SEPARATOR = b"\n\n"


@dataclass(frozen=True)
class Corpus:
    """A resolved corpus: the ordered list of files and how to read text out of them."""

    files: tuple[Path, ...]
    text_field: str
    description: str
    max_bytes: int | None = None

    def documents(self) -> Iterator[bytes]:
        """Yield each document as UTF-8 bytes, in order (stops after ``max_bytes`` in total)."""
        total = 0
        for path in self.files:
            for doc in _read_documents(path, self.text_field):
                if self.max_bytes is not None and total + len(doc) > self.max_bytes:
                    yield doc[: self.max_bytes - total]
                    return
                total += len(doc) + len(SEPARATOR)
                yield doc

    def content_hash(self) -> str:
        """SHA-256 over (file name, content) of every file, in order: identifies the corpus."""
        h = hashlib.sha256()
        h.update(f"max_bytes={self.max_bytes};field={self.text_field}".encode())
        for path in self.files:
            h.update(path.name.encode() + b"\0")
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        return h.hexdigest()


def stdlib_files() -> tuple[Path, ...]:
    """The interpreter's standard-library ``.py`` files, sorted by path, site-packages excluded."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts and p.is_file())
    if not files:
        raise DataError(f"no standard-library .py files under {root}: pass a corpus with `corpus.paths`")
    return tuple(files)


def load_corpus(spec: CorpusSpec) -> Corpus:
    """Resolve ``spec`` to a :class:`Corpus` (files expanded from globs, sorted, checked to exist)."""
    if spec.source == "stdlib":
        root = sysconfig.get_paths()["stdlib"]
        return Corpus(stdlib_files(), spec.text_field, f"stdlib .py sources of {root}", spec.max_bytes)
    files: list[Path] = []
    for pattern in spec.paths:
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise DataError(f"corpus path {pattern!r} matches no file")
        for m in matches:
            p = Path(m)
            if not p.is_file():
                raise DataError(f"corpus path {m!r} is not a readable file")
            files.append(p)
    return Corpus(tuple(files), spec.text_field, f"{len(files)} user file(s)", spec.max_bytes)


def _open(path: Path, mode: str):
    """``path`` opened for reading, gzip-decompressed when its name ends in ``.gz``."""
    if path.suffix.lower() == ".gz":
        return gzip.open(path, mode, **({"encoding": "utf-8"} if "t" in mode else {}))
    return open(path, mode, **({"encoding": "utf-8"} if "t" in mode else {}))


def _numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``path``'s lines, numbered from 1, streamed; a truncated gzip or bad UTF-8 is a DataError."""
    try:
        with _open(path, "rt") as f:
            yield from enumerate(f, 1)
    except (OSError, EOFError, UnicodeDecodeError) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: not readable ({exc})") from None


def _read_documents(path: Path, field: str) -> Iterator[bytes]:
    gz = path.suffix.lower() == ".gz"
    suffix = Path(path.stem).suffix.lower() if gz else path.suffix.lower()
    if suffix == ".jsonl":
        for lineno, line in _numbered_lines(path):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: malformed JSON ({exc.msg})") from None
            if not isinstance(record, dict) or field not in record:
                raise DataError(f"{path}:{lineno}: no field {field!r}; set corpus.text_field")
            yield str(record[field]).encode("utf-8")
    elif suffix == ".parquet":
        if gz:
            raise DataError(f"{path}: a gzipped parquet file is not read; parquet compresses its own columns")
        from oasl.errors import require

        pq = require("pyarrow.parquet", "corpus")
        table = pq.read_table(path)
        if field not in table.column_names:
            raise DataError(
                f"{path}: no column {field!r} (columns: {', '.join(table.column_names)}); set corpus.text_field"
            )
        for value in table.column(field).to_pylist():
            if value is not None:
                yield str(value).encode("utf-8")
    else:
        try:
            with _open(path, "rb") as f:
                data = f.read()
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: not readable ({exc})") from None
        yield data
