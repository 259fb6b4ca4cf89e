"""core.invoice_history: an invoice's changes observed run by run, append-only (issue 7)."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path

import dagster as dg
import pytest
from conftest import (
    CUSTOMER_TIN,
    ENTITY_TIN,
    ENTITY_TIN_2,
    ERP_ROWS,
    PLATFORM_ROWS,
    SUPPLIER_TIN,
    write_erp_csv,
    write_platform_workbook,
)

from invoice_pipeline import project
from invoice_pipeline.definitions import defs
from invoice_pipeline.defs.core.history import invoice_history, invoice_history_is_append_only
from invoice_pipeline.defs.resources import SHANGHAI, RunSettings, Warehouse
from invoice_pipeline.history import history_problems, update_history
from invoice_pipeline.warehouse import connect, ensure_audit_tables

X = "26112000000000000001"  # red-reversed in load 2, booked in load 3
RED = "26112000000000000002"  # the red invoice reversing X
Y = "011002100511-00290716"  # its buyer's name is corrected in load 2
W = "26112000000000000003"  # amounts corrected in load 2; its ERP document cancelled in load 3
PLATFORM_FILE = "BJ_2026Q1_全量发票查询导出结果.xlsx"
ERP_FILE = "erp_bj.csv"
CLAIMS_FILE = "claims.csv"
AS_OF = ["2026-04-01", "2026-04-02", "2026-04-03", "2026-04-04"]

_X_BLUE, _Y_ISSUED, _X_RED = PLATFORM_ROWS
_W = (
    "3",
    "",
    "",
    W,
    SUPPLIER_TIN,
    "济南供应商有限公司",
    ENTITY_TIN,
    "北京示例科技有限公司",
    "2026-03-12 09:30:00",
    500.0,
    65.0,
    565.0,
    "电子发票服务平台",
    "数电发票（增值税专用发票）",
    "正常",
    "是",
    "正常",
    "王五",
    "",
)


def _with(row: tuple, **changes) -> tuple:
    """A platform row with some of its cells (by 0-based index, named c<i>) replaced."""
    cells = list(row)
    for key, value in changes.items():
        cells[int(key[1:])] = value
    return tuple(cells)


def _erp_doc(doc_no: str, invoice_no: str, amounts: tuple[str, str, str], cancelled: str = "否") -> list[str]:
    row = list(ERP_ROWS[0])
    row[2], row[10] = doc_no, invoice_no
    row[12], row[14], row[15] = amounts
    row[18] = cancelled
    return row


PLATFORM_V1 = [_X_BLUE, _Y_ISSUED, _W]
PLATFORM_V2 = [
    _with(_X_BLUE, c14="已红冲-全额"),
    _with(_Y_ISSUED, c7="深圳客户科技有限公司"),
    _with(_W, c9=600.0, c10=78.0, c11=678.0),
    _with(_X_RED, c0="4"),
]
W_DOC = _erp_doc("AP-0005", W, ("500.00", "65.00", "565.00"))
ERP_V1 = [ERP_ROWS[1], W_DOC]
ERP_V3 = [ERP_ROWS[0], ERP_ROWS[1], _erp_doc("AP-0005", W, ("500.00", "65.00", "565.00"), cancelled="是")]
CLAIMS_HEADER = "报销单号,报销人,部门,提交日期,审批状态,发票代码,发票号码,开票日期,价税合计,报销金额\n"


def _claims(status: str) -> str:
    return CLAIMS_HEADER + f"BX-001,赵六,采购部,2026-03-15,{status},,{W},2026-03-12,565.00,565.00\n"


def _instant(as_of: str) -> datetime:
    return datetime.combine(date.fromisoformat(as_of), time(2, 0), SHANGHAI)


def _run(data_dir: Path, as_of: str, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    config = {
        "resources": {
            "warehouse": {"config": {"data_dir": str(data_dir)}},
            "settings": {"config": {"as_of": as_of}},
        }
    }
    result = defs().resolve_job_def("nightly").execute_in_process(run_config=config, instance=instance)
    assert result.success
    return result


def _rows(data_dir: Path, sql: str, params=None) -> list[tuple]:
    con = connect(project.warehouse_path(data_dir), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _history(data_dir: Path, invoice_uid: str) -> list[tuple]:
    return _rows(
        data_dir,
        "select event_seq, aspect, event, value_before, value_after, source, load_id, file_name, run_id "
        "from core.invoice_history where invoice_uid = ? order by event_seq",
        [invoice_uid],
    )


@pytest.fixture(scope="module")
def three_loads(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Four nightly runs on one data directory, files landing between them as in the issue:

    1. the platform export shows X 正常 (not in the ERP); the ERP books Y and W; a claim on W;
    2. a new version of the export (same name) shows X 已红冲-全额 and its red invoice, Y's buyer
       name corrected, W's amounts corrected;
    3. a new version of the ERP register books X and cancels W's document; W's claim is paid;
    4. nothing new.
    """
    data_dir = tmp_path_factory.mktemp("history") / "data"
    landing = project.landing_dir(data_dir)
    for folder in ("entities", "tax_platform", "einvoice", "erp", "reimbursement", "sync_log"):
        (landing / folder).mkdir(parents=True)
    (landing / "entities" / "entities.csv").write_text(
        "tin,name,region_code,erp_org_code,aliases\n"
        f"{ENTITY_TIN},北京示例科技有限公司,110105,BJ01,\n"
        f"{ENTITY_TIN_2},上海示例贸易有限公司,310115,SH01,\n",
        encoding="utf-8",
    )
    landings = [
        lambda: (
            write_platform_workbook(landing / "tax_platform" / PLATFORM_FILE, PLATFORM_V1),
            write_erp_csv(landing / "erp" / ERP_FILE, ERP_V1),
            (landing / "reimbursement" / CLAIMS_FILE).write_text(_claims("已通过"), encoding="utf-8"),
        ),
        lambda: write_platform_workbook(landing / "tax_platform" / PLATFORM_FILE, PLATFORM_V2),
        lambda: (
            write_erp_csv(landing / "erp" / ERP_FILE, ERP_V3),
            (landing / "reimbursement" / CLAIMS_FILE).write_text(_claims("已支付"), encoding="utf-8"),
        ),
        lambda: None,
    ]
    runs, counts, checks = [], [], []
    with dg.DagsterInstance.ephemeral() as instance:  # one instance: the check compares runs
        for land, as_of in zip(landings, AS_OF, strict=True):
            land()
            result = _run(data_dir, as_of, instance)
            runs.append(result.run_id)
            counts.append(_rows(data_dir, "select count(*) from core.invoice_history")[0][0])
            checks += [
                e for e in result.get_asset_check_evaluations() if e.check_name.startswith("invoice_history")
            ]
    loads = {
        (source, n): load_id
        for source, load_id, n in _rows(
            data_dir,
            "select source, load_id, row_number() over (partition by source order by file_seq) "
            "from audit.file_loads where status = 'loaded'",
        )
    }
    return {"data_dir": data_dir, "runs": runs, "counts": counts, "checks": checks, "loads": loads}


