"""The compliance report asset (monthly partitions, Asia/Shanghai), its job and its schedule.

Partitions: `MonthlyPartitionsDefinition(start_date="2026-01", fmt="%Y-%m", end_offset=0)`.
- `fmt="%Y-%m"`: the partition key is the report month itself (`2026-03`), the same string as
  the folder `reports/<YYYY-MM>/` and the `period` column of the report tables.
- `start_date`: January 2026, the first month the warehouse holds data for (the platform exports
  and ERP registers start there). Earlier months can still be written with the plain function
  `write_reports_for_month`, which the CLI calls for every month with data.
- `end_offset=0`: the last partition is the last *completed* month. A report is a month-end
  document; a running month is not a partition, and the schedule built from the job requests the
  latest partition, so on 1 April 06:00 it runs March — with end_offset=1 it would run April,
  a month that has just begun.

The asset reads the `report.*` tables and `audit.findings`; it does not write the warehouse.
The unpartitioned nightly job (defs/ops/jobs.py) selects everything but this asset, and the CLI
writes the reports of every month with data after the nightly job (`write_reports_for_month`).
"""

from decimal import Decimal

import dagster as dg

from invoice_pipeline.defs.audit.findings import FINDINGS_KEY
from invoice_pipeline.defs.resources import WAREHOUSE_POOL, Warehouse
from invoice_pipeline.layers import discover_models
from invoice_pipeline.project import MODELS_DIR
from invoice_pipeline.reports import (
    entities,
    summary_markdown,
    write_compliance_report,
    write_reports_for_month,
)

__all__ = [
    "COMPLIANCE_REPORT_KEY",
    "MONTHLY",
    "compliance_report",
    "monthly_reports",
    "monthly_reports_schedule",
    "write_reports_for_month",
]

TIMEZONE = "Asia/Shanghai"
MONTHLY = dg.MonthlyPartitionsDefinition(start_date="2026-01", fmt="%Y-%m", timezone=TIMEZONE, end_offset=0)
COMPLIANCE_REPORT_KEY = dg.AssetKey(["reports", "compliance_report"])
REPORT_TABLE_KEYS = [
    dg.AssetKey([m.schema, m.table]) for m in discover_models(MODELS_DIR) if m.schema == "report"
]


@dg.asset(
    key=COMPLIANCE_REPORT_KEY,
    deps=[*REPORT_TABLE_KEYS, FINDINGS_KEY],
    group_name="reports",
    kinds={"excel", "html"},
    partitions_def=MONTHLY,
    pool=WAREHOUSE_POOL,
)
def compliance_report(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """The monthly compliance report of every entity: `reports/<YYYY-MM>/<entity_tin>/
    compliance_report.xlsx` (summary sheet, findings per rule, one sheet per finding family with the
    evidence, VAT by rate; amounts in 元) and `compliance_report.html` (the same with inline SVG
    charts, readable offline). Personal data is masked. The materialisation shows each entity's
    summary as Markdown and the paths of the files.
    """
    month = context.partition_key
    out_dir = warehouse.root / "reports"
    metadata: dict[str, dg.RawMetadataValue] = {}
    open_findings, money = 0, Decimal(0)
    with warehouse.connect() as con:
        ours = entities(con)
        for tin, _name in ours:
            xlsx, html, summary = write_compliance_report(con, tin, month, out_dir)
            open_findings += summary["open_findings"]
            money += summary["money_at_stake"]
            metadata[f"summary_{tin}"] = dg.MetadataValue.md(summary_markdown(summary))
            metadata[f"xlsx_{tin}"] = dg.MetadataValue.path(str(xlsx))
            metadata[f"html_{tin}"] = dg.MetadataValue.path(str(html))
    if not ours:
        context.log.warning("staging.entities is empty: no entity to report on")
    return dg.MaterializeResult(
        metadata={
            "month": month,
            "entities": len(ours),
            "open_findings": open_findings,
            "money_at_stake": float(money),
            "report_dir": dg.MetadataValue.path(str(out_dir / month)),
            **metadata,
        }
    )


monthly_reports = dg.define_asset_job(
    "monthly_reports",
    selection=dg.AssetSelection.assets(COMPLIANCE_REPORT_KEY),
    description="Write the compliance workbook and HTML of every entity for one month.",
)

monthly_reports_schedule = dg.build_schedule_from_partitioned_job(
    monthly_reports,
    name="monthly_reports_schedule",
    description="On the 1st of each month at 06:00 Asia/Shanghai (after the 02:00 nightly run), the "
    "compliance reports of the month that just ended.",
    day_of_month=1,
    hour_of_day=6,
    minute_of_hour=0,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
