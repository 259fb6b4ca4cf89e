"""Compliance reports (SPEC §5 "Reports"): per entity and month, a workbook for finance and the
same content as one self-contained HTML page, written under `<data dir>/reports/<YYYY-MM>/<tin>/`.

Plain functions over a DuckDB connection; the Dagster asset (`defs/reports/compliance.py`) and
the CLI call them. They read the `report.*` tables and `audit.findings`, and write nothing to the
warehouse.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from invoice_pipeline.reports.data import entities, load_report_data, months_with_data
from invoice_pipeline.reports.page import render_html
from invoice_pipeline.reports.summary import build_summary, summary_markdown
from invoice_pipeline.reports.workbook import write_workbook

REPORT_STEM = "compliance_report"

__all__ = [
    "entities",
    "months_with_data",
    "report_dir",
    "summary_markdown",
    "write_compliance_report",
    "write_reports_for_month",
]


def report_dir(out_dir: Path, entity_tin: str, month: str) -> Path:
    """`out_dir/<YYYY-MM>/<entity_tin>/`; the TIN is checked so it cannot name another folder."""
    if not entity_tin.isalnum():
        raise ValueError(f"entity TIN {entity_tin!r} is not a plain identifier")
    return Path(out_dir) / month / entity_tin


def write_compliance_report(
    con: duckdb.DuckDBPyConnection, entity_tin: str, month: str, out_dir: Path
) -> tuple[Path, Path, dict]:
    """Write `out_dir/<month>/<entity_tin>/compliance_report.xlsx` and `.html`.

    Returns both paths and the summary (money as Decimal, shares as fractions). Each file is
    written beside its final name and renamed into place, so a reader never sees half a report.
    """
    data = load_report_data(con, entity_tin, month)
    summary = build_summary(data)
    folder = report_dir(out_dir, entity_tin, month)
    folder.mkdir(parents=True, exist_ok=True)
    xlsx = folder / f"{REPORT_STEM}.xlsx"
    html = folder / f"{REPORT_STEM}.html"
    tmp_xlsx = folder / f".{REPORT_STEM}.xlsx.tmp"
    tmp_html = folder / f".{REPORT_STEM}.html.tmp"
    write_workbook(data, summary, tmp_xlsx)
    tmp_html.write_text(render_html(data, summary), encoding="utf-8")
    tmp_xlsx.replace(xlsx)
    tmp_html.replace(html)
    return xlsx, html, summary


def write_reports_for_month(con: duckdb.DuckDBPyConnection, root: Path, month: str) -> list[Path]:
    """The reports of every entity (staging.entities) for one month under `<root>/reports/`.

    `root` is the data directory. Returns the files written, workbook then HTML per entity.
    """
    paths: list[Path] = []
    for tin, _name in entities(con):
        xlsx, html, _summary = write_compliance_report(con, tin, month, Path(root) / "reports")
        paths += [xlsx, html]
    return paths