# One test reads the four runs: pytest 9.2 broke xdist_group (pytest-xdist 3.8 renames the node
# id, which pytest 9 no longer takes), so tests sharing this fixture could land on two workers and
# build it twice. The mark stays for when grouping works again.
@pytest.mark.xdist_group("history_three_loads")
def test_three_loads_red_reversal_then_booking(three_loads):
    data_dir, loads, runs = three_loads["data_dir"], three_loads["loads"], three_loads["runs"]
    assert loads[("tax_platform", 2)] != loads[("tax_platform", 1)]  # the new version is a new load

    # X: first seen 正常 (load 1), red-reversed (load 2), booked (load 3) — each with its load
    assert _history(data_dir, X) == [
        (1, "platform", "first_seen", None,
         f"正常; 1130.00/130.00; {SUPPLIER_TIN} 济南供应商有限公司 → {ENTITY_TIN} 北京示例科技有限公司",
         "tax_platform", loads[("tax_platform", 1)], PLATFORM_FILE, runs[0]),
        (2, "platform", "status_changed", "正常", "已红冲-全额", "tax_platform", loads[("tax_platform", 2)],
         PLATFORM_FILE, runs[1]),
        (3, "erp", "erp_booked", None, "BJ01/AP-0001 posted 2026-03-03 period 2026-03", "erp",
         loads[("erp", 2)], ERP_FILE, runs[2]),
    ]  # fmt: skip
    # when the run observed it (its as-of instant) and when the load arrived (audit.file_loads)
    times = _rows(
        data_dir,
        "select h.observed_at, h.loaded_at = f.loaded_at from core.invoice_history h "
        "join audit.file_loads f using (load_id) where h.invoice_uid = ? order by h.event_seq",
        [X],
    )
    assert times == [(_instant(AS_OF[0]), True), (_instant(AS_OF[1]), True), (_instant(AS_OF[2]), True)]

    # the red invoice is first seen with the load that brought it
    assert [row[1:8] for row in _history(data_dir, RED)] == [
        ("platform", "first_seen", None,
         f"正常; -1130.00/-130.00; {SUPPLIER_TIN} 济南供应商有限公司 → {ENTITY_TIN} 北京示例科技有限公司",
         "tax_platform", loads[("tax_platform", 2)], PLATFORM_FILE),
    ]  # fmt: skip

    # a party correction between loads
    assert [row[1:] for row in _history(data_dir, Y)] == [
        ("platform", "first_seen", None,
         f"正常; 212.00/12.00; {ENTITY_TIN} 北京示例科技有限公司 → {CUSTOMER_TIN} 深圳客户有限公司",
         "tax_platform", loads[("tax_platform", 1)], PLATFORM_FILE, runs[0]),
        ("erp", "erp_booked", None, "BJ01/AR-0001 posted 2026-03-06 period 2026-03", "erp", loads[("erp", 1)],
         ERP_FILE, runs[0]),
        ("platform", "party_changed", f"{ENTITY_TIN} 北京示例科技有限公司 → {CUSTOMER_TIN} 深圳客户有限公司",
         f"{ENTITY_TIN} 北京示例科技有限公司 → {CUSTOMER_TIN} 深圳客户科技有限公司", "tax_platform",
         loads[("tax_platform", 2)], PLATFORM_FILE, runs[1]),
    ]  # fmt: skip

    # an amount correction, the ERP document cancelled, the claim paid
    assert [row[1:] for row in _history(data_dir, W)] == [
        ("platform", "first_seen", None,
         f"正常; 565.00/65.00; {SUPPLIER_TIN} 济南供应商有限公司 → {ENTITY_TIN} 北京示例科技有限公司",
         "tax_platform", loads[("tax_platform", 1)], PLATFORM_FILE, runs[0]),
        ("erp", "erp_booked", None, "BJ01/AP-0005 posted 2026-03-03 period 2026-03", "erp",
         loads[("erp", 1)], ERP_FILE, runs[0]),
        ("claim", "claim_attached", None, "BX-001 已通过 565.00", "reimbursement",
         loads[("reimbursement", 1)], CLAIMS_FILE, runs[0]),
        ("platform", "amount_changed", "565.00/65.00", "678.00/78.00", "tax_platform",
         loads[("tax_platform", 2)], PLATFORM_FILE, runs[1]),
        ("erp", "erp_cancelled", "BJ01/AP-0005 posted 2026-03-03 period 2026-03",
         "BJ01/AP-0005 posted 2026-03-03 period 2026-03 (cancelled)", "erp", loads[("erp", 2)], ERP_FILE,
         runs[2]),
        ("claim", "status_changed", "BX-001 已通过 565.00", "BX-001 已支付 565.00", "reimbursement",
         loads[("reimbursement", 2)], CLAIMS_FILE, runs[2]),
    ]  # fmt: skip

    # nothing else was recorded, and the fourth run, with no new files, added nothing
    assert _rows(data_dir, "select count(*) from core.invoice_history") == [(13,)]
    assert three_loads["counts"] == [6, 10, 13, 13]

    # the append-only check passed every run, from the second on against what the previous run left
    checks = three_loads["checks"]
    assert [c.passed for c in checks] == [True] * 4
    assert [c.metadata["events_lost"].value for c in checks] == [0] * 4
    assert "events_after_previous_run" not in checks[0].metadata
    assert [c.metadata["events_after_previous_run"].value for c in checks[1:]] == [6, 10, 13]


