"""The report tables, the compliance workbook and HTML, and the monthly Dagster asset, checked
against the warehouse they come from (one generated sample of 500 invoices, run once)."""

from __future__ import annotations

import html
import json
import re
import shutil
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import openpyxl
import pytest

from invoice_pipeline import project
from invoice_pipeline.cli import run_pipeline
from invoice_pipeline.definitions import defs
from invoice_pipeline.defs.reports.compliance import COMPLIANCE_REPORT_KEY, compliance_report
from invoice_pipeline.defs.resources import Warehouse
from invoice_pipeline.findings import ensure_findings_tables, load_rules
from invoice_pipeline.generate import generate
from invoice_pipeline.layers import build_model, discover_models
from invoice_pipeline.reports import (
    labels,
    months_with_data,
    write_compliance_report,
    write_reports_for_month,
)
from invoice_pipeline.reports.workbook import MONEY_FORMAT, RULES_SHEET, SUMMARY_SHEET, VAT_SHEET
from invoice_pipeline.warehouse import connect

AS_OF = "2026-11-01"
REPORT_MODELS = [m for m in discover_models(project.MODELS_DIR) if m.schema == "report"]
REPORT_TABLES = {m.table for m in REPORT_MODELS}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reports")
    generate(root, invoices=500, seed=11)
    with pytest.MonkeyPatch.context() as mp:  # run_pipeline exports the data dir; undo it after
        mp.setenv(project.DATA_DIR_ENV, str(root))
        run_pipeline(root, AS_OF)
    return root


@contextmanager
def warehouse(data_dir: Path):
    # Same configuration as the Warehouse resource: DuckDB refuses two configs in one process.
    con = connect(project.warehouse_path(data_dir))
    try:
        yield con
    finally:
        con.close()


