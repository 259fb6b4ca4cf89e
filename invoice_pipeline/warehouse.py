"""The DuckDB warehouse: connections, transactions and the tables the pipeline itself owns.

One process writes the warehouse at a time (DuckDB locks the file). Every writer goes
through `transaction()`, so a crash or a failed statement leaves the last committed state.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from invoice_pipeline.specs import SourceSpec, TableSpec

LAYERS = ("raw", "staging", "core", "audit", "report")

# Files seen, one row per distinct (source, file name, content). `audit.load_log` is a view
# over it that adds the row outcomes, so the counts can never drift from rejected_rows.
_FILE_LOADS_DDL = """
create table if not exists audit.file_loads (
    load_id varchar primary key,
    file_seq bigint not null,
    source varchar not null,
    file_name varchar not null,
    sha256 varchar not null,
    size_bytes bigint not null,
    rows_read bigint not null,
    control_total_ok boolean,
    status varchar not null,
    reason varchar,
    details json,
    loaded_at timestamptz not null
)
"""

_REJECTED_ROWS_DDL = """
create table if not exists audit.rejected_rows (
    load_id varchar not null,
    source varchar not null,
    table_name varchar not null,
    file_name varchar not null,
    source_row varchar not null,
    column_name varchar,
    raw_value varchar,
    reason varchar not null,
    stage varchar not null
)
"""

# A file's rows are current while no newer version of the same file name has been loaded.
_CURRENT_LOADS_VIEW = """
create or replace view audit.current_loads as
select load_id, source, file_name, file_seq
from (
    select
        load_id,
        source,
        file_name,
        file_seq,
        row_number() over (partition by source, file_name order by file_seq desc) as version_rank
    from audit.file_loads
    where status = 'loaded'
)
where version_rank = 1
"""

_LOAD_LOG_VIEW = """
create or replace view audit.load_log as
with rejected as (
    select load_id, count(distinct source_row) as rows_rejected
    from audit.rejected_rows
    -- a file's row count is that of its source's main table (named like the source)
    where stage in ('read', 'parse') and table_name = source
    group by load_id
),

final as (
    select
        f.load_id,
        f.source,
        f.file_name,
        f.sha256,
        f.size_bytes,
        f.rows_read,
        case when f.status = 'loaded' then f.rows_read - coalesce(r.rows_rejected, 0) else 0 end
            as rows_loaded,
        coalesce(r.rows_rejected, 0) as rows_rejected,
        f.control_total_ok,
        f.status,
        f.reason,
        f.loaded_at,
        c.load_id is not null as is_current,
        f.details
    from audit.file_loads as f
    left join rejected as r on f.load_id = r.load_id
    left join audit.current_loads as c on f.load_id = c.load_id
)

select * from final
"""


MEMORY_LIMIT_ENV = "INVOICE_PIPELINE_DUCKDB_MEMORY_LIMIT"
# DuckDB's own default is 80% of the machine's RAM, which it fills with buffers while Polars
# frames of the same run need room too; past the limit DuckDB spills to `<warehouse>.tmp/`.
# Not every operator spills: at 10M invoices core.invoice_aliases (a DISTINCT over 33M string
# rows) failed with 4 GB and took 74 s with 8 GB, so the default is a share of the machine.
DEFAULT_MEMORY_LIMIT = "50%"


def connect(path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse. The folder is created for writers; readers need the file.

    DuckDB's memory is capped at `INVOICE_PIPELINE_DUCKDB_MEMORY_LIMIT` (default `50%` of RAM;
    any DuckDB size such as `8GB`); larger sorts, joins and aggregates spill to disk.
    """
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    limit = os.environ.get(MEMORY_LIMIT_ENV, "").strip() or DEFAULT_MEMORY_LIMIT
    return duckdb.connect(str(path), read_only=read_only, config={"memory_limit": limit})


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Commit on success; on any error roll back (a failed statement poisons the transaction)."""
    con.begin()
    try:
        yield con
    except BaseException:
        con.rollback()
        raise
    con.commit()


def quote(identifier: str) -> str:
    """Quote an identifier that came from a validated spec (never from file contents)."""
    return '"' + identifier.replace('"', '""') + '"'


def ensure_audit_tables(con: duckdb.DuckDBPyConnection) -> None:
    for layer in LAYERS:
        con.execute(f"create schema if not exists {layer}")
    con.execute(_FILE_LOADS_DDL)
    con.execute(_REJECTED_ROWS_DDL)
    con.execute(_CURRENT_LOADS_VIEW)
    con.execute(_LOAD_LOG_VIEW)
    # The ledger, the run log and the remediation actions always exist, so that `annotate`,
    # the reports and backups never meet a warehouse without them. (findings imports this module.)
    from invoice_pipeline.findings import ensure_findings_tables

    ensure_findings_tables(con)


def ensure_raw_tables(con: duckdb.DuckDBPyConnection, spec: SourceSpec) -> None:
    """Create `raw.<table>` for each table of a source: every column text, plus lineage."""
    ensure_audit_tables(con)
    for table in spec.tables.values():
        columns = ", ".join(f"{quote(c)} varchar" for c in table.raw_columns)
        con.execute(f"create table if not exists raw.{quote(table.name)} ({columns})")


def current_raw_sql(table: TableSpec, source: str) -> str:
    """SELECT of a raw table's rows that belong to current loads, with the load's sequence."""
    columns = ", ".join(f"r.{quote(c)}" for c in table.raw_columns)
    return (
        f"select {columns}, c.file_seq as _file_seq "
        f"from raw.{quote(table.name)} as r "
        f"join audit.current_loads as c on r._load_id = c.load_id "
        f"where c.source = '{source}'"
    )


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None):
    """The first value of a query's first row (None for no rows).

    Drains the result: DuckDB 2.0 keeps a half-read result open and refuses the next query.
    """
    rows = con.execute(sql, params or []).fetchall()
    return rows[0][0] if rows else None


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        scalar(
            con,
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, table],
        )
    )


def row_count(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> int:
    return int(scalar(con, f"select count(*) from {schema}.{quote(table)}") or 0)
