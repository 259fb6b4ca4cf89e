"""Backups of the warehouse: `<data dir>/backups/<YYYYMMDDTHHMMSSZ>/` (SPEC §2, §4.3, §5).

A backup is DuckDB's `EXPORT DATABASE … (FORMAT parquet)` of the live warehouse — `schema.sql`,
`load.sql` and one Parquet file per table — plus `manifest.json`: every file's size and SHA-256,
every table's row count, the table/view/column comments (EXPORT drops them), when it was made,
the DuckDB version and the warehouse it came from.

The folder is written as `<timestamp>.tmp` and renamed when complete, so a crash leaves a `.tmp`
folder that is never taken for a backup; the next backup deletes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from invoice_pipeline import project
from invoice_pipeline.warehouse import quote

MANIFEST = "manifest.json"
TMP_SUFFIX = ".tmp"
BACKUP_KINDS = ("scheduled", "manual")
# Folder name of a finished backup: the UTC time it was started, plus "-N" if two share a second.
_NAME = re.compile(r"^(\d{8}T\d{6}Z)(?:-\d+)?$")
_TIME_FORMAT = "%Y%m%dT%H%M%SZ"

_BACKUPS_DDL = """
create table if not exists audit.backups (
    backup_id varchar primary key,
    path varchar not null,
    created_at timestamptz not null,
    size_bytes bigint not null,
    checksum varchar not null,
    tables integer not null,
    rows bigint not null,
    verified boolean not null,
    verified_at timestamptz not null,
    problems varchar[] not null
)
"""


class BackupError(Exception):
    """A backup cannot be made, read or restored; the message says why."""


@dataclass
class VerifyResult:
    """Outcome of `verify_backup`: `ok`, what is wrong (first problem first), rows per table."""

    ok: bool
    problems: list[str] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)


def backups_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "backups"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows of every base table of the connection's own catalog, keyed `schema.table`."""
    names = con.execute(
        "select schema_name, table_name from duckdb_tables() "
        "where database_name = current_database() and not temporary order by all"
    ).fetchall()
    return {
        f"{s}.{t}": int(con.execute(f"select count(*) from {quote(s)}.{quote(t)}").fetchall()[0][0])
        for s, t in names
    }


def _comments(con: duckdb.DuckDBPyConnection) -> list[dict[str, str]]:
    """Every table, view and column comment of the connection's catalog (EXPORT DATABASE drops them)."""
    rows = con.execute(
        """
        select 'table', schema_name, table_name, null, comment from duckdb_tables()
        where database_name = current_database() and comment is not null and comment <> ''
        union all
        select 'view', schema_name, view_name, null, comment from duckdb_views()
        where database_name = current_database() and not internal and comment is not null and comment <> ''
        union all
        select 'column', schema_name, table_name, column_name, comment from duckdb_columns()
        where database_name = current_database() and comment is not null and comment <> ''
        order by all
        """
    ).fetchall()
    return [
        {
            "kind": kind,
            "object": f"{schema}.{name}",
            **({"column": column} if column else {}),
            "comment": text,
        }
        for kind, schema, name, column, text in rows
    ]


def _apply_comments(con: duckdb.DuckDBPyConnection, comments: list[dict[str, str]]) -> None:
    for c in comments:
        schema, name = c["object"].split(".", 1)
        target = f"{quote(schema)}.{quote(name)}"
        if c["kind"] == "column":
            con.execute(f"comment on column {target}.{quote(c['column'])} is {_sql_text(c['comment'])}")
        else:
            con.execute(f"comment on {c['kind']} {target} is {_sql_text(c['comment'])}")


def _clean_tmp(folder: Path) -> None:
    """Delete unfinished backups (`*.tmp` folders) left by a crash."""
    if folder.is_dir():
        for p in folder.iterdir():
            if p.is_dir() and p.name.endswith(TMP_SUFFIX):
                shutil.rmtree(p, ignore_errors=True)