def rows(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


def busiest(con) -> tuple[str, str]:
    """The entity and month with the most open findings: the report with the most to check."""
    return rows(
        con,
        "select entity_tin, period from audit.findings where status = 'open' and entity_tin is not null "
        "and period is not null group by all order by count(*) desc, sum(amount) desc nulls last limit 1",
    )[0]


def assert_same(con, left: str, right: str) -> None:
    """Two queries return the same multiset of rows (NULLs compare equal)."""
    for a, b in ((left, right), (right, left)):
        diff = rows(con, f"({a}) except all ({b})")
        assert diff == [], diff[:5]


# --- report tables -----------------------------------------------------------------------------


def test_report_models_are_documented_lower_case_selects():
    assert {"period_summary", "findings_by_rule", "vat_by_rate", "finding_activity", "open_finding_age"} <= (
        REPORT_TABLES
    )
    for model in REPORT_MODELS:
        assert model.description.startswith("One row per"), model.table  # meaning and grain
        lines = [line.strip() for line in model.sql.splitlines() if not line.lstrip().startswith("--")]
        assert lines[0].startswith("with ") and "select * from final" in lines, model.table
        code = re.sub(r"'[^']*'", "''", "\n".join(lines))
        assert re.search(r"\b(SELECT|FROM|WHERE|WITH|JOIN|GROUP|ORDER|AS)\b", code) is None, model.table


def test_report_tables_are_assets_that_depend_on_what_they_read():
    graph = {
        spec.key.to_user_string(): {d.asset_key.to_user_string() for d in spec.deps}
        for spec in defs().resolve_all_asset_specs()
    }
    for table in REPORT_TABLES:
        assert f"report/{table}" in graph
    assert "audit/findings" in graph["report/findings_by_rule"]
    assert "audit/findings" in graph["report/finding_activity"]
    assert {"audit/findings", "audit/runs"} <= graph["report/open_finding_age"]
    assert {"core/authoritative_invoices", "core/matches", "staging/erp"} <= graph["report/period_summary"]


def test_period_summary_reconciles_with_core_and_the_ledger(data_dir):
    with warehouse(data_dir) as con:
        grain = "entity_tin, direction, period"
        assert rows(con, f"select count(*) - count(distinct ({grain})) from report.period_summary") == [(0,)]
        assert_same(
            con,
            f"select {grain}, invoices, voided_invoices from report.period_summary where invoices > 0",
            "select entity_tin, direction, tax_period, count(*), count(*) filter (where status = 'voided') "
            "from core.authoritative_invoices where entity_tin is not null group by all",
        )
        for source in ("tax_platform", "einvoice_xml", "einvoice_ofd"):
            assert_same(
                con,
                f"select {grain}, {source}_invoices, {source}_amount_incl_tax from report.period_summary "
                f"where {source}_invoices > 0",
                "select entity_tin, direction, tax_period, count(*), sum(amount_incl_tax) from core.invoices "
                f"where source = '{source}' group by all",
            )
        assert_same(
            con,
            f"select {grain}, erp_documents, erp_tax_amount from report.period_summary "
            "where erp_documents > 0",
            "select entity_tin, direction, tax_period, count(*), sum(tax_amount) from staging.erp "
            "where not is_cancelled group by all",
        )
        # What is not matched is exactly what missing_in_erp reports.
        assert_same(
            con,
            f"select {grain}, valid_invoices - matched_invoices from report.period_summary "
            "where valid_invoices > matched_invoices",
            "select entity_tin, direction, period, count(*) from audit.findings "
            "where rule_id = 'missing_in_erp' and status = 'open' group by all",
        )
        (share,) = rows(
            con,
            "select count(*) from report.period_summary where valid_invoices > 0 "
            "and matched_share <> round(matched_invoices / valid_invoices, 4)",
        )[0]
        assert share == 0


def test_findings_by_rule_adds_up_to_the_open_ledger(data_dir):
    with warehouse(data_dir) as con:
        assert_same(
            con,
            "select entity_tin, direction, period, rule_id, severity, open_findings, money_at_stake "
            "from report.findings_by_rule",
            "select entity_tin, direction, period, rule_id, severity, count(*), sum(amount) "
            "from audit.findings where status = 'open' group by all",
        )
        assert rows(con, "select sum(open_findings) from report.findings_by_rule") == rows(
            con, "select count(*) from audit.findings where status = 'open'"
        )


def test_vat_by_rate_matches_erp_and_invoice_headers(data_dir):
    with warehouse(data_dir) as con:
        assert_same(
            con,
            "select entity_tin, direction, period, sum(erp_documents), sum(erp_tax_amount) "
            "from report.vat_by_rate group by all having sum(erp_documents) > 0",
            "select entity_tin, direction, tax_period, count(*), sum(tax_amount) from staging.erp "
            "where not is_cancelled group by all",
        )
        # Lines add up to the header, except on invoices arithmetic_error reports.
        assert_same(
            con,
            "select entity_tin, direction, period, sum(invoice_tax_amount) from report.vat_by_rate v "
            "where not exists (select 1 from audit.findings f where f.rule_id = 'arithmetic_error' "
            "and f.entity_tin = v.entity_tin and f.period = v.period) group by all having sum(invoices) > 0",
            "select entity_tin, direction, tax_period, sum(tax_amount) from core.authoritative_invoices a "
            "where entity_tin is not null and coalesce(status, 'normal') <> 'voided' and not exists ("
            "select 1 from audit.findings f where f.rule_id = 'arithmetic_error' "
            "and f.entity_tin = a.entity_tin and f.period = a.tax_period) group by all",
        )
        assert rows(
            con,
            "select count(*) from report.vat_by_rate "
            "where tax_difference <> invoice_tax_amount - erp_tax_amount",
        ) == [(0,)]


def test_finding_activity_counts_events_in_shanghai_months(data_dir):
    with warehouse(data_dir) as con:
        # The run evaluated at 2026-11-01 02:00 Shanghai = 2026-10-31 18:00 UTC: a November event.
        assert rows(con, "select distinct period from report.finding_activity") == [("2026-11",)]
        assert_same(
            con,
            "select entity_tin, direction, rule_id, opened, resolved from report.finding_activity",
            "select f.entity_tin, f.direction, f.rule_id, count(*) filter (where e.event = 'opened'), "
            "count(*) filter (where e.event = 'resolved') from audit.finding_events e "
            "join audit.findings f using (finding_id) group by all",
        )
        assert rows(con, "select sum(open_findings) from report.open_finding_age") == rows(
            con, "select count(*) from audit.findings where status = 'open'"
        )


def test_open_finding_age_buckets_at_the_latest_run():
    con = duckdb.connect()
    con.execute("create schema audit")
    ensure_findings_tables(con)
    at = datetime(2026, 11, 1, 2, tzinfo=ZoneInfo("Asia/Shanghai"))
    runs = "insert into audit.runs (run_id, started_at, evaluated_at) values "
    con.execute(runs + "('old', '2026-01-01', '2026-01-01')")
    con.execute(runs + "('new', '2026-11-02', ?)", [at])
    for i, days in enumerate((0, 7, 8, 30, 31, 90, 91, 400)):
        con.execute(
            "insert into audit.findings values (?, 'missing_in_erp', 'error', 'E', 'issued', '2026-01', "
            "null, ?, 10, null, ?::timestamptz - to_days(?), ?, null, 'open')",
            [f"f{i}", f"s{i}", at, days, at],
        )
    model = next(m for m in REPORT_MODELS if m.table == "open_finding_age")
    build_model(con, model)
    got = rows(
        con, "select age_bucket, open_findings, oldest_age_days from report.open_finding_age order by 1"
    )
    assert sorted(got) == sorted([("0-7", 2, 7), ("8-30", 2, 30), ("31-90", 2, 90), (">90", 2, 400)])


# --- the workbook and the HTML -------------------------------------------------------------------


def expected_by_rule(con, tin: str, month: str) -> dict[str, tuple[int, Decimal | None]]:
    return {
        r: (n, m)
        for r, n, m in rows(
            con,
            "select rule_id, count(*), sum(amount) from audit.findings "
            "where status = 'open' and entity_tin = ? and period = ? group by rule_id",
            [tin, month],
        )
    }


def expected_matched(con, tin: str, month: str) -> tuple[int, int, Decimal, Decimal]:
    """Matched share straight from core: non-voided invoices with a non-cancelled ERP booking."""
    return rows(
        con,
        """
        with booked as (
            select distinct m.invoice_uid from core.matches m join staging.erp e using (erp_doc_id)
            where m.match_side = 'erp' and not e.is_cancelled and m.entity_tin = $1
        )
        select count(*), count(b.invoice_uid), sum(a.amount_incl_tax),
            coalesce(sum(a.amount_incl_tax) filter (where b.invoice_uid is not null), 0)
        from core.authoritative_invoices a left join booked b using (invoice_uid)
        where a.entity_tin = $1 and a.tax_period = $2 and coalesce(a.status, 'normal') <> 'voided'
        """,
        [tin, month],
    )[0]


@pytest.fixture(scope="module")
def report(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    with warehouse(data_dir) as con:
        tin, month = busiest(con)
        xlsx, page, summary = write_compliance_report(con, tin, month, out)
        by_rule = expected_by_rule(con, tin, month)
        matched = expected_matched(con, tin, month)
        scoped = rows(
            con,
            "select rule_id from audit.findings where status = 'open' "
            "and (entity_tin = ? or entity_tin is null) and (period = ? or period is null)",
            [tin, month],
        )
    return {
        "tin": tin,
        "month": month,
        "out": out,
        "xlsx": xlsx,
        "html": page,
        "summary": summary,
        "by_rule": by_rule,
        "matched": matched,
        "scoped": [r for (r,) in scoped],
    }


def sheet_rows(ws) -> list[tuple]:
    return list(ws.iter_rows(values_only=True))


def test_report_files_are_where_the_spec_says(report):
    folder = report["out"] / report["month"] / report["tin"]
    assert report["xlsx"] == folder / "compliance_report.xlsx" and report["xlsx"].stat().st_size > 0
    assert report["html"] == folder / "compliance_report.html"
    assert not list(folder.glob(".*"))  # no temporary files left
    assert report["summary"]["open_findings"] == sum(n for n, _ in report["by_rule"].values()) > 0


def test_workbook_layout(report):
    book = openpyxl.load_workbook(report["xlsx"])
    families = list(dict.fromkeys(rule.family for rule in load_rules().values()))
    assert book.sheetnames == [
        SUMMARY_SHEET,
        RULES_SHEET,
        *(labels.family_sheet(f) for f in families),
        VAT_SHEET,
    ]
    assert book[SUMMARY_SHEET].freeze_panes == "A4"
    assert book[RULES_SHEET].freeze_panes == "A2"
    assert book[VAT_SHEET].freeze_panes == "A2"
    for family in families:
        ws = book[labels.family_sheet(family)]
        assert ws.freeze_panes == "D2"
        assert ws.auto_filter.ref and ws.auto_filter.ref.startswith("A1:")
        headers = [c.value for c in ws[1]]
        expected = {"规则编号", "对象", "发票号码", "往来单位名称", "涉及金额", "首次发现", "已存在天数"}
        assert expected <= set(headers)
        for person in ("开票人", "制单人", "报销人"):  # names of people only ever masked
            col = headers.index(person)
            names = [
                n for row in ws.iter_rows(min_row=2, values_only=True) for n in (row[col] or "").split("、")
            ]
            assert all(re.fullmatch(r"[^*]\*+", n) for n in names if n), (family, person, names)
    ws = book[RULES_SHEET]
    assert ws.auto_filter.ref.startswith("A1:")
    headers = [c.value for c in ws[1]]
    money_col = headers.index("本期涉及金额") + 1
    assert ws.cell(row=2, column=money_col).number_format == MONEY_FORMAT
    assert ws.cell(row=2, column=headers.index("本期未结") + 1).number_format == "#,##0"
    widths = {k: d.width for k, d in ws.column_dimensions.items()}
    assert widths["L"] > widths["B"] >= 12 and max(widths.values()) < 61  # description widest, capped at 60


def test_workbook_numbers_equal_the_warehouse(report):
    book = openpyxl.load_workbook(report["xlsx"])
    table = sheet_rows(book[RULES_SHEET])
    headers = list(table[0])
    rule_col, n_col, m_col = (headers.index(h) for h in ("规则编号", "本期未结", "本期涉及金额"))
    got = {r[rule_col]: (r[n_col], r[m_col]) for r in table[1:]}
    assert set(got) == set(load_rules())
    for rule_id, (n, money) in got.items():
        want_n, want_money = report["by_rule"].get(rule_id, (0, None))
        assert n == want_n, rule_id
        assert (money is None and want_money is None) or Decimal(str(money)) == want_money, rule_id

    # Every open finding in scope appears once, on its family's sheet.
    rules = load_rules()
    on_sheets = []
    for family in dict.fromkeys(r.family for r in rules.values()):
        data = sheet_rows(book[labels.family_sheet(family)])
        col = data[0].index("规则编号")
        on_sheets += [r[col] for r in data[1:] if r[col]]
    assert sorted(on_sheets) == sorted(report["scoped"])

    # Matched share in the summary sheet: the 合计 row of section 二.
    summary = sheet_rows(book[SUMMARY_SHEET])
    header_at = next(i for i, r in enumerate(summary) if r[0] == "方向" and r[3] == "按张数匹配率")
    total = next(r for r in summary[header_at + 1 :] if r[0] == "合计")
    valid, matched, valid_money, matched_money = report["matched"]
    assert (total[1], total[2]) == (valid, matched)
    assert total[3] == pytest.approx(matched / valid, abs=1e-4)
    assert Decimal(str(total[5])) == matched_money and Decimal(str(total[4])) == valid_money
    money_cells = [
        c for row in book[SUMMARY_SHEET].iter_rows() for c in row if c.number_format == MONEY_FORMAT
    ]
    assert money_cells
    assert any(c.number_format == "0.0%" for row in book[SUMMARY_SHEET].iter_rows() for c in row)


def test_html_is_self_contained_and_has_the_same_numbers(report):
    page = report["html"].read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page
    assert "http://" not in page and "https://" not in page
    assert re.search(r"\b(src|href)\s*=|url\(|@import|<script|<link", page, re.IGNORECASE) is None
    assert page.count("<svg") >= 3  # matched share, money at stake by rule, ageing
    for rule_id, (_n, money) in report["by_rule"].items():
        assert labels.rule_title(rule_id) in page
        if money is not None:
            assert f"{money:,.2f} 元" in page, rule_id
    valid, matched, _, _ = report["matched"]
    assert f"{matched / valid * 100:.1f}%" in page
    s = report["summary"]
    assert f"{s['money_at_stake']:,.2f} 元" in page


PLANTED_CLERK, PLANTED_CLAIMANT = "欧阳娜娜", "司马相如"
RESIDENT_TIN, SOLE_TRADER_TIN = "11010519491231002X", "11010519491231002X01"
HOSTILE = "<img src=x onerror=alert(1)>"


def test_personal_data_is_masked_and_landed_text_escaped(data_dir, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(data_dir / "warehouse", root / "warehouse")
    shutil.copytree(data_dir / "landing" / "entities", root / "landing" / "entities")
    with warehouse(root) as con:
        tin = rows(con, "select tin from staging.entities order by tin limit 1")[0][0]
        month = "2026-03"
        (doc,) = rows(con, "select erp_doc_id from staging.erp where entity_tin = ? limit 1", [tin])[0]
        con.execute(
            "update staging.erp set clerk = ?, counterparty_tin = ? where erp_doc_id = ?",
            [PLANTED_CLERK, RESIDENT_TIN, doc],
        )
        (claim,) = rows(con, "select claim_no from staging.reimbursement limit 1")[0]
        con.execute(
            "update staging.reimbursement set claimant = ? where claim_no = ?", [PLANTED_CLAIMANT, claim]
        )
        planted = [
            ("p1", "missing_in_tax_platform", "error", doc, 1234.56, {"referenced_numbers": [HOSTILE]}),
            ("p2", "invalid_tin", "warning", SOLE_TRADER_TIN, None, {"problem": "check", "invoices": []}),
            (
                "p3",
                "duplicate_claim",
                "error",
                "26112010000000000001",
                88.8,
                {"claims": [claim], "buyer_tin": RESIDENT_TIN, "remark": "联系 13812345678"},
            ),
        ]
        for fid, rule_id, severity, subject, amount, details in planted:
            con.execute(
                "insert into audit.findings values "
                "(?, ?, ?, ?, 'received', ?, null, ?, ?, ?, now(), now(), null, 'open')",
                [fid, rule_id, severity, tin, month, subject, amount, json.dumps(details)],
            )
        for model in REPORT_MODELS:
            build_model(con, model)
        xlsx, page_path, summary = write_compliance_report(con, tin, month, root / "reports")
    assert summary["by_rule"]["missing_in_tax_platform"]["open_findings"] >= 1

    book = openpyxl.load_workbook(xlsx)
    cells = "\n".join(
        str(v) for ws in book for row in ws.iter_rows(values_only=True) for v in row if v is not None
    )
    page = page_path.read_text(encoding="utf-8")
    for text in (cells, page):
        for secret in (PLANTED_CLERK, PLANTED_CLAIMANT, RESIDENT_TIN, "13812345678"):
            assert secret not in text
        assert "欧***" in text and "司***" in text
        assert "110105********002X" in text  # 18-character resident ID used as a TIN
        assert "110105**********2X01" in text  # 20-character sole-trader TIN
        assert "138****5678" in text
    assert HOSTILE in cells  # the workbook keeps text as text
    assert HOSTILE not in page and html.escape(HOSTILE) in page


def test_write_reports_for_month_writes_every_entity(data_dir, tmp_path):
    root = tmp_path / "root"
    with warehouse(data_dir) as con:
        months = months_with_data(con)
        tins = [t for (t,) in rows(con, "select tin from staging.entities order by tin")]
        paths = write_reports_for_month(con, root, months[-1])
    assert months[0] == "2026-01" and len(months) >= 10
    assert paths == [
        root / "reports" / months[-1] / tin / f"compliance_report.{ext}"
        for tin in tins
        for ext in ("xlsx", "html")
    ]
    assert all(p.stat().st_size > 0 for p in paths)


# --- Dagster ---------------------------------------------------------------------------------------


# Dagster's own build_schedule_from_partitioned_job calls a deprecated API on every tick.
@pytest.mark.filterwarnings("ignore:Function `JobDefinition.run_request_for_partition`:DeprecationWarning")
def test_compliance_report_asset_job_and_schedule():
    definitions = defs()
    spec = next(s for s in definitions.resolve_all_asset_specs() if s.key == COMPLIANCE_REPORT_KEY)
    assert spec.group_name == "reports" and spec.kinds == {"excel", "html"}
    assert spec.owners == ["team:finance-data"] and len(spec.description) > 40
    assert {d.asset_key.to_user_string() for d in spec.deps} >= {f"report/{t}" for t in REPORT_TABLES}
    partitions = spec.partitions_def
    assert partitions.timezone == "Asia/Shanghai" and partitions.get_first_partition_key() == "2026-01"

    job = definitions.resolve_job_def("monthly_reports")
    assert set(job.asset_layer.selected_asset_keys) == {COMPLIANCE_REPORT_KEY}
    schedule = definitions.resolve_schedule_def("monthly_reports_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 6 1 * *", "Asia/Shanghai")
    tick = datetime(2026, 4, 1, 6, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    requests = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick)).run_requests
    assert [r.partition_key for r in requests] == ["2026-03"]


def test_nightly_job_leaves_the_monthly_report_out():
    nightly = defs().resolve_job_def("nightly")
    assert nightly.partitions_def is None
    selected = set(nightly.asset_layer.selected_asset_keys)
    assert COMPLIANCE_REPORT_KEY not in selected
    assert {dg.AssetKey(["report", t]) for t in REPORT_TABLES} <= selected  # the tables stay nightly


def test_compliance_report_materialises_for_a_partition(data_dir):
    result = dg.materialize(
        [compliance_report],
        partition_key="2026-03",
        resources={"warehouse": Warehouse(data_dir=str(data_dir))},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    assert event.asset_key == COMPLIANCE_REPORT_KEY and event.partition == "2026-03"
    metadata = event.materialization.metadata
    with warehouse(data_dir) as con:
        ours = rows(con, "select tin, name from staging.entities order by tin")
    assert metadata["entities"].value == len(ours)
    for tin, name in ours:
        summary = metadata[f"summary_{tin}"]
        assert isinstance(summary, dg.MarkdownMetadataValue)
        assert name in summary.value and "2026-03" in summary.value and "入账匹配率" in summary.value
        for ext in ("xlsx", "html"):
            path = Path(metadata[f"{ext}_{tin}"].value)
            assert path == data_dir / "reports" / "2026-03" / tin / f"compliance_report.{ext}"
            assert path.is_file()
