"""Shared fixtures: a tiny hand-made landing tree and a fresh data directory per test.

Tests never share an on-disk warehouse: each gets its own `tmp_path` data directory.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
import xlsxwriter

from invoice_pipeline.specs import load_specs

ENTITY_TIN = "91110105MA0000000Y"
ENTITY_TIN_2 = "91310115MA1H8R7C67"

PLATFORM_HEADERS = list(load_specs()["tax_platform"].tables["tax_platform"].columns.values())
LINE_HEADERS = list(load_specs()["tax_platform"].tables["tax_platform_lines"].columns.values())
ERP_HEADERS = list(load_specs()["erp"].tables["erp"].columns.values())

SUPPLIER_TIN = "91370100MA3C4XXX1L"
CUSTOMER_TIN = "91440300MA5F000007"

# (序号, 代码, 号码, 数电号码, 销方识别号, 销方名称, 购方识别号, 购买方名称, 开票日期, 金额, 税额, 价税合计,
#  来源, 票种, 状态, 是否正数, 风险, 开票人, 备注)
PLATFORM_ROWS = [
    (
        "1",
        "",
        "",
        "26112000000000000001",
        SUPPLIER_TIN,
        "济南供应商有限公司",
        ENTITY_TIN,
        "北京示例科技有限公司",
        "2026-03-02 10:11:12",
        1000.0,
        130.0,
        1130.0,
        "电子发票服务平台",
        "数电发票（增值税专用发票）",
        "正常",
        "是",
        "正常",
        "王五",
        "",
    ),
    (
        "2",
        "011002100511",
        "00290716",
        "--",
        ENTITY_TIN,
        "北京示例科技有限公司",
        CUSTOMER_TIN,
        "深圳客户有限公司",
        "2026-03-05 09:00:00",
        200.0,
        12.0,
        212.0,
        "增值税发票管理系统",
        "增值税普通发票",
        "正常",
        "是",
        "正常",
        "李四",
        "",
    ),
    (
        "3",
        "",
        "",
        "26112000000000000002",
        SUPPLIER_TIN,
        "济南供应商有限公司",
        ENTITY_TIN,
        "北京示例科技有限公司",
        "2026-03-09 15:30:00",
        -1000.0,
        -130.0,
        -1130.0,
        "电子发票服务平台",
        "数电发票（增值税专用发票）",
        "正常",
        "否",
        "正常",
        "王五",
        "被红冲蓝字数电发票号码：26112000000000000001 红字发票信息确认单编号：26112000000000000099",
    ),
]


def write_platform_workbook(
    path: Path, rows=PLATFORM_ROWS, control_total: tuple[float, float] | None = None
) -> None:
    """A 全量发票查询 export as the platform writes it: text identifiers, numeric amounts, 合计行."""
    book = xlsxwriter.Workbook(str(path))
    head = book.add_worksheet("发票基础信息")
    lines = book.add_worksheet("信息汇总表")
    head.write_row(0, 0, PLATFORM_HEADERS)
    lines.write_row(0, 0, LINE_HEADERS)
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row):
            if isinstance(value, float):
                head.write_number(r, c, value)
            else:
                head.write_string(r, c, value)
        line = [
            *row[:9],
            "1090000000000000000",
            "",
            "*信息技术服务*软件开发",
            "",
            "项",
            "1",
            str(row[9]),
            row[9],
            "13%" if row[10] else "0%",
            row[10],
            row[11],
            *row[12:],
        ]
        for c, value in enumerate(line):
            if isinstance(value, float):
                lines.write_number(r, c, value)
            else:
                lines.write_string(r, c, value)
    total_amount, total_tax = control_total or (sum(r[9] for r in rows), sum(r[10] for r in rows))
    last = len(rows) + 1
    head.write_string(last, 0, "合计行")
    head.write_number(last, 9, total_amount)
    head.write_number(last, 10, total_tax)
    book.close()


def write_erp_csv(path: Path, rows: list[list[str]], encoding: str = "gb18030") -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows([ERP_HEADERS, *rows])
    path.write_bytes(buffer.getvalue().encode(encoding))


ERP_ROWS = [
    [
        "BJ01",
        "进项",
        "AP-0001",
        "记-001",
        "2026-03-03",
        "2026-03",
        "济南供应商有限公司",
        SUPPLIER_TIN,
        "专票",
        "",
        "26112000000000000001",
        "2026/3/2",
        "1,000.00",
        "13%",
        "130.00",
        "￥1,130.00",
        "人民币",
        "已审核",
        "否",
        "张三",
        "",
    ],
    [
        "BJ01",
        "销项",
        "AR-0001",
        "",
        "2026-03-06",
        "2026年03月",
        "深圳客户有限公司",
        CUSTOMER_TIN,
        "普票",
        "011002100511",
        "'00290716",
        "20260305",
        "200",
        "6%",
        "12",
        "212",
        "CNY",
        "已审核",
        "否",
        "张三",
        "",
    ],
    [
        "BJ01",
        "进项",
        "AP-0002",
        "",
        "2026-03-10",
        "2026-03",
        "济南供应商有限公司",
        SUPPLIER_TIN,
        "专票",
        "",
        "2611 2000 0000 0000 0002",
        "2026年3月9日",
        "(1,000.00)",
        "13%",
        "(130.00)",
        "abc",
        "CNY",
        "已审核",
        "否",
        "张三",
        "red",
    ],
]


def build_tiny_landing(root: Path) -> Path:
    """A small landing tree with one file per source and a few known quirks."""
    landing = root / "landing"
    for folder in ("entities", "tax_platform", "einvoice", "erp", "reimbursement", "sync_log"):
        (landing / folder).mkdir(parents=True, exist_ok=True)
    (landing / "entities" / "entities.csv").write_text(
        "tin,name,region_code,erp_org_code,aliases\n"
        f"{ENTITY_TIN},北京示例科技有限公司,110105,BJ01,北京示例科技（有限）公司|北京示例\n"
        f"{ENTITY_TIN_2},上海示例贸易有限公司,310115,SH01,\n",
        encoding="utf-8",
    )
    write_platform_workbook(landing / "tax_platform" / "BJ_2026Q1_全量发票查询导出结果.xlsx")
    write_erp_csv(landing / "erp" / "erp_bj.csv", ERP_ROWS)
    (landing / "reimbursement" / "claims.csv").write_text(
        "报销单号,报销人,部门,提交日期,审批状态,发票代码,发票号码,开票日期,价税合计,报销金额\n"
        "BX-001,赵六,销售部,2026-03-10,已通过,,26112000000000000001,2026-03-02,1130.00,1130.00\n",
        encoding="utf-8-sig",
    )
    runs = [
        {
            "run_id": "r1",
            "system": "tax_platform->erp",
            "entity_tin": ENTITY_TIN,
            "started_at": "2026-03-31T01:00:00+08:00",
            "finished_at": "2026-03-31T01:05:00+08:00",
            "status": "success",
            "records_read": 3,
            "records_written": 3,
            "records_failed": 0,
            "error": None,
        },
    ]
    (landing / "sync_log" / "runs.jsonl").write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in runs) + "\n", encoding="utf-8"
    )
    return landing


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data directory that the pipeline uses for this test only."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("INVOICE_PIPELINE_DATA_DIR", str(root))
    return root


@pytest.fixture
def tiny_data_dir(data_dir: Path) -> Path:
    build_tiny_landing(data_dir)
    return data_dir


@pytest.fixture(scope="session")
def generated_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated landing tree (2,000 invoices) shared read-only by the tests that copy it."""
    from invoice_pipeline.generate import generate

    root = tmp_path_factory.mktemp("generated")
    generate(root, invoices=2000, seed=7)
    return root


@pytest.fixture
def generated_data_dir(generated_tree: Path, data_dir: Path) -> Path:
    shutil.copytree(generated_tree / "landing", data_dir / "landing")
    shutil.copy(generated_tree / "truth.json", data_dir / "truth.json")
    return data_dir
