"""Reader `delimited`: CSV and workbook registers (ERP, expense claims, entities).

Also the workbook and CSV machinery the `tax_platform` reader builds on.

CSV: the encoding is detected by strict decoding (see `text.detect_encoding`), GB18030 is
transcoded once to a temporary UTF-8 file, then Polars parses everything as text. Before that,
one vectorised pass over the physical lines counts each record's fields (quote-aware, records
may span lines), because Polars silently pads short lines - a line broken by an unquoted newline
in 备注 would otherwise load as a row of garbage. A file with ragged records, or one Polars refuses,
is parsed again with Python's `csv` module, which reports each bad record as a `RowError` and keeps
the rest. Both paths give the same rows and the same `line <n>` (the physical line a record starts
on; the header is line 1).

Workbooks: calamine via fastexcel (xlsx, xls), xlrd for .xls calamine cannot open. Cells are read
typed and turned into text here, so numbers lose no digits to a fixed precision (`1234.5`,
`-178.55`), identifiers in text cells stay exact, and real date cells become `YYYY-MM-DD` or
`YYYY-MM-DD HH:MM:SS`. Limitation: a column that mixes cell types (date cells and text, numbers
and text) is rendered by calamine itself - numbers with at most 9 decimals, dates always with
` 00:00:00` - which the later parsing handles (amounts are rounded to cents).
The header is the row among the first 20 carrying most of the table's labels (a title row above
it is tolerated); `<sheet>!<n>` is the Excel row number.
"""

from __future__ import annotations

import csv
import io
import logging
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from itertools import chain
from pathlib import Path

import polars as pl

from invoice_pipeline.sources.base import FileRead, RowError, UnreadableFile
from invoice_pipeline.sources.text import (
    ROW_COLUMN,
    HeaderMatch,
    build_table,
    empty_to_null,
    header_score,
    match_headers,
    non_blank_rows,
    normalize_label,
    require_columns,
    unique_names,
    utf8_source,
)
from invoice_pipeline.specs import SourceSpec, TableSpec

CSV_SUFFIXES = (".csv", ".txt", ".tsv")
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls")
SEPARATORS = (",", "\t", ";")
HEADER_SCAN_ROWS = 20  # a workbook's header is the best-matching of its first rows
MAX_RAW_CHARS = 4000  # a RowError keeps at most this much of a broken record
MAX_XLSX_MEMBER_BYTES = 4 << 30  # declared size of one xlsx part: beyond this it is a zip bomb

# fastexcel warns for every column without a typed cell ("falling back to string"): empty columns are
# normal here and come out as null, so the warning is only noise in the run logs.
logging.getLogger("fastexcel.types.dtype").setLevel(logging.ERROR)


def read(path: Path, spec: SourceSpec) -> FileRead:
    """Read a CSV or a workbook's first sheet into the spec's (only) table."""
    table = spec.main_table
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return read_csv_table(path, table)
    if suffix in WORKBOOK_SUFFIXES:
        book = Workbook(path)
        if not book.sheet_names:
            raise UnreadableFile("workbook has no sheets")
        sheet = book.sheet_names[0]
        read_ = book.read_sheet(sheet, table)
        if read_ is None:
            raise UnreadableFile(f"first sheet {sheet} is empty (no header row)")
        require_columns(read_.match, table)
        notes = {"sheet": sheet, "header_row": read_.header_row, "engine": book.engine}
        if read_.match.extras:
            notes["extra_columns"] = {table.name: list(read_.match.extras.values())}
        return FileRead(tables={table.name: read_.table}, notes=notes)
    raise UnreadableFile(
        f"unsupported file type {path.suffix or '(none)'!r}: reader delimited reads "
        f"{', '.join(CSV_SUFFIXES + WORKBOOK_SUFFIXES)}"
    )


# =========================================================================== CSV


@dataclass
class CsvTable:
    table: pl.DataFrame
    row_errors: list[RowError]
    notes: dict = field(default_factory=dict)


def read_csv_table(path: Path, table: TableSpec) -> FileRead:
    result = read_csv(path, table)
    return FileRead(tables={table.name: result.table}, notes=result.notes, row_errors=result.row_errors)


