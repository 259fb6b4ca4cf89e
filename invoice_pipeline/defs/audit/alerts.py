"""Audit: the alerts a run raises (new error findings, sync problems), and whether they got out."""

from datetime import UTC, datetime

import dagster as dg

from invoice_pipeline.alerts import (
    SYNC_FAMILY,
    WEBHOOK_ENV,
    ensure_alerts_table,
    raise_alerts,
    record_pending,
    retry_failed,
    run_alerts,
    undelivered,
)
from invoice_pipeline.defs.audit.findings import FINDINGS_KEY
from invoice_pipeline.defs.metadata import markdown_table, table_metadata
from invoice_pipeline.defs.resources import WAREHOUSE_POOL, RunSettings, Warehouse
from invoice_pipeline.findings import load_rules

ALERTS_KEY = dg.AssetKey(["audit", "alerts"])
SYNC_HEALTH_KEY = dg.AssetKey(["audit", "sync_health"])


@dg.asset(
    key=ALERTS_KEY,
    deps=[FINDINGS_KEY, SYNC_HEALTH_KEY],
    group_name="audit",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    metadata={"dagster/table_name": "audit.alerts"},
    check_specs=[
        dg.AssetCheckSpec(
            "alerts_delivered",
            asset=ALERTS_KEY,
            description="Every alert of the last 7 days reached the webhook (when one is configured).",
        )
    ],
)
def alerts(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: RunSettings):
    """audit.alerts: one row per alert — run, kind (run_failed, new_error_findings, sync_problems),
    severity, title and message (what, how many, how much money, where to look), the findings'
    count and amount, and its delivery to `$INVOICE_PIPELINE_ALERT_WEBHOOK` (sent, failed,
    not_configured).

    This run raises an alert for the error findings it opened or reopened and one for new sync
    findings (with audit.sync_health's line for each system concerned); problems that stay open
    raise nothing again. Also records failure alerts that waited for the warehouse, and retries
    deliveries of the last 7 days that failed. Run failures themselves are alerted by the
    `run_failure_alert` sensor.
    """
    now = datetime.now(UTC)
    sync_rules = {r.rule_id for r in load_rules().values() if r.family == SYNC_FAMILY}
    with warehouse.connect() as con:
        ensure_alerts_table(con)
        pending = record_pending(con, warehouse.root)
        retried = retry_failed(con, now)
        raised = raise_alerts(
            con,
            run_alerts(con, context.run.run_id, settings.as_of_instant(), warehouse.root, sync_rules),
            now,
        )
        failed = undelivered(con, now)
        table = table_metadata(con, "audit", "alerts")
    for alert, delivery in raised:
        log = context.log.warning if delivery.status == "failed" else context.log.info
        error = f": {delivery.error}" if delivery.error else ""
        log(f"alert {alert.kind}: {alert.title} — delivery {delivery.status}{error}")
    yield dg.MaterializeResult(
        metadata={
            **table,
            "raised": len(raised),
            "pending_recorded": pending,
            "retried": len(retried),
            "alerts": dg.MetadataValue.md(
                markdown_table(
                    ["kind", "severity", "title", "delivery"],
                    [(a.kind, a.severity, a.title, d.status) for a, d in raised],
                )
                if raised
                else "_(none: this run opened no error findings and no sync problems)_"
            ),
        }
    )
    yield dg.AssetCheckResult(
        check_name="alerts_delivered",
        passed=not failed,
        severity=dg.AssetCheckSeverity.WARN,
        description=None
        if not failed
        else f"{len(failed)} alert(s) not delivered; set or fix ${WEBHOOK_ENV}",
        metadata={
            "undelivered": dg.MetadataValue.md(
                markdown_table(["kind", "run", "error"], failed) if failed else "_(none)_"
            )
        },
    )
