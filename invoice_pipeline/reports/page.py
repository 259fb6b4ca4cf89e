"""The compliance report as one self-contained HTML page: the workbook's content, inline CSS and
inline SVG charts (matched share, money at stake by rule, ageing); no script, no external
resource, so it reads the same offline. Every value is escaped — landed data is untrusted."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from html import escape

import polars as pl

from invoice_pipeline.reports import charts, labels
from invoice_pipeline.reports.data import ReportData
from invoice_pipeline.reports.summary import fmt_int, fmt_money, fmt_share, top_findings
from invoice_pipeline.reports.workbook import (
    ACCEPTED_ROW,
    SOURCE_COLUMNS,
    Column,
    evidence_rows,
    source_rows,
)

CSS = """
:root { --blue: #1F4E79; --line: #d0d7de; --muted: #595959; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px; color: #1b1b1b; background: #fff; line-height: 1.5;
  font-family: 'PingFang SC','Microsoft YaHei','Noto Sans CJK SC','WenQuanYi Micro Hei',sans-serif;
  font-size: 14px; }
h1 { color: var(--blue); margin: 0 0 8px; font-size: 24px; }
h2 { color: var(--blue); border-bottom: 2px solid var(--blue); padding-bottom: 4px; margin-top: 32px;
  font-size: 18px; }
