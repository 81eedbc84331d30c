"""Corpora: where training text comes from, and its content hash.

The default corpus is the running interpreter's own standard library: every ``.py`` file under
``sysconfig.get_paths()["stdlib"]`` (``site-packages`` excluded), in sorted path order, joined with a
blank line. It is real, varied text (code, docstrings, comments) that is on every machine without a
download, about 30 MB for CPython 3.11. Two interpreters of different patch versions give different
corpora, so every result records the corpus hash.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import hashlib
import json
import lzma
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
            if p.is_dir():  # a folder: every file under it, in sorted path order, hidden ones left out
                inside = sorted(
                    f
                    for f in p.rglob("*")
                    if f.is_file() and not any(q.startswith(".") for q in f.relative_to(p).parts)
                )
                if not inside:
                    raise DataError(f"corpus folder {m!r} holds no file")
                files.extend(inside)
                continue
            if not p.is_file():
                raise DataError(f"corpus path {m!r} is not a readable file")
            files.append(p)
    for p in files:
        if p.suffix.lower() in UNREAD_COMPRESSED:
            raise DataError(
                f"corpus file {str(p)!r}: {p.suffix} is not read (no decompressor in Python's standard library); "
                f"decompress it first (e.g. `zstd -d {p.name}`) or recompress as .gz, .bz2 or .xz"
            )
    return Corpus(tuple(files), spec.text_field, f"{len(files)} user file(s)", spec.max_bytes)


#: compressed files read decompressed, as their inner format (``a.jsonl.gz`` is JSON lines), by suffix
DECOMPRESSORS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open, ".lzma": lzma.open}
#: compressed files that name their format but cannot be read without a third-party package
UNREAD_COMPRESSED = (".zst", ".zstd", ".lz4", ".br")


def _open(path: Path, mode: str):
    """``path`` opened for reading, decompressed when its name ends in a suffix of :data:`DECOMPRESSORS`."""
    text = {"encoding": "utf-8"} if "t" in mode else {}
    opener = DECOMPRESSORS.get(path.suffix.lower())
    return opener(path, mode, **text) if opener else open(path, mode, **text)


def _numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``path``'s lines, numbered from 1, streamed; a truncated archive or bad UTF-8 is a DataError."""
    try:
        with _open(path, "rt") as f:
            yield from enumerate(f, 1)
    except (OSError, EOFError, UnicodeDecodeError, lzma.LZMAError) as exc:  # BadGzipFile is an OSError
        raise DataError(f"{path}: not readable ({exc})") from None


def _read_documents(path: Path, field: str) -> Iterator[bytes]:
    gz = path.suffix.lower() in DECOMPRESSORS
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
            raise DataError(
                f"{path}: a compressed parquet file is not read; parquet compresses its own columns"
            )
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
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise DataError(f"{path}: not readable ({exc})") from None
        yield data
