"""Remediation (issue 7): actions on findings, their lifecycle, and where they show.

The lifecycle runs once on a generated sample (300 invoices, seed 3) and keeps what each stage
looked like: annotate (the CLI as a subprocess once, in-process otherwise) → the data fixes the
problem → resolved, actions kept → the problem comes back → reopened, actions kept; accepted
risks counted apart everywhere (audit.runs, report tables, workbook, HTML, analytics snapshot)
and still listed. The view's rules are also checked on hand-made rows, and the Dagster job on a
copy of the warehouse.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import openpyxl
import pytest
from conftest import write_erp_csv

from invoice_pipeline import cli, project, publish
from invoice_pipeline.definitions import defs
from invoice_pipeline.defs.ops import sensors
from invoice_pipeline.defs.ops.sensors import run_failure_alert
from invoice_pipeline.defs.resources import Warehouse
from invoice_pipeline.findings import ensure_findings_tables
from invoice_pipeline.generate import generate
from invoice_pipeline.generate.ids import make_ric
from invoice_pipeline.layers import build_model
from invoice_pipeline.remediation import (
    InvalidAction,
    UnknownFinding,
    record_action,
    status_refreshing_models,
)
from invoice_pipeline.reports import write_compliance_report
from invoice_pipeline.reports.workbook import RULES_SHEET, SUMMARY_SHEET
from invoice_pipeline.warehouse import connect, ensure_audit_tables

BIN = Path(sys.executable).parent
SHANGHAI = ZoneInfo("Asia/Shanghai")
STAFF = "欧阳娜娜"  # who booked the invoice: a person's name, masked outside the warehouse
APPROVER = "司马相如"  # who accepted the risks
NOTE_ID = make_ric("110105", "19850612", 123)  # a resident ID typed into a note
ACCEPT_NOTE = f"金额低于重要性水平,经理批准;供应商负责人身份证 {NOTE_ID}"


# --------------------------------------------------------------------------- helpers


def query(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


def read(data_dir: Path, sql: str, params=None) -> list[tuple]:
    con = connect(project.warehouse_path(data_dir), read_only=True)
    try:
        return query(con, sql, params)
    finally:
        con.close()


def run(data_dir: Path, as_of: str) -> None:
    with pytest.MonkeyPatch.context() as mp:  # run_pipeline exports the data dir; undo it after
        mp.setenv(project.DATA_DIR_ENV, str(data_dir))
        cli.run_pipeline(data_dir, as_of)


def annotate(data_dir: Path, *args: str) -> int:
    """The CLI in this process: its exit status."""
    return cli.main(["annotate", *args, "--data-dir", str(data_dir)])


def booking_row(data_dir: Path, invoice_uid: str, doc_no: str, cancelled: bool) -> list[str]:
    """An ERP register row that books the invoice exactly as the platform has it."""
    (org, direction, counterparty, name, excl, tax, incl, issue_date, period, digital, code, number) = read(
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


def status(data_dir: Path) -> dict[str, tuple]:
    """finding_id -> (state, ledger status, open_action, action_count, latest_action)."""
    return {
        fid: tuple(rest)
        for fid, *rest in read(
            data_dir,
            "select finding_id, state, status, open_action, action_count, latest_action "
            "from audit.finding_status",
        )
    }


def workbook_text(path: Path) -> str:
    book = openpyxl.load_workbook(path)
    return "\n".join(str(v) for ws in book for row in ws.iter_rows(values_only=True) for v in row if v)


def evidence_row(path: Path, finding_id: str) -> dict:
    """The row of a finding on its family's sheet, by header."""
    book = openpyxl.load_workbook(path)
    for ws in book.worksheets[2:-1]:
        rows = list(ws.iter_rows(values_only=True))
        if not rows or "问题编号" not in rows[0]:
            continue
        col = rows[0].index("问题编号")
        for row in rows[1:]:
            if row[col] == finding_id:
                return dict(zip(rows[0], row, strict=True))
    raise AssertionError(f"{finding_id} not listed in {path}")