def read_csv(path: Path, table: TableSpec) -> CsvTable:
    """One CSV file into one raw table (all text); ragged records become RowErrors."""
    with utf8_source(path) as (src, encoding):
        header, sep = _read_header(src)
        if header is None or not any(h.strip() for h in header):
            raise UnreadableFile("no header on line 1 (the file holds only blank lines)")
        names = unique_names(header)
        match = match_headers(names, table)
        require_columns(match, table)
        notes: dict = {"encoding": encoding}
        if sep != ",":
            notes["separator"] = sep
        if match.extras:
            notes["extra_columns"] = {table.name: list(match.extras.values())}
        frame, reason = _polars_frame(src, sep, names)
        if frame is not None:
            notes["csv_parser"] = "polars"
            return CsvTable(build_table(frame, match, table, pl.col(ROW_COLUMN)), [], notes)
        notes["csv_parser"] = "python"
        notes["csv_parser_reason"] = reason
        frame, errors = _python_frame(src, sep, names, table.name)
        return CsvTable(build_table(frame, match, table, pl.col(ROW_COLUMN)), errors, notes)


def _read_header(src: Path) -> tuple[list[str] | None, str]:
    """The first record, and the separator its line uses most (`,` unless tab/`;` dominate)."""
    with open(src, encoding="utf-8-sig", newline="") as f:
        first = f.readline()
        if not first:
            return None, ","
        sep = max(SEPARATORS, key=lambda s: (first.count(s), s == ","))
        record = next(csv.reader(chain([first], f), delimiter=sep), None)
    return record, sep


def _line_stats(src: Path, sep: str) -> pl.DataFrame:
    """Per physical line `i`: quote count, its field count were it a whole record, blankness."""
    line = pl.col("line")
    stats = (
        pl.scan_lines(src, glob=False)
        .select(
            quotes=line.str.count_matches('"', literal=True).cast(pl.Int64),
            fields=(line.str.count_matches(sep, literal=True) + 1).cast(pl.Int64),
            blank=line.str.strip_chars(f' \t\r\n\f\v"{sep}').str.len_bytes() == 0,
        )
        .with_row_index("i")
        .collect()
    )
    if stats["quotes"].gt(0).any():
        # Separators inside quoted sections do not count. The regex is slow: quoted lines only.
        quoted = (
            pl.scan_lines(src, glob=False)
            .with_row_index("i")
            .filter(line.str.contains('"', literal=True))
            .select(
                "i",
                fields=(line.str.replace_all(r'"[^"]*"', "").str.count_matches(sep, literal=True) + 1).cast(
                    pl.Int64
                ),
            )
            .collect()
        )
        stats = stats.with_columns(stats["fields"].scatter(quoted["i"], quoted["fields"]))
    return stats


def _records(src: Path, sep: str) -> pl.DataFrame | None:
    """One row per record (header first): start line index `i`, `fields`, `blank`.

    None when the quotes do not balance (an unterminated quoted field).
    """
    stats = _line_stats(src, sep)
    cumulative = stats["quotes"].cum_sum()
    if stats.height and cumulative[-1] % 2 == 1:
        return None
    stats = stats.with_columns(
        starts=(cumulative - stats["quotes"]) % 2 == 0,  # the line does not begin inside quotes
        ends_inside=cumulative % 2 == 1,
    )
    records = stats.filter(pl.col("starts"))
    multi = records.filter(pl.col("ends_inside"))
    if multi.height:
        # Records spanning lines: count their fields exactly, in Python (they are few).
        continuation = stats.filter(~pl.col("starts"))["i"]
        wanted = pl.concat([multi["i"], continuation])
        texts = (
            pl.scan_lines(src, glob=False)
            .with_row_index("i")
            .filter(pl.col("i").is_in(wanted.implode()))
            .collect()
        )
        lines = dict(zip(texts["i"].to_list(), texts["line"].to_list(), strict=True))
        inside = set(continuation.to_list())
        starts, counts = [], []
        for start in multi["i"].to_list():
            parts, j = [lines[start]], start + 1
            while j in inside:
                parts.append(lines[j])
                j += 1
            record = next(csv.reader(io.StringIO("\n".join(parts)), delimiter=sep), [])
            starts.append(start)
            counts.append(len(record))
        patch = pl.DataFrame({"i": starts, "n": counts}, schema={"i": records.schema["i"], "n": pl.Int64})
        records = (
            records.join(patch, on="i", how="left")
            .with_columns(fields=pl.coalesce("n", "fields"), blank=pl.col("blank") & pl.col("n").is_null())
            .drop("n")
        )
    return records.select("i", "fields", "blank")


