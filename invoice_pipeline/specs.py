"""Source specs: `assets/sources/*.yaml` read into typed, validated objects.

A spec names the landing folder, the file globs, the reader, and for each raw table the
header map (raw column -> header as exported). Column names from specs become SQL
identifiers, so they are validated here and nowhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from invoice_pipeline.project import SOURCES_DIR

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
LINEAGE_COLUMNS = ("_load_id", "_source_file", "_source_row", "_extra")


@dataclass(frozen=True)
class TableSpec:
    name: str
    grain: str
    columns: dict[str, str]
    required: tuple[str, ...]
    key: tuple[str, ...]
    sheet: str | None = None
    optional_table: bool = False

    @property
    def raw_columns(self) -> tuple[str, ...]:
        """Columns of `raw.<table>`: the spec's columns, then lineage."""
        return (*self.columns, *LINEAGE_COLUMNS)

    def column_for_header(self) -> dict[str, str]:
        """Header label as exported -> raw column name."""
        return {header: column for column, header in self.columns.items()}


@dataclass(frozen=True)
class SourceSpec:
    name: str
    description: str
    landing: str
    globs: tuple[str, ...]
    reader: str
    tables: dict[str, TableSpec]

    @property
    def main_table(self) -> TableSpec:
        return next(iter(self.tables.values()))


def _identifier(value: str, where: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(f"{where}: {value!r} is not a lower-case SQL identifier")
    return value


def parse_spec(data: dict, where: str) -> SourceSpec:
    tables = {}
    for table_name, table in data["tables"].items():
        columns = {_identifier(c, f"{where} {table_name}"): str(h) for c, h in table["columns"].items()}
        unknown = set(table.get("required", [])) - set(columns)
        if unknown:
            raise ValueError(f"{where} {table_name}: required columns not in columns: {sorted(unknown)}")
        tables[_identifier(table_name, where)] = TableSpec(
            name=table_name,
            grain=table["grain"],
            columns=columns,
            required=tuple(table.get("required", [])),
            key=tuple(table.get("key", [])),
            sheet=table.get("sheet"),
            optional_table=bool(table.get("optional_table", False)),
        )
    return SourceSpec(
        name=_identifier(data["name"], where),
        description=" ".join(str(data["description"]).split()),
        landing=data["landing"],
        globs=tuple(data["globs"]),
        reader=data["reader"],
        tables=tables,
    )


@cache
def load_specs(folder: Path = SOURCES_DIR) -> dict[str, SourceSpec]:
    """Every source spec, by source name, in file-name order."""
    specs = {}
    for path in sorted(folder.glob("*.yaml")):
        spec = parse_spec(yaml.safe_load(path.read_text(encoding="utf-8")), str(path.name))
        if spec.name != path.stem:
            raise ValueError(f"{path.name}: name {spec.name!r} must equal the file stem")
        specs[spec.name] = spec
    return specs