def summary_cells(path: Path) -> list[tuple]:
    return list(openpyxl.load_workbook(path)[SUMMARY_SHEET].iter_rows(values_only=True))


def counted_open(con) -> dict[str, int]:
    return dict(query(con, "select state, count(*) from audit.finding_status group by state"))


# --------------------------------------------------------------------------- the lifecycle


def build_lifecycle(root: Path) -> dict:
    """Run the sample through the lifecycle; what each stage looked like, for the checks below."""
    generate(root, invoices=300, seed=3)
    run(root, "2026-11-01")
    missing = read(
        root,
        "select finding_id, subject, entity_tin, period from audit.findings "
        "where rule_id = 'missing_in_erp' and status = 'open' order by amount desc",
    )
    assert len(missing) >= 3
    (fixed, fixed_uid, fixed_tin, fixed_month), (kept, *_), (flaky, flaky_uid, *_) = missing[:3]
    out: dict = {"root": root, "fixed": fixed, "kept": kept, "flaky": flaky}
    out["fixed_scope"] = (fixed_tin, fixed_month)
    out["kept_scope"] = read(
        root, "select entity_tin, period from audit.findings where finding_id = ?", [kept]
    )[0]

    # Annotate: once as users type it (a subprocess), then in-process.
    env = {k: v for k, v in os.environ.items() if k not in (project.DATA_DIR_ENV, "DAGSTER_HOME")}
    typed = subprocess.run(
        [
            str(BIN / "invoice-pipeline"),
            *("annotate", fixed, "--action", "entered_in_erp", "--by", STAFF),
            *("--note", "已补录 LATE-0001", "--data-dir", str(root)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=project.PROJECT_ROOT,
        check=False,
    )
    out["cli"] = typed
    assert annotate(root, fixed, "--action", "note", "--by", STAFF, "--note", "联系 13812345678 确认") == 0
    for finding in (kept, flaky):
        assert (
            annotate(root, finding, "--action", "accepted_risk", "--by", APPROVER, "--note", ACCEPT_NOTE) == 0
        )
    out["annotated"] = status(root)
    with connect(project.warehouse_path(root), read_only=True) as con:
        out["annotated_reports"] = {
            "by_rule": query(
                con,
                "select sum(open_findings), sum(accepted_findings) from report.findings_by_rule",
            )[0],
            "age": query(
                con, "select sum(open_findings), sum(accepted_findings) from report.open_finding_age"
            )[0],
            "states": counted_open(con),
        }
    reports = root / "reports_annotated"
    con = connect(project.warehouse_path(root))
    try:
        out["fixed_report"] = write_compliance_report(con, fixed_tin, fixed_month, reports)
        out["kept_report"] = write_compliance_report(con, *out["kept_scope"], reports)
    finally:
        con.close()

    # The data fixes two problems: the invoices are booked late.
    erp_file = project.landing_dir(root) / "erp" / "late_bookings.csv"
    write_erp_csv(
        erp_file,
        [
            booking_row(root, fixed_uid, "LATE-0001", cancelled=False),
            booking_row(root, flaky_uid, "LATE-0002", cancelled=False),
        ],
    )
    run(root, "2026-11-02")
    out["fixed_by_data"] = status(root)
    out["summary_lines"] = cli.summary_lines(root)
    snapshot = project.analytics_path(root)
    shutil.copy(snapshot, root / "analytics_after_fix.duckdb")

    # The problems come back: both bookings are cancelled in a new version of the file.
    write_erp_csv(
        erp_file,
        [
            booking_row(root, fixed_uid, "LATE-0001", cancelled=True),
            booking_row(root, flaky_uid, "LATE-0002", cancelled=True),
        ],
    )
    run(root, "2026-11-03")
    out["reopened"] = status(root)
    out["runs"] = read(
        root,
        "select as_of, findings_open, findings_accepted, findings_resolved, findings_reopened "
        "from audit.runs order by evaluated_at",
    )
    return out


def check_annotate_records_who_did_what_and_when(lifecycle: dict) -> None:
    root, fixed, kept = lifecycle["root"], lifecycle["fixed"], lifecycle["kept"]
    typed = lifecycle["cli"]
    assert typed.returncode == 0, typed.stderr
    assert f"entered_in_erp recorded on finding {fixed}" in typed.stdout and "missing_in_erp" in typed.stdout
    actions = read(
        root,
        "select finding_id, action, acted_by, note, via, acted_at from audit.finding_actions "
        "order by acted_at, action_id",
    )
    assert [(f, a, b, v) for f, a, b, _, v, _ in actions] == [
        (fixed, "entered_in_erp", STAFF, "cli"),
        (fixed, "note", STAFF, "cli"),
        (kept, "accepted_risk", APPROVER, "cli"),
        (lifecycle["flaky"], "accepted_risk", APPROVER, "cli"),
    ]
    assert actions[0][3] == "已补录 LATE-0001" and actions[2][3] == ACCEPT_NOTE  # in full in the warehouse
    assert all(abs(datetime.now(UTC) - at) < timedelta(hours=1) for *_, at in actions)

    annotated = lifecycle["annotated"]
    # A note never replaces the open action; accepted_risk makes the finding accepted.
    assert annotated[fixed] == ("open", "open", "entered_in_erp", 2, "note")
    assert annotated[kept] == ("accepted", "open", "accepted_risk", 1, "accepted_risk")
    # Annotating refreshed the report tables: accepted risks counted apart at once.
    states = lifecycle["annotated_reports"]["states"]
    assert lifecycle["annotated_reports"]["by_rule"] == (states["open"], 2)
    assert lifecycle["annotated_reports"]["age"] == (states["open"], 2)


def check_reports_show_actions_masked_and_accepted_apart(lifecycle: dict) -> None:
    xlsx, html, summary = lifecycle["fixed_report"]
    row = evidence_row(xlsx, lifecycle["fixed"])
    assert row["状态"] == "未结" and row["待数据确认的处理"] == "已在 ERP 入账"
    assert row["最近处理"] == "备注" and row["处理人"] == "欧***"
    assert row["处理说明"] == "联系 138****5678 确认"
    acted = row["处理时间"].replace(tzinfo=SHANGHAI)
    aged_at = datetime.fromisoformat(summary["aged_at"])
    assert row["距最近处理天数"] == max(0, math.floor((aged_at - acted).total_seconds() / 86400))
    page = html.read_text(encoding="utf-8")
    for text in (workbook_text(xlsx), page):
        assert STAFF not in text and APPROVER not in text and "13812345678" not in text
        assert "已在 ERP 入账" in text and "欧***" in text

    xlsx, html, summary = lifecycle["kept_report"]
    row = evidence_row(xlsx, lifecycle["kept"])
    assert row["状态"] == "已接受风险" and row["处理人"] == "司***"
    assert NOTE_ID not in workbook_text(xlsx) and NOTE_ID[:6] + "********" + NOTE_ID[-4:] in row["处理说明"]
    root = lifecycle["root"]
    # The month's open count leaves the accepted finding out; it is counted as accepted instead.
    (accepted_money,) = read(
        root, "select amount from audit.findings where finding_id = ?", [lifecycle["kept"]]
    )[0]
    assert summary["accepted_findings"] >= 1 and summary["accepted_money_at_stake"] >= accepted_money
    cells = summary_cells(xlsx)
    section = next(i for i, r in enumerate(cells) if r[0] == "三、本期未结问题")
    total_row = next(r for r in cells[section:] if r[0] == "合计")
    accepted_row = next(r for r in cells[section:] if r[0] == "已接受风险(不计入未结)")
    assert total_row[1] == summary["open_findings"] and accepted_row[1] == summary["accepted_findings"]
    book = openpyxl.load_workbook(xlsx)
    rules = list(book[RULES_SHEET].iter_rows(values_only=True))
    header = rules[0]
    missing = next(r for r in rules if r[header.index("规则编号")] == "missing_in_erp")
    assert missing[header.index("本期已接受风险(不计入未结)")] >= 1
    assert "已接受风险" in html.read_text(encoding="utf-8")


def check_data_resolves_the_finding_and_keeps_its_actions(lifecycle: dict) -> None:
    fixed, kept, flaky = lifecycle["fixed"], lifecycle["kept"], lifecycle["flaky"]
    after = lifecycle["fixed_by_data"]
    assert after[fixed] == ("resolved", "resolved", None, 2, "note")
    assert after[flaky] == ("resolved", "resolved", None, 1, "accepted_risk")
    assert after[kept] == ("accepted", "open", "accepted_risk", 1, "accepted_risk")
    assert any(
        "accepted" in line and "(risk accepted, not open)" in line for line in lifecycle["summary_lines"]
    )


def check_reopening_keeps_the_actions_and_ends_an_acceptance(lifecycle: dict) -> None:
    fixed, kept, flaky = lifecycle["fixed"], lifecycle["kept"], lifecycle["flaky"]
    back = lifecycle["reopened"]
    # Back in the open counts: what was done before the fix is history, not an open action.
    assert back[fixed] == ("open", "open", None, 2, "note")
    assert back[flaky] == ("open", "open", None, 1, "accepted_risk")
    assert back[kept] == ("accepted", "open", "accepted_risk", 1, "accepted_risk")
    events = read(
        lifecycle["root"],
        "select event from audit.finding_events where finding_id = ? order by event_at",
        [flaky],
    )
    assert [e for (e,) in events] == ["opened", "resolved", "reopened"]


def check_accepted_risks_are_counted_apart_everywhere(lifecycle: dict) -> None:
    root = lifecycle["root"]
    runs = lifecycle["runs"]
    assert [(str(a), acc, res, reo) for a, _, acc, res, reo in runs] == [
        ("2026-11-01", 0, 0, 0),  # annotated after the first run
        ("2026-11-02", 1, 2, 0),  # kept stays accepted; fixed and flaky resolved
        ("2026-11-03", 1, 0, 2),  # flaky reopened: open again, not accepted
    ]
    con = connect(project.warehouse_path(root), read_only=True)
    try:
        states = counted_open(con)
        ledger_open = query(con, "select count(*) from audit.findings where status = 'open'")[0][0]
        assert runs[-1][1] == states["open"] and states["accepted"] == 1
        assert states["open"] + states["accepted"] == ledger_open  # nothing vanished
        assert query(
            con, "select sum(open_findings), sum(accepted_findings) from report.findings_by_rule"
        ) == [(states["open"], 1)]
        assert query(
            con, "select sum(open_findings), sum(accepted_findings) from report.open_finding_age"
        ) == [(states["open"], 1)]
        # Listed, marked: the typed view and the per-finding report table keep the accepted finding.
        kept = lifecycle["kept"]
        assert query(con, "select state from audit.missing_in_erp where finding_id = ?", [kept]) == [
            ("accepted",)
        ]
        assert query(
            con,
            "select state, open_action_by, open_action_note from report.open_finding_actions "
            "where finding_id = ?",
            [kept],
        ) == [("accepted", APPROVER, ACCEPT_NOTE)]
    finally:
        con.close()


def check_analytics_snapshot_publishes_actions_masked(lifecycle: dict) -> None:
    root = lifecycle["root"]
    snap = duckdb.connect(str(root / "analytics_after_fix.duckdb"), read_only=True)
    try:
        actions = query(
            snap, "select finding_id, action, acted_by, note from audit.finding_actions order by all"
        )
        assert {(f, a, b) for f, a, b, _ in actions} == {
            (lifecycle["fixed"], "entered_in_erp", "欧***"),
            (lifecycle["fixed"], "note", "欧***"),
            (lifecycle["kept"], "accepted_risk", "司***"),
            (lifecycle["flaky"], "accepted_risk", "司***"),
        }
        masked_note = ACCEPT_NOTE.replace(NOTE_ID, NOTE_ID[:6] + "********" + NOTE_ID[-4:])
        assert query(
            snap,
            "select state, open_action, open_action_by, open_action_note, latest_action_by "
            "from audit.finding_status where finding_id = ?",
            [lifecycle["kept"]],
        ) == [("accepted", "accepted_risk", "司***", masked_note, "司***")]
        assert query(snap, "select findings_accepted from audit.runs order by evaluated_at") == [(0,), (1,)]
        for secret in (STAFF, APPROVER, NOTE_ID):
            for schema, table, column in query(
                snap,
                "select schema_name, table_name, column_name from duckdb_columns() "
                "where data_type like '%VARCHAR%' or data_type like '%JSON%'",
            ):
                hits = query(
                    snap,
                    f'select count(*) from "{schema}"."{table}" where contains("{column}"::varchar, ?)',
                    [secret],
                )
                assert hits == [(0,)], (secret, schema, table, column)
    finally:
        snap.close()
    live = connect(project.warehouse_path(root), read_only=True)
    try:
        assert publish.glossary_gaps(live) == [], "describe these in assets/publish/analytics.yaml"
    finally:
        live.close()


def test_remediation_lifecycle(tmp_path):
    """annotate → the data fixes it: resolved, actions kept → it comes back: reopened, actions kept;
    accepted risks counted apart everywhere and still listed. One test, because the three nightly
    runs are the cost and the stages build on each other."""
    lifecycle = build_lifecycle(tmp_path / "data")
    check_annotate_records_who_did_what_and_when(lifecycle)
    check_reports_show_actions_masked_and_accepted_apart(lifecycle)
    check_data_resolves_the_finding_and_keeps_its_actions(lifecycle)
    check_reopening_keeps_the_actions_and_ends_an_acceptance(lifecycle)
    check_accepted_risks_are_counted_apart_everywhere(lifecycle)
    check_analytics_snapshot_publishes_actions_masked(lifecycle)


# --------------------------------------------------------------------------- errors


FINDING, OTHER = "1a2b3c4d5e6f7a8b", "9f8e7d6c5b4a3f2e"
INVOICE = "26112010000000000042"


@pytest.fixture
def handmade(tmp_path: Path) -> Path:
    """A data directory whose warehouse holds two open findings and the report tables a run built."""
    root = tmp_path / "data"
    con = connect(project.warehouse_path(root))
    try:
        ensure_audit_tables(con)
        at = datetime.now(UTC) - timedelta(days=3)
        con.execute(
            "insert into audit.runs (run_id, started_at, evaluated_at, findings_open) values ('r1', ?, ?, 2)",
            [at, at],
        )
        for fid, uid in ((FINDING, INVOICE), (OTHER, None)):
            con.execute(
                "insert into audit.findings values (?, 'missing_in_erp', 'error', 'E', 'issued', '2026-10', "
                "?, ?, 100, null, ?, ?, null, 'open')",
                [fid, uid, uid or "BJ01/X-1", at, at],
            )
            con.execute("insert into audit.finding_events values (?, 'r1', 'opened', ?, ?)", [fid, at, at])
        for model in status_refreshing_models():
            build_model(con, model)
    finally:
        con.close()
    return root


def test_usage_errors_and_unknown_findings(handmade, capsys):
    root = handmade
    with pytest.raises(SystemExit) as exited:
        annotate(root, FINDING, "--action", "accepted_risk", "--by", APPROVER)
    assert exited.value.code == 2
    assert "accepted_risk needs --note" in capsys.readouterr().err

    typo = FINDING[:-1] + "c"
    assert annotate(root, typo, "--action", "note", "--by", STAFF, "--note", "x") == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"no finding '{typo}'" in err and f"did you mean {FINDING}" in err
    assert annotate(root, INVOICE, "--action", "note", "--by", STAFF, "--note", "x") == 1
    assert f"did you mean {FINDING}" in capsys.readouterr().err  # the invoice number leads to its finding
    assert read(root, "select count(*) from audit.finding_actions") == [(0,)]

    assert annotate(root, FINDING, "--action", "accepted_risk", "--by", APPROVER, "--note", "小额") == 0
    assert "the finding is accepted" in capsys.readouterr().out
    # The report tables a run built are refreshed at once: accepted counted apart.
    assert read(root, "select sum(open_findings), sum(accepted_findings) from report.findings_by_rule") == [
        (1, 1)
    ]


def test_annotate_without_a_warehouse_is_a_one_line_error(tmp_path, capsys):
    assert annotate(tmp_path, FINDING, "--action", "note", "--by", STAFF, "--note", "x") == 1
    assert "no warehouse at" in capsys.readouterr().err


# --------------------------------------------------------------------------- Dagster


def test_dagster_job_records_through_the_same_function(handmade, monkeypatch):
    root = handmade
    job = defs().resolve_job_def("annotate_finding")
    assert job.executor_def.name == "in_process"
    assert job.nodes[0].definition.pool == "duckdb_writer"

    def launch(**config):
        run_config = {
            "ops": {"record_finding_action": {"config": config}},
            "resources": {"warehouse": {"config": {"data_dir": str(root)}}},
        }
        with dg.DagsterInstance.ephemeral() as instance:
            return job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=False)

    result = launch(finding_id=FINDING, action="accepted_risk", by="张三", note="金额小,经理批准")
    assert result.success
    assert read(root, "select action, acted_by, note, via from audit.finding_actions") == [
        ("accepted_risk", "张三", "金额小,经理批准", f"dagster run {result.run_id}")
    ]
    assert read(root, "select state from audit.finding_status where finding_id = ?", [FINDING]) == [
        ("accepted",)
    ]
    refreshed = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert refreshed == {f"report/{m.table}" for m in status_refreshing_models()}

    def failure(result) -> str:
        (event,) = [e for e in result.all_events if e.is_step_failure]
        return event.step_failure_data.error.message

    no_note = launch(finding_id=OTHER, action="accepted_risk", by="张三")
    assert not no_note.success and "accepted_risk needs --note" in failure(no_note)
    unknown = launch(finding_id="0000000000000000", action="note", by="张三", note="x")
    assert not unknown.success and "no finding '0000000000000000'" in failure(unknown)
    assert read(root, "select count(*) from audit.finding_actions") == [(1,)]

    # A mistyped id is the launcher's to fix, in the run's own page: no operations alert ...
    def alert_on(failed) -> list[tuple]:
        with dg.DagsterInstance.ephemeral() as instance:
            context = dg.build_run_status_sensor_context(
                sensor_name="run_failure_alert",
                dagster_instance=instance,
                dagster_run=failed.dagster_run,
                dagster_event=failed.get_run_failure_event(),
                resources={"warehouse": Warehouse(data_dir=str(root))},
            ).for_run_failure()
            run_failure_alert(context)
        return read(
            root,
            "select table_name from duckdb_tables() where schema_name = 'audit' and table_name = 'alerts'",
        ) and read(root, "select kind from audit.alerts")

    assert not alert_on(unknown)
    assert not (root / "warehouse" / "pending_alerts.jsonl").exists()
    # ... which any other job's failure would have raised.
    monkeypatch.setattr(sensors, "NOT_ALERTED_JOBS", frozenset())
    assert alert_on(unknown) == [("run_failed",)]


# --------------------------------------------------------------------------- the rules, by hand


@pytest.fixture
def ledger():
    """An in-memory warehouse with one finding per case, first opened at wall-clock T0."""
    con = duckdb.connect()
    ensure_findings_tables(con)
    t0 = datetime.now(UTC) - timedelta(days=10)
    con.execute(
        "insert into audit.runs (run_id, started_at, evaluated_at) values ('r1', ?, ?)",
        [t0, t0 - timedelta(days=300)],
    )
    for fid in ("a", "b", "c", "d"):
        con.execute(
            "insert into audit.findings values (?, 'missing_in_erp', 'error', 'E', 'issued', '2026-01', "
            "null, ?, 10, null, ?, ?, null, 'open')",
            [fid, f"s-{fid}", t0, t0],
        )
        # Events carry the run's as-of instant (long ago) and the wall-clock time they were written.
        con.execute(
            "insert into audit.finding_events values (?, 'r1', 'opened', ?, ?)",
            [fid, t0 - timedelta(days=300), t0],
        )
    yield con
    con.close()


def state_of(con, fid: str) -> tuple:
    return con.execute(
        "select state, open_action, latest_action, action_count from audit.finding_status "
        "where finding_id = ?",
        [fid],
    ).fetchone()


def test_view_rules_on_hand_made_rows(ledger):
    con = ledger
    record_action(con, "a", "reissue_requested", "张三")
    record_action(con, "a", "note", "李四", "催了")
    assert state_of(con, "a") == ("open", "reissue_requested", "note", 2)

    record_action(con, "b", "accepted_risk", "王五", "小额")
    assert state_of(con, "b") == ("accepted", "accepted_risk", "accepted_risk", 1)
    record_action(con, "b", "note", "王五", "仍接受")
    assert state_of(con, "b")[0] == "accepted"  # a note does not end an acceptance
    record_action(con, "b", "entered_in_erp", "赵六")
    assert state_of(con, "b") == ("open", "entered_in_erp", "entered_in_erp", 3)  # work resumed: open again

    # Accepted, then resolved and reopened by later runs: open again, the action kept.
    record_action(con, "c", "accepted_risk", "王五", "小额")
    later = datetime.now(UTC) + timedelta(seconds=1)
    con.execute(
        "update audit.findings set status = 'resolved', resolved_at = ? where finding_id = 'c'", [later]
    )
    con.execute("insert into audit.finding_events values ('c', 'r2', 'resolved', ?, ?)", [later, later])
    assert state_of(con, "c") == ("resolved", None, "accepted_risk", 1)
    with pytest.raises(InvalidAction, match="no risk to accept"):
        record_action(con, "c", "accepted_risk", "王五", "again")
    record_action(con, "c", "note", "王五", "已解决")  # other actions on a resolved finding are fine
    reopened = later + timedelta(seconds=1)
    con.execute("update audit.findings set status = 'open', resolved_at = null where finding_id = 'c'")
    con.execute("insert into audit.finding_events values ('c', 'r3', 'reopened', ?, ?)", [reopened, reopened])
    assert state_of(con, "c") == ("open", None, "note", 2)

    # Nothing recorded: open, no action.
    assert state_of(con, "d") == ("open", None, None, 0)
    # Actions are appended, never replaced.
    assert con.execute("select count(*) from audit.finding_actions").fetchone() == (7,)


@pytest.mark.parametrize(
    ("action", "by", "note", "message"),
    [
        ("accepted_risk", "张三", None, "accepted_risk needs --note"),
        ("accepted_risk", "张三", "   ", "accepted_risk needs --note"),
        ("note", "张三", None, "note needs --note"),
        ("approve", "张三", "x", "unknown action"),
        ("note", "  ", "x", "say who did it"),
    ],
)
def test_invalid_requests_record_nothing(ledger, action, by, note, message):
    con = ledger
    with pytest.raises(InvalidAction, match=message):
        record_action(con, "a", action, by, note)
    assert con.execute("select count(*) from audit.finding_actions").fetchone() == (0,)


def test_unknown_finding_lists_near_matches(ledger):
    con = ledger
    con.execute("update audit.findings set finding_id = '1a2b3c4d5e6f7a8b' where finding_id = 'a'")
    with pytest.raises(UnknownFinding, match="did you mean 1a2b3c4d5e6f7a8b"):
        record_action(con, "1a2b3c4d5e6f7a8c", "note", "张三", "x")
    with pytest.raises(UnknownFinding, match="did you mean 1a2b3c4d5e6f7a8b"):
        record_action(con, "s-a", "note", "张三", "x")  # its subject
    with pytest.raises(UnknownFinding, match=r"see audit\.findings"):
        record_action(con, "zzzzzzzzzzzzzzzzzzzz", "note", "张三", "x")
    assert record_action(con, " 1A2B3C4D5E6F7A8B ", "note", "张三", "x").finding_id == "1a2b3c4d5e6f7a8b"