def create_backup(
    con: duckdb.DuckDBPyConnection, data_dir: Path, *, now: datetime | None = None, kind: str = "scheduled"
) -> Path:
    """Back up the warehouse open on `con` into `<data_dir>/backups/<YYYYMMDDTHHMMSSZ>/`; return it.

    `kind` is `scheduled` (made by a run, pruned by retention) or `manual` (made by a person with
    `invoice-pipeline backup`, never deleted by retention: a backup taken before a risky change
    must survive that night's run).

    Checkpoints, exports every schema to Parquet, writes `manifest.json` (file sizes and SHA-256,
    row counts, comments) and only then renames the folder to its final name. Leftover `.tmp`
    folders of earlier crashed backups are deleted first. The backup is not verified here: call
    `verify_backup` on the returned path.
    """
    if kind not in BACKUP_KINDS:
        raise ValueError(f"backup kind must be one of {BACKUP_KINDS}, got {kind!r}")
    now = (now or datetime.now(UTC)).astimezone(UTC)
    root = backups_dir(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    _clean_tmp(root)
    name = now.strftime(_TIME_FORMAT)
    n = 1
    while (root / name).exists() or (root / (name + TMP_SUFFIX)).exists():
        n += 1
        name = f"{now.strftime(_TIME_FORMAT)}-{n}"
    tmp = root / (name + TMP_SUFFIX)

    con.execute("checkpoint")
    catalog = con.execute("select current_database()").fetchall()[0][0]
    warehouse = con.execute(
        "select path from duckdb_databases() where database_name = current_database()"
    ).fetchall()[0][0]
    tables = _table_counts(con)
    comments = _comments(con)
    try:
        con.execute(f"export database {quote(catalog)} to {_sql_text(str(tmp))} (format parquet)")
        files = [
            {"path": p.relative_to(tmp).as_posix(), "size": p.stat().st_size, "sha256": _sha256(p)}
            for p in sorted(tmp.rglob("*"))
            if p.is_file()
        ]
        manifest = {
            "format": 1,
            "created_at": now.isoformat(),
            "kind": kind,
            "duckdb_version": duckdb.__version__,
            "warehouse": warehouse,
            "catalog": catalog,
            "files": files,
            "tables": tables,
            "comments": comments,
        }
        with (tmp / MANIFEST).open("w", encoding="utf-8") as f:
            json.dump(manifest, f, ensure_ascii=False, indent=1)
            f.flush()
            os.fsync(f.fileno())
        final = root / name
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def read_manifest(path: Path) -> dict:
    """The manifest of the backup folder `path`; `BackupError` if it is missing or unreadable."""
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{path}: no {MANIFEST} (not a finished backup)") from None
    except (OSError, ValueError) as e:
        raise BackupError(f"{path}: {MANIFEST} unreadable: {e}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise BackupError(f"{path}: {MANIFEST} has no file list")
    return manifest


def _check_files(path: Path, manifest: dict) -> list[str]:
    problems = []
    listed = set()
    for entry in manifest["files"]:
        rel = entry["path"]
        listed.add(rel)
        p = path / rel
        if not p.is_file():
            problems.append(f"{rel}: missing")
        elif p.stat().st_size != entry["size"]:
            problems.append(f"{rel}: size {p.stat().st_size} bytes, manifest says {entry['size']}")
        elif _sha256(p) != entry["sha256"]:
            problems.append(f"{rel}: sha256 mismatch")
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path).as_posix()
        if p.is_file() and rel != MANIFEST and rel not in listed:
            problems.append(f"{rel}: extra file, not in the manifest")
    return problems


def _import(con: duckdb.DuckDBPyConnection, path: Path) -> dict[str, int]:
    con.execute(f"import database {_sql_text(str(path))}")
    return _table_counts(con)


def _compare_counts(expected: dict[str, int], actual: dict[str, int]) -> list[str]:
    problems = [f"{t}: missing after import" for t in expected if t not in actual]
    problems += [f"{t}: not in the manifest" for t in actual if t not in expected]
    problems += [
        f"{t}: {actual[t]} rows after import, manifest says {n}"
        for t, n in expected.items()
        if t in actual and actual[t] != n
    ]
    return problems


_LOAD_LINE = re.compile(r"""^COPY ("?[^".\s]+"?)\.("?[^".\s]+"?) FROM '([^']*)'""", re.IGNORECASE)


def _footer_counts(path: Path) -> tuple[dict[str, int], list[str]]:
    """Rows per table from the Parquet footers named in `load.sql`, without reading any data.

    Every file `load.sql` loads must be a readable Parquet file inside the backup folder; only
    its footer (schema, row groups, row count) is read, so this costs milliseconds per file.
    """
    counts: dict[str, int] = {}
    problems: list[str] = []
    con = duckdb.connect()
    try:
        for line in (path / "load.sql").read_text(encoding="utf-8").splitlines():
            m = _LOAD_LINE.match(line.strip())
            if not m:
                continue
            schema, table, target = (g.strip('"') for g in m.groups())
            parquet = path / Path(target).name
            try:
                rows = con.sql("select sum(num_rows) from parquet_file_metadata(?)", params=[str(parquet)])
                counts[f"{schema}.{table}"] = int(rows.fetchall()[0][0] or 0)
            except duckdb.Error as e:
                problems.append(f"{parquet.name}: not a readable Parquet file: {e}")
    finally:
        con.close()
    return counts, problems


def verify_backup(path: Path, *, full: bool = True) -> VerifyResult:
    """Check the backup folder `path`: is it complete, unchanged, and does it restore?

    Every file is compared with the manifest (size and SHA-256; none missing, none extra). Then,
    with `full` (the default, and what `invoice-pipeline verify-backup` does), the backup is
    imported into a throw-away DuckDB database and every table's row count compared with the
    manifest. Without `full` (the nightly backup step), each table's Parquet footer is read
    instead and its row count compared: same checksums and counts, without rewriting the whole
    warehouse a second time — at 5M invoices the import took longer than the export. `problems`
    names the file or table and what is wrong, e.g. `core_invoices.parquet: sha256 mismatch`;
    `tables` has the row counts found.
    """
    path = Path(path)
    if not path.is_dir():
        return VerifyResult(False, [f"{path}: not a folder"])
    if path.name.endswith(TMP_SUFFIX):
        return VerifyResult(False, [f"{path.name}: unfinished backup (.tmp folder)"])
    try:
        manifest = read_manifest(path)
    except BackupError as e:
        return VerifyResult(False, [str(e)])
    problems = _check_files(path, manifest)
    if problems:
        return VerifyResult(False, problems)
    if not full:
        tables, problems = _footer_counts(path)
        problems += _compare_counts(manifest.get("tables", {}), tables)
        return VerifyResult(not problems, problems, tables)
    with tempfile.TemporaryDirectory(prefix="invoice-backup-verify-") as tmp:
        con = duckdb.connect(str(Path(tmp) / "verify.duckdb"))
        try:
            tables = _import(con, path)
        except duckdb.Error as e:
            return VerifyResult(False, [f"import failed: {e}"])
        finally:
            con.close()
    problems = _compare_counts(manifest.get("tables", {}), tables)
    return VerifyResult(not problems, problems, tables)


def restore_backup(path: Path, data_dir: Path) -> dict[str, int]:
    """Replace the warehouse of `data_dir` with the backup `path`; return rows per table.

    Refuses (`BackupError`, with the reason) a backup that does not verify. The backup is imported
    into `warehouse/invoices.duckdb.restore.tmp`, comments are put back, and that file is renamed
    over `warehouse/invoices.duckdb` in one step. The previous warehouse is kept as
    `invoices.duckdb.before-restore`, so a mistaken restore can be undone by renaming it back.
    Nothing may have the warehouse open meanwhile (a Dagster run, an analyst).
    """
    path = Path(path)
    result = verify_backup(path)
    if not result.ok:
        raise BackupError(f"{path.name} does not verify, not restored: {'; '.join(result.problems)}")
    manifest = read_manifest(path)
    target = project.warehouse_path(Path(data_dir))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".restore.tmp")
    for p in (tmp, Path(str(tmp) + ".wal")):
        p.unlink(missing_ok=True)
    try:
        con = duckdb.connect(str(tmp))
        try:
            counts = _import(con, path)
            _apply_comments(con, manifest.get("comments", []))
            con.execute("checkpoint")
        finally:
            con.close()
        problems = _compare_counts(manifest.get("tables", {}), counts)
        if problems:
            raise BackupError(f"{path.name}: restored copy differs, not restored: {'; '.join(problems)}")
        before = target.with_name(target.name + ".before-restore")
        if target.exists():
            # Fold the old file's WAL into it (fails if someone still has it open), so no stale
            # WAL is replayed onto the restored file.
            try:
                duckdb.connect(str(target)).close()
            except duckdb.Error as e:
                raise BackupError(
                    f"cannot open {target} to replace it (is a run or reader using it?): {e}"
                ) from e
            for p in (before, Path(str(before) + ".wal")):
                p.unlink(missing_ok=True)
            try:
                os.link(target, before)
            except OSError:
                shutil.copy2(target, before)
        os.replace(tmp, target)
    except BaseException:
        for p in (tmp, Path(str(tmp) + ".wal")):
            p.unlink(missing_ok=True)
        raise
    return counts


