"""What every reader returns, and the one error that quarantines a file."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import polars as pl


class UnreadableFile(Exception):
    """The file cannot be read at all. Its message is the quarantine reason shown to users."""


@dataclass(frozen=True)
class RowError:
    """A row that was read but cannot be kept: it goes to audit.rejected_rows."""

    table: str
    source_row: str
    column: str | None
    raw_value: str | None
    reason: str


@dataclass
class FileRead:
    """The text content of one landed file.

    `tables` maps raw table name -> DataFrame whose columns are exactly the spec's columns
    (all `pl.String`, a column absent from the file is all null) plus `_source_row`
    (`<sheet>!<row>` for workbooks, `line <n>` for text files, an XML path for XML)
    and `_extra` (JSON object text of the file's unknown columns for that row, or null).
    """

    tables: dict[str, pl.DataFrame]
    control_total: dict[str, Decimal] | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    row_errors: list[RowError] = field(default_factory=list)
