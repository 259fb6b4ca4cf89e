"""Readers on hand-made ugly inputs: every quirk of SPEC §3 / DOMAIN §2 at least once.

Inputs are built inside the tests (xlsxwriter, zipfile, bytes) so each test shows its file.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import zipfile
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest
import xlrd
import xlsxwriter

from invoice_pipeline.sources import READERS, FileRead, UnreadableFile, read_file, sha256_of
from invoice_pipeline.sources import einvoice as einvoice_reader
from invoice_pipeline.sources.delimited import float_text, xlrd_cell_text
from invoice_pipeline.sources.text import normalize_label
from invoice_pipeline.specs import load_specs

SPECS = load_specs()
LINEAGE = ["_source_row", "_extra"]


# --------------------------------------------------------------------------- helpers


def spec(name: str):
    return SPECS[name]


def write_csv(
    path: Path, rows: list[list[str]], encoding: str = "utf-8", bom: bool = False, eol="\r\n"
) -> Path:
    buf = io.StringIO()
    csv.writer(buf, lineterminator=eol).writerows(rows)
    data = buf.getvalue().encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def write_csv_text(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def write_xlsx(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    """str -> text cell, int/float -> numeric cell, date/datetime -> real date cell, None -> no cell."""
    book = xlsxwriter.Workbook(str(path))
    date_fmt = book.add_format({"num_format": "yyyy-mm-dd"})
    datetime_fmt = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    for name, rows in sheets.items():
        sheet = book.add_worksheet(name)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                if value is None:
                    continue
                if isinstance(value, str):
                    sheet.write_string(r, c, value)
                elif isinstance(value, dt.datetime):
                    sheet.write_datetime(r, c, value, datetime_fmt)
                elif isinstance(value, dt.date):
                    sheet.write_datetime(r, c, value, date_fmt)
                else:
                    sheet.write_number(r, c, value)
    book.close()
    return path


def expect_columns(frame: pl.DataFrame, source: str, table: str | None = None) -> None:
    """Exactly the spec's columns in spec order, then lineage; every column text."""
    table_spec = spec(source).tables[table or source]
    assert frame.columns == [*table_spec.columns, *LINEAGE]
    assert set(frame.schema.values()) <= {pl.String}


def unreadable(path: Path, source: str) -> str:
    with pytest.raises(UnreadableFile) as info:
        read_file(path, spec(source))
    return str(info.value)


ERP_HEADER = ["组织", "方向", "单据编号", "凭证号", "发票代码", "发票号码", "价税合计", "备注"]


# =========================================================================== delimited: CSV


def test_gb18030_csv_with_shuffled_headers_and_unknown_column(tmp_path):
    rows = [
        ["发票号码", "往来单位名称", "审核人", "价税合计", "方向", "组织", "单据编号", "发票代码"],
        ["00290716", "北京某某科技有限公司", "李四", "1,234.50", "进项", "CN01", "AP-001", "011002100511"],
        ["24372000000290512345", "上海（测试）有限公司", "", "-178.55", "销项", "CN01", "AR-002", ""],
    ]
    path = write_csv(tmp_path / "erp_gbk.csv", rows, encoding="gb18030")
    result = read_file(path, spec("erp"))

    erp = result.tables["erp"]
    expect_columns(erp, "erp")
    assert result.notes["encoding"] == "gb18030"
    assert result.notes["extra_columns"] == {"erp": ["审核人"]}
    assert result.row_errors == []
    assert erp["invoice_no"].to_list() == ["00290716", "24372000000290512345"]
    assert erp["invoice_code"].to_list() == ["011002100511", None]  # empty cell -> null
    assert erp["counterparty_name"].to_list() == ["北京某某科技有限公司", "上海（测试）有限公司"]
    assert erp["amount_incl_tax"].to_list() == ["1,234.50", "-178.55"]  # as landed, not parsed
    assert erp["org_code"].to_list() == ["CN01", "CN01"]
    assert erp["voucher_no"].to_list() == [None, None]  # column absent from the file
    assert erp["_source_row"].to_list() == ["line 2", "line 3"]
    assert [json.loads(x) if x else None for x in erp["_extra"]] == [{"审核人": "李四"}, None]
    assert "李四" in erp["_extra"][0]  # not ASCII-escaped


def test_utf8_bom_csv(tmp_path):
    path = write_csv(
        tmp_path / "erp_bom.csv",
        [ERP_HEADER, ["CN02", "进项", "AP-9", "", "", "12345678", "100", ""]],
        bom=True,
    )
    result = read_file(path, spec("erp"))
    assert result.notes["encoding"] == "utf-8-sig"
    erp = result.tables["erp"]
    assert erp["org_code"].to_list() == ["CN02"]  # first header carried the BOM
    assert erp["_extra"].to_list() == [None]


def test_headers_fixed_by_nfkc(tmp_path):
    # full-width letters and underscore, ideographic spaces around, a zero-width space, upper case
    header = ["ｔｉｎ", "　name　", "region＿code", "ERP_ORG_CODE\u200b", "ａｌｉａｓｅｓ"]
    path = write_csv(
        tmp_path / "entities.csv",
        [header, ["91110105MA01ABCD1X", "北京甲公司", "110105", "CN01", "甲公司|北京甲"]],
    )
    entities = read_file(path, spec("entities")).tables["entities"]
    expect_columns(entities, "entities")
    assert entities.row(0) == (
        "91110105MA01ABCD1X",
        "北京甲公司",
        "110105",
        "CN01",
        "甲公司|北京甲",
        "line 2",
        None,
    )


def test_quoted_comma_and_newline_keep_line_numbers(tmp_path):
    path = write_csv(
        tmp_path / "erp.csv",
        [
            ERP_HEADER,
            ["CN01", "进项", "AP-1", "", "", "00000001", "1", "运费, 含税\n第二行\n第三行"],
            ["CN01", "进项", "AP-2", "", "", "00000002", "2", '说"明"'],
        ],
    )
    result = read_file(path, spec("erp"))
    erp = result.tables["erp"]
    assert result.notes["csv_parser"] == "polars"
    assert erp["remark"].to_list() == ["运费, 含税\n第二行\n第三行", '说"明"']
    assert erp["_source_row"].to_list() == ["line 2", "line 5"]  # physical lines


