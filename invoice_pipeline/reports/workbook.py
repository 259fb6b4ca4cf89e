"""The compliance workbook (xlsxwriter): a summary sheet first, the findings per rule, one sheet
per finding family with the evidence, and the VAT by rate. Amounts are numbers formatted as 元,
header rows are frozen, every table has an autofilter, and columns are as wide as their content."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import polars as pl
import xlsxwriter

from invoice_pipeline.reports import labels
from invoice_pipeline.reports.data import ReportData
from invoice_pipeline.reports.summary import top_findings

MONEY_FORMAT = '#,##0.00 "元"'
SHARE_FORMAT = "0.0%"
INT_FORMAT = "#,##0"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm"

SUMMARY_SHEET = "摘要"
ACCEPTED_ROW = "已接受风险(不计入未结)"
RULES_SHEET = "问题汇总"
VAT_SHEET = "增值税按税率"

MIN_WIDTH, MAX_WIDTH = 6, 60
_MONEY_KEY = re.compile(r"(^|_)(amount|tax|excl_tax|incl_tax|reversed)$")
_INT_KEYS = frozenset(
    {"missing_count", "hours_since_success", "records_read", "records_written", "records_failed"}
)


def display_width(value) -> int:
    """Columns a value needs: CJK characters count twice."""
    text = value if isinstance(value, str) else _text_of(value)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _text_of(value) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal | float):
        return f"{value:,.2f} 元"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


@dataclass(frozen=True)
class Column:
    header: str
    kind: str = "text"  # text | int | money | share | datetime


# The invoices-and-money-per-source table, shared by the workbook and the HTML page.
SOURCE_COLUMNS = [
    Column("方向"),
    Column("来源"),
    Column("张数(ERP 为单据数)", "int"),
    Column("不含税金额", "money"),
    Column("税额", "money"),
    Column("价税合计", "money"),
]


def source_rows(data) -> list[tuple]:
    return [
        (labels.DIRECTIONS[d], labels.SOURCES[s], n, excl, tax, incl)
        for d, s, n, excl, tax, incl in data.sources.iter_rows()
    ]


class Writer:
    """One workbook's formats and column-width bookkeeping."""

    def __init__(self, path: Path):
        self.book = xlsxwriter.Workbook(str(path), {"remove_timezone": True, "strings_to_numbers": False})
        font = {"font_name": "Microsoft YaHei", "font_size": 10}
        self.font = font
        self.formats = {
            "text": self.book.add_format({**font, "valign": "top"}),
            "int": self.book.add_format({**font, "num_format": INT_FORMAT, "valign": "top"}),
            "money": self.book.add_format({**font, "num_format": MONEY_FORMAT, "valign": "top"}),
            "share": self.book.add_format({**font, "num_format": SHARE_FORMAT, "valign": "top"}),
            "datetime": self.book.add_format({**font, "num_format": DATETIME_FORMAT, "valign": "top"}),
            "wrap": self.book.add_format({**font, "valign": "top", "text_wrap": True}),
        }
        self.bold = {
            kind: self.book.add_format({**font, "bold": True, "num_format": f.num_format or "General"})
            for kind, f in (
                ("text", self.formats["text"]),
                ("int", self.formats["int"]),
                ("money", self.formats["money"]),
                ("share", self.formats["share"]),
            )
        }
        self.header = self.book.add_format(
            {
                **font,
                "bold": True,
                "bg_color": "#1F4E79",
                "font_color": "#FFFFFF",
                "border": 1,
                "text_wrap": True,
                "valign": "vcenter",
            }
        )
        self.title = self.book.add_format({**font, "bold": True, "font_size": 16, "font_color": "#1F4E79"})
        self.section = self.book.add_format({**font, "bold": True, "font_size": 12, "font_color": "#1F4E79"})
        self.label = self.book.add_format({**font, "bold": True, "bg_color": "#DDEBF7"})
        self.note = self.book.add_format({**font, "italic": True, "font_color": "#595959"})
        self.widths: dict[str, dict[int, int]] = {}

    def fit(self, sheet, col: int, value) -> None:
        widths = self.widths.setdefault(sheet.name, {})
        widths[col] = max(widths.get(col, MIN_WIDTH), min(MAX_WIDTH, display_width(value) + 2))

    def write(self, sheet, row: int, col: int, value, kind: str = "text", bold: bool = False) -> None:
        fmt = (self.bold if bold else self.formats).get(kind, self.formats["text"])
        if value is None:
            sheet.write_blank(row, col, None, fmt)
        elif kind in ("int", "money", "share") and isinstance(value, int | float | Decimal):
            sheet.write_number(row, col, float(value), fmt)
        elif kind == "datetime" and isinstance(value, datetime):
            sheet.write_datetime(row, col, value.replace(tzinfo=None), fmt)
        else:
            # Landed text is written as a string, never as a formula or a number; text wider
            # than the widest column wraps inside its cell.
            text = str(value)
            if not bold and display_width(text) > MAX_WIDTH:
                fmt = self.formats["wrap"]
            sheet.write_string(row, col, text, fmt)
        self.fit(sheet, col, value)

    def table(self, sheet, first_row: int, columns: list[Column], rows, autofilter: bool = True) -> int:
        """Header and rows from `first_row`; returns the next free row."""
        for c, column in enumerate(columns):
            sheet.write_string(first_row, c, column.header, self.header)
            self.fit(sheet, c, column.header)
        r = first_row
        for r, row in enumerate(rows, start=first_row + 1):
            for c, (column, value) in enumerate(zip(columns, row, strict=True)):
                self.write(sheet, r, c, value, column.kind)
        if autofilter:
            sheet.autofilter(first_row, 0, max(r, first_row), len(columns) - 1)
        return r + 1

    def close(self) -> None:
        for sheet in self.book.worksheets():
            for col, width in self.widths.get(sheet.name, {}).items():
                sheet.set_column(col, col, width)
        self.book.close()