# Hand-made staging with just the columns the history reads: every kind of event, in a second.
_TABLES = """
create table staging.tax_platform (
    invoice_uid varchar, status varchar, status_raw varchar, amount_incl_tax decimal(18, 2),
    tax_amount decimal(18, 2), seller_tin varchar, seller_name varchar, buyer_tin varchar,
    buyer_name varchar, _load_id varchar, _source_file varchar, _source_row varchar);
create table staging.einvoice (
    invoice_uid varchar, source varchar, status varchar, amount_incl_tax decimal(18, 2),
    tax_amount decimal(18, 2), seller_tin varchar, seller_name varchar, buyer_tin varchar,
    buyer_name varchar, _load_id varchar, _source_file varchar, _source_row varchar);
create table staging.erp (
    erp_doc_id varchar, posting_date date, tax_period varchar, is_cancelled boolean, is_live boolean,
    _load_id varchar, _source_file varchar, _source_row varchar);
create table staging.reimbursement (
    claim_no varchar, invoice_no varchar, approval_status varchar, claimed_amount decimal(18, 2),
    _load_id varchar, _source_file varchar, _source_row varchar);
create table core.matches (
    invoice_uid varchar, match_side varchar, erp_doc_id varchar, claim_no varchar, ref_token varchar);
"""
A, B = "26112000000000000011", "26112000000000000012"
PARTIES = f"{SUPPLIER_TIN} 济南供应商有限公司 → {ENTITY_TIN} 北京示例科技有限公司"