def _polars_frame(src: Path, sep: str, names: list[str]) -> tuple[pl.DataFrame | None, str]:
    """The fast path; `(None, reason)` when the file needs the line-by-line parser."""
    records = _records(src, sep)
    if records is None:
        return None, "a quoted field is never closed"
    data = records.slice(1)
    ragged = data.filter(~pl.col("blank") & (pl.col("fields") != len(names)))
    if ragged.height:
        return None, f"{ragged.height} record(s) with a field count other than {len(names)}"
    try:
        frame = pl.read_csv(
            src,
            separator=sep,
            has_header=True,
            infer_schema=False,
            quote_char='"',
            glob=False,
            raise_if_empty=False,
            truncate_ragged_lines=False,
            empty_string_is_null=True,
        )
    except pl.exceptions.PolarsError as e:
        return None, f"polars refused the file: {str(e).splitlines()[0]}"
    if frame.width != len(names) or frame.height != data.height:
        return None, f"polars saw {frame.height} rows x {frame.width} columns, the line scan {data.height}"
    frame.columns = names
    # Blank records were found by the line scan (only whitespace, quotes, separators): drop them.
    line_numbers = pl.Series(ROW_COLUMN, data["i"].cast(pl.Int64) + 1)
    frame = frame.with_columns(
        pl.concat_str([pl.lit("line "), pl.lit(line_numbers).cast(pl.String)]).alias(ROW_COLUMN)
    )
    # Quoted empty fields ("") arrive as "", unquoted ones as null: null for both.
    return frame.filter(~data["blank"]).with_columns(empty_to_null(names)), ""


def _python_frame(
    src: Path, sep: str, names: list[str], table_name: str
) -> tuple[pl.DataFrame, list[RowError]]:
    """The careful path: Python's csv module, one RowError per record with the wrong field count."""
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))
    columns: list[list[str | None]] = [[] for _ in names]
    rows: list[str] = []
    errors: list[RowError] = []
    consumed: list[str] = []

    with open(src, encoding="utf-8-sig", newline="") as f:

        def lines() -> Iterator[str]:
            for physical in f:
                consumed.append(physical)
                yield physical

        reader = csv.reader(lines(), delimiter=sep)
        next(reader, None)  # header
        consumed.clear()
        start = reader.line_num + 1
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as e:  # e.g. a NUL byte
                raw = "".join(consumed)
                errors.append(RowError(table_name, f"line {start}", None, _raw(raw), f"unparseable CSV: {e}"))
                consumed.clear()
                start = reader.line_num + 1
                continue
            raw = "".join(consumed)
            consumed.clear()
            here, start = start, reader.line_num + 1
            if all(not v.strip() for v in fields):
                continue  # blank line
            if len(fields) != len(names):
                errors.append(
                    RowError(
                        table_name,
                        f"line {here}",
                        None,
                        _raw(raw),
                        f"expected {len(names)} fields, found {len(fields)}",
                    )
                )
                continue
            for column, value in zip(columns, fields, strict=True):
                column.append(value if value != "" else None)
            rows.append(f"line {here}")
    frame = pl.DataFrame(
        {name: values for name, values in zip(names, columns, strict=True)} | {ROW_COLUMN: rows},
        schema={name: pl.String for name in names} | {ROW_COLUMN: pl.String},
    )
    return frame, errors


def _raw(text: str) -> str:
    text = text.rstrip("\r\n")
    if len(text) > MAX_RAW_CHARS:
        return text[:MAX_RAW_CHARS] + f"…[truncated, {len(text)} characters]"
    return text


# =========================================================================== workbooks


@dataclass
class SheetRead:
    table: pl.DataFrame
    match: HeaderMatch
    header_row: int  # 1-based Excel row of the header


def float_text(value: float) -> str:
    """A numeric cell as text: shortest round-trip digits, no exponent, no `.0` (`1234.5`, `290716`)."""
    text = repr(float(value))
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    if text.endswith(".0"):
        text = text[:-2]
    return "0" if text == "-0" else text


def _float_series_text(s: pl.Series) -> pl.Series:
    text = s.cast(pl.String).str.replace(r"\.0$", "").str.replace(r"^-0$", "0")
    exponent = text.str.contains("e", literal=True).fill_null(False)
    if exponent.any():
        fixed = [float_text(float(v)) if v is not None and "e" in v else v for v in text.to_list()]
        text = pl.Series(s.name, fixed, dtype=pl.String)
    return text


def _datetime_series_text(s: pl.Series) -> pl.Series:
    """Real date cells: `YYYY-MM-DD` at midnight, else `YYYY-MM-DD HH:MM:SS`; time-only cells `HH:MM:SS`."""
    rounded = s.dt.round("1s")
    frame = pl.DataFrame({"d": rounded})
    d = pl.col("d")
    return frame.select(
        pl.when(d.dt.year() < 1900)
        .then(d.dt.strftime("%H:%M:%S"))
        .when(d.dt.time() == pl.time(0, 0, 0))
        .then(d.dt.strftime("%Y-%m-%d"))
        .otherwise(d.dt.strftime("%Y-%m-%d %H:%M:%S"))
        .alias(s.name)
    ).to_series()


