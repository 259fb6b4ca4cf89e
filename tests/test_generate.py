"""The generator: deterministic bytes, real formats, and a truth that matches what is on disk.

Files are read back with openpyxl / csv / zipfile / xml.etree — never with the project's
readers — and an independent, deliberately plain evaluation of the SPEC §4.2 rules must find
exactly the problems the truth lists: no more (look-alikes stay silent), no fewer.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import re
import subprocess
import sys
import unicodedata
import xml.etree.ElementTree as ET
import zipfile
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from invoice_pipeline.generate import SEVERITY, generate
from invoice_pipeline.generate.ids import is_valid_tin, is_valid_uscc
from invoice_pipeline.generate.platform import HEADER_COLUMNS, LINE_COLUMNS, TRAVEL_COLUMNS

N = 400
SEED = 7
ERP_COLUMNS = (
    "组织",
    "方向",
    "单据编号",
    "凭证号",
    "记账日期",
    "会计期间",
    "往来单位名称",
    "往来单位税号",
    "发票类型",
    "发票代码",
    "发票号码",
    "开票日期",
    "不含税金额",
    "税率",
    "税额",
    "价税合计",
    "币种",
    "审核状态",
    "作废标志",
    "制单人",
    "备注",
)
CLAIM_COLUMNS = (
    "报销单号",
    "报销人",
    "部门",
    "提交日期",
    "审批状态",
    "发票代码",
    "发票号码",
    "开票日期",
    "价税合计",
    "报销金额",
)
SYNC_KEYS = (
    "run_id",
    "system",
    "entity_tin",
    "started_at",
    "finished_at",
    "status",
    "records_read",
    "records_written",
    "records_failed",
    "error",
)
RATES = {"13%": 13, "9%": 9, "6%": 6, "5%": 5, "3%": 3, "1%": 1, "0%": 0, "免税": 0, "不征税": 0}
AS_OF = datetime(2026, 11, 1, 2, 0, 0)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("gen")
    return out, generate(out, N, SEED)


@pytest.fixture(scope="module")
def csv_only(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The ≥ 1 M layout (platform exports as CSV, no line sheets), at test size."""
    import invoice_pipeline.generate as gen
    import invoice_pipeline.generate.platform as platform

    out = tmp_path_factory.mktemp("gen_csv")
    saved = platform.CSV_ONLY_FROM, gen.CSV_ONLY_FROM
    platform.CSV_ONLY_FROM = gen.CSV_ONLY_FROM = N
    try:
        return out, generate(out, N, SEED)
    finally:
        platform.CSV_ONLY_FROM, gen.CSV_ONLY_FROM = saved


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# determinism


def test_same_seed_gives_identical_bytes(generated: tuple[Path, dict], tmp_path: Path) -> None:
    out, truth = generated
    again = generate(tmp_path, N, SEED)
    assert again == truth
    assert tree_hashes(tmp_path) == tree_hashes(out)


def test_identical_bytes_in_another_process(generated: tuple[Path, dict], tmp_path: Path) -> None:
    """Set and dict ordering must not leak into the files: another hash seed, same bytes."""
    out, _ = generated
    code = (
        "from pathlib import Path; from invoice_pipeline.generate import generate; "
        f"generate(Path({str(tmp_path)!r}), {N}, {SEED})"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)
    assert tree_hashes(tmp_path) == tree_hashes(out)