def test_ragged_lines_become_row_errors_and_the_rest_loads(tmp_path):
    text = (
        "组织,方向,单据编号,发票号码,价税合计,备注\r\n"
        'CN01,进项,AP-1,00000001,1,"a\r\nb"\r\n'
        "CN01,进项,AP-2,00000002,2,备注断行\r\n"
        "第二行没有引号\r\n"  # a 备注 broken by an unquoted newline: 1 field
        "CN01,进项,AP-3,00000003,3,多,一列\r\n"  # 7 fields
        "\r\n"  # blank: skipped, not an error
        "CN01,进项,AP-4,00000004,4,\r\n"
    )
    path = tmp_path / "erp.csv"
    path.write_bytes(text.encode("utf-8"))
    result = read_file(path, spec("erp"))

    assert result.notes["csv_parser"] == "python"
    erp = result.tables["erp"]
    assert erp["doc_no"].to_list() == ["AP-1", "AP-2", "AP-4"]
    assert erp["_source_row"].to_list() == ["line 2", "line 4", "line 8"]
    assert erp["remark"].to_list() == ["a\r\nb", "备注断行", None]
    errors = [(e.table, e.source_row, e.column, e.raw_value) for e in result.row_errors]
    assert errors == [
        ("erp", "line 5", None, "第二行没有引号"),
        ("erp", "line 6", None, "CN01,进项,AP-3,00000003,3,多,一列"),
    ]
    assert result.row_errors[0].reason == "expected 6 fields, found 1"


def test_fast_and_careful_csv_paths_agree(tmp_path):
    good = [ERP_HEADER] + [
        ["CN01", "进项", f"AP-{i}", "", "", f"{i:08d}", str(i), "x\ny" if i % 3 == 0 else None]
        for i in range(1, 12)
    ]
    fast = read_file(write_csv(tmp_path / "a.csv", good), spec("erp"))
    with_bad = [*good[:5], ["broken"], *good[5:]]
    careful = read_file(write_csv(tmp_path / "b.csv", with_bad), spec("erp"))
    assert fast.notes["csv_parser"] == "polars" and careful.notes["csv_parser"] == "python"
    assert len(careful.row_errors) == 1
    careful_erp = careful.tables["erp"].drop("_source_row")
    assert careful_erp.equals(fast.tables["erp"].drop("_source_row"))


def test_empty_cells_are_null_quoted_or_not_and_whitespace_stays(tmp_path):
    text = (
        "组织,方向,单据编号,发票号码,价税合计,备注,凭证号\r\n"
        'CN01,进项,AP-1,1,1,"",\r\n'
        'CN01,进项,AP-2,2,2," ",\r\n'
    )
    fast = read_file(write_csv_text(tmp_path / "a.csv", text), spec("erp"))
    careful = read_file(write_csv_text(tmp_path / "b.csv", text + "ragged\r\n"), spec("erp"))
    for result in (fast, careful):
        erp = result.tables["erp"]
        assert erp["remark"].to_list() == [None, " "]
        assert erp["voucher_no"].to_list() == [None, None]
    assert careful.notes["csv_parser"] == "python"


def test_unterminated_quote_is_reported_not_fatal(tmp_path):
    path = tmp_path / "erp.csv"
    path.write_bytes(
        '组织,方向,单据编号,发票号码,价税合计\nCN01,进项,AP-1,1,1\nCN01,进项,"AP-2,2,2\n'.encode()
    )
    result = read_file(path, spec("erp"))
    assert result.tables["erp"]["doc_no"].to_list() == ["AP-1"]
    assert [e.source_row for e in result.row_errors] == ["line 3"]


def test_missing_required_columns_are_named_in_spec_order(tmp_path):
    path = write_csv(tmp_path / "erp.csv", [["单据编号", "发票号码", "备注"], ["AP-1", "1", ""]])
    assert unreadable(path, "erp") == "missing columns: 组织, 方向, 价税合计"
    xlsx = write_xlsx(tmp_path / "erp.xlsx", {"Sheet1": [["单据编号", "发票号码"], ["AP-1", "1"]]})
    assert unreadable(xlsx, "erp") == "missing columns: 组织, 方向, 价税合计"


def test_empty_file(tmp_path):
    for name, source in [("e.csv", "erp"), ("e.xlsx", "erp"), ("e.xml", "einvoice"), ("e.jsonl", "sync_log")]:
        (tmp_path / name).write_bytes(b"")
        assert unreadable(tmp_path / name, source) == "empty file"


def test_blank_only_csv_has_no_header(tmp_path):
    (tmp_path / "blank.csv").write_bytes(b"\xef\xbb\xbf\r\n\r\n")
    assert "no header" in unreadable(tmp_path / "blank.csv", "erp")