def _duration_series_text(s: pl.Series) -> pl.Series:
    def fmt(v):
        if v is None:
            return None
        total = round(v.total_seconds())
        return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"

    return pl.Series(s.name, [fmt(v) for v in s.to_list()], dtype=pl.String)


def series_text(s: pl.Series) -> pl.Series:
    """Any typed column from a workbook as text, without float noise."""
    dtype = s.dtype
    if dtype == pl.String:
        return s
    if dtype.is_float():
        return _float_series_text(s)
    if dtype.is_integer():
        return s.cast(pl.String)
    if dtype == pl.Boolean:
        return s.replace_strict({True: "true", False: "false"}, return_dtype=pl.String)
    if isinstance(dtype, pl.Datetime):
        return _datetime_series_text(s)
    if dtype == pl.Date:
        return s.dt.strftime("%Y-%m-%d")
    if isinstance(dtype, pl.Duration):
        return _duration_series_text(s)
    return s.cast(pl.String)


def pick_header(rows: Sequence[Sequence[object]], table: TableSpec | None) -> int | None:
    """0-based index of the header among the first rows: the one carrying most spec labels,
    else the first non-empty row; None for an empty sheet."""
    non_empty = [i for i, row in enumerate(rows) if any(c is not None and str(c).strip() for c in row)]
    if not non_empty:
        return None
    if table is not None:
        scores = {i: header_score(rows[i], table) for i in non_empty}
        best = max(non_empty, key=lambda i: (scores[i], -i))
        if scores[best] > 0:
            return best
    return non_empty[0]


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


