"""The findings ledger against generated trees with known planted problems, and its lifecycle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_erp_csv

from invoice_pipeline import project
from invoice_pipeline.cli import run_pipeline
from invoice_pipeline.findings import load_rules
from invoice_pipeline.generate import generate
from invoice_pipeline.warehouse import connect

AS_OF = "2026-11-01"


def query(data_dir: Path, sql: str, params=None) -> list[tuple]:
    con = connect(project.warehouse_path(data_dir), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def open_findings(data_dir: Path) -> set[tuple]:
    return set(
        query(
            data_dir,
            "select rule_id, subject, entity_tin, direction from audit.findings where status = 'open'",
        )
    )


def expected_findings(truth: dict) -> set[tuple]:
    return {(p["rule_id"], p["subject"], p["entity_tin"], p["direction"]) for p in truth["problems"]}


def assert_findings_equal_truth(data_dir: Path, truth: dict) -> None:
    found = open_findings(data_dir)
    expected = expected_findings(truth)
    assert sorted(expected - found) == [], "planted problems not found"
    assert sorted(found - expected) == [], "findings that were not planted"
    periods = {
        (r, s): p
        for r, s, p in query(
            data_dir, "select rule_id, subject, period from audit.findings where status = 'open'"
        )
    }
    for problem in truth["problems"]:
        if problem.get("period"):
            assert periods[(problem["rule_id"], problem["subject"])] == problem["period"], problem


def generated(tmp_path: Path, invoices: int, seed: int) -> tuple[Path, dict]:
    truth = generate(tmp_path, invoices=invoices, seed=seed)
    return tmp_path, truth


def test_findings_equal_truth_on_the_shared_sample(generated_data_dir):
    truth = json.loads((generated_data_dir / "truth.json").read_text(encoding="utf-8"))
    run_pipeline(generated_data_dir, truth["as_of"])
    assert_findings_equal_truth(generated_data_dir, truth)
    assert {p["rule_id"] for p in truth["problems"]} == set(load_rules())


def test_lookalikes_raise_nothing(generated_data_dir):
    truth = json.loads((generated_data_dir / "truth.json").read_text(encoding="utf-8"))
    run_pipeline(generated_data_dir, truth["as_of"])
    flagged = {
        s for (s,) in query(generated_data_dir, "select subject from audit.findings where status = 'open'")
    }
    flagged |= {
        u
        for (u,) in query(
            generated_data_dir,
            "select invoice_uid from audit.findings where status = 'open' and invoice_uid is not null",
        )
    }
    kinds = set()
    for lookalike in truth["lookalikes"]:
        kinds.add(lookalike["kind"])
        named = set(lookalike.get("invoice_uids") or []) | set(lookalike.get("erp_documents") or [])
        assert not named & flagged, lookalike
    assert len(kinds) >= 6


@pytest.mark.parametrize(("invoices", "seed"), [(500, 11), (5_000, 23)])
def test_findings_equal_truth_on_other_seeds(tmp_path, invoices, seed):
    data_dir, truth = generated(tmp_path, invoices, seed)
    run_pipeline(data_dir, truth["as_of"])
    assert_findings_equal_truth(data_dir, truth)


@pytest.mark.slow
def test_findings_equal_truth_at_50k(tmp_path):
    data_dir, truth = generated(tmp_path, 50_000, 5)
    run_pipeline(data_dir, truth["as_of"])
    assert_findings_equal_truth(data_dir, truth)


def _booking_row(data_dir: Path, invoice_uid: str, doc_no: str, cancelled: bool) -> list[str]:
    """An ERP row that books the invoice exactly as the platform has it."""
    (org, direction, counterparty, name, excl, tax, incl, issue_date, period, digital, code, number) = query(
        data_dir,
        "select e.erp_org_code, i.direction, i.counterparty_tin, "
        "case when i.direction = 'issued' then i.buyer_name else i.seller_name end, "
        "i.amount_excl_tax, i.tax_amount, i.amount_incl_tax, i.issue_date, i.tax_period, "
        "i.digital_invoice_no, i.invoice_code, i.invoice_no "
        "from core.authoritative_invoices i join staging.entities e on i.entity_tin = e.tin "
        "where i.invoice_uid = ?",
        [invoice_uid],
    )[0]
    return [
        org,
        "销项" if direction == "issued" else "进项",
        doc_no,
        "记-999",
        str(issue_date),
        period,
        name or "",
        counterparty or "",
        "",
        code or "",
        digital or number,
        str(issue_date),
        str(excl),
        "",
        str(tax),
        str(incl),
        "CNY",
        "已审核",
        "是" if cancelled else "否",
        "补录员",
        "late booking",
    ]


def test_findings_resolve_when_fixed_and_reopen_with_history(tmp_path):
    data_dir, truth = generated(tmp_path, 500, 11)
    run_pipeline(data_dir, AS_OF)
    missing = sorted(p["subject"] for p in truth["problems"] if p["rule_id"] == "missing_in_erp")
    stale = sorted(p["subject"] for p in truth["problems"] if p["rule_id"] == "sync_stale")
    assert missing and stale
    fixed_invoice, fixed_system = missing[0], stale[0]
    before = dict(query(data_dir, "select finding_id, first_seen_at from audit.findings"))

    # Fix: the invoice is booked late, and the stale sync system succeeds again.
    erp_file = project.landing_dir(data_dir) / "erp" / "late_bookings.csv"
    write_erp_csv(erp_file, [_booking_row(data_dir, fixed_invoice, "LATE-0001", cancelled=False)])
    (project.landing_dir(data_dir) / "sync_log" / "rerun.jsonl").write_text(
        json.dumps(
            {
                "run_id": "manual-rerun",
                "system": fixed_system,
                "entity_tin": None,
                "started_at": "2026-11-02T01:20:00+08:00",
                "finished_at": "2026-11-02T01:30:00+08:00",
                "status": "success",
                "records_read": 1,
                "records_written": 1,
                "records_failed": 0,
                "error": None,
            }
        )
        + "\n",
        encoding="utf-8",
    )
    run_pipeline(data_dir, "2026-11-02")

    rows = {
        (r, s): (st, first, resolved)
        for r, s, st, first, resolved in query(
            data_dir, "select rule_id, subject, status, first_seen_at, resolved_at from audit.findings"
        )
    }
    for key in (("missing_in_erp", fixed_invoice), ("sync_stale", fixed_system)):
        status, _, resolved_at = rows[key]
        assert status == "resolved" and resolved_at is not None, key
    fixed = {("missing_in_erp", fixed_invoice), ("sync_stale", fixed_system)}
    still_planted = {(r, s) for r, s, *_ in expected_findings(truth)} - fixed
    assert still_planted == {key for key, (status, *_) in rows.items() if status == "open"}
    after = dict(query(data_dir, "select finding_id, first_seen_at from audit.findings"))
    assert all(after[fid] == first for fid, first in before.items())

    # Break it again: the late booking is cancelled in a new version of the same file.
    write_erp_csv(erp_file, [_booking_row(data_dir, fixed_invoice, "LATE-0001", cancelled=True)])
    run_pipeline(data_dir, "2026-11-03")
    status, first_seen, resolved_at = query(
        data_dir,
        "select status, first_seen_at, resolved_at from audit.findings "
        "where rule_id = 'missing_in_erp' and subject = ?",
        [fixed_invoice],
    )[0]
    assert (status, resolved_at) == ("open", None)
    finding_id = query(
        data_dir,
        "select finding_id from audit.findings where rule_id = 'missing_in_erp' and subject = ?",
        [fixed_invoice],
    )[0][0]
    assert first_seen == before[finding_id]
    events = [
        e
        for (e,) in query(
            data_dir,
            "select event from audit.finding_events where finding_id = ? order by event_at",
            [finding_id],
        )
    ]
    assert events == ["opened", "resolved", "reopened"]
    runs = query(
        data_dir, "select as_of, findings_resolved, findings_reopened from audit.runs order by evaluated_at"
    )
    assert [(str(a), res, reo) for a, res, reo in runs] == [
        ("2026-11-01", 0, 0),
        ("2026-11-02", 2, 0),
        ("2026-11-03", 0, 1),
    ]


def test_every_rule_has_a_typed_view(generated_data_dir):
    truth = json.loads((generated_data_dir / "truth.json").read_text(encoding="utf-8"))
    run_pipeline(generated_data_dir, truth["as_of"])
    for rule_id in load_rules():
        counted = query(generated_data_dir, f'select count(*) from audit."{rule_id}"')[0][0]
        planted = sum(1 for p in truth["problems"] if p["rule_id"] == rule_id)
        assert counted == planted, rule_id
    columns = [
        c
        for (c,) in query(
            generated_data_dir,
            "select column_name from duckdb_columns() "
            "where schema_name = 'audit' and table_name = 'amount_mismatch'",
        )
    ]
    assert {"erp_incl_tax", "invoice_incl_tax"} <= set(columns)