def _summary_sheet(w: Writer, data: ReportData, summary: dict) -> None:
    ws = w.book.add_worksheet(SUMMARY_SHEET)
    ws.hide_gridlines(2)
    ws.write_string(0, 0, "增值税发票合规月报", w.title)
    w.write(ws, 1, 0, "主体名称", bold=True)
    w.write(ws, 1, 1, data.entity_name)
    w.write(ws, 1, 2, "纳税人识别号", bold=True)
    w.write(ws, 1, 3, data.entity_tin)
    w.write(ws, 2, 0, "所属期间", bold=True)
    w.write(ws, 2, 1, data.month)
    w.write(ws, 2, 2, "数据截至", bold=True)
    w.write(ws, 2, 3, data.aged_at.replace(tzinfo=None), "datetime")
    w.write(ws, 2, 4, "生成时间", bold=True)
    w.write(ws, 2, 5, data.generated_at.replace(tzinfo=None), "datetime")
    ws.freeze_panes(3, 0)  # the entity and month stay in view

    row = 4
    ws.write_string(row, 0, "一、各来源发票数量与金额", w.section)
    row = w.table(
        ws,
        row + 1,
        SOURCE_COLUMNS,
        source_rows(data),
        autofilter=False,
    )

    row += 1
    ws.write_string(row, 0, "二、ERP 入账匹配率", w.section)
    row = w.table(
        ws,
        row + 1,
        [
            Column("方向"),
            Column("有效发票张数", "int"),
            Column("已入账张数", "int"),
            Column("按张数匹配率", "share"),
            Column("有效发票价税合计", "money"),
            Column("已入账价税合计", "money"),
            Column("按金额匹配率", "share"),
        ],
        [
            (labels.DIRECTIONS.get(d, "合计"), v, m, s, va, ma, sa)
            for d, v, m, s, va, ma, sa in data.matched.iter_rows()
        ],
        autofilter=False,
    )

    row += 1
    ws.write_string(row, 0, "三、本期未结问题", w.section)
    severity_rows = [
        (labels.SEVERITIES[s], v["open_findings"], v["money_at_stake"])
        for s, v in summary["by_severity"].items()
    ]
    severity_rows.append(("合计", summary["open_findings"], summary["money_at_stake"]))
    severity_rows.append((ACCEPTED_ROW, summary["accepted_findings"], summary["accepted_money_at_stake"]))
    row = w.table(
        ws,
        row + 1,
        [Column("严重程度"), Column("问题数", "int"), Column("涉及金额", "money")],
        severity_rows,
        autofilter=False,
    )

    row += 1
    ws.write_string(row, 0, "四、主要问题(按涉及金额)", w.section)
    top = top_findings(data)
    if top.height:
        row = w.table(
            ws,
            row + 1,
            [
                Column("问题"),
                Column("严重程度"),
                Column("对象"),
                Column("往来单位名称"),
                Column("涉及金额", "money"),
                Column("已存在天数", "int"),
            ],
            [
                (
                    labels.rule_title(r["rule_id"]),
                    labels.SEVERITIES.get(r["severity"], r["severity"]),
                    r["subject"],
                    r["counterparty_name"],
                    r["amount"],
                    r["age_days"],
                )
                for r in top.iter_rows(named=True)
            ],
            autofilter=False,
        )
    else:
        w.write(ws, row + 1, 0, "本期没有未结问题。")
        row += 2

    row += 1
    ws.write_string(row, 0, "五、本月问题变化(按发现/解决时间)", w.section)
    row = w.table(
        ws,
        row + 1,
        [Column("新发现", "int"), Column("重新打开", "int"), Column("已解决", "int")],
        [(summary["opened_in_month"], summary["reopened_in_month"], summary["resolved_in_month"])],
        autofilter=False,
    )

    row += 1
    ws.write_string(row, 0, "六、本期未结问题账龄", w.section)
    row = w.table(
        ws,
        row + 1,
        [Column("账龄"), Column("问题数", "int"), Column("其中错误", "int"), Column("涉及金额", "money")],
        [(labels.AGE_BUCKET_LABELS[b], n, e, m) for b, n, e, m, _ in data.ageing.iter_rows()],
        autofilter=False,
    )

    row += 1
    notes = [
        "说明:",
        "· 金额单位为元;红字发票金额为负数。",
        "· 匹配率 = 有未作废 ERP 记录的发票 / 全部未作废发票"
        "(电子发票服务平台为准,XML/OFD 补充平台缺少的发票)。",
        f"· 账龄 = 自首次发现至最近一次运行的评估时点({data.aged_at:%Y-%m-%d %H:%M})的天数;"
        "「距最近处理天数」自最近一次处理(无处理时自首次发现)起算。",
        "· 已接受风险的问题(经 invoice-pipeline annotate 或 annotate_finding 记录 accepted_risk 及理由)"
        "不计入未结问题数与涉及金额,单独列示,并在各类别工作表中以状态「已接受风险」列出;"
        "数据显示问题已解决后若再次出现,将重新计入未结。",
        f"· 另有 {summary['other_open_findings']} 项未结问题不属于任何月份(如导出文件合计行)或任何主体"
        "(如同步系统),列在各类别工作表中,范围列标为「本主体·无所属期间」或「未归属主体」,不计入本期合计。",
        "· 个人信息已脱敏:开票人、制单人、报销人、处理人姓名,以及含身份证号的纳税人识别号。",
    ]
    for i, note in enumerate(notes):
        ws.write_string(row + i, 0, note, w.note)


