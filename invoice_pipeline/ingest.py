"""Landing files -> `raw.<table>` + `audit.file_loads` (+ read-level `audit.rejected_rows`).

A file is identified by its SHA-256. The same (name, bytes) seen again is nothing new and
leaves no trace, so re-running is idempotent; the same bytes under another name are logged
once as `skipped_duplicate`; a changed file under the same name is a new load that
supersedes the old version; a file that cannot be read is `quarantined` with its reason
and the other files load as usual. Everything of one source is written in one
transaction: a crash leaves the previous warehouse.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl

from invoice_pipeline.normalize import parse_amount
from invoice_pipeline.sources import read_file, sha256_of
from invoice_pipeline.sources.base import FileRead, UnreadableFile
from invoice_pipeline.specs import SourceSpec
from invoice_pipeline.warehouse import ensure_raw_tables, quote, scalar, transaction

log = logging.getLogger(__name__)

# Uploaders write under a temporary name and rename when done; such files are not ready.
_NOT_READY_SUFFIXES = (".part", ".tmp", ".crdownload", ".partial")
CONTROL_TOTAL_TOLERANCE = Decimal("0.01")


@dataclass(frozen=True)
class LandedFile:
    path: Path
    name: str
    sha256: str
    size_bytes: int


@dataclass
class IngestSummary:
    source: str
    loaded: list[str] = field(default_factory=list)
    skipped_duplicate: list[str] = field(default_factory=list)
    quarantined: dict[str, str] = field(default_factory=dict)
    unchanged: int = 0
    rows_read: dict[str, int] = field(default_factory=dict)
    rows_rejected: int = 0


def list_landed_files(landing_root: Path, spec: SourceSpec) -> list[Path]:
    """Files of one source that are ready to load, by name.

    Hidden files, temporary upload names, folders and anything that resolves outside the
    source's landing folder (a symlink escape) are not the pipeline's to read.
    """
    folder = (landing_root / spec.landing).resolve()
    if not folder.is_dir():
        return []
    suffixes = {pattern.rsplit(".", 1)[-1].lower() for pattern in spec.globs}
    ready = []
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        name = path.name
        if name.startswith(".") or name.lower().endswith(_NOT_READY_SUFFIXES):
            continue
        if name.rsplit(".", 1)[-1].lower() not in suffixes:
            continue
        resolved = path.resolve()
        if not resolved.is_file() or not resolved.is_relative_to(folder):
            continue
        ready.append(path)
    return ready


def load_id_for(source: str, file_name: str, sha256: str) -> str:
    """Deterministic: the same file content under the same name always gets the same id."""
    return hashlib.sha256(f"{source}/{file_name}/{sha256}".encode()).hexdigest()[:16]


def control_total_check(table: pl.DataFrame, control_total: dict[str, Decimal] | None) -> dict | None:
    """Compare a file's rows with its own 合计行. None when the file carries no control total."""
    if control_total is None:
        return None
    sums = table.select(parse_amount(pl.col(column)).sum().alias(column) for column in control_total).row(
        0, named=True
    )
    result: dict = {"ok": True, "expected": {}, "actual": {}}
    for column, expected in control_total.items():
        actual = sums[column] if sums[column] is not None else Decimal("0")
        result["expected"][column] = str(expected)
        result["actual"][column] = str(actual)
        if abs(Decimal(actual) - expected) > CONTROL_TOTAL_TOLERANCE:
            result["ok"] = False
    return result


def _known_files(con: duckdb.DuckDBPyConnection, source: str) -> tuple[set[tuple[str, str]], dict[str, str]]:
    rows = con.execute(
        "select file_name, sha256, status from audit.file_loads where source = ?", [source]
    ).fetchall()
    seen = {(name, sha) for name, sha, _ in rows}
    loaded_by_sha = {sha: name for name, sha, status in rows if status == "loaded"}
    return seen, loaded_by_sha


def _next_file_seq(con: duckdb.DuckDBPyConnection) -> int:
    return int(scalar(con, "select coalesce(max(file_seq), 0) from audit.file_loads")) + 1


def _file_load_row(
    landed: LandedFile,
    spec: SourceSpec,
    seq: int,
    status: str,
    *,
    rows_read: int = 0,
    reason: str | None = None,
    control: dict | None = None,
    notes: dict | None = None,
    loaded_at: datetime,
) -> dict:
    details = dict(notes or {})
    if control is not None:
        details["control_total"] = control
    return {
        "load_id": load_id_for(spec.name, landed.name, landed.sha256),
        "file_seq": seq,
        "source": spec.name,
        "file_name": landed.name,
        "sha256": landed.sha256,
        "size_bytes": landed.size_bytes,
        "rows_read": rows_read,
        "control_total_ok": None if control is None else control["ok"],
        "status": status,
        "reason": reason,
        "details": json.dumps(details, ensure_ascii=False, sort_keys=True) if details else None,
        "loaded_at": loaded_at,
    }