h3 { color: var(--blue); margin: 20px 0 6px; font-size: 15px; }
dl.meta { display: grid; grid-template-columns: max-content auto max-content auto; gap: 2px 16px; margin: 0; }
dl.meta dt { font-weight: bold; } dl.meta dd { margin: 0; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.card { border: 1px solid var(--line); border-left: 4px solid var(--blue); padding: 8px 14px;
  min-width: 170px; }
.card.bad { border-left-color: #C0392B; }
.card .v { font-size: 20px; font-weight: bold; } .card .k { color: var(--muted); font-size: 12px; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; vertical-align: top; white-space: nowrap; }
td.wrap { white-space: normal; min-width: 300px; max-width: 520px; }
th { background: var(--blue); color: #fff; text-align: left; white-space: nowrap; position: sticky; top: 0; }
td.n { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: bold; background: #f3f6f9; }
tbody tr:nth-child(even) td { background: #fafbfc; }
.note { color: var(--muted); font-size: 12px; }
.charts { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
figure { margin: 0; } figcaption { color: var(--muted); font-size: 12px; }
@media print { body { padding: 0; } th { position: static; } h2 { break-after: avoid; } }
"""


WRAP_AT = 30  # longer text wraps in a wide cell; shorter stays on one line


def _fmt(value, kind: str = "text") -> str:
    if value is None:
        return ""
    if kind == "money":
        return fmt_money(value) if isinstance(value, int | float | Decimal) else str(value)
    if kind == "share":
        return fmt_share(value)
    if kind == "int":
        return fmt_int(value) if isinstance(value, int | float | Decimal) else str(value)
    if kind == "datetime" and isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def table(columns: list[Column], rows, total_rows: int = 0) -> str:
    """An escaped HTML table; the last `total_rows` rows are shown bold."""
    rows = list(rows)
    head = "".join(f"<th>{escape(c.header)}</th>" for c in columns)
    body = []
    for i, row in enumerate(rows):
        cls = ' class="total"' if i >= len(rows) - total_rows else ""
        cells = []
        for column, value in zip(columns, row, strict=True):
            numeric = column.kind in ("int", "money", "share") and value is not None
            text = _fmt(value, column.kind)
            attr = ' class="n"' if numeric else ' class="wrap"' if len(text) > WRAP_AT else ""
            cells.append(f"<td{attr}>{escape(text)}</td>")
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _severity_label(severity: str | None) -> str:
    return labels.SEVERITIES.get(severity or "", severity or "")


def render_html(data: ReportData, summary: dict) -> str:
    e = escape
    total = summary["matched"]["total"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(f'增值税发票合规月报 · {data.entity_name} · {data.month}')}</title>",
        f"<style>{CSS}</style></head><body>",
        '<header><h1>增值税发票合规月报</h1><dl class="meta">',
        f"<dt>主体名称</dt><dd>{e(data.entity_name)}</dd><dt>纳税人识别号</dt><dd>{e(data.entity_tin)}</dd>",
        f"<dt>所属期间</dt><dd>{e(data.month)}</dd>",
        f"<dt>数据截至</dt><dd>{e(f'{data.aged_at:%Y-%m-%d %H:%M}')}</dd>",
        f"<dt>生成时间</dt><dd>{e(f'{data.generated_at:%Y-%m-%d %H:%M}')}</dd></dl></header>",
        '<div class="cards">',
        _card("本期未结问题", fmt_int(summary["open_findings"]), summary["open_findings"] > 0),
        _card("涉及金额", fmt_money(summary["money_at_stake"]), summary["money_at_stake"] > 0),
        _card(
            "其中错误",
            fmt_int(summary["by_severity"]["error"]["open_findings"]),
            summary["by_severity"]["error"]["open_findings"] > 0,
        ),
        _card("已接受风险(不计入未结)", fmt_int(summary["accepted_findings"]), False),
        _card("入账匹配率(张数)", fmt_share(total["matched_share"]), (total["matched_share"] or 1) < 1),
        _card(
            "入账匹配率(金额)",
            fmt_share(total["matched_amount_share"]),
            (total["matched_amount_share"] or 1) < 1,
        ),
        "</div>",
    ]

    parts.append("<h2>一、各来源发票数量与金额</h2>")
    parts.append(
        table(
            SOURCE_COLUMNS,
            source_rows(data),
        )
    )

    parts.append("<h2>二、ERP 入账匹配率</h2>")
    parts.append(
        table(
            [
                Column("方向"),
                Column("有效发票张数", "int"),
                Column("已入账张数", "int"),
                Column("按张数匹配率", "share"),
                Column("有效发票价税合计", "money"),
                Column("已入账价税合计", "money"),
                Column("按金额匹配率", "share"),
            ],
            [(labels.DIRECTIONS.get(d, "合计"), *rest) for d, *rest in data.matched.iter_rows()],
            total_rows=1,
        )
    )
    parts.append(
        "<figure>"
        + charts.share_chart(
            "ERP 入账匹配率",
            [(labels.DIRECTIONS.get(d, "合计"), s, sa) for d, _, _, s, _, _, sa in data.matched.iter_rows()],
        )
        + "<figcaption>有未作废 ERP 记录的发票占全部未作废发票的比例</figcaption></figure>"
    )

    parts.append("<h2>三、本期未结问题</h2>")
    severity_rows = [
        (_severity_label(s), v["open_findings"], v["money_at_stake"])
        for s, v in summary["by_severity"].items()
    ]
    severity_rows.append(("合计", summary["open_findings"], summary["money_at_stake"]))
    parts.append(
        table(
            [Column("严重程度"), Column("问题数", "int"), Column("涉及金额", "money")],
            severity_rows,
            total_rows=1,
        )
    )
    parts.append(
        table(
            [Column("不计入未结"), Column("问题数", "int"), Column("涉及金额", "money")],
            [(ACCEPTED_ROW, summary["accepted_findings"], summary["accepted_money_at_stake"])],
        )
    )
    money_rules = data.by_rule.filter(pl.col("open_findings") > 0).sort(
        [pl.col("money_at_stake").fill_null(0), "open_findings"], descending=True
    )
    parts.append(
        '<div class="charts"><figure>'
        + charts.hbar_chart(
            "按规则的涉及金额",
            [
                (
                    r["title"],
                    float(r["money_at_stake"] or 0),
                    _money_and_count(r["money_at_stake"], r["open_findings"]),
                )
                for r in money_rules.iter_rows(named=True)
            ],
            color=charts.RED,
        )
        + "<figcaption>本期未结问题按规则的涉及金额(元)</figcaption></figure></div>"
    )

    parts.append("<h2>四、主要问题(按涉及金额)</h2>")
    top = top_findings(data)
    if top.height:
        parts.append(
            table(
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
                        _severity_label(r["severity"]),
                        r["subject"],
                        r["counterparty_name"],
                        r["amount"],
                        r["age_days"],
                    )
                    for r in top.iter_rows(named=True)
                ],
            )
        )
    else:
        parts.append('<p class="note">本期没有未结问题。</p>')

    parts.append("<h2>五、本月问题变化(按发现/解决时间)</h2>")
    parts.append(
        table(
            [Column("新发现", "int"), Column("重新打开", "int"), Column("已解决", "int")],
            [(summary["opened_in_month"], summary["reopened_in_month"], summary["resolved_in_month"])],
        )
    )

    parts.append("<h2>六、本期未结问题账龄</h2>")
    ageing = list(data.ageing.iter_rows())
    parts.append(
        table(
            [Column("账龄"), Column("问题数", "int"), Column("其中错误", "int"), Column("涉及金额", "money")],
            [(labels.AGE_BUCKET_LABELS[b], n, err, m) for b, n, err, m, _ in ageing],
        )
    )
    parts.append(
        "<figure>"
        + charts.column_chart(
            "未结问题账龄",
            [(labels.AGE_BUCKET_LABELS[b], float(n), f"{n} 项") for b, n, _, _, _ in ageing],
            colors=[charts.TEAL, charts.BLUE, charts.AMBER, charts.RED],
        )
        + f"<figcaption>自首次发现至 {e(f'{data.aged_at:%Y-%m-%d %H:%M}')} 的天数</figcaption></figure>"
    )

    parts.append("<h2>问题汇总(按规则)</h2>")
    parts.append(
        table(
            [
                Column("类别"),
                Column("规则编号"),
                Column("问题"),
                Column("严重程度"),
                Column("本期未结", "int"),
                Column("本期涉及金额", "money"),
                Column("其他未结", "int"),
                Column("其他涉及金额", "money"),
                Column("本月新发现", "int"),
                Column("本月已解决", "int"),
                Column("本期已接受风险", "int"),
                Column("规则说明"),
            ],
            [
                (
                    labels.FAMILIES.get(r["family"], r["family"]),
                    r["rule_id"],
                    r["title"],
                    _severity_label(r["severity"]),
                    r["open_findings"],
                    r["money_at_stake"],
                    r["other_open_findings"],
                    r["other_money_at_stake"],
                    r["opened"],
                    r["resolved"],
                    r["accepted_findings"],
                    r["description"],
                )
                for r in data.by_rule.iter_rows(named=True)
            ],
        )
    )

    parts.append("<h2>问题明细(按类别)</h2>")
    for family in data.families:
        columns, rows = evidence_rows(data, family)
        parts.append(f"<h3>{e(labels.FAMILIES.get(family, family))}({e(family)})</h3>")
        if rows:
            parts.append(table(columns, rows))
        else:
            parts.append('<p class="note">本期无此类未结问题。</p>')

    parts.append("<h2>增值税按税率(发票 vs ERP)</h2>")
    vat_columns = [
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
    vat_rows = [(labels.DIRECTIONS.get(r[0], r[0]), *r[1:]) for r in data.vat.iter_rows()]
    totals = []
    for direction, name in labels.DIRECTIONS.items():
        part = data.vat.filter(pl.col("direction") == direction)
        if part.height:
            totals.append((f"{name}合计", "", *(part[c].sum() for c in part.columns[2:])))
    if vat_rows:
        parts.append(table(vat_columns, vat_rows + totals, total_rows=len(totals)))
    else:
        parts.append('<p class="note">本期没有发票或 ERP 记录。</p>')

    parts.append(
        '<footer class="note"><p>金额单位为元,红字发票金额为负数。'
        "匹配率 = 有未作废 ERP 记录的发票 / 全部未作废发票。"
        f"另有 {summary['other_open_findings']} 项未结问题不属于任何月份或主体,列在问题明细中"
        "(范围「本主体·无所属期间」或「未归属主体」),不计入本期合计。"
        "已接受风险的问题不计入未结问题数与涉及金额,单独列示,并在问题明细中以状态「已接受风险」列出;"
        "若数据显示问题已解决后又再次出现,将重新计入未结。"
        "「距最近处理天数」自最近一次处理(无处理时自首次发现)起算。"
        "开票人、制单人、报销人、处理人姓名及含身份证号的纳税人识别号已脱敏。</p></footer>"
    )
    parts.append("</body></html>")
    return "\n".join(parts)


def _card(label: str, value: str, bad: bool) -> str:
    cls = "card bad" if bad else "card"
    return (
        f'<div class="{cls}"><div class="k">{escape(label)}</div><div class="v">{escape(value)}</div></div>'
    )


def _money_and_count(money, count: int) -> str:
    return f"{count} 项(无金额)" if money is None else f"{fmt_money(money)}({count} 项)"