def record_backup(con: duckdb.DuckDBPyConnection, path: Path, result: VerifyResult) -> None:
    """Write (or, for a backup verified again, replace) the backup's row in `audit.backups`.

    One row per backup folder: where, when made, total size, SHA-256 of its manifest, tables and
    rows backed up, and the outcome of its latest verification.
    """
    path = Path(path)
    manifest = read_manifest(path)
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    tables = manifest.get("tables", {})
    con.execute("create schema if not exists audit")
    con.execute(_BACKUPS_DDL)
    con.execute("delete from audit.backups where backup_id = ?", [path.name])
    con.execute(
        "insert into audit.backups values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            path.name,
            str(path.resolve()),
            datetime.fromisoformat(manifest["created_at"]),
            size,
            _sha256(path / MANIFEST),
            len(tables),
            sum(tables.values()),
            result.ok,
            datetime.now(UTC),
            list(result.problems),
        ],
    )


def _kind(path: Path) -> str:
    """A backup's kind from its manifest; a manifest that cannot be read counts as scheduled."""
    try:
        return str(json.loads((path / MANIFEST).read_text(encoding="utf-8")).get("kind", "scheduled"))
    except (OSError, ValueError):
        return "scheduled"


def list_backups(data_dir: Path) -> list[tuple[datetime, Path]]:
    """Finished backups (named `<timestamp>`, with a manifest), oldest first."""
    root = backups_dir(data_dir)
    found = []
    if root.is_dir():
        for p in root.iterdir():
            m = _NAME.match(p.name)
            if m and p.is_dir() and (p / MANIFEST).is_file():
                found.append((datetime.strptime(m.group(1), _TIME_FORMAT).replace(tzinfo=UTC), p))
    return sorted(found)


