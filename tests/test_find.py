"""`invoice-pipeline find`: every query form against a generated, run warehouse (issue 7).

The generated tree gets one extra platform file with two crafted invoices: a legacy invoice with a
12-digit code, and a 数电 invoice whose 20-digit number is exactly that code and number run
together — the collision `find` must list as two candidates. The rest is picked from the warehouse.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from conftest import SUPPLIER_TIN, write_platform_workbook

from invoice_pipeline import normalize as nz
from invoice_pipeline import project
from invoice_pipeline.cli import main, run_pipeline
from invoice_pipeline.find import DateFilter, QueryError, parse_date_filter, parse_query
from invoice_pipeline.generate import generate
from invoice_pipeline.warehouse import connect

BIN = Path(sys.executable).parent
# The module's tests read one warehouse: keep them on one xdist worker (where xdist can; the
# `built` fixture shares the warehouse across workers anyway).
pytestmark = pytest.mark.xdist_group("find")

# The crafted pair: a legacy invoice, and a 数电 invoice numbered like it run together.
LEGACY_CODE, LEGACY_NO = "011002699911", "00777001"
LEGACY_UID = f"{LEGACY_CODE}-{LEGACY_NO}"
COLLIDING = LEGACY_CODE + LEGACY_NO


def _platform_row(seq, code, number, digital, buyer_tin, date, total, kind):
    amount = round(total / 1.13, 2)
    return (
        seq,
        code,
        number,
        digital,
        SUPPLIER_TIN,
        "济南供应商有限公司",
        buyer_tin,
        "星河智能科技（北京）有限公司",
        f"{date} 10:00:00",
        amount,
        round(total - amount, 2),
        total,
        "电子发票服务平台" if digital != "--" else "增值税发票管理系统",
        kind,
        "正常",
        "是",
        "正常",
        "王五",
        "",
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The generated, run warehouse, built once per test session and only read by the tests.

    Shared between xdist workers through a file lock: with pytest 9.2, pytest-xdist 3.8's
    `--dist loadgroup` does not keep an `xdist_group` on one worker (it renames `item._nodeid`,
    which pytest no longer reads), so this module's tests may land on both workers.
    """
    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent  # the session's base, common to all workers
    root = shared / "find_warehouse" / "data"
    with (shared / "find_warehouse.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = root.parent / "built"
        if not done.exists():
            shutil.rmtree(root.parent, ignore_errors=True)  # a build that failed half-way
            _build(root)
            done.touch()
    return root


def _build(root: Path) -> None:
    generate(root, invoices=300, seed=3)
    with (root / "landing" / "entities" / "entities.csv").open(encoding="utf-8-sig") as f:
        bj = next(r["tin"] for r in csv.DictReader(f) if r["erp_org_code"] == "BJ01")
    write_platform_workbook(
        root / "landing" / "tax_platform" / "北京星河_进项_2026Q3_补充_全量发票查询导出结果.xlsx",
        rows=[
            _platform_row("1", LEGACY_CODE, LEGACY_NO, "--", bj, "2026-09-10", 339.0, "增值税普通发票"),
            _platform_row("2", "", "", COLLIDING, bj, "2026-09-15", 1130.0, "数电发票（增值税专用发票）"),
        ],
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(project.DATA_DIR_ENV, str(root))  # run_pipeline sets it; restored afterwards
        mp.delenv("DAGSTER_HOME", raising=False)
        run_pipeline(root, "2026-11-01")
    con = connect(project.warehouse_path(root))
    try:
        finding = con.execute(
            "select finding_id from audit.findings where rule_id = 'missing_in_erp' and invoice_uid = ?",
            [LEGACY_UID],
        ).fetchall()[0][0]
        at = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
        con.execute(
            "insert into audit.finding_actions values (?, ?, ?, ?, ?, ?, ?)",
            [
                "a-find-1",
                finding,
                "reissue_requested",
                "李明",
                "asked the supplier for the ERP copy",
                at,
                "cli",
            ],
        )
        # A finding of an earlier run, resolved since: listed after the open one.
        con.execute(
            "insert into audit.findings values ('f-find-old', 'date_mismatch', 'warning', ?, 'received', "
            "'2026-09', ?, ?, 1.00, '{}', ?, ?, ?, 'resolved')",
            [
                bj,
                LEGACY_UID,
                LEGACY_UID,
                datetime(2026, 9, 20, tzinfo=UTC),
                datetime(2026, 9, 25, tzinfo=UTC),
                datetime(2026, 9, 26, tzinfo=UTC),
            ],
        )
        # core.invoice_history is the history asset's (created here if that asset is not in the run);
        # its columns are the contract `find` reads.
        con.execute(
            """create table if not exists core.invoice_history (
                invoice_uid varchar not null, event_seq integer not null, aspect varchar not null,
                event varchar not null, value_before varchar, value_after varchar, source varchar not null,
                load_id varchar, file_name varchar, loaded_at timestamptz, observed_at timestamptz not null,
                run_id varchar not null)"""
        )
        for seq, event, before, after in (
            (901, "first_seen", None, "正常"),
            (902, "status_changed", "正常", "已红冲-全额"),
        ):
            con.execute(
                "insert into core.invoice_history values (?, ?, 'platform', ?, ?, ?, 'tax_platform', "
                "'l1', 'x_全量发票查询导出结果.xlsx', ?, ?, 'r1')",
                [LEGACY_UID, seq, event, before, after, at, at],
            )
    finally:
        con.close()


def rows(root: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = connect(project.warehouse_path(root), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def find(capsys, root: Path, *args: str) -> tuple[int, str, str]:
    code = main(["find", *args, "--data-dir", str(root)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def find_json(capsys, root: Path, *args: str) -> tuple[int, dict]:
    code, out, err = find(capsys, root, *args, "--json")
    assert out, err
    return code, json.loads(out)


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


# ----------------------------------------------------------------------------- parsing (pure)


@pytest.mark.parametrize(
    ("typed", "kind", "key"),
    [
        ("26112010000060344869", "digits20", "26112010000060344869"),
        ("2611 2010 0000 6034 4869", "digits20", "26112010000060344869"),
        ("'26112010000060344869", "digits20", "26112010000060344869"),
        ("２６１１２０１０００００６０３４４８６９", "digits20", "26112010000060344869"),
        ("01100210051100290716", "digits20", "01100210051100290716"),
        ("110026113000291352", "digits18", "110026113000291352"),
        ("011002100511-00290716", "code_number", "011002100511-00290716"),
        ("011002100511 00290716", "code_number", "011002100511-00290716"),
        ("011002100511/00290716", "code_number", "011002100511-00290716"),
        ("011002100511_00290716", "code_number", "011002100511-00290716"),
        ("011002100511，00290716", "code_number", "011002100511-00290716"),
        ("011002100511—00290716", "code_number", "011002100511-00290716"),
        ("０１１００２１００５１１　００２９０７１６", "code_number", "011002100511-00290716"),
        ("发票代码：011002100511 发票号码：00290716", "code_number", "011002100511-00290716"),
        ("1100261130 291352", "code_number", "1100261130-00291352"),
        ("00290716", "number8", "00290716"),
        ("290716", "number8", "00290716"),
        ("博恒", "name", "博恒"),
        ("星河智能科技（北京）", "name", "星河智能科技(北京)"),
        ("ａｃｍｅ Trading", "name", "ACMETRADING"),
    ],
)
def test_parse_query_reads_every_typed_form(typed, kind, key):
    query = parse_query(typed)
    assert (query.kind, query.key) == (kind, key)


def test_twenty_digits_have_two_readings_and_short_numbers_say_they_were_padded():
    assert parse_query("01100210051100290716").invoice_keys == (
        "01100210051100290716",
        "011002100511-00290716",
    )
    assert parse_query("110026113000291352").invoice_keys == ("1100261130-00291352",)
    assert "leading zeros" in parse_query("290716").note
    assert parse_query("91110105MA01K7Q365").tin == "91110105MA01K7Q365"


@pytest.mark.parametrize(
    "typed", ["", "  ", "1234567890123", "011002100511", "0110021005110029071", "12345 67890 12"]
)
def test_parse_query_refuses_what_is_no_invoice_number(typed):
    with pytest.raises(QueryError):
        parse_query(typed)


def test_parse_date_filter_days_and_months():
    import datetime as dt

    assert parse_date_filter("2026-10-15") == DateFilter(
        dt.date(2026, 10, 15), dt.date(2026, 10, 15), "2026-10-15"
    )
    assert parse_date_filter("2026年10月15日").start == dt.date(2026, 10, 15)
    month = parse_date_filter("2026-02")
    assert (month.start, month.end, month.text) == (dt.date(2026, 2, 1), dt.date(2026, 2, 28), "2026-02")
    assert dt.date(2026, 2, 28) in month and dt.date(2026, 3, 1) not in month
    with pytest.raises(QueryError):
        parse_date_filter("last week")


# ----------------------------------------------------------------------------- the warehouse


@pytest.mark.slow
def test_a_20_digit_number_in_every_spelling(built, capsys):
    (uid,) = rows(
        built,
        "select invoice_uid from core.authoritative_invoices where digital_invoice_no is not null "
        "and invoice_code is null and source = 'tax_platform' and invoice_uid <> ? "
        "order by invoice_uid limit 1",
        [COLLIDING],
    )[0]
    spaced = " ".join(uid[i : i + 4] for i in range(0, 20, 4))
    fullwidth = uid.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    for typed in (uid, spaced, f"'{uid}", fullwidth):
        code, doc = find_json(capsys, built, typed)
        assert code == 0 and doc["result"] == "found", typed
        (invoice,) = doc["invoices"]
        assert invoice["invoice_uid"] == uid
        assert invoice["found_by"][0] == "its 数电 number"
        assert invoice["records"][0]["source"] == "tax_platform"


@pytest.mark.slow
def test_a_legacy_number_run_together_into_20_digits_is_found_as_code_and_number(built, capsys):
    (uid, code_, no) = rows(
        built,
        "select invoice_uid, invoice_code, invoice_no from core.authoritative_invoices "
        "where length(invoice_code) = 12 and digital_invoice_no is null and invoice_uid <> ? "
        "order by invoice_uid limit 1",
        [LEGACY_UID],
    )[0]
    joined = code_ + no
    assert len(joined) == 20  # looks exactly like a 数电 number
    code, doc = find_json(capsys, built, joined)
    assert code == 0 and doc["result"] == "found"
    assert doc["invoices"][0]["invoice_uid"] == uid
    assert "its code and number run together" in doc["invoices"][0]["found_by"]


@pytest.mark.slow
def test_twenty_digits_that_are_both_readings_list_both_candidates(built, capsys):
    code, out, _ = find(capsys, built, COLLIDING)
    assert code == 0
    assert "2 candidates" in out and COLLIDING in out and LEGACY_UID in out
    assert f"Type {LEGACY_UID} for the legacy invoice" in out

    code, doc = find_json(capsys, built, COLLIDING)
    assert doc["result"] == "ambiguous" and doc["invoices"] == []
    by_key = {c["key"]: c for c in doc["candidates"]}
    assert set(by_key) == {COLLIDING, LEGACY_UID}
    assert by_key[COLLIDING]["found_by"][0] == "its 数电 number"
    assert by_key[LEGACY_UID]["found_by"][0] == "its code and number run together"

    code, doc = find_json(capsys, built, COLLIDING, "--all")
    assert [i["key"] for i in doc["invoices"]] == [LEGACY_UID, COLLIDING]  # by issue date
    code, doc = find_json(capsys, built, f"{LEGACY_CODE} {LEGACY_NO}")
    assert doc["result"] == "found" and doc["invoices"][0]["key"] == LEGACY_UID
    code, doc = find_json(capsys, built, COLLIDING, "--date", "2026-09-15")
    assert doc["result"] == "found" and doc["invoices"][0]["key"] == COLLIDING


@pytest.mark.slow
def test_eighteen_digits_and_code_and_number_separated_every_way(built, capsys):
    (uid18, code10, no10) = rows(
        built,
        "select invoice_uid, invoice_code, invoice_no from core.authoritative_invoices "
        "where length(invoice_code) = 10 order by invoice_uid limit 1",
    )[0]
    code, doc = find_json(capsys, built, code10 + no10)
    assert code == 0 and doc["invoices"][0]["invoice_uid"] == uid18
    (uid, code12, no) = rows(
        built,
        "select invoice_uid, invoice_code, invoice_no from core.authoritative_invoices "
        "where length(invoice_code) = 12 and invoice_uid <> ? order by invoice_uid desc limit 1",
        [LEGACY_UID],
    )[0]
    wide = (code12 + "　" + no).translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    for typed in (
        f"{code12}-{no}",
        f"{code12} {no}",
        f"{code12}/{no}",
        f"{code12}_{no}",
        f"{code12}，{no}",
        wide,
        f"发票代码:{code12} 号码:{no}",
        f"{code12}-{no.lstrip('0')}",
    ):
        code, doc = find_json(capsys, built, typed)
        assert code == 0 and doc["result"] == "found", typed
        assert doc["invoices"][0]["invoice_uid"] == uid, typed


@pytest.mark.slow
def test_eight_digits_list_the_candidates_and_say_how_to_narrow(built, capsys):
    code, out, _ = find(capsys, built, LEGACY_NO)
    assert code == 0
    assert "2 candidates" in out
    assert LEGACY_UID in out and COLLIDING in out
    assert "its 8-digit 发票号码" in out and "the last 8 digits of its 数电 number" in out
    assert "2026-09-10" in out and "339.00" in out  # date and amount of each candidate
    assert "Narrow it: --date" in out

    code, doc = find_json(capsys, built, LEGACY_NO, "--date", "2026-09-10")
    assert code == 0 and doc["result"] == "found" and doc["invoices"][0]["key"] == LEGACY_UID


@pytest.mark.slow
def test_eight_digits_of_one_invoice_show_it_in_full(built, capsys):
    (uid, number) = rows(
        built,
        "select a.invoice_uid, a.alias from core.invoice_aliases as a "
        "join core.matches as m on a.invoice_uid = m.invoice_uid and m.match_side = 'erp' "
        "where a.alias_kind = 'suffix8' and a.alias in ("
        "  select alias from core.invoice_aliases where alias_kind in ('number8', 'suffix8') "
        "  group by alias having count(distinct invoice_uid) = 1) "
        "order by a.invoice_uid limit 1",
    )[0]
    code, out, _ = find(capsys, built, number)
    assert code == 0
    assert f"invoice {uid}" in out
    assert "the last 8 digits of its 数电 number" in out
    assert "platform" in out and "ERP " in out  # sources side by side
    assert "matches" in out and "findings (" in out


@pytest.mark.slow
def test_a_counterparty_name_with_a_date(built, capsys):
    counterparty = "case when direction = 'issued' then buyer_name else seller_name end"
    # A counterparty with several invoices, and a day on which a fragment of its name fits one.
    for pick in rows(
        built,
        f"select {counterparty}, issue_date, min(invoice_uid) from core.authoritative_invoices "
        f"group by {counterparty}, issue_date having count(*) = 1 "
        f"and {counterparty} in (select {counterparty} from core.authoritative_invoices "
        "  group by 1 having count(*) >= 3) "
        "order by 1, 2",
    ):
        name, day, uid = pick
        fragment = name[2:6]
        fits = rows(
            built,
            "select "
            f"(select count(*) from core.authoritative_invoices "
            f" where issue_date = ? and contains({counterparty}, ?)), "
            "(select count(*) from staging.erp where issue_date = ? and contains(counterparty_name, ?) "
            " and erp_doc_id not in (select erp_doc_id from core.matches where erp_doc_id is not null))",
            [day, fragment, day, fragment],
        )[0]
        if fits == (1, 0):
            break
    else:
        pytest.fail("no counterparty name and day that exactly one invoice fits")

    code, out, _ = find(capsys, built, fragment)
    assert code == 0 and "candidates" in out and "Narrow it: --date" in out

    code, doc = find_json(capsys, built, fragment, "--date", day.isoformat())
    assert code == 0 and doc["result"] == "found"
    assert doc["invoices"][0]["key"] == uid
    assert doc["invoices"][0]["found_by"][0] == f"counterparty {name}"

    month = day.isoformat()[:7]
    code, doc = find_json(capsys, built, fragment, "--date", month)
    assert uid in [c["key"] for c in doc["candidates"]]
    assert all(c["issue_date"].startswith(month) for c in doc["candidates"])


@pytest.mark.slow
def test_a_number_only_the_erp_knows(built, capsys):
    (number, doc_id) = rows(
        built,
        "select invoice_uid, subject from audit.findings where rule_id = 'missing_in_tax_platform' "
        "order by invoice_uid limit 1",
    )[0]
    code, out, _ = find(capsys, built, number)
    assert code == 0
    assert "NOT ON ANY TAX SOURCE" in out
    assert f"ERP {doc_id}" in out
    assert "missing_in_tax_platform" in out

    code, doc = find_json(capsys, built, number)
    (block,) = doc["invoices"]
    assert block["on_tax_sources"] is False and block["invoice_uid"] is None
    assert [s["source"] for s in block["records"]] == ["erp"]
    assert block["records"][0]["erp_doc_id"] == doc_id
    assert block["records"][0]["match"] == "not matched"
    assert [f["rule_id"] for f in block["findings"]] == ["missing_in_tax_platform"]


@pytest.mark.slow
def test_a_number_only_a_claim_knows(built, capsys):
    (number, claims) = rows(
        built,
        "select invoice_uid, details->>'$.claims[0]' from audit.findings "
        "where rule_id = 'claim_without_invoice' order by invoice_uid limit 1",
    )[0]
    code, doc = find_json(capsys, built, number)
    assert code == 0
    (block,) = doc["invoices"]
    assert block["on_tax_sources"] is False
    assert claims in [s.get("claim_no") for s in block["records"]]
    assert "claim_without_invoice" in [f["rule_id"] for f in block["findings"]]


@pytest.mark.slow
def test_findings_open_first_with_actions_and_the_history(built, capsys):
    code, out, _ = find(capsys, built, LEGACY_UID)
    assert code == 0
    opened = out.index("missing_in_erp")
    resolved = out.index("date_mismatch")
    assert opened < resolved
    assert "findings (1 open, 1 resolved)" in out
    assert "reissue_requested by 李*" in out  # the person's name masked
    assert "asked the supplier for the ERP copy" in out
    assert "history" in out and "status_changed" in out and "正常 → 已红冲-全额" in out

    code, doc = find_json(capsys, built, LEGACY_UID)
    (block,) = doc["invoices"]
    states = [f["state"] for f in block["findings"]]
    assert states == sorted(states, key=["open", "accepted", "resolved"].index)
    missing = next(f for f in block["findings"] if f["rule_id"] == "missing_in_erp")
    assert missing["actions"][0]["action"] == "reissue_requested"
    assert missing["first_seen_at"].endswith("+08:00")  # instants in Shanghai time, ISO
    assert [h["event_seq"] for h in block["history"]][-2:] == [901, 902]


@pytest.mark.slow
def test_json_is_the_same_content_with_iso_dates_and_decimal_strings(built, capsys):
    code, doc = find_json(capsys, built, LEGACY_UID)
    assert code == 0
    (block,) = doc["invoices"]
    platform = block["records"][0]
    assert platform["issue_date"] == "2026-09-10"
    assert platform["amount_incl_tax"] == "339.00"
    assert platform["tax_amount"] == "39.00"
    assert block["entity_sides"][0]["authoritative_source"] == "tax_platform"
    assert block["matches"] == []
    assert doc["masked"] is True and doc["snapshot"] is False
    assert doc["warehouse"] == str(project.warehouse_path(built))


@pytest.mark.slow
def test_resident_ids_in_tins_and_peoples_names_are_masked_unless_asked(built, capsys):
    invoices = pl.DataFrame(
        rows(built, "select invoice_uid, seller_tin from core.authoritative_invoices order by invoice_uid"),
        schema=["uid", "tin"],
        orient="row",
    )
    uid, tin, masked_tin = (
        invoices.with_columns(nz.mask_tin(pl.col("tin")).alias("masked"))
        .filter(pl.col("masked") != pl.col("tin"))
        .row(0)
    )
    code, out, _ = find(capsys, built, uid)
    assert code == 0 and tin not in out and masked_tin in out
    code, out, _ = find(capsys, built, uid, "--json")
    assert tin not in out and masked_tin in out
    code, out, _ = find(capsys, built, uid, "--json", "--unmasked")
    assert tin in out and json.loads(out)["masked"] is False

    (claim_uid, claimant) = rows(
        built,
        "select m.invoice_uid, c.claimant from core.matches as m join staging.reimbursement as c "
        "on m.claim_no = c.claim_no and m.ref_token = c.invoice_no order by 1 limit 1",
    )[0]
    code, out, _ = find(capsys, built, claim_uid, "--json")
    assert claimant not in out and f'"claimant": "{claimant[0]}*' in out
    code, out, _ = find(capsys, built, claim_uid, "--json", "--unmasked")
    assert f'"claimant": "{claimant}"' in out


@pytest.mark.slow
def test_nothing_found_and_usage_errors(built, capsys):
    code, out, _ = find(capsys, built, "011002699911-00999999")
    assert code == 1
    assert "nothing found" in out and "011002699911-00999999 (code and number)" in out
    code, doc = find_json(capsys, built, "天外飞仙有限公司")
    assert code == 1 and doc["result"] == "not_found" and doc["candidates"] == []
    code, out, _ = find(capsys, built, LEGACY_NO, "--date", "2025-01-01")
    assert code == 1 and "Without --date more may match" in out

    for args, message in (
        (["011002100511"], "is a 发票代码 alone: add its 8-digit 发票号码"),
        (["12345678901"], "(11 digits) is not an invoice number"),
        (["x", "--date", "soon"], "--date must be a day YYYY-MM-DD or a month YYYY-MM"),
    ):
        with pytest.raises(SystemExit) as exc:
            main(["find", *args, "--data-dir", str(built)])
        assert exc.value.code == 2
        assert message in capsys.readouterr().err


def test_no_warehouse_is_one_line_and_exit_1(tmp_path, capsys):
    code, out, err = find(capsys, tmp_path, "00290716")
    assert code == 1 and out == ""
    where = project.warehouse_path(tmp_path)
    assert err.strip() == f"invoice-pipeline: no warehouse at {where}: run `invoice-pipeline run` first"


_HOLD = "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('ready', flush=True); sys.stdin.read()"


@contextmanager
def write_lock(path: Path):
    """Another process holding the warehouse read-write, as the nightly run does."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        yield
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


@pytest.mark.slow
def test_subprocess_while_a_run_holds_the_warehouse_reads_the_snapshot(built, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(built / "warehouse", data / "warehouse")
    env = {k: v for k, v in os.environ.items() if k not in ("INVOICE_PIPELINE_DATA_DIR", "DAGSTER_HOME")}
    command = [str(BIN / "invoice-pipeline"), "find", LEGACY_UID, "--data-dir", str(data)]

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)

    free = run()
    assert free.returncode == 0, free.stderr
    assert f"invoice {LEGACY_UID}" in free.stdout and free.stderr == ""

    with write_lock(project.warehouse_path(data)):
        locked = run()
    assert locked.returncode == 0, locked.stderr
    assert "is locked by a running pipeline" in locked.stderr
    assert str(project.analytics_path(data)) in locked.stderr
    assert f"invoice {LEGACY_UID}" in locked.stdout
    assert "read from the analysts' snapshot" in locked.stdout

    project.analytics_path(data).unlink()
    with write_lock(project.warehouse_path(data)):
        refused = run()
    assert refused.returncode == 1
    assert "locked by a running pipeline and there is no snapshot" in refused.stderr
