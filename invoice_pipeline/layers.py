"""Building each warehouse layer, as plain functions over a DuckDB connection.

Dagster assets only call these; the CLI and tests can too. Every function replaces what
it owns inside one transaction, so running it again gives the same warehouse.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from invoice_pipeline import staging as st
from invoice_pipeline.specs import SourceSpec
from invoice_pipeline.warehouse import (
    current_raw_sql,
    ensure_raw_tables,
    quote,
    row_count,
    table_exists,
    transaction,
)

# Staging tables each source produces, in the order they are built. Sources whose rows are
# scoped to our entities read staging.entities as well as their own raw tables.
STAGING_TABLES: dict[str, tuple[str, ...]] = {
    "entities": ("entities",),
    "tax_platform": ("tax_platform", "tax_platform_lines"),
    "einvoice": ("einvoice", "einvoice_lines"),
    "erp": ("erp", "erp_invoice_refs"),
    "reimbursement": ("reimbursement",),
    "sync_log": ("sync_log",),
}
NEEDS_ENTITIES = frozenset({"tax_platform", "einvoice", "erp"})

_EMPTY_ENTITIES = pl.DataFrame(
    schema={"tin": pl.String, "erp_org_code": pl.String, "name_keys": pl.List(pl.String)}
)


def _current_raw(con: duckdb.DuckDBPyConnection, spec: SourceSpec, table: str) -> pl.DataFrame:
    return con.sql(current_raw_sql(spec.tables[table], spec.name)).pl()


def _current_raw_chunks(
    con: duckdb.DuckDBPyConnection, spec: SourceSpec, table: str
) -> Iterator[pl.DataFrame]:
    """The current raw rows in chunks of about `staging.CHUNK_ROWS` (at least one, maybe empty).

    Read on a cursor of its own, so the connection stays usable while the chunks are consumed.
    """
    cursor = con.cursor()
    try:
        reader = cursor.sql(current_raw_sql(spec.tables[table], spec.name)).to_arrow_reader(st.CHUNK_ROWS)
        empty = True
        for batch in reader:
            empty = False
            yield pl.from_arrow(batch)
        if empty:
            yield pl.from_arrow(reader.schema.empty_table())
    finally:
        cursor.close()


def _entities(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    if not table_exists(con, "staging", "entities"):
        return _EMPTY_ENTITIES
    return con.sql("select tin, erp_org_code, name_keys from staging.entities").pl()


def stage(con: duckdb.DuckDBPyConnection, spec: SourceSpec) -> dict[str, st.Staged]:
    """Typed staging rows and rejects for every table of one source (not yet written)."""
    ensure_raw_tables(con, spec)
    name = spec.name
    tables = spec.tables
    entities = _entities(con) if name in NEEDS_ENTITIES else None
    if name == "entities":
        return {"entities": st.stage_entities(_current_raw(con, spec, "entities"), tables["entities"])}
    if name == "tax_platform":
        return {
            "tax_platform": st.stage_tax_platform(
                _current_raw_chunks(con, spec, "tax_platform"), tables["tax_platform"], entities
            ),
            "tax_platform_lines": st.stage_tax_platform_lines(
                _current_raw(con, spec, "tax_platform_lines"), tables["tax_platform_lines"]
            ),
        }
    if name == "einvoice":
        invoices = _current_raw(con, spec, "einvoice")
        formats = invoices.select(
            "_load_id", pl.col("file_format").str.strip_chars().alias("__format")
        ).unique("_load_id")
        return {
            "einvoice": st.stage_einvoice(invoices, tables["einvoice"], entities),
            "einvoice_lines": st.stage_einvoice_lines(
                _current_raw(con, spec, "einvoice_lines"), tables["einvoice_lines"], formats
            ),
        }
    if name == "erp":
        erp = st.stage_erp(_current_raw_chunks(con, spec, "erp"), tables["erp"], entities)
        refs = st.Staged(st.erp_invoice_refs(erp.table), st.empty_rejects())
        return {"erp": erp, "erp_invoice_refs": refs}
    if name == "reimbursement":
        return {
            "reimbursement": st.stage_reimbursement(
                _current_raw(con, spec, "reimbursement"), tables["reimbursement"]
            )
        }
    if name == "sync_log":
        return {"sync_log": st.stage_sync_log(_current_raw(con, spec, "sync_log"), tables["sync_log"])}
    raise ValueError(f"no staging for source {name!r}")


def write_staged(con: duckdb.DuckDBPyConnection, source: str, staged: dict[str, st.Staged]) -> dict[str, int]:
    """Replace a source's staging tables and its parse/duplicate rejects, atomically."""
    counts = {}
    with transaction(con):
        for table_name, result in staged.items():
            frame = result.table  # noqa: F841 — read by DuckDB's replacement scan
            con.execute(f"create or replace table staging.{quote(table_name)} as select * from frame")
            # Superseded loads keep the rejects they had while current: that is their history.
            con.execute(
                "delete from audit.rejected_rows where source = ? and table_name = ? and stage <> 'read' "
                "and load_id in (select load_id from audit.current_loads)",
                [source, table_name],
            )
            rejects = result.rejects.select(  # noqa: F841
                pl.col("_load_id").alias("load_id"),
                pl.lit(source).alias("source"),
                pl.lit(table_name).alias("table_name"),
                pl.col("_source_file").alias("file_name"),
                pl.col("_source_row").alias("source_row"),
                "column_name",
                "raw_value",
                "reason",
                "stage",
            )
            con.execute("insert into audit.rejected_rows by name select * from rejects")
            counts[table_name] = result.table.height
    return counts