class Landing:
    """Staging as a run would leave it: each land() replaces a source's rows by a new load's."""

    def __init__(self, con):
        self.con, self.seq = con, 0
        ensure_audit_tables(con)
        con.execute(_TABLES)

    def land(self, source: str, file_name: str, table: str, rows: list[tuple]) -> str:
        self.seq += 1
        load_id = f"L{self.seq}"
        self.con.execute(
            "insert into audit.file_loads values (?, ?, ?, ?, ?, 0, ?, null, 'loaded', null, null, ?)",
            [load_id, self.seq, source, file_name, load_id, len(rows), datetime(2026, 4, 1, self.seq, 0, 0)],
        )
        self.con.execute(f"delete from {table} where _source_file = ?", [file_name])
        for row in rows:
            self.con.execute(f"insert into {table} values ({', '.join('?' * (len(row) + 3))})",
                             [*row, load_id, file_name, "1"])  # fmt: skip
        return load_id

    def platform(self, file_name: str, *invoices: tuple) -> str:
        rows = [(uid, "normal", status, amount, tax, SUPPLIER_TIN, "济南供应商有限公司", ENTITY_TIN,
                 buyer, ) for uid, status, amount, tax, buyer in invoices]  # fmt: skip
        return self.land("tax_platform", file_name, "staging.tax_platform", rows)

    def matches(self, *links: tuple) -> None:
        self.con.execute("delete from core.matches")
        for link in links:
            self.con.execute("insert into core.matches values (?, ?, ?, ?, ?)", link)


def _events(con, run_id: str) -> list[tuple]:
    return con.execute(
        "select invoice_uid, event_seq, aspect, event, value_before, value_after, load_id, file_name "
        "from core.invoice_history where run_id = ? order by invoice_uid, event_seq",
        [run_id],
    ).fetchall()


