"""Helpers every reader shares: encoding detection, header matching, shaping the raw table.

Nothing here types or normalises a value. Header labels are normalised for *matching* only
(NFKC, no BOM, no whitespace, case-folded); the values and the unknown headers kept in `_extra`
stay as landed.
"""

from __future__ import annotations

import codecs
import os
import tempfile
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

import polars as pl

from invoice_pipeline.sources.base import UnreadableFile
from invoice_pipeline.specs import TableSpec

UTF8_BOM = b"\xef\xbb\xbf"
CHUNK_BYTES = 1 << 22
# Invisible characters that sneak into headers copied out of Excel or web pages.
_INVISIBLE = dict.fromkeys(map(ord, "\ufeff\u200b\u200c\u200d\u2060"), None)
# Row-number helper column carried through filtering; never collides with a header.
ROW_COLUMN = "\x00row"


# --------------------------------------------------------------------------- labels


def normalize_label(text: object) -> str:
    """The comparison form of a header or sheet name: NFKC, no BOM/zero-width, no whitespace, casefold.

    `"　发票号码 "`, `"\\ufeff发票号码"` and `"发票 号码"` all compare equal to `"发票号码"`;
    `"ＴＩＮ"` equals `"tin"`.
    """
    folded = unicodedata.normalize("NFKC", str(text)).translate(_INVISIBLE)
    return "".join(folded.split()).casefold()


def clean_header(text: object) -> str:
    """A header as shown in `_extra`: the landed text without BOM and surrounding whitespace."""
    return str(text).translate(_INVISIBLE).strip()


# --------------------------------------------------------------------------- encodings


@dataclass(frozen=True)
class _DecodeFailure:
    offset: int
    byte: int
    reason: str

    def describe(self) -> str:
        return f"byte 0x{self.byte:02x} at offset {self.offset}: {self.reason}"


def _decode_stream(path: Path, encoding: str, sink=None) -> _DecodeFailure | None:
    """Strict-decode `path` in chunks; write the text to `sink` if given; report the first bad byte."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    offset = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(CHUNK_BYTES)
            final = not chunk
            pending = len(decoder.getstate()[0])
            try:
                text = decoder.decode(chunk, final=final)
            except UnicodeDecodeError as e:
                bad = e.object[e.start] if e.start < len(e.object) else 0
                return _DecodeFailure(offset - pending + e.start, bad, e.reason)
            if sink is not None and text:
                sink.write(text)
            if final:
                return None
            offset += len(chunk)


def _starts_with_bom(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(3) == UTF8_BOM


def detect_encoding(path: Path) -> str:
    """`utf-8-sig` (BOM), `utf-8` or `gb18030`, decided by strict decoding; else `UnreadableFile`.

    UTF-8 is tried first: GBK text practically never decodes as UTF-8, while ASCII decodes as both.
    GB18030 is the superset of GBK and GB2312, so it reads all three.
    """
    utf8 = _decode_stream(path, "utf-8")
    if utf8 is None:
        return "utf-8-sig" if _starts_with_bom(path) else "utf-8"
    gb = _decode_stream(path, "gb18030")
    if gb is None:
        return "gb18030"
    raise UnreadableFile(f"cannot decode: not valid UTF-8 ({utf8.describe()}) nor GB18030 ({gb.describe()})")


@contextmanager
def utf8_source(path: Path) -> Iterator[tuple[Path, str]]:
    """Yield `(a UTF-8 file with the same text, detected encoding)`.

    UTF-8 files are used in place (a BOM is left for the caller); GB18030 files are transcoded
    once, streaming, into a temporary UTF-8 file that is removed afterwards.
    """
    encoding = detect_encoding(path)
    if encoding != "gb18030":
        yield path, encoding
        return
    fd, tmp_name = tempfile.mkstemp(prefix="invoice_pipeline_", suffix=".utf8.csv")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as sink:
            failure = _decode_stream(path, "gb18030", sink)
        if failure is not None:  # the file changed between detection and transcoding
            raise UnreadableFile(f"not valid GB18030 ({failure.describe()})")
        yield tmp, encoding
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- headers


@dataclass
class HeaderMatch:
    """How a file's columns map onto a spec table."""

    columns: dict[str, str]  # spec column -> file column
    extras: dict[str, str]  # file column (unknown to the spec) -> key used in `_extra`
    missing: list[str] = field(default_factory=list)  # spec columns absent from the file