def test_chunked_writing_gives_the_same_bytes(
    generated: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Big registers are written a chunk of rows at a time: chunk borders (here every 7 rows,
    planted rows among them) must not show in the files."""
    import invoice_pipeline.generate.erp as erp

    out, truth = generated
    monkeypatch.setattr(erp, "CHUNK_ROWS", 7)
    assert generate(tmp_path, N, SEED) == truth
    assert tree_hashes(tmp_path) == tree_hashes(out)


def test_different_seed_differs(generated: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = generated
    generate(tmp_path, N, SEED + 1)
    first, second = tree_hashes(out), tree_hashes(tmp_path)
    assert first != second
    assert first["landing/entities/entities.csv"] == second["landing/entities/entities.csv"]
    generate(tmp_path, N, SEED)  # over a generated tree: replaced, nothing stale left behind
    assert tree_hashes(tmp_path) == first


def test_foreign_landing_files_are_never_deleted(tmp_path: Path) -> None:
    dropped = tmp_path / "landing/erp/someone_elses_export.csv"
    dropped.parent.mkdir(parents=True)
    dropped.write_text("组织\n", encoding="utf-8")
    with pytest.raises(FileExistsError):
        generate(tmp_path, N, SEED)
    assert dropped.is_file()


def test_too_few_invoices_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least"):
        generate(tmp_path, 50, 1)


# formats


def test_entities(generated: tuple[Path, dict]) -> None:
    out, _ = generated
    with (out / "landing/entities/entities.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["tin", "name", "region_code", "erp_org_code", "aliases"]
    assert 3 <= len(rows) <= 4
    assert all(is_valid_uscc(r["tin"]) and r["tin"].startswith("91") for r in rows)
    assert any(r["region_code"] == "110105" for r in rows)
    assert any("（" in alias for r in rows for alias in r["aliases"].split("|"))


def test_platform_workbooks(generated: tuple[Path, dict]) -> None:
    out, truth = generated
    files = sorted((out / "landing/tax_platform").glob("*_全量发票查询导出结果.xlsx"))
    assert len(files) == len(truth["counts"]["tax_platform_files"]) > 0
    travel = 0
    remarks: set[str] = set()
    for path in files:
        assert re.fullmatch(r".+_(销项|进项)_2026Q[1-4]_全量发票查询导出结果\.xlsx", path.name)
        wb = openpyxl.load_workbook(path)
        assert wb.sheetnames[:2] == ["发票基础信息", "信息汇总表"]
        head = wb["发票基础信息"]
        rows = list(head.iter_rows())
        assert tuple(c.value for c in rows[0]) == HEADER_COLUMNS
        assert rows[-1][0].value == "合计行"
        body = rows[1:-1]
        assert [r[0].value for r in body] == [str(k) for k in range(1, len(body) + 1)]
        for col, name in ((9, "金额"), (10, "税额")):
            total = sum(Decimal(str(r[col].value)) for r in body)
            filled = [c.value for k, c in enumerate(rows[-1]) if c.value is not None and k > 0]
            assert len(filled) == 2, name
            if path.name not in {
                p["subject"] for p in truth["problems"] if p["rule_id"] == "control_total_mismatch"
            }:
                assert Decimal(str(rows[-1][col].value)) == total, (path.name, name)
        for r in body:
            for k in (0, 1, 2, 3, 4, 6, 8):
                assert r[k].data_type == "s", (path.name, k)
            for k in (9, 10, 11):
                assert r[k].data_type == "n"
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", r[8].value)
            code, number, digital = r[1].value, r[2].value, r[3].value
            if digital == "--":
                assert re.fullmatch(r"0\d{11}|\d{10}", code) and re.fullmatch(r"\d{8}", number)
            else:
                assert re.fullmatch(r"26\d{18}", digital)
                assert (code, number) == ("", "") or re.fullmatch(r"\d{12}", code)
            assert r[14].value in ("正常", "已作废", "已红冲-全额", "已红冲-部分", "失控", "异常")
            if r[14].value == "已作废":
                assert r[13].value in ("增值税专用发票", "增值税普通发票", "数电纸质发票（普通发票）")
            assert (r[15].value == "否") == (r[11].value < 0)
        remarks.update(r[18].value for r in body if r[15].value == "否")
        lines = list(wb["信息汇总表"].iter_rows(values_only=True))
        assert lines[0] == LINE_COLUMNS
        for line in lines[1:]:
            assert isinstance(line[3], str) and isinstance(line[9], str) and isinstance(line[17], str)
        if "旅客运输服务" in wb.sheetnames:
            travel += 1
            sheet = list(wb["旅客运输服务"].iter_rows(values_only=True))
            assert sheet[0] == TRAVEL_COLUMNS and len(sheet) >= 2
    assert travel == 1
    for spelling in (
        r"被红冲蓝字数电发票号码：\d{20} 红字发票信息确认单编号：\d{20}",
        r"被红冲蓝字数电票号码：\d{20} 红字发票信息确认单编号：\d{20}",
        r"对应正数发票代码:\d{10,12}号码:\d{8}",
        r"对应正数发票代码:\d{10,12} 号码:\d{8}",
    ):
        assert any(re.fullmatch(spelling, r) for r in remarks), spelling


def test_platform_csv_variant(csv_only: tuple[Path, dict]) -> None:
    out, truth = csv_only
    files = sorted((out / "landing/tax_platform").glob("*.csv"))
    assert len(files) == len(truth["counts"]["tax_platform_files"])
    assert not [p for p in (out / "landing/tax_platform").glob("*.xlsx") if "(1)" not in p.name]
    assert truth["counts"]["tax_platform_line_rows"] == 0
    for path in files:
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
        assert tuple(rows[0]) == HEADER_COLUMNS
        assert rows[-1][0] == "合计行"


def test_einvoice_files(generated: tuple[Path, dict]) -> None:
    out, truth = generated
    folder = out / "landing/einvoice"
    bad = {b["file"] for b in truth["bad_files"] if b["source"] == "einvoice"}
    xml_files = [p for p in sorted(folder.glob("*.xml")) if p.name not in bad]
    assert len(xml_files) == truth["counts"]["einvoice_xml_files"]
    date_only = negative_line = 0
    for path in xml_files:
        assert re.fullmatch(r"dzfp_26\d{18}_.+_\d{14}\.xml", path.name)
        root = ET.fromstring(path.read_bytes())
        assert root.tag == "EInvoice"
        eiid = root.findtext("Header/EIid")
        assert eiid == root.findtext("TaxSupervisionInfo/InvoiceNumber") and eiid in path.name
        assert root.findtext("Header/InherentLabel/GeneralOrSpecialVAT/LabelCode") in ("01", "02")
        for p in (
            "EInvoiceData/SellerInformation/SellerIdNum",
            "EInvoiceData/BuyerInformation/BuyerName",
            "EInvoiceData/BasicInformation/TotalTax-includedAmount",
            "EInvoiceData/BasicInformation/Drawer",
            "EInvoiceData/BasicInformation/RequestTime",
            "TaxSupervisionInfo/TaxBureauCode",
        ):
            assert root.findtext(p) is not None, p
        assert root.find("EInvoiceData/AdditionalInformation/Remark") is not None
        items = root.findall("EInvoiceData/IssuItemInformation")
        assert items and all(i.findtext("TaxRate") and i.findtext("TaxClassificationCode") for i in items)
        date_only += len(root.findtext("TaxSupervisionInfo/IssueTime")) == 10
        negative_line += any(i.findtext("Amount").startswith("-") for i in items) and not root.findtext(
            "EInvoiceData/BasicInformation/TotalAmWithoutTax"
        ).startswith("-")
    assert date_only >= 1 and negative_line >= 1
    ofd = sorted(folder.glob("*.ofd"))
    assert len(ofd) == truth["counts"]["einvoice_ofd_files"] >= 2
    attached = 0
    for path in ofd:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            assert "OFD.xml" in names
            assert b"ofd:CustomDatas" in zf.read("OFD.xml")
            if "Doc_0/Attachs/original_invoice.xml" in names:
                attached += 1
                root = ET.fromstring(zf.read("Doc_0/Attachs/original_invoice.xml"))
                assert root.tag == "{http://www.edrm.org.cn/schema/e-invoice/2019}eInvoice"
            assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in zf.infolist())
    assert 1 <= attached < len(ofd)


def test_erp_files(generated: tuple[Path, dict]) -> None:
    out, truth = generated
    folder = out / "landing/erp"
    bad = {b["file"] for b in truth["bad_files"] if b["source"] == "erp"}
    encodings = set()
    for path in sorted(folder.iterdir()):
        if path.name in bad:
            continue
        if path.suffix == ".xlsx":
            encodings.add("xlsx")
            header = next(openpyxl.load_workbook(path).active.iter_rows(values_only=True))
            assert header == ERP_COLUMNS
            continue
        data = path.read_bytes()
        encodings.add("utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "other")
        rows = read_csv_bytes(data)
        assert rows is not None and tuple(rows[0]) == ERP_COLUMNS
    assert encodings == {"xlsx", "utf-8-sig", "other"}
    gb = [
        p
        for p in folder.glob("*.csv")
        if p.name not in bad and not p.read_bytes().startswith(b"\xef\xbb\xbf")
    ]
    assert any(_decodes_only_as_gb18030(p.read_bytes()) for p in gb)


def _decodes_only_as_gb18030(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        data.decode("gb18030")
        return True
    return False


def test_claims_and_sync_files(generated: tuple[Path, dict]) -> None:
    out, truth = generated
    encodings = []
    for path in sorted((out / "landing/reimbursement").glob("*.csv")):
        data = path.read_bytes()
        rows = read_csv_bytes(data)
        assert tuple(rows[0]) == CLAIM_COLUMNS
        encodings.append("gbk" if _decodes_only_as_gb18030(data) else "utf-8")
    assert encodings.count("gbk") == 1
    for path in sorted((out / "landing/sync_log").glob("*.jsonl")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                run = json.loads(line)
            except json.JSONDecodeError:
                assert {
                    "source": "sync_log",
                    "file": path.name,
                    "row": f"line {n}",
                    "column": None,
                    "raw_value": line,
                } in truth["bad_rows"]
                continue
            assert tuple(run) == SYNC_KEYS
            assert run["started_at"].endswith("+08:00")


def test_bad_files_and_rows(generated: tuple[Path, dict]) -> None:
    out, truth = generated
    bad = {(b["source"], b["file"]): b["reason_contains"] for b in truth["bad_files"]}
    assert len(bad) == 6
    for (source, name), _ in bad.items():
        assert (out / "landing" / source / name).is_file()
    truncated = next(out / "landing/tax_platform" / f for s, f in bad if s == "tax_platform")
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(truncated)
    assert (out / "landing/erp" / next(f for s, f in bad if bad[(s, f)] == "empty")).stat().st_size == 0
    assert bad[("einvoice", next(f for s, f in bad if bad[(s, f)] == "entit"))]
    bomb = next(out / "landing/einvoice" / f for s, f in bad if bad[(s, f)] == "entit")
    assert b"<!ENTITY lol9" in bomb.read_bytes() and bomb.stat().st_size < 2000
    malformed = next(out / "landing/einvoice" / f for s, f in bad if bad[(s, f)] == "not well-formed")
    with pytest.raises(ET.ParseError, match="not well-formed"):
        ET.fromstring(malformed.read_bytes())
    corrupt = next(out / "landing/erp" / f for s, f in bad if bad[(s, f)] == "decode")
    assert read_csv_bytes(corrupt.read_bytes()) is None
    missing = next(out / "landing/erp" / f for s, f in bad if bad[(s, f)] == "missing columns")
    header = read_csv_bytes(missing.read_bytes())[0]
    assert "组织" not in header and "方向" not in header and "发票号码" in header
    assert {(r["source"], r["column"], r["raw_value"][:12]) for r in truth["bad_rows"]} >= {
        ("erp", "价税合计", "abc"),
        ("erp", "开票日期", "2026-02-30"),
        ("reimbursement", "价税合计", "N/A"),
    }
    for row in truth["bad_rows"]:
        if row["source"] == "sync_log":
            continue
        rows = read_csv_bytes((out / "landing" / row["source"] / row["file"]).read_bytes())
        line = int(row["row"].removeprefix("line "))
        assert rows[line - 1][rows[0].index(row["column"])] == row["raw_value"]


# keying variants


def test_every_erp_keying_variant_is_on_disk(generated: tuple[Path, dict]) -> None:
    out, truth = generated
    rows = [r for _, _, r in erp_rows(out, truth)]
    numbers = [str(r["发票号码"]) for r in rows]
    codes = [str(r["发票代码"] or "") for r in rows]
    checks = {
        "20 digits": lambda n, c: re.fullmatch(r"26\d{18}", n),
        "8 digits with code": lambda n, c: re.fullmatch(r"\d{8}", n) and c,
        "code+number run together": lambda n, c: re.fullmatch(r"0\d{19}|\d{18}", n) and not c,
        "code-number": lambda n, c: re.fullmatch(r"\d{10,12}-\d{8}", n),
        "comma list": lambda n, c: "," in n,
        "full-width comma list": lambda n, c: "，" in n,
        "semicolon list": lambda n, c: ";" in n,
        "dunhao list": lambda n, c: "、" in n,
        "spaces": lambda n, c: " " in n.strip(),
        "edge spaces": lambda n, c: n != n.strip(),
        "full-width digits": lambda n, c: re.search("[０-９]", n),
        "apostrophe": lambda n, c: n.startswith("'"),
        "last 8 digits": lambda n, c: re.fullmatch(r"\d{8}", n) and not c,
    }
    for name, check in checks.items():
        assert sum(bool(check(n, c)) for n, c in zip(numbers, codes, strict=True)) >= 2, name
    amounts = [str(r["价税合计"]) for r in rows]
    for name, pattern in {
        "1234.5": r"-?\d+(\.\d)?",
        "1,234.50": r"\d{1,3}(,\d{3})+\.\d\d",
        "￥": "￥.+",
        "¥": "¥.+",
        "(1,234.50)": r"\(.+\)",
    }.items():
        assert sum(bool(re.fullmatch(pattern, a)) for a in amounts) >= 2, name
    dates = [r["开票日期"] for r in rows]
    for name, pattern in {
        "iso": r"\d{4}-\d\d-\d\d",
        "slash": r"\d{4}/\d{1,2}/\d{1,2}",
        "cn": r"\d{4}年\d{1,2}月\d{1,2}日",
        "compact": r"\d{8}",
        "serial": r"4\d{4}",
    }.items():
        assert sum(bool(re.fullmatch(pattern, str(d))) for d in dates) >= 2, name
    assert sum(isinstance(d, datetime) for d in dates) >= 1  # an Excel date cell in the xlsx
    for column, values in {
        "会计期间": (r"\d{4}-\d\d", r"\d{4}年\d\d月"),
        "币种": ("CNY", "人民币"),
        "审核状态": ("已审核", "未审核"),
        "作废标志": ("是", "否"),
    }.items():
        for value in values:
            assert any(re.fullmatch(value, str(r[column])) for r in rows), (column, value)
    variants = truth["erp_keying_variants"]
    assert all(
        variants.get(k, 0) >= 2
        for k in (
            "no20",
            "code_no",
            "concat",
            "dash",
            "spaces",
            "spaces_edge",
            "fullwidth",
            "apostrophe20",
            "apostrophe8",
            "last8",
            "multi_comma",
            "multi_fullwidth_comma",
            "multi_semicolon",
            "multi_dunhao",
        )
    )


# truth


def test_every_rule_is_planted_twice(generated: tuple[Path, dict]) -> None:
    _, truth = generated
    counts = defaultdict(int)
    for p in truth["problems"]:
        counts[p["rule_id"]] += 1
        assert p["severity"] == SEVERITY[p["rule_id"]]
        assert set(p) >= {
            "rule_id",
            "severity",
            "entity_tin",
            "direction",
            "period",
            "invoice_uid",
            "subject",
        }
    assert set(counts) == set(SEVERITY)
    assert min(counts.values()) >= 2
    keys = [(p["rule_id"], p["subject"]) for p in truth["problems"]]
    assert len(keys) == len(set(keys))
    kinds = {look["kind"] for look in truth["lookalikes"]}
    assert kinds >= {
        "erp_document_covering_several_invoices",
        "cancelled_second_booking",
        "second_claim_after_rejection",
        "complete_red_blue_pair",
        "new_allocation_jump",
        "voided_inside_run",
    }


def test_lookalikes_are_what_they_claim(generated: tuple[Path, dict]) -> None:
    out, truth = generated
    tax = load_tax(out, truth)
    known = {**tax["ofd"], **tax["xml"], **tax["platform"]}
    looks = defaultdict(list)
    for look in truth["lookalikes"]:
        looks[look["kind"]].append(look)
    (jump,) = looks["new_allocation_jump"]
    before, after = (known[u] for u in jump["invoice_uids"])
    assert before["code"] == after["code"] and int(after["no8"]) - int(before["no8"]) > 51
    (voided,) = looks["voided_inside_run"]
    invoice = known[voided["invoice_uids"][0]]
    run = [int(r["no8"]) for r in tax["platform"].values() if r["code"] == invoice["code"]]
    assert invoice["status"] == "已作废" and min(run) < int(invoice["no8"]) < max(run)
    (pair,) = looks["complete_red_blue_pair"]
    blue, red = (known[u] for u in pair["invoice_uids"])
    assert blue["status"] == "已红冲-全额" and red["tot"] == -blue["tot"] and not red["positive"]
    for look in looks["erp_document_covering_several_invoices"]:
        assert len(look["invoice_uids"]) >= 2 and len(look["erp_documents"]) == 1
    claims = defaultdict(list)
    for path in (out / "landing/reimbursement").glob("*.csv"):
        rows = read_csv_bytes(path.read_bytes())
        for row in rows[1:]:
            claims[row[6]].append(row[4])
    for look in looks["second_claim_after_rejection"]:
        for uid in look["invoice_uids"]:
            statuses = claims[uid.split("-")[-1]]  # the 发票号码 column
            assert len(statuses) == 2 and "已驳回" in statuses
    (standins,) = looks["einvoice_stands_in"]
    assert all(
        u not in tax["platform"] and (u in tax["xml"] or u in tax["ofd"]) for u in standins["invoice_uids"]
    )


def test_erp_workbook_cells(generated: tuple[Path, dict]) -> None:
    out, _ = generated
    (path,) = (out / "landing/erp").glob("*.xlsx")
    wb = openpyxl.load_workbook(path)
    assert wb.properties.created == datetime(2026, 11, 1, 1, 0, 0)
    rows = list(wb.active.iter_rows())[1:]
    assert rows
    for row in rows:
        for k in (9, 10, 7, 2):
            assert row[k].data_type == "s", (row[k].coordinate, row[k].value)
    assert any(isinstance(r[11].value, datetime) for r in rows)


def test_counts_match_disk(generated: tuple[Path, dict]) -> None:
    out, truth = generated
    counts = truth["counts"]
    land = out / "landing"
    platform = {}
    lines = 0
    for name in counts["tax_platform_files"]:
        wb = openpyxl.load_workbook(land / "tax_platform" / name, read_only=True)
        platform[name] = wb["发票基础信息"].max_row - 2
        lines += wb["信息汇总表"].max_row - 1
    assert platform == counts["tax_platform_files"]
    assert sum(platform.values()) == counts["tax_platform_rows"] == N
    assert lines == counts["tax_platform_line_rows"]
    assert len(list((land / "tax_platform").iterdir())) == len(platform) + 1
    erp = {name: len(r) - 1 for name, r in erp_tables(out, truth).items()}
    assert erp == counts["erp_files"] and sum(erp.values()) == counts["erp_rows"]
    claims = {p.name: len(read_csv_bytes(p.read_bytes())) - 1 for p in (land / "reimbursement").glob("*.csv")}
    assert claims == counts["reimbursement_files"] and sum(claims.values()) == counts["reimbursement_rows"]
    assert abs(counts["reimbursement_rows"] - N // 10) <= 2
    sync = {
        p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in (land / "sync_log").glob("*.jsonl")
    }
    assert sync == counts["sync_log_files"] and sum(sync.values()) == counts["sync_log_lines"]
    assert counts["entities"] == len(truth["entities"])
    tax = load_tax(out, truth)
    core = {
        "tax_platform": len(tax["platform"]),
        "einvoice_xml": len(tax["xml"]),
        "einvoice_ofd": len(tax["ofd"]),
        "total": len(set(tax["platform"]) | set(tax["xml"]) | set(tax["ofd"])),
    }
    assert core == counts["core_invoices"]


@pytest.mark.parametrize("layout", ["xlsx", "csv"])
def test_independent_rules_find_exactly_the_truth(
    layout: str, generated: tuple[Path, dict], csv_only: tuple[Path, dict]
) -> None:
    out, truth = generated if layout == "xlsx" else csv_only
    found = evaluate_rules(out, truth)
    expected = {
        (p["rule_id"], p["subject"], p["entity_tin"], p["direction"], p["period"], p["invoice_uid"])
        for p in truth["problems"]
    }
    assert sorted(found - expected, key=str) == []
    assert sorted(expected - found, key=str) == []


# an independent, plain evaluation of SPEC §4.2


def read_csv_bytes(data: bytes) -> list[list[str]] | None:
    if not data:
        return None
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return list(csv.reader(io.StringIO(data.decode(encoding), newline="")))
        except UnicodeDecodeError:
            continue
    return None


def nfkc(value: Any) -> str:
    return unicodedata.normalize("NFKC", "" if value is None else str(value)).strip()


def cents(value: Any) -> int:
    if isinstance(value, (int, float)):
        return int((Decimal(str(value)) * 100).to_integral_value())
    text = nfkc(value).replace("¥", "").replace(",", "")
    negative = text.startswith("(") and text.endswith(")")
    amount = Decimal(text.strip("()"))
    return int((amount * 100).to_integral_value()) * (-1 if negative else 1)


def parse_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    text = nfkc(value)
    if re.fullmatch(r"\d{5}", text):
        return date(1899, 12, 30) + timedelta(days=int(text))
    if re.fullmatch(r"\d{8}", text):
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    y, mo, d = (int(x) for x in re.findall(r"\d+", text)[:3])
    return date(y, mo, d)


def parse_period(value: str) -> str:
    y, mo = re.findall(r"\d+", nfkc(value))[:2]
    return f"{y}-{int(mo):02d}"


def read_table(path: Path) -> list[list[Any]] | None:
    if path.suffix == ".xlsx":
        try:
            return [list(r) for r in openpyxl.load_workbook(path).active.iter_rows(values_only=True)]
        except zipfile.BadZipFile:
            return None
    return read_csv_bytes(path.read_bytes())


def erp_tables(out: Path, truth: dict) -> dict[str, list[list[Any]]]:
    bad = {b["file"] for b in truth["bad_files"]}
    tables = {}
    for path in sorted((out / "landing/erp").iterdir()):
        rows = read_table(path)
        if path.name in bad:
            assert rows is None or not set(ERP_COLUMNS) <= set(rows[0])
            continue
        tables[path.name] = rows
    return tables


def erp_rows(out: Path, truth: dict) -> list[tuple[str, int, dict[str, Any]]]:
    result = []
    for name, rows in erp_tables(out, truth).items():
        header = rows[0]
        for n, row in enumerate(rows[1:], 2):
            result.append((name, n, {h: "" if v is None else v for h, v in zip(header, row, strict=True)}))
    return result


def load_tax(out: Path, truth: dict) -> dict[str, Any]:
    """Invoices per tax source, keyed by invoice_uid, plus lines and control totals."""
    land = out / "landing"
    bad = {b["file"] for b in truth["bad_files"]}
    platform, lines, totals = {}, defaultdict(list), {}
    for path in sorted((land / "tax_platform").iterdir()):
        if path.name in bad:
            continue
        if path.suffix == ".xlsx":
            wb = openpyxl.load_workbook(path, read_only=True)
            head = [list(r) for r in wb["发票基础信息"].iter_rows(values_only=True)]
            for r in list(wb["信息汇总表"].iter_rows(values_only=True))[1:]:
                line = dict(zip(LINE_COLUMNS, r, strict=True))
                uid = (
                    line["数电发票号码"]
                    if line["数电发票号码"] != "--"
                    else f"{line['发票代码']}-{line['发票号码']}"
                )
                lines[uid].append(line)
        else:
            head = read_csv_bytes(path.read_bytes())
        rows = [dict(zip(HEADER_COLUMNS, r, strict=True)) for r in head[1:]]
        total = rows.pop()
        totals[path.name] = (total, rows, path.name)
        for r in rows:
            uid = r["数电发票号码"] if r["数电发票号码"] != "--" else f"{r['发票代码']}-{r['发票号码']}"
            assert uid not in platform
            platform[uid] = {
                "uid": uid,
                "code": r["发票代码"] or None,
                "no8": r["发票号码"] or None,
                "seller": r["销方识别号"],
                "buyer": r["购方识别号"],
                "buyer_name": r["购买方名称"],
                "date": parse_date(r["开票日期"][:10]),
                "amt": cents(r["金额"]),
                "tax": cents(r["税额"]),
                "tot": cents(r["价税合计"]),
                "status": r["发票状态"],
                "positive": r["是否正数发票"] == "是",
                "risk": r["发票风险等级"],
                "remark": r["备注"] or "",
                "file": path.name,
            }
    xml, xml_lines = {}, {}
    for path in sorted((land / "einvoice").glob("*.xml")):
        data = path.read_bytes()
        if b"<!ENTITY" in data or b"<!DOCTYPE" in data:
            continue
        try:
            root = ET.fromstring(data)
        except ET.ParseError:
            continue
        basic = "EInvoiceData/BasicInformation/"
        uid = root.findtext("Header/EIid")
        xml[uid] = {
            "uid": uid,
            "seller": root.findtext("EInvoiceData/SellerInformation/SellerIdNum"),
            "buyer": root.findtext("EInvoiceData/BuyerInformation/BuyerIdNum"),
            "buyer_name": root.findtext("EInvoiceData/BuyerInformation/BuyerName"),
            "date": parse_date(root.findtext("TaxSupervisionInfo/IssueTime")[:10]),
            "amt": cents(root.findtext(basic + "TotalAmWithoutTax")),
            "tax": cents(root.findtext(basic + "TotalTaxAm")),
            "tot": cents(root.findtext(basic + "TotalTax-includedAmount")),
            "remark": root.findtext("EInvoiceData/AdditionalInformation/Remark") or "",
            "positive": not root.findtext(basic + "TotalTax-includedAmount").startswith("-"),
        }
        xml_lines[uid] = [
            {
                "amt": cents(i.findtext("Amount")),
                "tax": cents(i.findtext("ComTaxAm")),
                "rate": i.findtext("TaxRate"),
            }
            for i in root.findall("EInvoiceData/IssuItemInformation")
        ]
    ofd = {}
    ns = {"fp": "http://www.edrm.org.cn/schema/e-invoice/2019", "ofd": "http://www.ofdspec.org/2016"}
    for path in sorted((land / "einvoice").glob("*.ofd")):
        with zipfile.ZipFile(path) as zf:
            if "Doc_0/Attachs/original_invoice.xml" in zf.namelist():
                root = ET.fromstring(zf.read("Doc_0/Attachs/original_invoice.xml"))
                code, number = root.findtext("fp:InvoiceCode", "", ns), root.findtext("fp:InvoiceNo", "", ns)
                record = {
                    "seller": root.findtext("fp:Seller/fp:SellerTaxID", None, ns),
                    "buyer": root.findtext("fp:Buyer/fp:BuyerTaxID", None, ns),
                    "buyer_name": root.findtext("fp:Buyer/fp:BuyerName", None, ns),
                    "date": parse_date(root.findtext("fp:IssueDate", None, ns)),
                    "amt": cents(root.findtext("fp:TaxExclusiveTotalAmount", None, ns)),
                    "tax": cents(root.findtext("fp:TaxTotalAmount", None, ns)),
                    "tot": cents(root.findtext("fp:TaxInclusiveTotalAmount", None, ns)),
                }
            else:
                root = ET.fromstring(zf.read("OFD.xml"))
                data = {
                    e.get("Name"): e.text or "" for e in root.iter("{http://www.ofdspec.org/2016}CustomData")
                }
                code, number = data["发票代码"], data["发票号码"]
                record = {
                    "seller": data["销售方纳税人识别号"],
                    "buyer": data["购买方纳税人识别号"],
                    "buyer_name": data["购买方名称"],
                    "date": parse_date(data["开票日期"]),
                    "amt": cents(data["合计金额"]),
                    "tot": cents(data["价税合计"]),
                }
        uid = number if not code else f"{code}-{number}"
        ofd[uid] = {"uid": uid, "positive": True, "remark": "", **record}
    return {
        "platform": platform,
        "lines": lines,
        "totals": totals,
        "xml": xml,
        "xml_lines": xml_lines,
        "ofd": ofd,
    }


def evaluate_rules(out: Path, truth: dict) -> set[tuple]:
    land = out / "landing"
    with (land / "entities/entities.csv").open(encoding="utf-8") as f:
        entities = list(csv.DictReader(f))
    ours = {e["tin"] for e in entities}
    org_tin = {e["erp_org_code"]: e["tin"] for e in entities}
    names = {nfkc(n): e["tin"] for e in entities for n in [e["name"], *e["aliases"].split("|")]}
    tax = load_tax(out, truth)
    platform, xml, ofd = tax["platform"], tax["xml"], tax["ofd"]
    known = {**ofd, **xml, **platform}  # the export is the authority
    aliases = {f"{r['code']}-{r['no8']}": uid for uid, r in platform.items() if r["code"] and len(uid) == 20}
    found: set[tuple] = set()

    def scope(r: dict) -> tuple[str | None, str | None, str]:
        if r["seller"] in ours:
            return r["seller"], "issued", r["date"].strftime("%Y-%m")
        if r["buyer"] in ours:
            return r["buyer"], "received", r["date"].strftime("%Y-%m")
        return names.get(nfkc(r["buyer_name"])), "received", r["date"].strftime("%Y-%m")

    def add(
        rule: str,
        subject: str,
        r: dict | None,
        uid: str | None,
        explicit: tuple[str | None, str | None, str | None] | None = None,
    ) -> None:
        found.add((rule, subject, *(explicit or scope(r)), uid))

    # invoice-level rules on the tax sources
    for uid, r in known.items():
        if r.get("risk") in ("异常凭证", "疑点发票") or r.get("status") in ("失控", "异常"):
            add("risky_invoice", uid, r, uid)
        if "tax" in r and r["amt"] + r["tax"] != r["tot"]:
            add("arithmetic_error", uid, r, uid)
        if r["buyer"] not in ours and r["seller"] not in ours and nfkc(r["buyer_name"]) in names:
            add("wrong_title", uid, r, uid)
    for uid, source in (*((u, "platform") for u in tax["lines"]), *((u, "xml") for u in tax["xml_lines"])):
        r = known[uid]
        items = tax["lines"][uid] if source == "platform" else tax["xml_lines"][uid]
        if source == "platform":
            items = [
                {"amt": cents(i["金额"]), "tax": cents(i["税额"]), "rate": i["税率"]}
                for i in items
                if i["货物或应税劳务名称"] != "(详见销货清单)"
            ]
            head = platform[uid]
        else:
            head = xml[uid]
        if sum(i["amt"] for i in items) != head["amt"] or sum(i["tax"] for i in items) != head["tax"]:
            add("arithmetic_error", uid, r, uid)
        for i in items:
            rate = i["rate"]
            percent = (
                RATES.get(rate)
                if source == "platform"
                else (round(float(rate) * 100) if re.fullmatch(r"0\.\d+", rate) else None)
            )
            if percent is None or percent not in RATES.values() or (source == "xml" and rate in RATES):
                add("invalid_tax_rate", uid, r, uid)
                percent = (
                    int(re.findall(r"\d+", rate)[0]) if source == "platform" else round(float(rate) * 100)
                )
            if rate in ("免税", "不征税"):
                if i["tax"]:
                    add("tax_calc_mismatch", uid, r, uid)
            elif abs(i["tax"] - round(i["amt"] * percent / 100)) > 6:
                add("tax_calc_mismatch", uid, r, uid)
    for tin in sorted({t for r in known.values() for t in (r["seller"], r["buyer"])}):
        if not is_valid_tin(tin):
            holders = [r for r in known.values() if tin in (r["seller"], r["buyer"])]
            assert len(holders) == 1
            add("invalid_tin", tin, holders[0], None)
    for uid in sorted(set(platform) & (set(xml) | set(ofd))):
        for other in (xml.get(uid), ofd.get(uid)):
            if other and any(
                other.get(k) != platform[uid][k]
                for k in ("seller", "buyer", "amt", "tax", "tot")
                if k in other
            ):
                add("source_disagreement", uid, platform[uid], uid)
    reversed_by: dict[str, int] = defaultdict(int)
    for uid, r in known.items():
        if r["positive"]:
            continue
        match = re.search(r"被红冲蓝字数电(?:发票|票)号码：(\d{20})", r["remark"]) or re.search(
            r"对应正数发票代码:(\d+)\s?号码:(\d{8})", r["remark"]
        )
        blue = "-".join(match.groups()) if match else None
        if blue not in known:
            add("red_without_blue", uid, r, uid)
        else:
            reversed_by[blue] -= r["tot"]
    for blue, amount in reversed_by.items():
        if amount > known[blue]["tot"]:
            add("red_over_reversal", blue, known[blue], blue)
    for name, (total, rows, _) in tax["totals"].items():
        if cents(total["金额"]) != sum(cents(r["金额"]) for r in rows) or cents(total["税额"]) != sum(
            cents(r["税额"]) for r in rows
        ):
            first = platform[
                rows[0]["数电发票号码"]
                if rows[0]["数电发票号码"] != "--"
                else f"{rows[0]['发票代码']}-{rows[0]['发票号码']}"
            ]
            tin, direction, _ = scope(first)
            add("control_total_mismatch", name, None, None, (tin, direction, None))
    for code, group in _by_key(
        (r for r in platform.values() if r["seller"] in ours and r["code"]), lambda r: r["code"]
    ).items():
        group.sort(key=lambda r: r["no8"])
        for a, b in itertools.pairwise(group):
            missing = int(b["no8"]) - int(a["no8"]) - 1
            if 0 < missing <= 50:
                add("sequence_gap", f"{code}:{int(a['no8']) + 1:08d}-{int(b['no8']) - 1:08d}", a, None)

    # ERP
    def resolve(token: str, code: str, tin: str, direction: str) -> str:
        token = re.sub(r"[\s']", "", token)
        if code:
            uid = f"{code}-{token}"
        elif "-" in token or (len(token) == 20 and not token.startswith("0")):  # 数电: starts with the year
            uid = token
        elif len(token) in (18, 20):
            cut = len(token) - 8
            uid = f"{token[:cut]}-{token[cut:]}"
        else:
            hits = [u for u in tails[token] if scope(known[u])[:2] == (tin, direction)]
            assert len(hits) == 1, token
            uid = hits[0]
        return aliases.get(uid, uid)

    tails: dict[str, list[str]] = defaultdict(list)
    for uid in known:
        tails[uid[-8:]].append(uid)

    live_docs: dict[str, list[str]] = defaultdict(list)
    booked: set[str] = set()
    rejected = {(r["file"], r["row"]) for r in truth["bad_rows"]}
    for name, n, row in erp_rows(out, truth):
        if (name, f"line {n}") in rejected:
            continue
        org, doc = row["组织"], row["单据编号"]
        subject = f"{org}/{doc}"
        tin = org_tin[org]
        direction = "issued" if row["方向"] == "销项" else "received"
        cancelled = row["作废标志"] == "是"
        live = not cancelled and row["审核状态"] == "已审核"
        tokens = [t for t in re.split(r"[,;、]", nfkc(row["发票号码"])) if t.strip()]
        uids = [resolve(t, nfkc(row["发票代码"]), tin, direction) for t in tokens]
        keyed_date = parse_date(row["开票日期"])
        period = parse_period(row["会计期间"])
        if cancelled:
            continue
        booked.update(uids)
        if live:
            for uid in uids:
                live_docs[uid].append(subject)
        unknown = [u for u in uids if u not in known]
        if unknown:
            add(
                "missing_in_tax_platform",
                subject,
                None,
                unknown[0],
                (tin, direction, keyed_date.strftime("%Y-%m")),
            )
            continue
        invoices = [known[u] for u in uids]
        head = invoices[0]
        sums = {k: sum(i.get(k, 0) for i in invoices) for k in ("amt", "tax", "tot")}
        if any(
            abs(cents(row[c]) - sums[k]) > 1
            for c, k in (("不含税金额", "amt"), ("税额", "tax"), ("价税合计", "tot"))
        ):
            add("amount_mismatch", subject, head, uids[0] if len(uids) == 1 else None)
        counterparty = nfkc(row["往来单位税号"])
        if counterparty and any(
            counterparty != (i["buyer"] if direction == "issued" else i["seller"]) for i in invoices
        ):
            add("counterparty_mismatch", subject, head, uids[0])
        if any(keyed_date != i["date"] for i in invoices):
            add("date_mismatch", subject, head, uids[0])
        if any(period != i["date"].strftime("%Y-%m") for i in invoices):
            add("cross_period_booking", subject, head, uids[0])
        if live and any(i.get("status") == "已作废" for i in invoices):
            add("voided_but_booked", subject, head, uids[0])
    for uid, docs in live_docs.items():
        if len(docs) > 1:
            add("duplicate_erp_entry", uid, known[uid], uid)
    for uid, r in known.items():
        tin, _, _ = scope(r)
        if (
            tin in ours
            and (r["seller"] in ours or r["buyer"] in ours)
            and r.get("status") != "已作废"
            and uid not in booked
        ):
            add("missing_in_erp", uid, r, uid)

    # claims
    claims: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for path in sorted((land / "reimbursement").glob("*.csv")):
        rows = read_csv_bytes(path.read_bytes())
        for n, values in enumerate(rows[1:], 2):
            row = dict(zip(rows[0], values, strict=True))
            if (path.name, f"line {n}") in rejected:
                continue
            uid = row["发票号码"] if not row["发票代码"] else f"{row['发票代码']}-{row['发票号码']}"
            uid = aliases.get(uid, uid)
            if uid not in known:
                add("claim_without_invoice", uid, None, uid, (None, None, row["开票日期"][:7]))
                continue
            if cents(row["报销金额"]) > known[uid]["tot"]:
                add("claim_exceeds_invoice", uid, known[uid], uid)
            if row["审批状态"] not in ("已驳回", "草稿"):
                claims[uid].append((row["报销单号"], n))
    for uid, items in claims.items():
        if len(items) > 1:
            add("duplicate_claim", uid, known[uid], uid)

    # sync
    last_success: dict[str, datetime] = {}
    for path in sorted((land / "sync_log").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                run = json.loads(line)
            except json.JSONDecodeError:
                continue
            lost = run["status"] == "partial" and (
                run["records_failed"] or run["records_written"] < run["records_read"]
            )
            if run["status"] == "failed" or lost:
                add(
                    "sync_failed", run["run_id"], None, None, (run["entity_tin"], None, run["started_at"][:7])
                )
            if run["status"] == "success":
                finished = datetime.fromisoformat(run["finished_at"]).replace(tzinfo=None)
                last_success[run["system"]] = max(last_success.get(run["system"], finished), finished)
    for system, moment in last_success.items():
        if AS_OF - moment > timedelta(hours=26):
            add("sync_stale", system, None, None, (None, None, None))
    return found


def _by_key(items: Any, key: Any) -> dict[Any, list]:
    groups: dict[Any, list] = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    return groups
