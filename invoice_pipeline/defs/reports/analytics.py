"""The analysts' database: `warehouse/analytics.duckdb`, republished after every run."""

import time

import dagster as dg

from invoice_pipeline import project
from invoice_pipeline.defs.audit.findings import FINDINGS_KEY, RUNS_KEY
from invoice_pipeline.defs.core.history import HISTORY_KEY
from invoice_pipeline.defs.metadata import markdown_table
from invoice_pipeline.defs.resources import WAREHOUSE_POOL, Warehouse
from invoice_pipeline.layers import discover_models
from invoice_pipeline.publish import STORAGE_VERSION, glossary_gaps, load_spec, publish_analytics

ANALYTICS_DB_KEY = dg.AssetKey(["reports", "analytics_db"])
LOAD_LOG_KEY = dg.AssetKey(["audit", "load_log"])
# Everything the snapshot copies: the ledger and logs, the invoice history, and every core and report model.
_MODEL_KEYS = [
    dg.AssetKey([m.schema, m.table])
    for m in discover_models(project.MODELS_DIR)
    if m.schema in load_spec().schemas and m.schema != "audit"
]


@dg.asset(
    key=ANALYTICS_DB_KEY,
    deps=[FINDINGS_KEY, RUNS_KEY, LOAD_LOG_KEY, HISTORY_KEY, *_MODEL_KEYS],
    group_name="reports",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    metadata={"storage_version": STORAGE_VERSION, "spec": "assets/publish/analytics.yaml"},
)
def analytics_db(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """`warehouse/analytics.duckdb`: the database analysts open read-only, at any time, even while a
    run writes the warehouse (SPEC §2, §5). A copy of the core, audit and report schemas as of the
    end of this run: each table and view of them is one table here, with the same rows (grain as
    in the warehouse: core.invoices one row per invoice per tax source per entity side,
    audit.findings one row per problem, …) and a comment on every table and column.

    Personal data is masked in the copy (assets/publish/analytics.yaml): TINs that hold a
    resident ID (individuals, sole proprietors) show their first 6 and last 4 characters, names
    of private persons only their first character, and the same inside the findings' JSON
    evidence; company TINs and names are kept. raw and staging are not published.

    The file is written beside the old one and renamed over it, so readers see either the old
    snapshot or the new one, never a partial file; it is readable by DuckDB 1.5 and later.
    """
    target = project.analytics_path(warehouse.root)
    with warehouse.connect() as con:
        started = time.perf_counter()
        counts = publish_analytics(con, target)
        seconds = time.perf_counter() - started
        gaps = glossary_gaps(con)
    if gaps:
        context.log.warning(f"analytics.duckdb: no description in analytics.yaml for {', '.join(gaps)}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(target)),
            "tables": len(counts),
            "total_rows": sum(counts.values()),
            "dagster/row_count": sum(counts.values()),
            "size_bytes": target.stat().st_size,
            "publish_seconds": round(seconds, 2),
            "row_counts": dg.MetadataValue.md(markdown_table(["table", "rows"], sorted(counts.items()))),
            "undescribed_columns": dg.MetadataValue.md(
                "\n".join(f"- {g}" for g in gaps) if gaps else "_(none)_"
            ),
        }
    )
