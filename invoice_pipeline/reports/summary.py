"""The report's summary: what a finance manager reads first, as a dict and as Markdown (the
Dagster UI shows the Markdown as the materialisation's metadata)."""

from __future__ import annotations

from decimal import Decimal
from html import escape

import polars as pl

from invoice_pipeline.reports import labels
from invoice_pipeline.reports.data import SOURCES, ReportData

TOP_N = 10


def fmt_money(value) -> str:
    return "—" if value is None else f"{Decimal(value):,.2f} 元"


def fmt_share(value) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def fmt_int(value) -> str:
    return f"{int(value or 0):,}"


def top_findings(data: ReportData, n: int = TOP_N) -> pl.DataFrame:
    """The month's open findings with the most money at stake, errors first among equals."""
    order = {s: i for i, s in enumerate(labels.SEVERITY_ORDER)}
    return (
        data.month_findings.with_columns(
            pl.col("severity").replace_strict(order, default=9, return_dtype=pl.Int64).alias("_severity")
        )
        .sort(
            [pl.col("amount").fill_null(Decimal(0)), "_severity", "age_days", "rule_id", "subject"],
            descending=[True, False, True, False, False],
        )
        .drop("_severity")
        .head(n)
    )


def build_summary(data: ReportData) -> dict:
    """Plain values (money as Decimal, shares as fractions) of the summary sheet.

    `open_findings` and everything by severity, rule and age count findings still to be dealt with
    (state open); `accepted_findings` counts those whose risk was accepted, apart.
    """
    month = data.month_findings
    accepted = data.month_accepted
    by_severity = {}
    for severity in labels.SEVERITY_ORDER:
        rows = month.filter(pl.col("severity") == severity)
        by_severity[severity] = {
            "open_findings": rows.height,
            "money_at_stake": Decimal(rows["amount"].sum() or 0),
        }
    sources = {
        direction: {
            source: {
                "invoices": n,
                "amount_excl_tax": excl,
                "tax_amount": tax,
                "amount_incl_tax": incl,
            }
            for d, source, n, excl, tax, incl in data.sources.iter_rows()
            if d == direction
        }
        for direction in labels.DIRECTIONS
    }
    matched = {row["direction"]: row for row in data.matched.iter_rows(named=True)}
    by_rule = {
        row["rule_id"]: {
            "open_findings": row["open_findings"],
            "money_at_stake": row["money_at_stake"],
            "severity": row["severity"],
            "family": row["family"],
        }
        for row in data.by_rule.iter_rows(named=True)
        if row["open_findings"]
    }
    top = [
        {
            "rule_id": row["rule_id"],
            "title": labels.rule_title(row["rule_id"]),
            "severity": row["severity"],
            "subject": row["subject"],
            "counterparty_name": row["counterparty_name"],
            "amount": row["amount"],
            "age_days": row["age_days"],
        }
        for row in top_findings(data).iter_rows(named=True)
    ]
    return {
        "entity_tin": data.entity_tin,
        "entity_name": data.entity_name,
        "month": data.month,
        "aged_at": data.aged_at.isoformat(),
        "generated_at": data.generated_at.isoformat(),
        "sources": sources,
        "matched": matched,
        "open_findings": month.height,
        "money_at_stake": Decimal(month["amount"].sum() or 0),
        "by_severity": by_severity,
        "by_rule": by_rule,
        "top_problems": top,
        "opened_in_month": int(data.by_rule["opened"].sum()),
        "reopened_in_month": int(data.by_rule["reopened"].sum()),
        "resolved_in_month": int(data.by_rule["resolved"].sum()),
        "ageing": {row["age_bucket"]: row["open_findings"] for row in data.ageing.iter_rows(named=True)},
        "other_open_findings": data.findings.filter(
            (pl.col("scope") != "month") & (pl.col("state") == "open")
        ).height,
        "accepted_findings": accepted.height,
        "accepted_money_at_stake": Decimal(accepted["amount"].sum() or 0),
        "with_open_action": month.filter(pl.col("open_action").is_not_null()).height,
    }


def _cell(value) -> str:
    """Landed text in a Markdown table cell: no HTML, no column breaks, one line."""
    if value is None:
        return ""
    return escape(str(value), quote=False).replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def summary_markdown(summary: dict) -> str:
    """The summary as Markdown for the Dagster UI; landed text is escaped for table cells."""
    lines = [
        f"### {_cell(summary['entity_name'])} ({_cell(summary['entity_tin'])}) — {summary['month']}",
        "",
        "| 方向 | 来源 | 张数 | 价税合计 |",
        "|---|---|---:|---:|",
    ]
    for direction, by_source in summary["sources"].items():
        for source in SOURCES:
            s = by_source[source]
            lines.append(
                f"| {labels.DIRECTIONS[direction]} | {labels.SOURCES[source]} | {fmt_int(s['invoices'])} "
                f"| {fmt_money(s['amount_incl_tax'])} |"
            )
    lines += ["", "| 入账匹配率 | 有效发票 | 已入账 | 按张数 | 按金额 |", "|---|---:|---:|---:|---:|"]
    for direction, row in summary["matched"].items():
        name = labels.DIRECTIONS.get(direction, "合计")
        lines.append(
            f"| {name} | {fmt_int(row['valid_invoices'])} | {fmt_int(row['matched_invoices'])} "
            f"| {fmt_share(row['matched_share'])} | {fmt_share(row['matched_amount_share'])} |"
        )
    lines += ["", "| 严重程度 | 未结问题 | 涉及金额 |", "|---|---:|---:|"]
    for severity, row in summary["by_severity"].items():
        lines.append(
            f"| {labels.SEVERITIES[severity]} | {row['open_findings']} | {fmt_money(row['money_at_stake'])} |"
        )
    lines.append(
        f"| **合计** | **{summary['open_findings']}** | **{fmt_money(summary['money_at_stake'])}** |"
    )
    lines.append(
        f"| 已接受风险(不计入未结) | {summary['accepted_findings']} "
        f"| {fmt_money(summary['accepted_money_at_stake'])} |"
    )
    if summary["top_problems"]:
        lines += ["", "**主要问题**", "", "| 问题 | 对象 | 往来单位 | 涉及金额 |", "|---|---|---|---:|"]
        for p in summary["top_problems"][:5]:
            lines.append(
                f"| {_cell(p['title'])} | {_cell(p['subject'])} | {_cell(p['counterparty_name'])} "
                f"| {fmt_money(p['amount'])} |"
            )
    lines += [
        "",
        f"本月新发现 {summary['opened_in_month']} 项、重新打开 {summary['reopened_in_month']} 项、"
        f"已解决 {summary['resolved_in_month']} 项；另有 {summary['other_open_findings']} 项未结问题"
        "不属于任何月份或主体（见报告）。",
    ]
    return "\n".join(lines)