def test_bytes_neither_utf8_nor_gb18030(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes("组织,方向\n".encode() + b"CN01,\xff\xfe\n")
    message = unreadable(path, "erp")
    assert message.startswith("cannot decode: not valid UTF-8 (byte 0xff at offset 19")
    assert "nor GB18030 (byte 0xff at offset 19" in message


def test_csv_header_only_gives_an_empty_table(tmp_path):
    result = read_file(write_csv(tmp_path / "erp.csv", [ERP_HEADER]), spec("erp"))
    assert result.tables["erp"].height == 0
    expect_columns(result.tables["erp"], "erp")


# =========================================================================== delimited: xlsx


def test_xlsx_identifiers_amounts_and_dates_as_text(tmp_path):
    header = ["组织", "方向", "单据编号", "发票代码", "发票号码", "开票日期", "记账日期", "会计期间",
              "不含税金额", "价税合计", "汇率"]  # fmt: skip
    path = write_xlsx(
        tmp_path / "erp.xlsx",
        {
            "凭证": [
                header,
                [
                    "CN01",
                    "进项",
                    "AP-1",
                    "011002100511",
                    "00290716",
                    dt.date(2025, 1, 11),
                    dt.datetime(2025, 1, 12, 10, 11, 12),
                    45678,
                    1234.5,
                    1395.0,
                    0.1 + 0.2,
                ],
                [],  # blank row: skipped, numbering kept
                [
                    "CN01",
                    "销项",
                    "AP-2",
                    None,
                    "24372000000290512345",
                    "2025年1月11日",
                    dt.date(2025, 1, 13),
                    45679.0,
                    "1,234.50",
                    123456789.12,
                    1e-7,
                ],
            ],
            "说明": [["not read"]],
        },
    )
    result = read_file(path, spec("erp"))
    erp = result.tables["erp"]
    expect_columns(erp, "erp")
    assert result.notes["sheet"] == "凭证"
    assert erp["invoice_no"].to_list() == ["00290716", "24372000000290512345"]
    assert erp["invoice_code"].to_list() == ["011002100511", None]
    assert erp["posting_date"].to_list() == ["2025-01-12 10:11:12", "2025-01-13"]
    # a column mixing date cells and text cells comes back as calamine's text: midnight is spelled out
    assert erp["issue_date"].to_list() == ["2025-01-11 00:00:00", "2025年1月11日"]
    assert erp["accounting_period"].to_list() == ["45678", "45679"]  # bare serials stay numbers
    assert erp["amount_excl_tax"].to_list() == ["1234.5", "1,234.50"]
    assert erp["amount_incl_tax"].to_list() == ["1395", "123456789.12"]
    assert erp["_source_row"].to_list() == ["凭证!2", "凭证!4"]
    assert [json.loads(x) for x in erp["_extra"]] == [{"汇率": "0.3"}, {"汇率": "0.0000001"}]


def test_xlsx_header_below_a_title_row(tmp_path):
    path = write_xlsx(
        tmp_path / "claims.xlsx",
        {
            "报销": [
                ["2025年1月报销明细"],
                ["报销单号", "报销人", "审批状态", "发票号码", "报销金额"],
                ["BX-1", "王五", "已通过", "00012345", 88.8],
            ]
        },
    )
    result = read_file(path, spec("reimbursement"))
    table = result.tables["reimbursement"]
    assert result.notes["header_row"] == 2
    assert table.select("claim_no", "invoice_no", "claimed_amount", "_source_row").row(0) == (
        "BX-1",
        "00012345",
        "88.8",
        "报销!3",
    )


def test_truncated_xlsx(tmp_path):
    whole = write_xlsx(tmp_path / "whole.xlsx", {"Sheet1": [ERP_HEADER, ["CN01"] * 8]}).read_bytes()
    half = tmp_path / "half.xlsx"
    half.write_bytes(whole[: len(whole) // 2])
    assert unreadable(half, "erp").startswith("not a readable xlsx workbook: ")


def test_csv_renamed_to_xlsx(tmp_path):
    path = write_csv(tmp_path / "oops.xlsx", [ERP_HEADER])
    assert unreadable(path, "erp").startswith("not a readable xlsx workbook: ")


def test_numeric_and_xls_cell_text():
    assert [float_text(v) for v in (1234.5, -178.55, 100.0, 0.1 + 0.2, 1e20, 1e-7, -0.0)] == [
        "1234.5",
        "-178.55",
        "100",
        "0.30000000000000004",
        "100000000000000000000",
        "0.0000001",
        "0",
    ]
    cell = SimpleNamespace
    assert xlrd_cell_text(cell(ctype=xlrd.XL_CELL_TEXT, value="00290716"), 0) == "00290716"
    assert xlrd_cell_text(cell(ctype=xlrd.XL_CELL_TEXT, value=""), 0) is None
    assert xlrd_cell_text(cell(ctype=xlrd.XL_CELL_NUMBER, value=1234.5), 0) == "1234.5"
    assert xlrd_cell_text(cell(ctype=xlrd.XL_CELL_DATE, value=45668.0), 0) == "2025-01-11"
    assert xlrd_cell_text(cell(ctype=xlrd.XL_CELL_DATE, value=45668.5), 0) == "2025-01-11 12:00:00"
    assert xlrd_cell_text(cell(ctype=xlrd.XL_CELL_BOOLEAN, value=1), 0) == "true"
    assert xlrd_cell_text(cell(ctype=xlrd.XL_CELL_ERROR, value=42), 0) is None


class FakeXlrdSheet:
    """Just enough of an xlrd sheet: a grid of (ctype, value) cells."""

    def __init__(self, grid):
        self.grid = grid
        self.nrows, self.ncols = len(grid), max(len(r) for r in grid)

    def cell(self, r, c):
        row = self.grid[r]
        kind, value = row[c] if c < len(row) else (xlrd.XL_CELL_EMPTY, "")
        return SimpleNamespace(ctype=kind, value=value)


def test_xls_path_through_xlrd(tmp_path):
    # No .xls writer is installed: drive the xlrd branch of Workbook with a stand-in book.
    from invoice_pipeline.sources.delimited import Workbook

    t, n, d, e = xlrd.XL_CELL_TEXT, xlrd.XL_CELL_NUMBER, xlrd.XL_CELL_DATE, xlrd.XL_CELL_EMPTY
    grid = [
        [(t, "报销单号"), (t, "审批状态"), (t, "发票号码"), (t, "报销金额"), (t, "提交日期"), (t, "附件")],
        [(t, "BX-1"), (t, "已通过"), (t, "00012345"), (n, 88.8), (d, 45668.0), (t, "a.pdf")],
        [(e, ""), (e, ""), (e, "")],
        [(t, "BX-2"), (t, "草稿"), (t, "24372000000290512345"), (n, 100.0), (t, "2025/1/12")],
    ]
    book = Workbook.__new__(Workbook)
    book.path, book.engine, book.sheet_names = tmp_path / "x.xls", "xlrd", ["报销"]
    book._xlrd = SimpleNamespace(datemode=0, sheet_by_name=lambda name: FakeXlrdSheet(grid))
    table = spec("reimbursement").main_table
    sheet = book.read_sheet("报销", table)
    claims = sheet.table
    expect_columns(claims, "reimbursement")
    assert claims["invoice_no"].to_list() == ["00012345", "24372000000290512345"]
    assert claims["claimed_amount"].to_list() == ["88.8", "100"]
    assert claims["submitted_date"].to_list() == ["2025-01-11", "2025/1/12"]
    assert claims["_source_row"].to_list() == ["报销!2", "报销!4"]
    assert claims["_extra"].to_list() == ['{"附件":"a.pdf"}', None]
    assert book.data_row_count("报销") == 2


# =========================================================================== tax_platform

BASIC = ["序号", "发票代码", "发票号码", "数电发票号码", "销方识别号", "销方名称", "购方识别号",
         "购买方名称", "开票日期", "金额", "税额", "价税合计", "发票来源", "发票票种", "发票状态",
         "是否正数发票", "发票风险等级", "开票人", "备注"]  # fmt: skip
LINES = ["序号", "发票代码", "发票号码", "数电发票号码", "销方识别号", "销方名称", "购方识别号",
         "购买方名称", "开票日期", "税收分类编码", "特定业务类型", "货物或应税劳务名称", "规格型号", "单位",
         "数量", "单价", "金额", "税率", "税额", "价税合计", "发票来源", "发票票种", "发票状态",
         "是否正数发票", "发票风险等级", "开票人", "备注"]  # fmt: skip
SELLER, BUYER = "91310000MA1FL0XXXX", "91110105MA01ABCD1X"
DIGITAL = "25312000000012345678"
TRAVELLER_ID = "110101199003077777"
PARTIES = [SELLER, "上海乙公司", BUYER, "北京甲公司"]
SPECIAL = ["电子发票服务平台", "数电票（增值税专用发票）", "正常", "是", "正常", "张三"]
ORDINARY = ["增值税发票管理系统", "增值税普通发票", "正常", "否", "正常", "张三"]


def platform_rows():
    basic = [
        BASIC,
        ["1", "", "", DIGITAL, *PARTIES, "2025-01-11 10:11:12", 1000.0, 130.0, 1130.0, *SPECIAL,
         "备注\n第二行"],
        ["2", "044002000111", "00290716", "--", *PARTIES, "2025-01-12 09:00:00", -178.55, -23.21, -201.76,
         *ORDINARY, "对应正数发票代码:044002000110 号码:00290715"],
        ["合计行", None, None, None, None, None, None, None, None, 821.45, 106.79],
    ]  # fmt: skip
    lines = [
        LINES,
        ["1", "", "", DIGITAL, *PARTIES, "2025-01-11 10:11:12", "3040201990000000000", "",
         "*信息技术服务*软件服务", "*", "项", "300884.955752212389381", "0.003323425", 1000.0, "13%", 130.0,
         1130.0, *SPECIAL, ""],
    ]  # fmt: skip
    travel = [
        ["序号", "数电发票号码", "出行人", "有效身份证号", "出行日期", "出发地", "到达地", "等级",
         "交通工具类型"],
        ["1", DIGITAL, "赵六", TRAVELLER_ID, "2025-01-10", "北京", "上海", "二等座", "火车"],
        ["2", DIGITAL, "钱七", "110101199505058888", "2025-01-10", "北京", "上海", "二等座", "火车"],
    ]  # fmt: skip
    return basic, lines, travel


def test_platform_workbook_with_control_total_and_personal_data_sheet(tmp_path):
    basic, lines, travel = platform_rows()
    path = write_xlsx(
        tmp_path / "全量发票查询导出结果.xlsx",
        {"发票基础信息": basic, "信息汇总表": lines, "旅客运输服务": travel},
    )
    result = read_file(path, spec("tax_platform"))

    header = result.tables["tax_platform"]
    expect_columns(header, "tax_platform")
    expect_columns(result.tables["tax_platform_lines"], "tax_platform", "tax_platform_lines")
    assert header["seq_no"].to_list() == ["1", "2"]  # 合计行 is not an invoice
    assert header["digital_invoice_no"].to_list() == [DIGITAL, "--"]
    assert header["invoice_code"].to_list() == [None, "044002000111"]
    assert header["invoice_no"].to_list() == [None, "00290716"]
    assert header["amount_excl_tax"].to_list() == ["1000", "-178.55"]
    assert header["tax_amount"].to_list() == ["130", "-23.21"]
    assert header["issue_time"].to_list() == ["2025-01-11 10:11:12", "2025-01-12 09:00:00"]
    assert header["remark"][0] == "备注\n第二行"
    assert header["_source_row"].to_list() == ["发票基础信息!2", "发票基础信息!3"]
    assert result.control_total == {"amount_excl_tax": Decimal("821.45"), "tax_amount": Decimal("106.79")}
    assert result.notes["control_total_rows"] == ["发票基础信息!4"]

    line = result.tables["tax_platform_lines"].row(0, named=True)
    assert line["quantity"] == "300884.955752212389381"  # text cell: every digit kept
    assert line["tax_class_code"] == "3040201990000000000"
    assert line["tax_rate"] == "13%"
    assert line["spec_model"] == "*"
    assert line["_source_row"] == "信息汇总表!2"

    assert result.notes["other_sheets"] == {"旅客运输服务": 2}
    everything = repr(result) + "".join(str(f.rows()) for f in result.tables.values())
    assert TRAVELLER_ID not in everything and "赵六" not in everything


def test_platform_without_lines_sheet_or_control_total(tmp_path):
    basic, _, _ = platform_rows()
    path = write_xlsx(tmp_path / "p.xlsx", {"发票基础信息": basic[:2]})
    result = read_file(path, spec("tax_platform"))
    assert result.control_total is None
    assert result.tables["tax_platform"].height == 1
    lines = result.tables["tax_platform_lines"]
    assert lines.height == 0
    expect_columns(lines, "tax_platform", "tax_platform_lines")
    assert result.notes["other_sheets"] == {}


def test_platform_workbook_without_basic_sheet_lists_the_sheets(tmp_path):
    path = write_xlsx(tmp_path / "p.xlsx", {"Sheet1": [["a"]], "信息汇总表": [LINES]})
    assert unreadable(path, "tax_platform") == "no sheet 发票基础信息 (sheets found: Sheet1, 信息汇总表)"


def test_platform_lines_sheet_missing_columns_names_the_sheet(tmp_path):
    basic, _, _ = platform_rows()
    path = write_xlsx(tmp_path / "p.xlsx", {"发票基础信息": basic, "信息汇总表": [LINES[:12]]})
    assert unreadable(path, "tax_platform") == "sheet 信息汇总表: missing columns: 金额, 税率, 税额"


def test_platform_csv_variant_gbk_with_control_total(tmp_path):
    basic, _, _ = platform_rows()
    rows = [[("" if v is None else str(v)) for v in row] for row in basic]
    rows[3] = ["合计行", "", "", "", "", "", "", "", "", "821.45", "106.79", "", "", "", "", "", "", "", ""]
    path = write_csv(tmp_path / "platform.csv", rows, encoding="gbk")
    result = read_file(path, spec("tax_platform"))
    assert result.notes["encoding"] == "gb18030"
    assert result.notes["csv_parser"] == "polars"
    assert result.tables["tax_platform"]["invoice_no"].to_list() == [None, "00290716"]
    assert result.tables["tax_platform"]["remark"][0] == "备注\n第二行"
    assert result.tables["tax_platform"]["_source_row"].to_list() == [
        "line 2",
        "line 4",
    ]  # 备注 spans 2 lines
    assert result.control_total == {"amount_excl_tax": Decimal("821.45"), "tax_amount": Decimal("106.79")}
    assert result.tables["tax_platform_lines"].height == 0


def test_platform_control_total_that_is_not_a_number(tmp_path):
    basic, _, _ = platform_rows()
    basic[3] = ["合计行", None, None, None, None, None, None, None, None, "见附件", 106.79]
    result = read_file(write_xlsx(tmp_path / "p.xlsx", {"发票基础信息": basic}), spec("tax_platform"))
    assert result.control_total is None
    assert [(e.source_row, e.column, e.raw_value) for e in result.row_errors] == [
        ("发票基础信息!4", "amount_excl_tax", "见附件")
    ]


# =========================================================================== einvoice: XML

SHUFFLED_XML = """<?xml version="1.0" encoding="UTF-8"?>
<EInvoice>
  <TaxBureauSignature><SignatureValue>MEUCIQDsignature</SignatureValue></TaxBureauSignature>
  <TaxSupervisionInfo>
    <TaxBureauName>国家税务总局上海市税务局</TaxBureauName>
    <IssueTime>2025-01-11</IssueTime>
    <InvoiceNumber>25312000000012345678</InvoiceNumber>
    <TaxBureauCode>13100000000</TaxBureauCode>
  </TaxSupervisionInfo>
  <EInvoiceData>
    <IssuItemInformation>
      <TaxRate>0.130000</TaxRate><ItemName>*信息技术服务*软件服务</ItemName><Amount>1100.00</Amount>
      <ComTaxAm>143.00</ComTaxAm><TotaltaxIncludedAmount>1243.00</TotaltaxIncludedAmount>
      <Quantity>1</Quantity><UnPrice>1100</UnPrice><TaxClassificationCode>3040201990000000000</TaxClassificationCode>
      <MeaUnits>项</MeaUnits><SpecMod></SpecMod>
    </IssuItemInformation>
    <SpecificInformation><PlateNumber>沪A12345</PlateNumber></SpecificInformation>
    <BuyerInformation><BuyerName>北京甲公司</BuyerName><BuyerIdNum>91110105MA01ABCD1X</BuyerIdNum></BuyerInformation>
    <BasicInformation>
      <RequestTime>2025-01-11 10:11:12</RequestTime><TotalTaxAm>130.00</TotalTaxAm>
      <TotalTax-includedAmount>1130.00</TotalTax-includedAmount><TotalAmWithoutTax>1000.00</TotalAmWithoutTax>
      <Drawer>张三</Drawer>
    </BasicInformation>
    <IssuItemInformation>
      <ItemName>*信息技术服务*软件服务</ItemName><Amount>-100.00</Amount><TaxRate>0.130000</TaxRate>
      <ComTaxAm>-13.00</ComTaxAm><TotaltaxIncludedAmount>-113.00</TotaltaxIncludedAmount>
    </IssuItemInformation>
    <SellerInformation><SellerName>上海乙公司</SellerName><SellerIdNum>91310000MA1FL0XXXX</SellerIdNum></SellerInformation>
    <AdditionalInformation><Remark>项目A</Remark></AdditionalInformation>
  </EInvoiceData>
  <Header>
    <InherentLabel>
      <InIssuType><LabelCode>Y</LabelCode></InIssuType>
      <GeneralOrSpecialVAT><LabelCode>01</LabelCode></GeneralOrSpecialVAT>
    </InherentLabel>
    <EInvoiceTag>SWEI3100</EInvoiceTag>
    <EIid>25312000000012345678</EIid>
  </Header>
</EInvoice>
"""


def test_xml_with_shuffled_elements_and_a_negative_discount_line(tmp_path):
    path = tmp_path / "dzfp_25312000000012345678_北京甲公司_20250111101112.xml"
    path.write_text(SHUFFLED_XML, encoding="utf-8")
    result = read_file(path, spec("einvoice"))

    invoice = result.tables["einvoice"]
    expect_columns(invoice, "einvoice")
    row = invoice.row(0, named=True)
    assert row["file_format"] == "xml"
    assert row["digital_invoice_no"] == "25312000000012345678"
    assert row["invoice_code"] is None and row["invoice_no"] is None
    assert row["vat_label_code"] == "01"  # not InIssuType's LabelCode, which comes first
    assert (row["seller_tin"], row["buyer_tin"]) == ("91310000MA1FL0XXXX", "91110105MA01ABCD1X")
    assert (row["amount_excl_tax"], row["tax_amount"], row["amount_incl_tax"]) == (
        "1000.00",
        "130.00",
        "1130.00",
    )
    assert (row["issue_time"], row["request_time"]) == ("2025-01-11", "2025-01-11 10:11:12")
    assert (row["tax_bureau_code"], row["drawer"], row["remark"]) == ("13100000000", "张三", "项目A")
    assert row["_source_row"] == "EInvoice"
    extra = json.loads(row["_extra"])
    assert extra["EInvoiceData/SpecificInformation/PlateNumber"] == "沪A12345"
    assert extra["Header/InherentLabel/InIssuType/LabelCode"] == "Y"
    assert "TaxBureauSignature/SignatureValue" not in extra

    lines = result.tables["einvoice_lines"]
    expect_columns(lines, "einvoice", "einvoice_lines")
    assert lines["_source_row"].to_list() == [
        "EInvoiceData/IssuItemInformation[1]",
        "EInvoiceData/IssuItemInformation[2]",
    ]
    assert lines["amount_excl_tax"].to_list() == ["1100.00", "-100.00"]
    assert lines["amount_incl_tax"].to_list() == ["1243.00", "-113.00"]  # TotaltaxIncludedAmount
    assert lines["tax_rate"].to_list() == ["0.130000", "0.130000"]
    assert lines["spec_model"].to_list() == [None, None]
    assert lines["digital_invoice_no"].to_list() == ["25312000000012345678"] * 2


def test_xml_number_falls_back_to_tax_supervision_info(tmp_path):
    path = tmp_path / "toll.xml"
    path.write_text(SHUFFLED_XML.replace("<EIid>25312000000012345678</EIid>", ""), encoding="utf-8")
    row = read_file(path, spec("einvoice")).tables["einvoice"].row(0, named=True)
    assert row["digital_invoice_no"] == "25312000000012345678"


def test_xml_without_any_invoice_number(tmp_path):
    path = tmp_path / "x.xml"
    path.write_text(
        SHUFFLED_XML.replace("<EIid>25312000000012345678</EIid>", "").replace(
            "<InvoiceNumber>25312000000012345678</InvoiceNumber>", ""
        ),
        encoding="utf-8",
    )
    assert unreadable(path, "einvoice").startswith("invoice XML has no invoice number")


def test_xml_missing_required_element(tmp_path):
    path = tmp_path / "x.xml"
    path.write_text(
        SHUFFLED_XML.replace("<SellerIdNum>", "<SellerIdNumber>").replace(
            "</SellerIdNum>", "</SellerIdNumber>"
        ),
        encoding="utf-8",
    )
    assert unreadable(path, "einvoice") == "missing columns: EInvoiceData/SellerInformation/SellerIdNum"


def test_xml_line_missing_required_element_is_a_row_error(tmp_path):
    path = tmp_path / "x.xml"
    path.write_text(SHUFFLED_XML.replace("<ComTaxAm>-13.00</ComTaxAm>", ""), encoding="utf-8")
    result = read_file(path, spec("einvoice"))
    assert result.tables["einvoice_lines"].height == 1
    assert [(e.table, e.source_row) for e in result.row_errors] == [
        ("einvoice_lines", "EInvoiceData/IssuItemInformation[2]")
    ]


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE EInvoice [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<EInvoice><Header><EIid>&lol9;</EIid></Header></EInvoice>
"""


def test_xml_billion_laughs_is_refused(tmp_path):
    path = tmp_path / "bomb.xml"
    path.write_text(BILLION_LAUGHS, encoding="utf-8")
    assert unreadable(path, "einvoice") == "XML with DTD/entity declarations is refused"


def test_xml_external_entity_is_refused_and_never_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET", encoding="utf-8")
    path = tmp_path / "xxe.xml"
    path.write_text(
        f'<?xml version="1.0"?>\n<!DOCTYPE EInvoice [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>\n'
        "<EInvoice><Header><EIid>&xxe;</EIid></Header></EInvoice>",
        encoding="utf-8",
    )
    message = unreadable(path, "einvoice")
    assert message == "XML with DTD/entity declarations is refused"
    external_dtd = tmp_path / "dtd.xml"
    external_dtd.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE EInvoice SYSTEM "http://127.0.0.1:9/x.dtd">\n<EInvoice/>',
        encoding="utf-8",
    )
    assert unreadable(external_dtd, "einvoice") == "XML with DTD/entity declarations is refused"


def test_xml_wrong_root_and_not_well_formed(tmp_path):
    (tmp_path / "root.xml").write_text("<Invoice><Header><EIid>1</EIid></Header></Invoice>", encoding="utf-8")
    assert (
        unreadable(tmp_path / "root.xml", "einvoice")
        == "XML root is <Invoice>, not <EInvoice>: not a 数电票 XML"
    )
    (tmp_path / "broken.xml").write_text(
        "<EInvoice>\n  <Header><EIid>1</Header>\n</EInvoice>", encoding="utf-8"
    )
    message = unreadable(tmp_path / "broken.xml", "einvoice")
    assert message.startswith("XML is not well-formed: mismatched tag: line 2, column")


def test_xml_declared_gbk_is_decoded(tmp_path):
    path = tmp_path / "gbk.xml"
    path.write_bytes(SHUFFLED_XML.replace('encoding="UTF-8"', 'encoding="GBK"').encode("gbk"))
    row = read_file(path, spec("einvoice")).tables["einvoice"].row(0, named=True)
    assert row["buyer_name"] == "北京甲公司"


def test_xml_paths_agree_with_the_spec():
    invoice, lines = spec("einvoice").tables["einvoice"], spec("einvoice").tables["einvoice_lines"]
    for column, paths in einvoice_reader.XML_FIELDS.items():
        assert invoice.columns[column] == " | ".join(paths), column
    for column, name in einvoice_reader.XML_LINE_FIELDS.items():
        assert lines.columns[column] == name, column


# =========================================================================== einvoice: OFD

FP = "http://www.edrm.org.cn/schema/e-invoice/2019"


def attachment_xml(number: str, code: str = "") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<fp:eInvoice xmlns:fp="{FP}">
  <fp:DocID>DOC-1</fp:DocID>
  <fp:InvoiceNo>{number}</fp:InvoiceNo>
  <fp:InvoiceCode>{code}</fp:InvoiceCode>
  <fp:TypeCode>10</fp:TypeCode>
  <fp:IssueDate>2020年10月10日</fp:IssueDate>
  <fp:InvoiceCheckCode>12345678901234567890</fp:InvoiceCheckCode>
  <fp:Seller><fp:SellerTaxID>91310000MA1FL0XXXX</fp:SellerTaxID><fp:SellerName>上海乙公司</fp:SellerName></fp:Seller>
  <fp:Buyer><fp:BuyerName>北京甲公司</fp:BuyerName><fp:BuyerTaxID>91110105MA01ABCD1X</fp:BuyerTaxID></fp:Buyer>
  <fp:TaxInclusiveTotalAmount>113.00</fp:TaxInclusiveTotalAmount>
  <fp:TaxTotalAmount>13.00</fp:TaxTotalAmount>
  <fp:TaxExclusiveTotalAmount>100.00</fp:TaxExclusiveTotalAmount>
  <fp:GraphCode>iVBORw0KGgoAAAANSUhEUgAA</fp:GraphCode>
  <fp:GoodsInfos>
    <fp:GoodsInfo>
      <fp:Item>*餐饮服务*餐费</fp:Item><fp:Specification/><fp:MeasurementDimension>次</fp:MeasurementDimension>
      <fp:Price>100</fp:Price><fp:Quantity>1</fp:Quantity><fp:Amount>100.00</fp:Amount>
      <fp:TaxScheme>13%</fp:TaxScheme><fp:TaxAmount>13.00</fp:TaxAmount>
    </fp:GoodsInfo>
  </fp:GoodsInfos>
  <fp:InvoiceClerk>王五</fp:InvoiceClerk>
</fp:eInvoice>
"""


def ofd_main_xml(entries: dict[str, str]) -> str:
    custom = "".join(f'<ofd:CustomData Name="{k}">{v}</ofd:CustomData>' for k, v in entries.items())
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<ofd:OFD xmlns:ofd="http://www.ofdspec.org/2016" Version="1.1" DocType="OFD">
  <ofd:DocBody>
    <ofd:DocInfo><ofd:DocID>abc</ofd:DocID><ofd:CustomDatas>{custom}</ofd:CustomDatas></ofd:DocInfo>
    <ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot>
  </ofd:DocBody>
</ofd:OFD>
"""


CUSTOM = {
    "发票代码": "044002000111",
    "发票号码": "00290716",
    "开票日期": "2020年10月10日",
    "校验码": "12345678901234567890",
    "合计金额": "100.00",
    "合计税额": "13.00",
    "价税合计": "113.00",
    "购买方名称": "北京甲公司",
    "购买方纳税人识别号": "91110105MA01ABCD1X",
    "销售方名称": "上海乙公司",
    "销售方纳税人识别号": "91310000MA1FL0XXXX",
}


def write_ofd(path: Path, members: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def test_ofd_with_attachment_digital_number(tmp_path):
    path = write_ofd(
        tmp_path / "dzfp.ofd",
        {
            "OFD.xml": ofd_main_xml(CUSTOM),
            "Doc_0/Document.xml": "<Document/>",
            "Doc_0/Attachs/original_invoice.xml": attachment_xml("25312000000012345678"),
        },
    )
    result = read_file(path, spec("einvoice"))
    row = result.tables["einvoice"].row(0, named=True)
    assert result.notes["ofd_source"] == "Doc_0/Attachs/original_invoice.xml"
    assert row["file_format"] == "ofd"
    assert (row["digital_invoice_no"], row["invoice_code"], row["invoice_no"]) == (
        "25312000000012345678",
        None,
        None,
    )
    assert (row["issue_time"], row["buyer_tin"], row["seller_name"]) == (
        "2020年10月10日",
        "91110105MA01ABCD1X",
        "上海乙公司",
    )
    assert (row["amount_excl_tax"], row["tax_amount"], row["amount_incl_tax"]) == (
        "100.00",
        "13.00",
        "113.00",
    )
    assert row["drawer"] == "王五"
    assert row["_source_row"] == "Doc_0/Attachs/original_invoice.xml"
    extra = json.loads(row["_extra"])
    assert extra["InvoiceCheckCode"] == "12345678901234567890" and "GraphCode" not in extra
    lines = result.tables["einvoice_lines"]
    assert lines.row(0, named=True) | {"_extra": None} == {
        "digital_invoice_no": "25312000000012345678", "invoice_code": None, "invoice_no": None,
        "item_name": "*餐饮服务*餐费", "spec_model": None, "unit": "次", "quantity": "1", "unit_price": "100",
        "amount_excl_tax": "100.00", "tax_rate": "13%", "tax_amount": "13.00", "amount_incl_tax": None,
        "tax_class_code": None, "_source_row": "Doc_0/Attachs/original_invoice.xml#GoodsInfos/GoodsInfo[1]",
        "_extra": None,
    }  # fmt: skip


def test_ofd_with_attachment_legacy_code_and_number(tmp_path):
    path = write_ofd(
        tmp_path / "legacy.ofd",
        {"Doc_0/Attachs/original_invoice.xml": attachment_xml("00290716", "044002000111")},
    )
    row = read_file(path, spec("einvoice")).tables["einvoice"].row(0, named=True)
    assert (row["digital_invoice_no"], row["invoice_code"], row["invoice_no"]) == (
        None,
        "044002000111",
        "00290716",
    )


def test_ofd_with_only_custom_data(tmp_path):
    path = write_ofd(
        tmp_path / "old.ofd", {"OFD.xml": ofd_main_xml(CUSTOM), "Doc_0/Document.xml": "<Document/>"}
    )
    result = read_file(path, spec("einvoice"))
    row = result.tables["einvoice"].row(0, named=True)
    assert result.notes["ofd_source"] == "OFD.xml#CustomDatas"
    assert (row["invoice_code"], row["invoice_no"], row["digital_invoice_no"]) == (
        "044002000111",
        "00290716",
        None,
    )
    assert (row["amount_excl_tax"], row["tax_amount"], row["amount_incl_tax"]) == (
        "100.00",
        "13.00",
        "113.00",
    )
    assert (row["seller_tin"], row["buyer_name"]) == ("91310000MA1FL0XXXX", "北京甲公司")
    assert row["_source_row"] == "OFD.xml#CustomDatas"
    assert json.loads(row["_extra"]) == {"校验码": "12345678901234567890"}
    assert result.tables["einvoice_lines"].height == 0


def test_ofd_broken_attachment_falls_back_and_says_why(tmp_path):
    path = write_ofd(
        tmp_path / "x.ofd",
        {"OFD.xml": ofd_main_xml(CUSTOM), "Doc_0/Attachs/original_invoice.xml": "<fp:eInvoice"},
    )
    result = read_file(path, spec("einvoice"))
    assert result.notes["ofd_source"] == "OFD.xml#CustomDatas"
    assert "not well-formed" in result.notes["ofd_attachment_problem"]


def test_ofd_attachment_lacking_a_required_element_falls_back(tmp_path):
    broken = attachment_xml("00290716", "044002000111").replace(
        "<fp:TaxExclusiveTotalAmount>100.00</fp:TaxExclusiveTotalAmount>", ""
    )
    alone = write_ofd(tmp_path / "alone.ofd", {"Doc_0/Attachs/original_invoice.xml": broken})
    assert unreadable(alone, "einvoice") == "missing columns: TaxExclusiveTotalAmount"
    both = write_ofd(
        tmp_path / "both.ofd", {"OFD.xml": ofd_main_xml(CUSTOM), "Doc_0/Attachs/original_invoice.xml": broken}
    )
    result = read_file(both, spec("einvoice"))
    assert result.notes["ofd_attachment_problem"] == "missing columns: TaxExclusiveTotalAmount"
    assert result.tables["einvoice"]["amount_excl_tax"].to_list() == ["100.00"]
    no_tax = {k: v for k, v in CUSTOM.items() if k != "合计金额"}
    neither = write_ofd(
        tmp_path / "neither.ofd",
        {"OFD.xml": ofd_main_xml(no_tax), "Doc_0/Attachs/original_invoice.xml": broken},
    )
    assert unreadable(neither, "einvoice") == (
        "missing columns: 合计金额; and Doc_0/Attachs/original_invoice.xml: "
        "missing columns: TaxExclusiveTotalAmount"
    )


def test_ofd_without_usable_content(tmp_path):
    no_number = {k: v for k, v in CUSTOM.items() if k != "发票号码"}
    path = write_ofd(tmp_path / "x.ofd", {"OFD.xml": ofd_main_xml(no_number)})
    assert unreadable(path, "einvoice").startswith(
        "OFD has neither Doc_0/Attachs/original_invoice.xml nor usable OFD.xml CustomData"
    )
    path = write_ofd(tmp_path / "y.ofd", {"Doc_0/Document.xml": "<Document/>"})
    assert unreadable(path, "einvoice") == "OFD has neither Doc_0/Attachs/original_invoice.xml nor OFD.xml"


def test_ofd_that_is_not_a_zip(tmp_path):
    (tmp_path / "x.ofd").write_bytes(b"%PDF-1.7 not an ofd")
    assert unreadable(tmp_path / "x.ofd", "einvoice").startswith("OFD is not a readable ZIP container")


@pytest.mark.parametrize("name", ["../../etc/cron.d/evil", "/etc/passwd", "Doc_0/../../x.xml", "C:\\x.xml"])
def test_ofd_zip_slip_member_is_refused(tmp_path, name):
    path = write_ofd(
        tmp_path / "slip.ofd",
        {"Doc_0/Attachs/original_invoice.xml": attachment_xml("25312000000012345678"), name: "x"},
    )
    assert unreadable(path, "einvoice") == f"OFD member with unsafe path {name!r} is refused"
    assert not (tmp_path / "x.xml").exists()


def test_ofd_zip_bomb_member_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(einvoice_reader, "MAX_MEMBER_BYTES", 1 << 20)
    path = write_ofd(tmp_path / "bomb.ofd", {"Doc_0/Attachs/original_invoice.xml": b" " * (2 << 20)})
    assert "zip bomb" in unreadable(path, "einvoice")
    # a member whose header lies about its size is stopped while reading
    lying = tmp_path / "lying.ofd"
    data = bytearray(path.read_bytes())
    z = zipfile.ZipFile(io.BytesIO(bytes(data)))
    info = z.infolist()[0]
    z.close()
    for offset in (info.header_offset + 22, data.rfind(b"PK\x01\x02") + 24):  # local + central sizes
        data[offset : offset + 4] = (100).to_bytes(4, "little")
    lying.write_bytes(bytes(data))
    message = unreadable(lying, "einvoice")
    assert "zip bomb" in message or "corrupt" in message


def test_ofd_attachment_with_entities_is_refused(tmp_path):
    path = write_ofd(
        tmp_path / "x.ofd",
        {"OFD.xml": ofd_main_xml(CUSTOM), "Doc_0/Attachs/original_invoice.xml": BILLION_LAUGHS},
    )
    assert unreadable(path, "einvoice").endswith("XML with DTD/entity declarations is refused")


# =========================================================================== jsonl


def test_jsonl_with_a_broken_line(tmp_path):
    lines = [
        json.dumps(
            {
                "run_id": "r1",
                "system": "tax_platform->erp",
                "entity_tin": "91110105MA01ABCD1X",
                "started_at": "2025-01-11T02:00:00+08:00",
                "finished_at": None,
                "status": "partial",
                "records_read": 120,
                "records_written": 118,
                "records_failed": 2,
                "error": "",
                "host": "etl-01",
                "ok": True,
                "ratio": 1.10,
            },
            ensure_ascii=False,
        ),
        "",
        '{"run_id": "r2", "system": "erp->dw", "started_at": "2025-01-12T02:00:00+08:00", "status": "',
        "[1, 2]",
        '{"run_id": "r3", "system": "erp->dw", "started_at": "2025-01-13T02:00:00+08:00", "status": "ok"}',
    ]
    path = tmp_path / "sync.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = read_file(path, spec("sync_log"))

    log = result.tables["sync_log"]
    expect_columns(log, "sync_log")
    assert log["run_id"].to_list() == ["r1", "r3"]
    assert log["records_read"].to_list() == ["120", None]
    assert log["finished_at"].to_list() == [None, None]
    assert log["error"].to_list() == [None, None]
    assert log["_source_row"].to_list() == ["line 1", "line 5"]
    assert json.loads(log["_extra"][0]) == {"host": "etl-01", "ok": "true", "ratio": "1.1"}
    assert [(e.source_row, e.raw_value) for e in result.row_errors] == [
        ("line 3", lines[2]),
        ("line 4", "[1, 2]"),
    ]
    assert result.row_errors[1].reason == "not a JSON object but list"


def test_jsonl_keeps_number_literals(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(
        '{"run_id": 7, "system": "x", "started_at": "t", "status": "success", "records_read": 1.50}\n'
    )
    log = read_file(path, spec("sync_log")).tables["sync_log"]
    assert log.select("run_id", "records_read").row(0) == ("7", "1.50")


def test_jsonl_missing_required_keys(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"run_id": "r1", "status": "success"}\n')
    assert unreadable(path, "sync_log") == "missing columns: system, started_at"


# =========================================================================== registry


def test_registry_and_checksum(tmp_path):
    assert {s.reader for s in SPECS.values()} <= set(READERS)
    path = tmp_path / "x.csv"
    path.write_bytes(b"tin,name,erp_org_code\n1,a,b\n")
    assert sha256_of(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert isinstance(read_file(path, spec("entities")), FileRead)
    with pytest.raises(ValueError, match="unknown reader"):
        read_file(path, SimpleNamespace(name="x", reader="pdf"))
    assert unreadable(tmp_path / "missing.csv", "entities").startswith("cannot read file")
    (tmp_path / "x.pdf").write_bytes(b"%PDF")
    assert unreadable(tmp_path / "x.pdf", "erp").startswith("unsupported file type '.pdf'")


def test_normalize_label():
    assert normalize_label("\ufeff　发票 号码 ") == normalize_label("发票号码")
    assert normalize_label("ＴＩＮ") == "tin"
