"""The nightly job over the whole graph, and its schedule."""

import dagster as dg

# The compliance report is partitioned by month and has its own job (monthly_reports); an
# unpartitioned job cannot carry it. The CLI's `run` writes the reports after the nightly job.
COMPLIANCE_REPORT = dg.AssetKey(["reports", "compliance_report"])

nightly = dg.define_asset_job(
    "nightly",
    selection=dg.AssetSelection.all(include_sources=False) - dg.AssetSelection.assets(COMPLIANCE_REPORT),
    description="Ingest every landed file, stage, build core, the findings ledger, the report tables and "
    "the analysts' snapshot: the whole graph but the monthly compliance workbooks.",
)

nightly_schedule = dg.ScheduleDefinition(
    name="nightly_schedule",
    job=nightly,
    cron_schedule="0 2 * * *",
    execution_timezone="Asia/Shanghai",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Runs the nightly job at 02:00 Asia/Shanghai; on from the start, so the pipeline runs "
    "unattended.",
)