def _rules_sheet(w: Writer, data: ReportData) -> None:
    ws = w.book.add_worksheet(RULES_SHEET)
    ws.freeze_panes(1, 0)
    columns = [
        Column("类别"),
        Column("规则编号"),
        Column("问题"),
        Column("严重程度"),
        Column("本期未结", "int"),
        Column("本期涉及金额", "money"),
        Column("其他未结(无期间/未归属主体)", "int"),
        Column("其他涉及金额", "money"),
        Column("本月新发现", "int"),
        Column("本月重新打开", "int"),
        Column("本月已解决", "int"),
        Column("规则说明"),
        Column("本期已接受风险(不计入未结)", "int"),
        Column("已接受风险涉及金额", "money"),
    ]
    rows = [
        (
            labels.FAMILIES.get(r["family"], r["family"]),
            r["rule_id"],
            r["title"],
            labels.SEVERITIES.get(r["severity"], r["severity"]),
            r["open_findings"],
            r["money_at_stake"],
            r["other_open_findings"],
            r["other_money_at_stake"],
            r["opened"],
            r["reopened"],
            r["resolved"],
            r["description"],
            r["accepted_findings"],
            r["accepted_money_at_stake"],
        )
        for r in data.by_rule.iter_rows(named=True)
    ]
    w.table(ws, 0, columns, rows)


