"""The whole graph materialised in-process on a tmp_path data directory."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
from test_ingest import snapshot

from invoice_pipeline import project
from invoice_pipeline.definitions import defs
from invoice_pipeline.warehouse import connect


def run_nightly(data_dir: Path, as_of: str = "2026-11-01") -> dg.ExecuteInProcessResult:
    job = defs().resolve_job_def("nightly")
    config = {
        "resources": {
            "warehouse": {"config": {"data_dir": str(data_dir)}},
            "settings": {"config": {"as_of": as_of}},
        }
    }
    with dg.DagsterInstance.ephemeral() as instance:
        return job.execute_in_process(run_config=config, instance=instance)


def query(data_dir: Path, sql: str, params=None) -> list[tuple]:
    con = connect(project.warehouse_path(data_dir), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def test_nightly_on_tiny_tree(tiny_data_dir):
    result = run_nightly(tiny_data_dir)
    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {
        "raw/erp",
        "staging/erp",
        "core/invoices",
        "core/invoice_aliases",
        "audit/load_log",
    } <= materialized
    assert query(tiny_data_dir, "select source, count(*) from core.invoices group by all") == [
        ("tax_platform", 3)
    ]
    aliases = query(
        tiny_data_dir,
        "select alias, alias_kind from core.invoice_aliases "
        "where invoice_uid = '011002100511-00290716' order by alias_kind",
    )
    assert aliases == [
        ("011002100511-00290716", "code_number"),
        ("01100210051100290716", "code_number_joined"),
        ("00290716", "number8"),
        ("011002100511-00290716", "uid"),
    ]


@pytest.mark.slow
def test_generated_tree_lands_completely_and_idempotently(generated_data_dir):
    truth = json.loads((generated_data_dir / "truth.json").read_text(encoding="utf-8"))
    assert run_nightly(generated_data_dir).success

    per_source = dict(
        query(
            generated_data_dir,
            "select source, count(distinct invoice_uid) from core.invoices group by source",
        )
    )
    expected = truth["counts"]["core_invoices"]
    for source in ("tax_platform", "einvoice_xml", "einvoice_ofd"):
        assert per_source.get(source, 0) == expected[source], source
    total = query(generated_data_dir, "select count(distinct invoice_uid) from core.invoices")[0][0]
    assert total == expected["total"]

    # Every ERP and claim row is staged or rejected with a reason: nothing vanishes.
    for source, table in (("erp", "erp"), ("reimbursement", "reimbursement")):
        raw_rows = query(
            generated_data_dir,
            f"select count(*) from raw.{table} r join audit.current_loads c on r._load_id = c.load_id",
        )[0][0]
        (staged,) = query(generated_data_dir, f"select count(*) from staging.{table}")[0]
        (rejected,) = query(
            generated_data_dir,
            "select count(distinct (load_id, source_row)) from audit.rejected_rows "
            "where source = ? and table_name = ? and stage <> 'read'",
            [source, table],
        )[0]
        assert staged + rejected == raw_rows, source

    quarantined = {
        (s, f): r
        for s, f, r in query(
            generated_data_dir,
            "select source, file_name, reason from audit.load_log where status = 'quarantined'",
        )
    }
    for bad in truth["bad_files"]:
        reason = quarantined.get((bad["source"], bad["file"]))
        assert reason is not None, bad
        assert bad["reason_contains"].lower() in reason.lower(), (bad, reason)
    assert len(quarantined) == len(truth["bad_files"])

    rejected_rows = {
        (s, f, r)
        for s, f, r in query(
            generated_data_dir, "select source, file_name, source_row from audit.rejected_rows"
        )
    }
    for bad in truth["bad_rows"]:
        assert (bad["source"], bad["file"], bad["row"]) in rejected_rows, bad

    con = connect(project.warehouse_path(generated_data_dir), read_only=True)
    first = snapshot(con)
    con.close()
    assert run_nightly(generated_data_dir).success
    con = connect(project.warehouse_path(generated_data_dir), read_only=True)
    try:
        assert snapshot(con) == first
    finally:
        con.close()
