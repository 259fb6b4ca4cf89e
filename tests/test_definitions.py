"""The Dagster definitions load, and every asset explains itself."""

from __future__ import annotations

import dagster as dg

from invoice_pipeline.definitions import defs


def test_definitions_load_with_groups_and_descriptions():
    definitions = defs()
    specs = list(definitions.resolve_all_asset_specs())
    groups = {spec.group_name for spec in specs}
    assert {"ingest", "staging", "core", "audit"} <= groups
    keys = {spec.key.to_user_string() for spec in specs}
    assert {
        "raw/tax_platform",
        "raw/tax_platform_lines",
        "raw/einvoice",
        "raw/erp",
        "raw/reimbursement",
        "raw/sync_log",
        "raw/entities",
        "staging/tax_platform",
        "staging/erp",
        "staging/erp_invoice_refs",
        "core/invoices",
        "core/invoice_lines",
        "core/invoice_aliases",
        "audit/load_log",
    } <= keys
    for spec in specs:
        assert spec.description and len(spec.description) > 40, spec.key
        assert spec.owners == ["team:finance-data"], spec.key
        assert spec.kinds, spec.key


def test_core_models_depend_on_what_their_sql_reads():
    definitions = defs()
    graph = {
        spec.key.to_user_string(): {dep.asset_key.to_user_string() for dep in spec.deps}
        for spec in definitions.resolve_all_asset_specs()
    }
    assert graph["core/invoices"] == {"staging/tax_platform", "staging/einvoice", "staging/entities"}
    assert graph["core/invoice_aliases"] == {"core/invoices"}


def test_nightly_job_and_schedule():
    definitions = defs()
    job = definitions.resolve_job_def("nightly")
    assert isinstance(job.executor_def, dg.ExecutorDefinition)
    assert job.executor_def.name == "in_process"
    schedule = definitions.resolve_schedule_def("nightly_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "Asia/Shanghai"