EVIDENCE_COLUMNS = [
    ("scope", Column("范围")),
    ("rule_id", Column("规则编号")),
    ("title", Column("问题")),
    ("severity", Column("严重程度")),
    ("state", Column("状态")),
    ("direction", Column("方向")),
    ("period", Column("所属期间")),
    ("subject", Column("对象")),
    ("invoice_uid", Column("发票号码")),
    ("counterparty_name", Column("往来单位名称")),
    ("counterparty_tin", Column("往来单位税号")),
    ("amount", Column("涉及金额", "money")),
    ("first_seen_at", Column("首次发现", "datetime")),
    ("age_days", Column("已存在天数", "int")),
    ("drawer", Column("开票人")),
    ("clerk", Column("制单人")),
    ("claimants", Column("报销人")),
    ("open_action", Column("待数据确认的处理")),
    ("latest_action", Column("最近处理")),
    ("latest_action_by", Column("处理人")),
    ("latest_action_at", Column("处理时间", "datetime")),
    ("latest_action_note", Column("处理说明")),
    ("days_since_action", Column("距最近处理天数", "int")),
    ("finding_id", Column("问题编号")),
]


def detail_kind(key: str) -> str:
    leaf = key.split(".")[-1]
    if leaf in _INT_KEYS:
        return "int"
    return "money" if _MONEY_KEY.search(leaf) else "text"


def detail_value(value: str | None, kind: str):
    """Evidence arrives as text; amounts and counts become numbers when they are one."""
    if value is None or kind == "text":
        return value
    try:
        return Decimal(value) if kind == "money" else int(value)
    except (InvalidOperation, ValueError):
        return value


