"""Reader `tax_platform`: the 电子发票服务平台 全量发票查询 export (.xlsx, .xls, .csv).

Sheet 发票基础信息 -> the main table, sheet 信息汇总表 -> the line table (optional). The 合计行 row(s)
are a control total, not invoices: they leave the table and come back as `control_total`.
Other sheets (机动车销售统一发票, 旅客运输服务, 铁路电子客票, …) are only counted: the travel sheets
carry travellers' ID numbers, so their values are never copied anywhere.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import polars as pl

from invoice_pipeline.sources.base import FileRead, RowError, UnreadableFile
from invoice_pipeline.sources.delimited import CSV_SUFFIXES, WORKBOOK_SUFFIXES, Workbook, read_csv
from invoice_pipeline.sources.text import empty_table, parse_amount, require_columns
from invoice_pipeline.specs import SourceSpec, TableSpec

CONTROL_TOTAL_SEQ = "合计行"
CONTROL_TOTAL_COLUMNS = ("amount_excl_tax", "tax_amount")


def read(path: Path, spec: SourceSpec) -> FileRead:
    main = spec.main_table
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        result = read_csv(path, main)
        tables = {main.name: result.table}
        for table in spec.tables.values():
            tables.setdefault(table.name, empty_table(table))
        read_ = FileRead(tables=tables, notes=result.notes, row_errors=result.row_errors)
    elif suffix in WORKBOOK_SUFFIXES:
        read_ = _read_workbook(path, spec)
    else:
        raise UnreadableFile(
            f"unsupported file type {path.suffix or '(none)'!r}: reader tax_platform reads "
            f"{', '.join(WORKBOOK_SUFFIXES + CSV_SUFFIXES)}"
        )
    _split_control_total(read_, main)
    return read_


def _read_workbook(path: Path, spec: SourceSpec) -> FileRead:
    book = Workbook(path)
    main = spec.main_table
    tables: dict[str, pl.DataFrame] = {}
    extras: dict[str, list[str]] = {}
    used: set[str] = set()
    for table in spec.tables.values():
        wanted = table.sheet or ""
        sheet = book.find_sheet(wanted) if wanted else None
        if sheet is None:
            if table is main:
                found = ", ".join(book.sheet_names) or "none"
                raise UnreadableFile(f"no sheet {wanted} (sheets found: {found})")
            tables[table.name] = empty_table(table)
            continue
        used.add(sheet)
        sheet_read = book.read_sheet(sheet, table)
        if sheet_read is None:
            if table is main:
                raise UnreadableFile(f"sheet {sheet} is empty (no header row)")
            tables[table.name] = empty_table(table)
            continue
        require_columns(sheet_read.match, table, where="" if table is main else f"sheet {sheet}: ")
        tables[table.name] = sheet_read.table
        if sheet_read.match.extras:
            extras[table.name] = list(sheet_read.match.extras.values())
    notes: dict = {"engine": book.engine}
    if extras:
        notes["extra_columns"] = extras
    # Counted only: values of these sheets (travellers' ID numbers) are personal data.
    notes["other_sheets"] = {s: _row_count(book, s) for s in book.sheet_names if s not in used}
    return FileRead(tables=tables, notes=notes)


def _row_count(book: Workbook, sheet: str) -> int | None:
    """Data rows of a sheet that is not read; None when even that fails (a chart sheet, say)."""
    try:
        return book.data_row_count(sheet)
    except UnreadableFile:
        return None


def _split_control_total(read_: FileRead, table: TableSpec) -> None:
    """Move the 合计行 row(s) out of the table into `control_total` (sum of 金额, 税额)."""
    frame = read_.tables[table.name]
    is_total = frame["seq_no"].str.normalize("NFKC").str.strip_chars().eq(CONTROL_TOTAL_SEQ).fill_null(False)
    if not is_total.any():
        return
    totals = frame.filter(is_total)
    read_.tables[table.name] = frame.filter(~is_total)
    read_.notes["control_total_rows"] = totals["_source_row"].to_list()
    sums = dict.fromkeys(CONTROL_TOTAL_COLUMNS, Decimal(0))
    complete = True
    for row in totals.iter_rows(named=True):
        for column in CONTROL_TOTAL_COLUMNS:
            value = parse_amount(row[column])
            if value is None:
                complete = False
                label = table.columns[column]
                what = "is empty" if row[column] is None else "is not a number"
                read_.row_errors.append(
                    RowError(
                        table.name, row["_source_row"], column, row[column], f"control total {label} {what}"
                    )
                )
            else:
                sums[column] += value
    read_.control_total = sums if complete else None
