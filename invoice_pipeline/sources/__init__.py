"""Source readers: one landed file -> its raw tables, as text, exactly as landed.

`read_file(path, spec)` dispatches on `spec.reader`; every reader returns a `FileRead` (see
`base.py`) or raises `UnreadableFile` with a reason a person can act on, which quarantines the file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from invoice_pipeline.sources import delimited, einvoice, jsonl, tax_platform
from invoice_pipeline.sources.base import FileRead, RowError, UnreadableFile
from invoice_pipeline.specs import SourceSpec

__all__ = ["READERS", "FileRead", "RowError", "UnreadableFile", "read_file", "sha256_of"]

READERS: dict[str, Callable[[Path, SourceSpec], FileRead]] = {
    "delimited": delimited.read,
    "tax_platform": tax_platform.read,
    "einvoice": einvoice.read,
    "jsonl": jsonl.read,
}


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of the file's bytes, streamed (files may be gigabytes)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_file(path: Path, spec: SourceSpec) -> FileRead:
    """Read one landed file with the reader its spec names.

    Raises `UnreadableFile` for anything that makes the whole file unreadable - including an
    unexpected reader error, so one odd file never aborts a load (the original exception is
    chained for the logs). An unknown reader name is a programming error: `ValueError`.
    """
    reader = READERS.get(spec.reader)
    if reader is None:
        raise ValueError(f"source {spec.name}: unknown reader {spec.reader!r} (known: {', '.join(READERS)})")
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise UnreadableFile("empty file")
        return reader(path, spec)
    except UnreadableFile:
        raise
    except MemoryError:
        raise
    except OSError as e:
        raise UnreadableFile(f"cannot read file: {e.strerror or e}") from e
    except Exception as e:
        raise UnreadableFile(f"reader {spec.reader} failed: {type(e).__name__}: {e}") from e
