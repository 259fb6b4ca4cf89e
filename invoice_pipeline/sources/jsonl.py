"""Reader `jsonl`: one JSON object a line (sync-job logs).

Values become text as written: strings as they are, numbers as their JSON literal (`12`, `1.10`),
`true`/`false`, `null` -> null (so does `""`, like an empty CSV cell); nested values as compact
JSON. A line that is not a JSON object is a RowError; blank lines are skipped.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import polars as pl

from invoice_pipeline.sources.base import FileRead, RowError, UnreadableFile
from invoice_pipeline.sources.delimited import MAX_RAW_CHARS
from invoice_pipeline.sources.text import (
    ROW_COLUMN,
    build_table,
    clean_header,
    match_headers,
    require_columns,
    unique_names,
    utf8_source,
)
from invoice_pipeline.specs import SourceSpec


def value_text(value: object) -> str | None:
    """A parsed JSON value as text (numbers arrive as Decimal/int, so their digits are kept)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=float)


def _raw(line: str) -> str:
    return (
        line if len(line) <= MAX_RAW_CHARS else line[:MAX_RAW_CHARS] + f"…[truncated, {len(line)} characters]"
    )


def read(path: Path, spec: SourceSpec) -> FileRead:
    if path.suffix.lower() not in (".jsonl", ".ndjson", ".json"):
        raise UnreadableFile(f"unsupported file type {path.suffix or '(none)'!r}: reader jsonl reads .jsonl")
    table = spec.main_table
    records: list[dict[str, str | None]] = []
    rows: list[str] = []
    errors: list[RowError] = []
    keys: dict[str, None] = {}  # every key seen, in first-seen order
    with utf8_source(path) as (src, encoding), open(src, encoding="utf-8-sig") as f:
        for number, line in enumerate(f, start=1):
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            try:
                obj = json.loads(text, parse_float=Decimal, parse_constant=str)
            except json.JSONDecodeError as e:
                errors.append(
                    RowError(table.name, f"line {number}", None, _raw(text), f"not valid JSON: {e}")
                )
                continue
            if not isinstance(obj, dict):
                kind = type(obj).__name__ if obj is not None else "null"
                errors.append(
                    RowError(table.name, f"line {number}", None, _raw(text), f"not a JSON object but {kind}")
                )
                continue
            record = {clean_header(k) or k: value_text(v) for k, v in obj.items()}
            keys.update(dict.fromkeys(record))
            records.append(record)
            rows.append(f"line {number}")

    names = unique_names(list(keys))
    # unique_names only renames empty keys here: JSON object keys are already unique per line.
    renamed = dict(zip(keys, names, strict=True))
    match = match_headers(names, table)
    if records:
        require_columns(match, table)
    frame = pl.DataFrame(
        {n: [r.get(k) for r in records] for k, n in renamed.items()} | {ROW_COLUMN: rows},
        schema=dict.fromkeys(names, pl.String) | {ROW_COLUMN: pl.String},
    )
    notes: dict = {"encoding": encoding}
    if match.extras:
        notes["extra_columns"] = {table.name: list(match.extras.values())}
    return FileRead(
        tables={table.name: build_table(frame, match, table, pl.col(ROW_COLUMN))},
        notes=notes,
        row_errors=errors,
    )
