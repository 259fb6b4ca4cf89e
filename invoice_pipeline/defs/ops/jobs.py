"""The nightly job over the whole graph, and its schedule."""

import dagster as dg

nightly = dg.define_asset_job(
    "nightly",
    selection=dg.AssetSelection.all(),
    description="Ingest every landed file, stage, build core, audit and reports — the whole graph.",
)

nightly_schedule = dg.ScheduleDefinition(
    name="nightly_schedule",
    job=nightly,
    cron_schedule="0 2 * * *",
    execution_timezone="Asia/Shanghai",
    description="Runs the nightly job at 02:00 Asia/Shanghai.",
)