class Workbook:
    """An xlsx/xls workbook opened once; sheets are read on demand."""

    def __init__(self, path: Path):
        self.path = path
        self.engine = "calamine"
        self._xlrd = None
        kind = "xls" if path.suffix.lower() == ".xls" else "xlsx"
        if kind == "xlsx":
            _check_xlsx_container(path)
        try:
            import fastexcel

            self._reader = fastexcel.read_excel(path)
            self.sheet_names = list(self._reader.sheet_names)
            return
        except Exception as e:  # calamine / fastexcel errors
            calamine_error = e
        if kind == "xlsx":
            raise UnreadableFile(f"not a readable xlsx workbook: {_first_line(calamine_error)}")
        try:
            import xlrd

            self._xlrd = xlrd.open_workbook(str(path), on_demand=True)
        except Exception as e:
            raise UnreadableFile(
                f"not a readable xls workbook: calamine: {_first_line(calamine_error)}; "
                f"xlrd: {_first_line(e)}"
            ) from e
        self.engine = "xlrd"
        self.sheet_names = list(self._xlrd.sheet_names())

    def find_sheet(self, wanted: str) -> str | None:
        target = normalize_label(wanted)
        return next((s for s in self.sheet_names if normalize_label(s) == target), None)

    # -- grids -----------------------------------------------------------------

    def _grid(self, sheet: str, n_rows: int | None) -> list[tuple]:
        """Rows of the sheet as text cells (absolute: index 0 is Excel row 1)."""
        if self._xlrd is not None:
            return list(self._xlrd_rows(sheet, 0, n_rows))
        try:
            frame = self._reader.load_sheet(
                sheet, header_row=None, n_rows=n_rows, dtypes="string", skip_rows=0
            ).to_polars()
        except Exception as e:
            raise UnreadableFile(f"sheet {sheet}: not readable: {_first_line(e)}") from e
        return frame.rows()

    def _xlrd_rows(self, sheet: str, first: int, n_rows: int | None) -> Iterator[tuple]:
        import xlrd

        try:
            ws = self._xlrd.sheet_by_name(sheet)
            last = ws.nrows if n_rows is None else min(ws.nrows, first + n_rows)
            for r in range(first, last):
                yield tuple(xlrd_cell_text(ws.cell(r, c), self._xlrd.datemode) for c in range(ws.ncols))
        except xlrd.XLRDError as e:
            raise UnreadableFile(f"sheet {sheet}: not readable: {_first_line(e)}") from e

    def data_row_count(self, sheet: str) -> int:
        """Non-blank rows below the first non-blank row (the header). Values are not kept."""
        if self._xlrd is not None:
            rows = self._xlrd_rows(sheet, 0, None)
            filled = sum(1 for row in rows if any(c is not None and c.strip() for c in row))
        else:
            try:
                grid = self._reader.load_sheet(
                    sheet, header_row=None, dtypes="string", skip_rows=0
                ).to_polars()
            except Exception as e:
                raise UnreadableFile(f"sheet {sheet}: not readable: {_first_line(e)}") from e
            filled = grid.select(non_blank_rows(grid.columns).sum()).item() if grid.width else 0
            del grid
        return max(filled - 1, 0)

    def read_sheet(self, sheet: str, table: TableSpec) -> SheetRead | None:
        """The sheet as the table's raw frame; None for an empty sheet. Caller checks required columns."""
        probe = self._grid(sheet, HEADER_SCAN_ROWS)
        h = pick_header(probe, table)
        if h is None:
            return None
        names = unique_names(probe[h])
        if self._xlrd is not None:
            frame = self._xlrd_frame(sheet, h, names)
        else:
            frame = self._calamine_frame(sheet, h, names)
        names = [c for c in frame.columns if c != ROW_COLUMN]
        frame = frame.filter(non_blank_rows(names)).with_columns(empty_to_null(names))
        match = match_headers(names, table)
        return SheetRead(build_table(frame, match, table, pl.col(ROW_COLUMN)), match, h + 1)

    def _calamine_frame(self, sheet: str, h: int, names: list[str]) -> pl.DataFrame:
        """Cells below header row `h`, typed by calamine then turned into text here.

        A column mixing types (text and numbers, dates and text) comes back as calamine's own text
        (numbers with at most 9 decimals, dates as `YYYY-MM-DD HH:MM:SS`).
        """
        try:
            typed = self._reader.load_sheet(
                sheet, header_row=h, schema_sample_rows=None, dtype_coercion="coerce"
            ).to_polars()
        except Exception:
            try:  # a type combination calamine cannot coerce: everything as calamine's text
                typed = self._reader.load_sheet(sheet, header_row=h, dtypes="string").to_polars()
            except Exception as e:
                raise UnreadableFile(f"sheet {sheet}: not readable: {_first_line(e)}") from e
        if typed.width != len(names):  # should not happen: both come from the same range
            names = unique_names(typed.columns)
        frame = pl.DataFrame(
            [series_text(s).alias(n) for s, n in zip(typed.iter_columns(), names, strict=True)]
        )
        rows = pl.int_range(h + 2, h + 2 + typed.height, eager=True).cast(pl.String)
        return frame.with_columns((f"{sheet}!" + rows).alias(ROW_COLUMN))

    def _xlrd_frame(self, sheet: str, h: int, names: list[str]) -> pl.DataFrame:
        columns: list[list[str | None]] = [[] for _ in names]
        rows: list[str] = []
        for offset, row in enumerate(self._xlrd_rows(sheet, h + 1, None)):
            for column, value in zip(columns, row, strict=False):
                column.append(value)
            for column in columns[len(row) :]:
                column.append(None)
            rows.append(f"{sheet}!{h + 2 + offset}")
        return pl.DataFrame(
            {n: c for n, c in zip(names, columns, strict=True)} | {ROW_COLUMN: rows},
            schema={n: pl.String for n in names} | {ROW_COLUMN: pl.String},
        )


def xlrd_cell_text(cell, datemode: int) -> str | None:
    """One xlrd cell as text, with the same conventions as the calamine path."""
    import xlrd

    kind, value = cell.ctype, cell.value
    if kind == xlrd.XL_CELL_TEXT:
        return value if value != "" else None
    if kind == xlrd.XL_CELL_NUMBER:
        return float_text(value)
    if kind == xlrd.XL_CELL_DATE:
        try:
            moment = xlrd.xldate.xldate_as_datetime(value, datemode)
        except (xlrd.xldate.XLDateError, ValueError, OverflowError):
            return float_text(value)
        moment = (moment + timedelta(microseconds=500_000)).replace(microsecond=0)  # nearest second
        if value < 1:
            return moment.strftime("%H:%M:%S")
        if moment.hour == moment.minute == moment.second == 0:
            return moment.strftime("%Y-%m-%d")
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    if kind == xlrd.XL_CELL_BOOLEAN:
        return "true" if value else "false"
    return None  # empty, blank, error cells


def _check_xlsx_container(path: Path) -> None:
    """An xlsx is a zip: refuse truncated files and parts that would expand absurdly."""
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise UnreadableFile(
            f"not a readable xlsx workbook: {_first_line(e)} (truncated or not an xlsx?)"
        ) from e
    for info in infos:
        if info.file_size > MAX_XLSX_MEMBER_BYTES:
            raise UnreadableFile(
                f"not a readable xlsx workbook: part {info.filename} declares {info.file_size} bytes "
                f"uncompressed (zip bomb?)"
            )