def test_every_kind_of_change_on_hand_made_staging(tmp_path):
    con = connect(tmp_path / "w.duckdb")
    stage = Landing(con)
    p1 = stage.platform(
        "p.xlsx", (A, "正常", 113, 13, "北京示例科技有限公司"), (B, "正常", 50, 0, "北京示例科技有限公司")
    )
    x1 = stage.land("einvoice", "a.xml", "staging.einvoice",
                    [(A, "einvoice_xml", "normal", 113, 13, SUPPLIER_TIN, "济南供应商有限公司", ENTITY_TIN,
                      "北京示例科技有限公司")])  # fmt: skip
    e1 = stage.land("erp", "erp.csv", "staging.erp",
                    [("BJ01/D1", date(2026, 3, 3), "2026-03", False, True),
                     ("BJ01/D2", date(2026, 3, 4), "2026-03", False, False)])  # fmt: skip
    c1 = stage.land("reimbursement", "c.csv", "staging.reimbursement", [("BX 9", A, "审批中", 113)])
    stage.matches(
        (A, "erp", "BJ01/D1", None, A), (A, "erp", "BJ01/D2", None, A), (A, "claim", None, "BX 9", A)
    )
    first = update_history(con, "r1", _instant("2026-04-01"))
    assert first.events_added == 6 and first.invoices_changed == 2
    assert _events(con, "r1") == [
        (A, 1, "platform", "first_seen", None, f"正常; 113.00/13.00; {PARTIES}", p1, "p.xlsx"),
        (A, 2, "einvoice", "first_seen", None, f"XML; 113.00/13.00; {PARTIES}", x1, "a.xml"),
        (A, 3, "erp", "erp_booked", None, "BJ01/D1 posted 2026-03-03 period 2026-03", e1, "erp.csv"),
        (A, 4, "erp", "erp_booked", None, "BJ01/D2 posted 2026-03-04 period 2026-03 (not approved)", e1,
         "erp.csv"),
        (A, 5, "claim", "claim_attached", None, "BX 9 审批中 113.00", c1, "c.csv"),
        (B, 1, "platform", "first_seen", None, f"正常; 50.00/0.00; {PARTIES}", p1, "p.xlsx"),
    ]  # fmt: skip

    # A drops out of the export; its OFD arrives; D1 leaves the register, D2 is approved; the claim goes.
    stage.platform("p.xlsx", (B, "正常", 50, 0, "北京示例科技有限公司"))
    o1 = stage.land("einvoice", "a.ofd", "staging.einvoice",
                    [(A, "einvoice_ofd", "normal", 100, 13, SUPPLIER_TIN, "济南供应商有限公司", ENTITY_TIN,
                      "北京示例科技有限公司")])  # fmt: skip
    e2 = stage.land("erp", "erp.csv", "staging.erp", [("BJ01/D2", date(2026, 3, 4), "2026-03", False, True)])
    c2 = stage.land("reimbursement", "c.csv", "staging.reimbursement", [])
    stage.matches((A, "erp", "BJ01/D2", None, A))
    update_history(con, "r2", _instant("2026-04-02"))
    assert _events(con, "r2") == [
        (A, 6, "einvoice", "first_seen", None, f"OFD; 100.00/13.00; {PARTIES}", o1, "a.ofd"),
        (A, 7, "erp", "erp_unbooked", "BJ01/D1 posted 2026-03-03 period 2026-03", None, e2, "erp.csv"),
        (A, 8, "erp", "erp_booked", "BJ01/D2 posted 2026-03-04 period 2026-03 (not approved)",
         "BJ01/D2 posted 2026-03-04 period 2026-03", e2, "erp.csv"),
        (A, 9, "claim", "claim_removed", "BX 9 审批中 113.00", None, c2, "c.csv"),
    ]  # fmt: skip

    # A comes back voided with other amounts; B (settled, first_seen only) gets another buyer name;
    # the OFD is corrected; D1 is back.
    p3 = stage.platform(
        "p.xlsx", (A, "已作废", 120, 13, "北京示例科技有限公司"), (B, "正常", 50, 0, "北京示例科技")
    )
    o2 = stage.land("einvoice", "a.ofd", "staging.einvoice",
                    [(A, "einvoice_ofd", "normal", 113, 13, SUPPLIER_TIN, "济南供应商有限公司", ENTITY_TIN,
                      "北京示例科技有限公司")])  # fmt: skip
    e3 = stage.land("erp", "erp.csv", "staging.erp",
                    [("BJ01/D1", date(2026, 3, 3), "2026-03", False, True),
                     ("BJ01/D2", date(2026, 3, 4), "2026-03", False, True)])  # fmt: skip
    stage.matches((A, "erp", "BJ01/D1", None, A), (A, "erp", "BJ01/D2", None, A))
    update_history(con, "r3", _instant("2026-04-03"))
    assert _events(con, "r3") == [
        (A, 10, "platform", "status_changed", "正常", "已作废", p3, "p.xlsx"),
        (A, 11, "platform", "amount_changed", "113.00/13.00", "120.00/13.00", p3, "p.xlsx"),
        (A, 12, "einvoice", "amount_changed", "OFD; 100.00/13.00", "OFD; 113.00/13.00", o2, "a.ofd"),
        (A, 13, "erp", "erp_booked", None, "BJ01/D1 posted 2026-03-03 period 2026-03", e3, "erp.csv"),
        (B, 2, "platform", "party_changed", PARTIES, PARTIES.removesuffix("有限公司"), p3, "p.xlsx"),
    ]  # fmt: skip

    quiet = update_history(con, "r4", _instant("2026-04-04"))
    assert (quiet.events_added, quiet.events_before) == (0, 15)
    assert history_problems(con) == {}
    con.close()