def unique_names(headers: Sequence[object]) -> list[str]:
    """File column names that are unique and non-empty: `x`, `x_1`, … ; empty -> `_unnamed_<n>`."""
    names: list[str] = []
    seen: set[str] = set()
    for position, header in enumerate(headers, start=1):
        base = clean_header(header) if header is not None else ""
        base = base or f"_unnamed_{position}"
        name, suffix = base, 0
        while name in seen:
            suffix += 1
            name = f"{base}_{suffix}"
        seen.add(name)
        names.append(name)
    return names


def match_headers(file_columns: Sequence[str], table: TableSpec) -> HeaderMatch:
    """Match file columns to the table's labels by `normalize_label`; the first match wins."""
    by_label = {normalize_label(label): column for column, label in table.columns.items()}
    columns: dict[str, str] = {}
    extras: dict[str, str] = {}
    for name in file_columns:
        column = by_label.get(normalize_label(name))
        if column is not None and column not in columns:
            columns[column] = name
        else:
            extras[name] = clean_header(name)
    missing = [c for c in table.columns if c not in columns]
    return HeaderMatch(columns, extras, missing)


def header_score(cells: Sequence[object], table: TableSpec) -> int:
    """How many of the table's labels a candidate header row carries."""
    labels = {normalize_label(label) for label in table.columns.values()}
    return len({normalize_label(c) for c in cells if c is not None} & labels)


def require_columns(match: HeaderMatch, table: TableSpec, where: str = "") -> None:
    """Raise `UnreadableFile("missing columns: 组织, 方向")` (labels, spec order) when required ones lack."""
    lacking = [table.columns[c] for c in table.columns if c in table.required and c in match.missing]
    if lacking:
        raise UnreadableFile(f"{where}missing columns: {', '.join(lacking)}")


# --------------------------------------------------------------------------- shaping


def non_blank_rows(columns: Sequence[str]) -> pl.Expr:
    """True for rows with at least one cell that is neither null nor only whitespace."""
    if not columns:
        return pl.lit(False)
    return pl.any_horizontal(
        [pl.col(c).str.strip_chars().str.len_bytes().gt(0).fill_null(False) for c in columns]
    )


def empty_to_null(columns: Sequence[str]) -> list[pl.Expr]:
    return [pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c) for c in columns]


def extra_json(extras: dict[str, str]) -> pl.Expr:
    """`_extra`: a JSON object (UTF-8, not ASCII-escaped) of the row's non-null unknown cells, else null."""
    if not extras:
        return pl.lit(None, dtype=pl.String)
    parts = [
        pl.when(pl.col(name).is_not_null()).then(
            pl.struct(pl.col(name).alias(key))
            .struct.json_encode()
            .str.strip_prefix("{")
            .str.strip_suffix("}")
        )
        for name, key in extras.items()
    ]
    body = pl.concat_str(parts, separator=",", ignore_nulls=True)
    return (
        pl.when(body.is_null() | (body == ""))
        .then(None)
        .otherwise(pl.concat_str([pl.lit("{"), body, pl.lit("}")]))
    )


def build_table(
    frame: pl.DataFrame, match: HeaderMatch, table: TableSpec, source_row: pl.Expr
) -> pl.DataFrame:
    """The raw table: the spec's columns in spec order (absent -> null), `_source_row`, `_extra`.

    `frame` holds only `pl.String` columns named as in the file (plus helper columns).
    """
    selected = [
        (pl.col(match.columns[c]) if c in match.columns else pl.lit(None)).cast(pl.String).alias(c)
        for c in table.columns
    ]
    return frame.select(
        *selected,
        source_row.cast(pl.String).alias("_source_row"),
        extra_json(match.extras).alias("_extra"),
    )


def empty_table(table: TableSpec) -> pl.DataFrame:
    return pl.DataFrame(schema={c: pl.String for c in (*table.columns, "_source_row", "_extra")})


# --------------------------------------------------------------------------- values


def parse_amount(text: str | None) -> Decimal | None:
    """A control-total amount as Decimal: `1234.5`, `1,234.50`, `￥1,234.50`, `(178.55)`, `-178.55`.

    Used only for the platform's 合计行; everything else is parsed later, in SQL.
    """
    if text is None:
        return None
    s = unicodedata.normalize("NFKC", text).strip().replace(",", "").replace("¥", "").replace(" ", "")
    negative = s.startswith("(") and s.endswith(")")
    if negative:
        s = s[1:-1]
    try:
        value = Decimal(s)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    return -value if negative else value