def _with_lineage(
    frame: pl.DataFrame, load_id: str, file_name: str, columns: tuple[str, ...]
) -> pl.DataFrame:
    return frame.with_columns(
        pl.lit(load_id, dtype=pl.String).alias("_load_id"),
        pl.lit(file_name, dtype=pl.String).alias("_source_file"),
    ).select(columns)


def ingest_source(
    con: duckdb.DuckDBPyConnection, landing_root: Path, spec: SourceSpec, *, now: datetime | None = None
) -> IngestSummary:
    """Load every new landed file of one source into its raw tables, in one transaction."""
    ensure_raw_tables(con, spec)
    summary = IngestSummary(source=spec.name)
    seen, loaded_by_sha = _known_files(con, spec.name)
    loaded_at = now or datetime.now(UTC)
    file_rows: list[dict] = []
    raw_frames: dict[str, list[pl.DataFrame]] = {name: [] for name in spec.tables}
    reject_rows: list[dict] = []
    seq = _next_file_seq(con)

    for path in list_landed_files(landing_root, spec):
        stat = path.stat()
        landed = LandedFile(path, path.name, sha256_of(path), stat.st_size)
        if (landed.name, landed.sha256) in seen:
            summary.unchanged += 1
            continue
        load_id = load_id_for(spec.name, landed.name, landed.sha256)
        if landed.sha256 in loaded_by_sha:
            reason = f"same content as {loaded_by_sha[landed.sha256]}, already loaded"
            file_rows.append(
                _file_load_row(landed, spec, seq, "skipped_duplicate", reason=reason, loaded_at=loaded_at)
            )
            summary.skipped_duplicate.append(landed.name)
            log.info("%s: %s skipped: %s", spec.name, landed.name, reason)
            seq += 1
            continue
        try:
            read: FileRead = read_file(path, spec)
        except UnreadableFile as exc:
            file_rows.append(
                _file_load_row(landed, spec, seq, "quarantined", reason=str(exc), loaded_at=loaded_at)
            )
            summary.quarantined[landed.name] = str(exc)
            log.info("%s: %s quarantined: %s", spec.name, landed.name, exc)
            seq += 1
            continue
        main = spec.main_table.name
        # Rows read = rows kept as text + rows that could not even be split into columns.
        rows_read = read.tables[main].height + sum(1 for e in read.row_errors if e.table == main)
        control = control_total_check(read.tables[main], read.control_total)
        file_rows.append(
            _file_load_row(
                landed,
                spec,
                seq,
                "loaded",
                rows_read=rows_read,
                control=control,
                notes=read.notes,
                loaded_at=loaded_at,
            )
        )
        for table in spec.tables.values():
            frame = read.tables.get(table.name)
            if frame is not None and frame.height:
                raw_frames[table.name].append(_with_lineage(frame, load_id, landed.name, table.raw_columns))
                summary.rows_read[table.name] = summary.rows_read.get(table.name, 0) + frame.height
        for error in read.row_errors:
            reject_rows.append(
                {
                    "load_id": load_id,
                    "source": spec.name,
                    "table_name": error.table,
                    "file_name": landed.name,
                    "source_row": error.source_row,
                    "column_name": error.column,
                    "raw_value": error.raw_value,
                    "reason": error.reason,
                    "stage": "read",
                }
            )
        summary.rows_rejected += len(read.row_errors)
        summary.loaded.append(landed.name)
        loaded_by_sha[landed.sha256] = landed.name
        seq += 1

    if not file_rows:
        return summary
    with transaction(con):
        for table_name, frames in raw_frames.items():
            if frames:
                batch = pl.concat(frames, how="vertical")  # noqa: F841 — read by DuckDB's replacement scan
                con.execute(f"insert into raw.{quote(table_name)} by name select * from batch")
        files = pl.DataFrame(file_rows, schema=_FILE_LOADS_SCHEMA)  # noqa: F841
        con.execute("insert into audit.file_loads by name select * from files")
        if reject_rows:
            rejects = pl.DataFrame(reject_rows, schema=_REJECT_SCHEMA)  # noqa: F841
            con.execute("insert into audit.rejected_rows by name select * from rejects")
    return summary


_FILE_LOADS_SCHEMA = {
    "load_id": pl.String,
    "file_seq": pl.Int64,
    "source": pl.String,
    "file_name": pl.String,
    "sha256": pl.String,
    "size_bytes": pl.Int64,
    "rows_read": pl.Int64,
    "control_total_ok": pl.Boolean,
    "status": pl.String,
    "reason": pl.String,
    "details": pl.String,
    "loaded_at": pl.Datetime("us", "UTC"),
}
_REJECT_SCHEMA = {
    "load_id": pl.String,
    "source": pl.String,
    "table_name": pl.String,
    "file_name": pl.String,
    "source_row": pl.String,
    "column_name": pl.String,
    "raw_value": pl.String,
    "reason": pl.String,
    "stage": pl.String,
}