def apply_retention(
    data_dir: Path, *, daily: int = 7, monthly: int = 12, now: datetime | None = None
) -> list[Path]:
    """Delete old backups; return the folders removed.

    Kept: the newest backup of each of the last `daily` calendar days (UTC, today included) and
    the newest of each of the last `monthly` calendar months (this month included), and always the
    newest backup of all. Only finished scheduled backups (`<timestamp>` with a `manifest.json`
    whose kind is not `manual`) are ever deleted: manual backups, `.tmp` folders and anything
    else in `backups/` are left alone.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    backups = [(ts, p) for ts, p in list_backups(data_dir) if _kind(p) != "manual"]
    if not backups:
        return []
    days = {now.date().toordinal() - i for i in range(max(daily, 0))}
    months = set()
    y, m = now.year, now.month
    for _ in range(max(monthly, 0)):
        months.add((y, m))
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    keep = {backups[-1][1]}
    newest_day: dict[int, Path] = {}
    newest_month: dict[tuple[int, int], Path] = {}
    for ts, p in backups:  # oldest first: later ones overwrite
        newest_day[ts.date().toordinal()] = p
        newest_month[(ts.year, ts.month)] = p
    keep |= {p for d, p in newest_day.items() if d in days}
    keep |= {p for k, p in newest_month.items() if k in months}
    removed = []
    for _, p in backups:
        if p not in keep:
            shutil.rmtree(p)
            removed.append(p)
    return removed
