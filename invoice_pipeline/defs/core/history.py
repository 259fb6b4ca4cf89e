"""Core: the invoice history, appended run by run (invoice_pipeline/history.py has the rules).

Unlike the SQL models beside it, `core.invoice_history` is never rebuilt: each run appends the
changes it observes, and the table keeps what earlier loads said after raw, staging and core
have moved on.
"""

import dagster as dg

from invoice_pipeline.defs.metadata import markdown_table, table_metadata
from invoice_pipeline.defs.resources import WAREHOUSE_POOL, RunSettings, Warehouse
from invoice_pipeline.history import PROBLEMS, history_problems, update_history
from invoice_pipeline.warehouse import scalar

HISTORY_KEY = dg.AssetKey(["core", "invoice_history"])
_INPUTS = [
    dg.AssetKey(["staging", "tax_platform"]),
    dg.AssetKey(["staging", "einvoice"]),
    dg.AssetKey(["staging", "erp"]),
    dg.AssetKey(["staging", "reimbursement"]),
    dg.AssetKey(["core", "matches"]),
    # audit.file_loads and audit.current_loads: when each load arrived, which version is current
    dg.AssetKey(["audit", "load_log"]),
]


@dg.asset(
    key=HISTORY_KEY,
    deps=_INPUTS,
    group_name="core",
    kinds={"duckdb", "sql"},
    pool=WAREHOUSE_POOL,
    metadata={"dagster/table_name": "core.invoice_history"},
)
def invoice_history(
    context: dg.AssetExecutionContext, warehouse: Warehouse, settings: RunSettings
) -> dg.MaterializeResult:
    """Every change the pipeline has observed for an invoice across loads: first seen where and
    when, status changes (正常 → 已红冲-全额), amount or party corrections, ERP booking, cancellation
    and unbooking, claims attached, changed and removed — each with the load and file that showed
    it, when that load arrived and the run (as-of instant) that observed it. Append-only: each
    run compares every invoice's current state per aspect (platform, einvoice, erp, claim) with
    the last recorded value and appends one event per change; a run with no new data appends
    nothing. Grain: one row per observed change of one aspect (one item of it: an XML/OFD file,
    an ERP document, a claim) of one invoice, numbered per invoice by event_seq."""
    observed_at = settings.as_of_instant()
    with warehouse.connect() as con:
        update = update_history(con, context.run.run_id, observed_at)
        table = table_metadata(con, "core", "invoice_history")
        invoices = int(scalar(con, "select count(distinct invoice_uid) from core.invoice_history") or 0)
    return dg.MaterializeResult(
        metadata={
            **table,
            "events_added": update.events_added,
            "events_before_run": update.events_before,
            "invoices_changed": update.invoices_changed,
            "invoices_with_history": invoices,
            "added_by_event": dg.MetadataValue.md(
                markdown_table(["aspect/event", "events added"], sorted(update.by_event.items()))
            ),
            "observed_at": observed_at.isoformat(),
            "warehouse": str(warehouse.path),
        },
    )


def _events_lost(context: dg.AssetCheckExecutionContext, con, warehouse: Warehouse) -> tuple[int, int | None]:
    """(events recorded by earlier runs now, what the previous run on this warehouse left).

    The previous count comes from the asset's latest materialisation by another run on the same
    warehouse file among the last ten, when the Dagster instance has one (a fresh one has none).
    """
    run_id = context.run.run_id
    earlier = int(scalar(con, "select count(*) from core.invoice_history where run_id <> ?", [run_id]) or 0)
    for record in context.instance.fetch_materializations(HISTORY_KEY, limit=10).records:
        metadata = record.asset_materialization.metadata if record.asset_materialization else {}
        same_warehouse = "warehouse" in metadata and metadata["warehouse"].value == str(warehouse.path)
        if record.run_id != run_id and same_warehouse:
            return earlier, int(metadata["dagster/row_count"].value)
    return earlier, None


@dg.asset_check(
    asset=HISTORY_KEY,
    pool=WAREHOUSE_POOL,
    description="The history is append-only and whole: each invoice's event_seq runs 1..n without gaps, no "
    "event was observed before an earlier-numbered one, every ERP document, claim and file starts "
    "with its opening event (first_seen, erp_booked/erp_cancelled, claim_attached), every change "
    "has its before and after values, aspects and events are from the documented vocabulary, and "
    "no event recorded by an earlier run has gone "
    "(checked against the previous run's row count when the Dagster instance keeps it). A failure "
    "means the history was edited, truncated, restored from an older backup or run for an "
    "earlier as-of date than a previous run.",
)
def invoice_history_is_append_only(
    context: dg.AssetCheckExecutionContext, warehouse: Warehouse
) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        problems = history_problems(con)
        earlier, previous = _events_lost(context, con, warehouse)
    lost = max(0, previous - earlier) if previous is not None else 0
    metadata = {name: problems[name].count if name in problems else 0 for name in PROBLEMS}
    metadata["events_from_earlier_runs"] = earlier
    if previous is not None:
        metadata["events_after_previous_run"] = previous
    metadata["events_lost"] = lost
    if problems:
        metadata["examples"] = dg.MetadataValue.md(
            "\n\n".join(
                f"**{name}**\n\n" + markdown_table(problem.columns, problem.examples)
                for name, problem in problems.items()
            )
        )
    return dg.AssetCheckResult(
        passed=not problems and not lost,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
    )