@dataclass(frozen=True)
class Model:
    """A SQL model: `assets/models/<schema>/<table>.sql`, one SELECT."""

    schema: str
    table: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def depends_on(self) -> tuple[tuple[str, str], ...]:
        """The (schema, table) relations the SELECT reads, found by name."""
        found = re.findall(r"\b(raw|staging|core|audit|report)\.([a-z_][a-z0-9_]*)\b", self.sql)
        return tuple(sorted({(s, t) for s, t in found if (s, t) != (self.schema, self.table)}))

    @property
    def description(self) -> str:
        """The leading `--` comment block of the SQL file."""
        lines = []
        for line in self.sql.splitlines():
            if not line.startswith("--"):
                break
            lines.append(line.removeprefix("--").strip())
        return " ".join(lines).strip()


def discover_models(models_dir: Path) -> list[Model]:
    models = []
    for path in sorted(models_dir.glob("*/*.sql")):
        schema, table = path.parent.name, path.stem
        if not re.fullmatch(r"[a-z][a-z0-9_]*", schema) or not re.fullmatch(r"[a-z][a-z0-9_]*", table):
            raise ValueError(f"{path}: model folder and file stem must be lower-case identifiers")
        models.append(Model(schema, table, path))
    return models


def build_model(con: duckdb.DuckDBPyConnection, model: Model, as_of: datetime | None = None) -> int:
    """Replace `<schema>.<table>` with the model's SELECT, atomically; returns its row count.

    A model that is evaluated at a point in time (`$as_of` in its SQL) gets the run's as-of
    instant, as the rules do; any other named parameter is an error.
    """
    sql = model.sql
    used = set(re.findall(r"\$([a-z_][a-z0-9_]*)", sql))
    if used - {"as_of"}:
        raise ValueError(
            f"{model.path.name} uses ${', $'.join(sorted(used - {'as_of'}))}; models take only $as_of"
        )
    params = {"as_of": as_of or datetime.now(UTC)} if used else {}
    with transaction(con):
        con.execute(f"create schema if not exists {model.schema}")
        con.execute(f"create or replace table {model.schema}.{quote(model.table)} as {sql}", params)
        return row_count(con, model.schema, model.table)