def test_the_check_fails_when_events_from_earlier_runs_are_lost(tmp_path):
    """A history truncated between two runs fails the asset check, even once the run has re-added what
    it could: the previous run's row count is on record in the Dagster instance."""
    data_dir = tmp_path / "data"
    con = connect(project.warehouse_path(data_dir))
    stage = Landing(con)
    stage.platform(
        "p.xlsx", (A, "正常", 113, 13, "北京示例科技有限公司"), (B, "正常", 50, 0, "北京示例科技有限公司")
    )
    stage.land("erp", "erp.csv", "staging.erp", [("BJ01/D1", date(2026, 3, 3), "2026-03", False, True)])
    stage.matches((A, "erp", "BJ01/D1", None, A))
    con.close()
    resources = {"warehouse": Warehouse(data_dir=str(data_dir)), "settings": RunSettings(as_of="2026-04-01")}
    assets = [invoice_history, invoice_history_is_append_only]
    with dg.DagsterInstance.ephemeral() as instance:
        first = dg.materialize(assets, instance=instance, resources=resources)
        assert [c.passed for c in first.get_asset_check_evaluations()] == [True]
        con = connect(project.warehouse_path(data_dir))
        con.execute("delete from core.invoice_history where invoice_uid = ?", [A])
        con.close()
        resources["settings"] = RunSettings(as_of="2026-04-02")
        second = dg.materialize(assets, instance=instance, resources=resources)
    (check,) = second.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["events_lost"].value == 2
    assert check.metadata["events_after_previous_run"].value == 3
    # the run saw A as new again: its history restarts, and the loss is on record
    assert _history(data_dir, A)[0][1:3] == ("platform", "first_seen")


def test_damage_to_the_history_is_found(tmp_path):
    con = connect(tmp_path / "w.duckdb")
    stage = Landing(con)
    stage.platform("p.xlsx", (A, "正常", 113, 13, "北京示例科技有限公司"))
    update_history(con, "r1", _instant("2026-04-02"))
    assert history_problems(con) == {}
    con.execute(
        "insert into core.invoice_history (invoice_uid, event_seq, aspect, event, value_before, source, "
        "observed_at, run_id) values (?, 2, 'claim', 'claim_removed', ?, 'reimbursement', ?, 'x'), "
        "(?, 5, 'platform', 'teleported', null, 'tax_platform', ?, 'x')",
        [A, "BX-7 已通过 1.00", _instant("2026-04-01"), A, _instant("2026-04-03")],
    )
    problems = history_problems(con)
    con.close()
    assert {name: p.count for name, p in problems.items()} == {
        "seq_gaps": 1,
        "out_of_order": 1,
        "unopened_items": 1,
        "missing_values": 1,
        "unknown_vocabulary": 1,
    }
    assert problems["unopened_items"].examples == [(A, "claim", "BX-7", 2, "claim_removed")]
    assert problems["seq_gaps"].examples == [(A, 5, 3)]


@pytest.mark.slow
@pytest.mark.xdist_group("history_generated")
def test_generated_tree_every_invoice_is_first_seen_and_nothing_is_fabricated(data_dir):
    from invoice_pipeline.generate import generate

    generate(data_dir, invoices=300, seed=3)
    with dg.DagsterInstance.ephemeral() as instance:
        _run(data_dir, "2026-11-01", instance)
    unseen = _rows(
        data_dir,
        "select distinct invoice_uid from core.invoices anti join "
        "(select invoice_uid from core.invoice_history where event = 'first_seen') using (invoice_uid)",
    )
    assert unseen == []
    expected = dict(
        _rows(
            data_dir,
            """
            select 'platform/first_seen', count(*) from staging.tax_platform
            union all select 'einvoice/first_seen', count(*) from staging.einvoice
            union all
            select case when e.is_cancelled then 'erp/erp_cancelled' else 'erp/erp_booked' end, count(*)
            from (select distinct invoice_uid, erp_doc_id from core.matches where match_side = 'erp') m
            join staging.erp e using (erp_doc_id) group by 1
            union all
            select 'claim/claim_attached', count(distinct (invoice_uid, claim_no))
            from core.matches where match_side = 'claim'
            """,
        )
    )
    recorded = dict(
        _rows(data_dir, "select aspect || '/' || event, count(*) from core.invoice_history group by 1")
    )
    assert recorded == expected
    assert expected["erp/erp_cancelled"] > 0 and expected["claim/claim_attached"] > 0
    # and every event names a load that exists, with its file and arrival time
    assert _rows(
        data_dir,
        "select count(*) from core.invoice_history h left join audit.file_loads f using (load_id) "
        "where f.load_id is null or h.loaded_at <> f.loaded_at or h.file_name <> f.file_name",
    ) == [(0,)]
    con = connect(project.warehouse_path(data_dir))
    try:
        again = update_history(con, "again", _instant("2026-11-02"))
        assert again.events_added == 0
        assert history_problems(con) == {}
    finally:
        con.close()
