"""Materialisation metadata that the Dagster UI shows for a warehouse table."""

import dagster as dg
import duckdb

from invoice_pipeline.warehouse import quote, row_count


def table_metadata(con: duckdb.DuckDBPyConnection, schema: str, table: str, preview_rows: int = 5) -> dict:
    """Row count, column schema, table name and a short preview of `<schema>.<table>`."""
    columns = con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [schema, table],
    ).fetchall()
    relation = f"{schema}.{quote(table)}"
    count = row_count(con, schema, table)
    preview = con.sql(f"select * from {relation} limit {int(preview_rows)}").pl()
    return {
        "dagster/row_count": count,
        "dagster/table_name": f"{schema}.{table}",
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name, data_type) for name, data_type in columns]
        ),
        "preview": dg.MetadataValue.md(markdown_table(preview.columns, preview.iter_rows())),
    }


def markdown_table(headers, rows) -> str:
    """A Markdown table for the UI; cells are escaped so data cannot break the layout."""
    rows = list(rows)
    if not rows:
        return "_(no rows)_"

    def cell(value) -> str:
        return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
