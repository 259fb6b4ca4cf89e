"""Audit: the load log — what happened to every landed file."""

import dagster as dg

from invoice_pipeline.defs.ingest.assets import raw_key
from invoice_pipeline.defs.metadata import table_metadata
from invoice_pipeline.defs.resources import WAREHOUSE_POOL, Warehouse
from invoice_pipeline.defs.staging.assets import staging_key
from invoice_pipeline.layers import STAGING_TABLES
from invoice_pipeline.specs import load_specs

_UPSTREAM = [raw_key(t) for spec in load_specs().values() for t in spec.tables] + [
    staging_key(t) for tables in STAGING_TABLES.values() for t in tables
]


@dg.asset(
    key=dg.AssetKey(["audit", "load_log"]),
    deps=_UPSTREAM,
    group_name="audit",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
)
def load_log(warehouse: Warehouse) -> dg.MaterializeResult:
    """One row per landed file seen (SPEC §4.3): loaded, skipped_duplicate or quarantined, with
    the reason, rows read/loaded/rejected and whether the file's 合计行 control total held.

    rows_loaded and rows_rejected are derived from audit.rejected_rows, so they always agree
    with it. The materialisation lists the quarantined files and the files whose control total
    does not hold.
    """
    with warehouse.connect() as con:
        by_status = dict(
            con.execute(
                "select status, count(*) from audit.load_log group by status order by status"
            ).fetchall()
        )
        problems = con.sql(
            "select source, file_name, status, "
            "coalesce(reason, 'control total does not match 合计行') as reason from audit.load_log "
            "where status = 'quarantined' or control_total_ok = false "
            "order by source, file_name"
        ).fetchall()
        metadata = table_metadata(con, "audit", "load_log")
    table = "| source | file | status | reason |\n|---|---|---|---|\n" + "\n".join(
        f"| {s} | {f} | {st} | {r} |" for s, f, st, r in problems
    )
    return dg.MaterializeResult(
        metadata={
            **metadata,
            **{f"files_{status}": count for status, count in by_status.items()},
            "files_needing_attention": dg.MetadataValue.md(table if problems else "_(none)_"),
        }
    )