def evidence_rows(data: ReportData, family: str) -> tuple[list[Column], list[tuple]]:
    """Columns and rows of one family's evidence, shared by the workbook and the HTML."""
    keys = data.detail_columns.get(family, [])
    headers = [c.header for _, c in EVIDENCE_COLUMNS]
    detail_cols = []
    for key in keys:
        header = labels.detail_label(key)
        if header in headers:
            header = f"{header}({key})"
        headers.append(header)
        detail_cols.append(Column(header, detail_kind(key)))
    columns = [c for _, c in EVIDENCE_COLUMNS] + detail_cols + [Column("规则说明")]
    rows = []
    frame = data.findings.filter(pl.col("family") == family)
    scope_order = {s: i for i, s in enumerate(labels.SCOPES)}
    state_order = {s: i for i, s in enumerate(labels.STATES)}  # open first, accepted after
    frame = frame.with_columns(
        pl.col("scope").replace_strict(scope_order, default=9, return_dtype=pl.Int64).alias("_scope"),
        pl.col("state").replace_strict(state_order, default=9, return_dtype=pl.Int64).alias("_state"),
    ).sort(
        ["_scope", "_state", "amount", "rule_id", "subject"],
        descending=[False, False, True, False, False],
        nulls_last=True,
    )
    for r in frame.iter_rows(named=True):
        values = {
            **r,
            "scope": labels.SCOPES.get(r["scope"], r["scope"]),
            "title": labels.rule_title(r["rule_id"]),
            "severity": labels.SEVERITIES.get(r["severity"], r["severity"]),
            "direction": labels.DIRECTIONS.get(r["direction"], "—") if r["direction"] else "—",
            "claimants": r["claimants"] or None,
            "state": labels.STATES.get(r["state"], r["state"]),
            "open_action": labels.ACTIONS.get(r["open_action"], r["open_action"]),
            "latest_action": labels.ACTIONS.get(r["latest_action"], r["latest_action"]),
        }
        row = [values[name] for name, _ in EVIDENCE_COLUMNS]
        row += [detail_value(r.get(f"d:{key}"), col.kind) for key, col in zip(keys, detail_cols, strict=True)]
        rule = data.rules.get(r["rule_id"])
        row.append(rule.description if rule else "")
        rows.append(tuple(row))
    return columns, rows


def _family_sheet(w: Writer, data: ReportData, family: str) -> None:
    ws = w.book.add_worksheet(labels.family_sheet(family))
    ws.freeze_panes(1, 3)
    columns, rows = evidence_rows(data, family)
    w.table(ws, 0, columns, rows)
    if not rows:
        ws.write_string(1, 0, "本期无此类未结问题", w.note)


def _vat_sheet(w: Writer, data: ReportData) -> None:
    ws = w.book.add_worksheet(VAT_SHEET)
    ws.freeze_panes(1, 0)
    columns = [
        Column("方向"),
        Column("税率"),
        Column("发票张数", "int"),
        Column("发票不含税金额", "money"),
        Column("发票税额", "money"),
        Column("ERP 单据数", "int"),
        Column("ERP 不含税金额", "money"),
        Column("ERP 税额", "money"),
        Column("税额差异(发票−ERP)", "money"),
    ]
    rows = [(labels.DIRECTIONS.get(r[0], r[0]), *r[1:]) for r in data.vat.iter_rows()]
    end = w.table(ws, 0, columns, rows)
    for direction, name in labels.DIRECTIONS.items():
        part = data.vat.filter(pl.col("direction") == direction)
        if not part.height:
            continue
        totals = [part[c].sum() for c in part.columns[2:]]
        w.write(ws, end, 0, f"{name}合计", bold=True)
        for c, (column, value) in enumerate(zip(columns[2:], totals, strict=True), start=2):
            w.write(ws, end, c, value, column.kind, bold=True)
        end += 1
    ws.write_string(
        end + 1,
        0,
        "发票税额按明细行税率汇总(作废发票与销货清单汇总行除外);ERP 每张单据只有一个税率,"
        "0%、免税、不征税合为一行。按税率的差异可能来自多税率发票,请以各方向合计为准。",
        w.note,
    )


def write_workbook(data: ReportData, summary: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    w = Writer(path)
    _summary_sheet(w, data, summary)
    _rules_sheet(w, data)
    for family in data.families:
        _family_sheet(w, data, family)
    _vat_sheet(w, data)
    w.book.set_properties(
        {
            "title": f"增值税发票合规月报 {data.month}",
            "subject": f"{data.entity_name} {data.entity_tin}",
            "author": "invoice_pipeline",
        }
    )
    w.close()
    return path


def family_sheet_names(data: ReportData) -> list[str]:
    return [labels.family_sheet(f) for f in data.families]


def sheet_names(data: ReportData) -> list[str]:
    return [SUMMARY_SHEET, RULES_SHEET, *family_sheet_names(data), VAT_SHEET]
