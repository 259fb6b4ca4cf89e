"""Publish `warehouse/analytics.duckdb`: the analysts' masked, commented copy of the warehouse.

DuckDB lets no other process open a file that a writer holds, not even read-only, so analysts never
open the live warehouse. After each run the writer copies the
published schemas (`assets/publish/analytics.yaml`: core, audit, report) into a new file beside
the target, masks personal data in the copy, comments every table and column, checkpoints and
detaches it, and renames it over the target. The rename is atomic: a reader that opens the
target gets either the previous snapshot or the new one, complete; a reader already connected
keeps the file it opened (Linux rename semantics — and DuckDB shares one open file among the
connections of a process, so a session sees the new snapshot once all its connections are closed
and it connects again); and the writer never opens the target, so a reader never blocks it. A
crash at any point before the rename leaves the previous snapshot as it was, plus a stale `.tmp`
file that the next publish removes first.

Masking runs inside DuckDB, in the CREATE TABLE … AS SELECT that fills the copy (the live
warehouse is only read): `sql_mask_tin` and the fast path of `sql_mask_person_name` are SQL
equivalents of `normalize.mask_tin` and `normalize.mask_person_name` (tests/test_analytics.py
checks that they agree value for value), so the bulk of the rows never leaves DuckDB. Names
outside the fast path, JSON evidence, and free text that contains a candidate (a run of 18
digits, an e-invoice file name) go through Python — the Polars functions themselves and
`JsonMasker` — registered for the duration of the publish as vectorised (Arrow) UDFs.

The file is created with `STORAGE_VERSION 'v1.5.0'` (pitfall 25), so DuckDB 1.5 clients (an older
CLI, DBeaver's JDBC driver) can read it as well as 2.x ones.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import cache, lru_cache
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import yaml
from duckdb.sqltypes import VARCHAR

from invoice_pipeline import normalize as nz
from invoice_pipeline.project import ASSETS_DIR, MODELS_DIR
from invoice_pipeline.tin import (
    PROVINCES,
    RIC_WEIGHTS,
    USCC_ALPHABET,
    USCC_PREFIXES,
    USCC_WEIGHTS,
    is_valid_resident_id,
)
from invoice_pipeline.warehouse import quote, scalar

SPEC_PATH = ASSETS_DIR / "publish" / "analytics.yaml"
# Oldest DuckDB release whose clients can read the snapshot (header version 68 or lower).
STORAGE_VERSION = "v1.5.0"
# The snapshot's catalog name while it is attached to the writer's connection.
_ALIAS = "analytics_publish"
_UDF_PERSON = "analytics_publish_mask_person_name"
_UDF_JSON = "analytics_publish_mask_json"
_UDF_SCRUB = "analytics_publish_scrub"
_UDF_PARTIES = "analytics_publish_mask_parties"

# The masking rules a column can have (assets/publish/analytics.yaml explains each).
RULES = ("keep", "tin", "person", "party", "scrub", "json", "rejected_value", "mixed")
MASKING_NOTES = {
    "tin": "Masked: a TIN that holds a resident ID shows only its first 6 and last 4 characters.",
    "person": "Masked: a person's name shows only its first character.",
    "party": "Masked like a person's name when the party is a private person or sole proprietor.",
    "json": "Personal data inside (resident-ID TINs, person names) masked.",
    "rejected_value": "Masked by the rule of its column; a whole unparsable record is withheld.",
    "mixed": "Masked: resident-ID TINs as TINs are, private persons' names (after their TIN) as names "
    "are, resident IDs inside other text as in free text.",
}


# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class PublishSpec:
    """`assets/publish/analytics.yaml`: what is published, how it is masked, what it means."""

    schemas: tuple[str, ...]
    exclude: frozenset[str]
    tin_patterns: tuple[str, ...]
    tin_keep: frozenset[str]
    person_columns: frozenset[str]
    party_columns: frozenset[str]
    organisation_suffixes: tuple[str, ...]
    keep_columns: frozenset[str]
    column_rules: dict[str, str]
    invalid_tin_subject: dict[str, str]
    rule_view_description: str
    tables: dict[str, str]
    glossary: dict[str, str]

    @classmethod
    def load(cls, path: Path = SPEC_PATH) -> PublishSpec:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        masking = data["masking"]
        spec = cls(
            schemas=tuple(data["schemas"]),
            exclude=frozenset(data.get("exclude") or ()),
            tin_patterns=tuple(masking["tin_columns"]["patterns"]),
            tin_keep=frozenset(masking["tin_columns"].get("keep") or ()),
            person_columns=frozenset(masking["person_name_columns"]),
            party_columns=frozenset(masking["party_name_columns"]["names"]),
            organisation_suffixes=tuple(masking["party_name_columns"]["organisation_suffixes"]),
            keep_columns=frozenset(masking.get("keep_columns") or ()),
            column_rules=dict(masking.get("columns") or {}),
            invalid_tin_subject=dict(masking["subject_of_invalid_tin"]),
            rule_view_description=" ".join(data["rule_view_description"].split()),
            tables={k: " ".join(v.split()) for k, v in (data.get("tables") or {}).items()},
            glossary={k: " ".join(str(v).split()) for k, v in (data.get("columns") or {}).items()},
        )
        unknown = set(spec.column_rules.values()) - set(RULES)
        if unknown:
            raise ValueError(f"{path}: unknown masking rule(s) {sorted(unknown)}")
        return spec

    def is_tin(self, column: str) -> bool:
        return column not in self.tin_keep and any(fnmatch.fnmatchcase(column, p) for p in self.tin_patterns)

    def party_pair(self, column: str, siblings: Iterable[str]) -> tuple[bool, str | None]:
        """(is a party-name column, the column holding that party's TIN or None)."""
        match = re.fullmatch(r"(.+)_names?", column)
        if not match:
            return False, None
        siblings = set(siblings)
        pair = next((f"{match[1]}{s}" for s in ("_tin", "_tins") if f"{match[1]}{s}" in siblings), None)
        return column in self.party_columns or pair is not None, pair


@cache
def load_spec(path: Path = SPEC_PATH) -> PublishSpec:
    return PublishSpec.load(path)


# --------------------------------------------------------------------------- SQL masks
# Each builder takes a SQL expression of type VARCHAR and returns one. They are used inside
# CREATE TABLE … AS SELECT over the copy; CASE keeps the costly branches to the rows that need them.


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _digit(s: str, position: int) -> str:
    return f"(ord(substr({s}, {position}, 1)) - 48)"


def _weighted_sum(s: str, weights: tuple[int, ...]) -> str:
    return " + ".join(f"{_digit(s, i + 1)} * {w}" for i, w in enumerate(weights))


def _in_list(values: Iterable[str]) -> str:
    return ", ".join(_sql_text(v) for v in sorted(values))


def sql_resident_id_valid(s: str) -> str:
    """SQL of `tin.is_valid_resident_id` for values shaped 17 digits + digit/X."""
    check = f"((12 - ({_weighted_sum(s, RIC_WEIGHTS)}) % 11) % 11)"
    return (
        f"(substr({s}, 1, 2) in ({_in_list(PROVINCES)}) "
        f"and try_strptime(substr({s}, 7, 8), '%Y%m%d')::date between date '1900-01-01' and current_date "
        f"and substr({s}, 18, 1) = (case when {check} = 10 then 'X' else {check}::varchar end))"
    )


def _sql_uscc_valid_digits(s: str) -> str:
    check = f"((31 - ({_weighted_sum(s, USCC_WEIGHTS)}) % 31) % 31)"
    return (
        f"(substr({s}, 1, 2) in ({_in_list(USCC_PREFIXES)}) "
        f"and substr({s}, 18, 1) = substr({_sql_text(USCC_ALPHABET)}, {check} + 1, 1))"
    )


def sql_mask_tin(e: str) -> str:
    """SQL of `normalize.mask_tin`."""
    s = f"({e})"
    personal = f"(length({s}) = 20 or not {_sql_uscc_valid_digits(s)} or {sql_resident_id_valid(s)})"
    masked = (
        f"left({s}, 6) || (case when length({s}) = 20 then '**********' else '********' end) || right({s}, 4)"
    )
    return (
        f"(case when regexp_full_match({s}, '[0-9]{{17}}[0-9X]([0-9]{{2}})?') "
        f"then (case when {personal} then {masked} else {s} end) else {s} end)"
    )


# Characters that NFKC and trimming leave alone: the values `clean_text` returns unchanged.
_NAME_FAST = r"[A-Za-z\x{4E00}-\x{9FFF}·]([A-Za-z\x{4E00}-\x{9FFF}· .'-]*[A-Za-z\x{4E00}-\x{9FFF}·])?"


def sql_mask_person_name(e: str) -> str:
    """SQL of `normalize.mask_person_name`: plain names in SQL, anything else through the UDF."""
    s = f"({e})"
    fast = _sql_text(_NAME_FAST)
    return (
        f"(case when {s} is null then null when regexp_full_match({s}, {fast}) then "
        f"(case when regexp_matches({s}, '^[A-Za-z]') then left({s}, 1) || '***' "
        f"when length({s}) = 1 then '*' else left({s}, 1) || repeat('*', length({s}) - 1) end) "
        f"else {_UDF_PERSON}({s}) end)"
    )


def _personal_name_re(spec: PublishSpec) -> str:
    return "(" + "|".join(re.escape(x) for x in spec.organisation_suffixes) + ")$"


def sql_looks_personal(e: str, spec: PublishSpec) -> str:
    """A name with the shape of a private person's: 2-4 Han characters (or ·), no organisation word."""
    s = f"({e})"
    return (
        f"(regexp_full_match({s}, '[\\x{{4E00}}-\\x{{9FFF}}·]{{2,4}}') "
        f"and not regexp_matches({s}, {_sql_text(_personal_name_re(spec))}))"
    )


def sql_mask_party(e: str, pair: str | None, spec: PublishSpec, pair_is_list: bool = False) -> str:
    s = f"({e})"
    condition = sql_looks_personal(s, spec)
    if pair is not None:
        p = quote(pair)
        if pair_is_list:
            personal = f"list_bool_or(list_transform({p}, lambda _pt: {sql_mask_tin('_pt')} <> _pt))"
        else:
            personal = f"({sql_mask_tin(p)} is distinct from {p})"
        condition = f"(coalesce({personal}, false) or {condition})"
    return f"(case when {condition} then {sql_mask_person_name(s)} else {s} end)"


_ID_RUN = "[0-9]{17}[0-9Xx]"
# What a valid resident ID looks like, checks aside: province, birth date 19xx/20xx, sequence,
# check character. A text without a match has nothing for `scrub_text` to mask.
_RESIDENT_ID_SHAPE = (
    "("
    + "|".join(sorted(PROVINCES))
    + ")[0-9]{4}(19|20)[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx]"
)
_FILE_BUYER = r"dzfp_[0-9]+_([^_/\\]+)_[0-9]{14}"
_NAMES_TABLE = "analytics_publish_personal_names"


def sql_scrub(e: str, in_lambda: bool = False) -> str:
    """Free text: embedded resident IDs and person-named e-invoice buyers masked (`scrub_text`,
    `JsonMasker.mask_file_names`). Only rows that may hold one go through Python: a run shaped
    like a resident ID, or an e-invoice file name whose buyer is shaped like a person's name or
    is a party name masked elsewhere (a temp table of them exists while publishing; inside a
    lambda, where DuckDB allows no subquery, every e-invoice file name goes through Python)."""
    s = f"({e})"
    buyer = f"regexp_extract({s}, {_sql_text(_FILE_BUYER)}, 1)"
    named = "true" if in_lambda else f"{buyer} in (select name from temp.{_NAMES_TABLE})"
    file_name = (
        f"(contains({s}, 'dzfp_') and (regexp_matches({s}, 'dzfp_.*dzfp_') "
        f"or regexp_full_match({buyer}, '[\\x{{4E00}}-\\x{{9FFF}}·]{{2,4}}') or {named}))"
    )
    return (
        f"(case when regexp_matches({s}, {_sql_text(_RESIDENT_ID_SHAPE)}) or {file_name} "
        f"then {_UDF_SCRUB}({s}) else {s} end)"
    )


# "<TIN> <name>" inside a text (core.invoice_history writes parties as `<seller_tin> <seller_name>
# → <buyer_tin> <buyer_name>`): the name runs to the next → or ; or the end.
_PARTY_PAIR = re.compile(r"(?<![0-9A-Za-z])([0-9A-Z]{15,20}) ([^→;]+?)(?=\s*→|\s*;|$)")
_PARTY_PAIR_SQL = r"[0-9A-Z]{15,20} ([^→;]+?)(?:\s*→|\s*;|$)"
_PERSON_PAIR_SQL = r"[0-9A-Z]{15,20} [\x{4E00}-\x{9FFF}·]{2,4}(?:\s*→|\s*;|$)"


def sql_mask_mixed(e: str, spec: PublishSpec, in_lambda: bool = False) -> str:
    """A value that may be a TIN, a party's name or a text naming parties (a before/after value of
    whichever aspect changed): a TIN masked as TINs are; a party name masked elsewhere in the
    snapshot masked as a person's; a text with "<TIN> <name>" pairs through
    `JsonMasker.mask_parties` when a pair may be personal (a resident-ID-shaped run, a
    person-shaped or known personal name after a TIN); else scrubbed. A short value alone (a
    status such as 正常) is not taken for a name: names come after their TIN."""
    s = f"({e})"
    tin = sql_mask_tin(s)
    named = "false" if in_lambda else f"{s} in (select name from temp.{_NAMES_TABLE})"
    known = (
        ""
        if in_lambda
        else f" or list_has_any(regexp_extract_all({s}, {_sql_text(_PARTY_PAIR_SQL)}, 1), "
        f"(select list(name) from temp.{_NAMES_TABLE}))"
    )
    pairs = (
        f"(regexp_matches({s}, {_sql_text(_RESIDENT_ID_SHAPE)}) "
        f"or regexp_matches({s}, {_sql_text(_PERSON_PAIR_SQL)}){known})"
    )
    return (
        f"(case when {s} is null then null when {tin} <> {s} then {tin} "
        f"when {named} then {sql_mask_person_name(s)} "
        f"when {pairs} then {_UDF_PARTIES}({s}) "
        f"else {sql_scrub(s, in_lambda=in_lambda)} end)"
    )


# --------------------------------------------------------------------------- Python masks


def scrub_text(value: str | None) -> str | None:
    """Every embedded run of 17 digits + digit/X that is a valid resident ID (province, real birth
    date, MOD 11-2 check) masked like an 18-character TIN: 110105********1233."""
    if value is None:
        return None
    out = value
    for candidate in re.findall(_ID_RUN, value):
        if is_valid_resident_id(candidate.upper()):
            out = out.replace(candidate, candidate[:6] + "********" + candidate[-4:])
    return out


# The platform names downloaded e-invoices dzfp_<number>_<buyer name>_<yyyyMMddHHmmss>.
_EINVOICE_FILE = re.compile(r"dzfp_([0-9]+)_([^_/\\]+)_([0-9]{14})")


def _series_mask(values: list[str], mask) -> dict[str, str | None]:
    if not values:
        return {}
    distinct = sorted(set(values))
    masked = pl.DataFrame({"v": distinct}, schema={"v": pl.String}).select(mask(pl.col("v"))).to_series()
    return dict(zip(distinct, masked.to_list(), strict=True))


def _arrow_strings(array) -> pl.Series:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return pl.Series("v", array.to_pylist(), dtype=pl.String)


def _udf_mask_person_name(array):
    return _arrow_strings(array).to_frame().select(nz.mask_person_name(pl.col("v"))).to_series().to_arrow()


class JsonMasker:
    """Masks the values of JSON documents by their keys, with the column rules of the spec;
    also the buyer in e-invoice file names (`mask_file_names`).

    Keys are classified like column names (tin, person, party — paired with `<prefix>_tin(s)` in
    the same object); every other string is scrubbed. A document with nothing to mask keeps its
    text byte for byte; a changed one is re-serialised with its numbers as written (5755.90).
    """

    def __init__(self, spec: PublishSpec, personal_names: Iterable[str] = ()) -> None:
        self.spec = spec
        # Party names masked somewhere in the snapshot (their TIN is a resident ID's).
        self.personal_names = frozenset(personal_names)
        self._name_masks: dict[str, str | None] = {}
        self._tin_masks: dict[str, str | None] = {}
        person = "|".join(re.escape(c) for c in sorted(spec.person_columns))
        self._hint = re.compile(rf'{_ID_RUN}|dzfp_|(tins?|names?|{person})"\s*:')
        self._personal = re.compile(_personal_name_re(spec))

    def _rule(self, key: str, siblings) -> tuple[str, str | None]:
        if key in self.spec.keep_columns or key in self.spec.tin_keep:
            return "scrub", None  # the safe default for a value that needs no masking
        if self.spec.is_tin(key):
            return "tin", None
        if key in self.spec.person_columns:
            return "person", None
        is_party, pair = self.spec.party_pair(key, siblings)
        if is_party:
            return "party", pair
        return "scrub", None

    def looks_personal(self, name: str) -> bool:
        return bool(re.fullmatch(r"[\u4e00-\u9fff·]{2,4}", name)) and not self._personal.search(name)

    def _mask_name(self, name: str) -> str | None:
        if name not in self._name_masks:
            self._name_masks.update(_series_mask([name], nz.mask_person_name))
        return self._name_masks[name]

    def mask_file_names(self, text: str | None) -> str | None:
        """The buyer of every e-invoice file name in `text` masked when it is a person's name: a
        name masked elsewhere in the snapshot, or one with the shape of a personal name."""
        if text is None or "dzfp_" not in text:
            return text

        def buyer(match: re.Match) -> str:
            name = match[2]
            if name in self.personal_names or self.looks_personal(name):
                name = self._mask_name(name) or name
            return f"dzfp_{match[1]}_{name}_{match[3]}"

        return _EINVOICE_FILE.sub(buyer, text)

    def mask_parties(self, text: str | None) -> str | None:
        """Every "<TIN> <name>" pair in a text: the TIN masked as TINs are, the name as a person's
        when the TIN is personal, the name is a personal party name or has a personal name's
        shape; the rest scrubbed."""
        if text is None:
            return None

        def pair(match: re.Match) -> str:
            tin, name = match[1], match[2]
            if tin not in self._tin_masks:
                self._tin_masks.update(_series_mask([tin], nz.mask_tin))
            masked = self._tin_masks[tin] or tin
            if masked != tin or name in self.personal_names or self.looks_personal(name):
                name = self._mask_name(name) or name
            return f"{masked} {name}"

        return self.scrub(_PARTY_PAIR.sub(pair, text))

    def scrub(self, text: str | None) -> str | None:
        """The rule for free text (and every JSON string not under a TIN or name key)."""
        return self.mask_file_names(scrub_text(text))

    def mask(self, texts: list[str | None]) -> list[str | None]:
        out = list(texts)
        # slot: (row, container, key, rule, pair values)
        slots: list[tuple[int, object, object, str, list[str]]] = []
        docs: dict[int, list] = {}
        for row, text in enumerate(texts):
            if text is None or not self._hint.search(text):
                continue
            root = [json.loads(text, parse_float=Decimal)]
            docs[row] = root
            self._collect(row, root, None, slots)
        if not slots:
            return out
        tins = [c[k] for r, c, k, rule, _ in slots if rule == "tin"]
        tins += [v for *_, rule, pair in slots if rule == "party" for v in pair]
        tin_masks = _series_mask(tins, nz.mask_tin)

        def personal_party(container, key, pair) -> bool:
            return any(tin_masks[v] != v for v in pair) or self.looks_personal(container[key])

        names = [c[k] for r, c, k, rule, pair in slots if rule == "person"]
        names += [c[k] for r, c, k, rule, pair in slots if rule == "party" and personal_party(c, k, pair)]
        name_masks = _series_mask(names, nz.mask_person_name)
        changed: set[int] = set()
        for row, container, key, rule, pair in slots:
            value = container[key]
            if rule == "tin":
                new = tin_masks[value]
            elif rule == "person" or (rule == "party" and personal_party(container, key, pair)):
                new = name_masks[value]
            else:
                new = self.scrub(value)
            if new != value:
                container[key] = new
                changed.add(row)
        for row in changed:
            out[row] = _dump(docs[row][0])
        return out

    def _collect(self, row: int, container, rule: str | None, slots: list) -> None:
        items = container.items() if isinstance(container, dict) else enumerate(container)
        for key, value in list(items):
            if isinstance(container, dict):
                this_rule, pair_key = self._rule(key, container.keys())
                pair = container.get(pair_key) if pair_key else None
                pair_values = (
                    [pair] if isinstance(pair, str) else [v for v in pair or [] if isinstance(v, str)]
                )
            else:
                this_rule, pair_values = rule or "scrub", []
            if isinstance(value, str):
                slots.append((row, container, key, this_rule, pair_values))
            elif isinstance(value, list):
                for i, element in enumerate(value):
                    if isinstance(element, str):
                        slots.append((row, value, i, this_rule, pair_values))
                    elif isinstance(element, dict | list):
                        self._collect(row, element, None, slots)
            elif isinstance(value, dict):
                self._collect(row, value, None, slots)


def _dump(value) -> str:
    """Compact JSON that writes Decimals as they were parsed (json.dumps cannot)."""
    if isinstance(value, dict):
        return (
            "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{_dump(v)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


# --------------------------------------------------------------------------- rules per column


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str


@dataclass(frozen=True)
class Relation:
    schema: str
    table: str
    kind: str  # "BASE TABLE" or "VIEW"
    columns: tuple[Column, ...]

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"


def column_rule(spec: PublishSpec, relation: Relation, column: Column) -> tuple[str, str | None]:
    """(rule, paired TIN column) for one published column."""
    override = spec.column_rules.get(f"{relation.name}.{column.name}")
    if override:
        return override, None
    t = column.data_type.upper()
    if t == "JSON":
        return "json", None
    if t not in ("VARCHAR", "VARCHAR[]"):
        if "VARCHAR" in t or "JSON" in t:
            if column.name in spec.keep_columns:
                return "keep", None
            raise ValueError(
                f"{relation.name}.{column.name} ({column.data_type}): no masking rule for nested text; "
                "add it to keep_columns or masking.columns in assets/publish/analytics.yaml"
            )
        return "keep", None
    if column.name in spec.tin_keep or column.name in spec.keep_columns:
        return "keep", None
    if spec.is_tin(column.name):
        return "tin", None
    if column.name in spec.person_columns:
        return "person", None
    is_party, pair = spec.party_pair(column.name, [c.name for c in relation.columns])
    if is_party:
        return "party", pair
    return "scrub", None


def _header_rules(spec: PublishSpec) -> dict[str, str]:
    """Source header (and raw column name) → masking rule, for audit.rejected_rows.raw_value."""
    from invoice_pipeline.specs import load_specs

    rules: dict[str, str] = {}
    for source in load_specs().values():
        for table in source.tables.values():
            for column, header in table.columns.items():
                if spec.is_tin(column):
                    rule = "tin"
                elif column in spec.person_columns:
                    rule = "person"
                elif spec.party_pair(column, table.columns)[0]:
                    rule = "party"
                else:
                    continue
                rules[column] = rules[header] = rule
    return rules


def _rejected_value_sql(spec: PublishSpec, value: str, relation: Relation) -> str:
    by_rule: dict[str, list[str]] = {}
    for header, rule in _header_rules(spec).items():
        by_rule.setdefault(rule, []).append(header)
    names = {c.name for c in relation.columns}
    header = quote("column_name") if "column_name" in names else "null"
    branches = [
        f"when {header} is null and {value} is not null "
        f"then '[withheld: whole record of ' || length({value}) || ' characters]'"
    ]
    masks = {
        "tin": sql_scrub(sql_mask_tin(value)),
        "person": sql_mask_person_name(value),
        "party": sql_mask_party(value, None, spec),
    }
    for rule, headers in sorted(by_rule.items()):
        branches.append(f"when {header} in ({_in_list(headers)}) then {masks[rule]}")
    return f"(case {' '.join(branches)} else {sql_scrub(value)} end)"


def column_sql(spec: PublishSpec, relation: Relation, column: Column) -> tuple[str, str]:
    """(SELECT expression, rule) that publishes one column."""
    rule, pair = column_rule(spec, relation, column)
    c = quote(column.name)
    is_list = column.data_type.upper().endswith("[]")

    def per_value(build) -> str:
        if is_list:
            return f"list_transform({c}, lambda _pe: {build('_pe')})"
        return build(c)

    def scrub(e: str) -> str:
        return sql_scrub(e, in_lambda=is_list)

    types = {col.name: col.data_type.upper() for col in relation.columns}
    if rule == "keep":
        expr = c
    elif rule == "tin":
        expr = per_value(sql_mask_tin)
    elif rule == "person":
        expr = per_value(sql_mask_person_name)
    elif rule == "party":
        expr = per_value(lambda e: sql_mask_party(e, pair, spec, types.get(pair or "", "").endswith("[]")))
    elif rule == "scrub":
        expr = per_value(scrub)
    elif rule == "json":
        expr = f"{_UDF_JSON}({c}::varchar)::json"
    elif rule == "rejected_value":
        expr = _rejected_value_sql(spec, c, relation)
    elif rule == "mixed":
        expr = per_value(lambda e: sql_mask_mixed(e, spec, in_lambda=is_list))
    else:  # pragma: no cover — load() validates the rules
        raise ValueError(rule)
    subject = spec.invalid_tin_subject
    if column.name == subject["column"] and subject["rule_column"] in types and rule != "tin":
        expr = (
            f"(case when {quote(subject['rule_column'])} = {_sql_text(subject['rule_id'])} "
            f"then {sql_mask_tin(c)} else {expr} end)"
        )
        rule = f"{rule}+tin"
    return f"{expr} as {c}", rule


# --------------------------------------------------------------------------- descriptions


def table_description(spec: PublishSpec, relation: Relation) -> str | None:
    from invoice_pipeline.findings import load_rules
    from invoice_pipeline.layers import discover_models

    models = {(m.schema, m.table): m for m in discover_models(MODELS_DIR)}
    model = models.get((relation.schema, relation.table))
    if model is not None and model.description:
        return model.description
    if relation.name in spec.tables:
        return spec.tables[relation.name]
    rule = load_rules().get(relation.table) if relation.schema == "audit" else None
    if rule is not None:
        return spec.rule_view_description.format(
            rule_id=rule.rule_id, severity=rule.severity, family=rule.family, description=rule.description
        )
    return None


def column_description(spec: PublishSpec, relation: Relation, column: Column) -> str | None:
    return spec.glossary.get(f"{relation.name}.{column.name}") or spec.glossary.get(column.name)


def _table_comment(spec: PublishSpec, relation: Relation) -> str:
    text = (
        table_description(spec, relation)
        or f"{relation.name} (not described in assets/publish/analytics.yaml)"
    )
    if relation.kind == "VIEW":
        text += " (A view in the warehouse, materialised when this snapshot was published.)"
    return text


def _column_comment(spec: PublishSpec, relation: Relation, column: Column, rule: str) -> str:
    text = column_description(spec, relation, column) or "(not described in assets/publish/analytics.yaml)"
    note = MASKING_NOTES.get(rule.split("+")[0])
    if rule.endswith("+tin"):
        note = " ".join(filter(None, [note, "For invalid_tin findings it is the TIN, masked as TINs are."]))
    return f"{text} {note}" if note else text


# --------------------------------------------------------------------------- publish


def published_relations(con: duckdb.DuckDBPyConnection, spec: PublishSpec | None = None) -> list[Relation]:
    """Every table and view of the published schemas in the connection's database, in order."""
    spec = spec or load_spec()
    db = scalar(con, "select current_database()")
    rows = con.execute(
        "select t.table_schema, t.table_name, t.table_type, c.column_name, c.data_type "
        "from information_schema.tables t join information_schema.columns c "
        "using (table_catalog, table_schema, table_name) "
        "where t.table_catalog = ? and t.table_schema in (select unnest(?)) "
        "order by t.table_schema, t.table_name, c.ordinal_position",
        [db, list(spec.schemas)],
    ).fetchall()
    relations: dict[tuple[str, str], Relation] = {}
    for schema, table, kind, column, data_type in rows:
        if f"{schema}.{table}" in spec.exclude:
            continue
        rel = relations.get((schema, table)) or Relation(schema, table, kind, ())
        relations[(schema, table)] = Relation(schema, table, kind, (*rel.columns, Column(column, data_type)))
    order = {s: i for i, s in enumerate(spec.schemas)}
    return sorted(relations.values(), key=lambda r: (order[r.schema], r.table))


def glossary_gaps(con: duckdb.DuckDBPyConnection, spec: PublishSpec | None = None) -> list[str]:
    """Published tables and columns that have no description: they get a placeholder comment."""
    spec = spec or load_spec()
    gaps = []
    for relation in published_relations(con, spec):
        if not table_description(spec, relation):
            gaps.append(relation.name)
        gaps += [
            f"{relation.name}.{c.name}" for c in relation.columns if not column_description(spec, relation, c)
        ]
    return gaps


def _install(con: duckdb.DuckDBPyConnection, spec: PublishSpec, personal_names: Iterable[str]) -> None:
    """The UDFs and the temp table of personal party names that the masking SQL uses."""
    _uninstall(con)
    names = sorted(set(personal_names))
    con.execute(f"create temp table {_NAMES_TABLE} as select unnest(?::varchar[]) as name", [names])
    masker = JsonMasker(spec, names)

    def mask_json(array):
        return pa.array(masker.mask(array.to_pylist()), type=pa.string())

    scrub = lru_cache(maxsize=1 << 16)(masker.scrub)

    def scrub_array(array):
        return pa.array([scrub(v) for v in array.to_pylist()], type=pa.string())

    def parties_array(array):
        return pa.array([masker.mask_parties(v) for v in array.to_pylist()], type=pa.string())

    udfs = (
        (_UDF_PERSON, _udf_mask_person_name),
        (_UDF_JSON, mask_json),
        (_UDF_SCRUB, scrub_array),
        (_UDF_PARTIES, parties_array),
    )
    for name, fn in udfs:
        con.create_function(
            name, fn, [VARCHAR], VARCHAR, type="arrow", null_handling="special", side_effects=False
        )


def _uninstall(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"drop table if exists temp.{_NAMES_TABLE}")
    for name in (_UDF_PERSON, _UDF_JSON, _UDF_SCRUB, _UDF_PARTIES):
        with contextlib.suppress(duckdb.InvalidInputException):
            con.remove_function(name)


def personal_party_names(
    con: duckdb.DuckDBPyConnection, relations: list[Relation], spec: PublishSpec
) -> set[str]:
    """Party names whose own TIN (same row) is a resident ID's: they are masked wherever they
    appear in the snapshot, also as the buyer in e-invoice file names."""
    db = scalar(con, "select current_database()")
    selects = []
    for relation in relations:
        names = [c.name for c in relation.columns]
        types = {c.name: c.data_type.upper() for c in relation.columns}
        for column in relation.columns:
            rule, pair = column_rule(spec, relation, column)
            if rule != "party" or pair is None or types[column.name] != "VARCHAR" or types[pair] != "VARCHAR":
                continue
            assert pair in names
            selects.append(
                f"select {quote(column.name)} as name from {quote(db)}.{quote(relation.schema)}."
                f"{quote(relation.table)} where {sql_mask_tin(quote(pair))} <> {quote(pair)}"
            )
    if not selects:
        return set()
    rows = con.execute(f"select distinct name from ({' union all '.join(selects)}) where name is not null")
    return {name for (name,) in rows.fetchall()}


def _copy_table(con: duckdb.DuckDBPyConnection, db: str, spec: PublishSpec, relation: Relation) -> int:
    """Create `<snapshot>.<schema>.<table>` from the live relation, masked and commented."""
    selected = [column_sql(spec, relation, column) for column in relation.columns]
    dest = f"{_ALIAS}.{quote(relation.schema)}.{quote(relation.table)}"
    source = f"{quote(db)}.{quote(relation.schema)}.{quote(relation.table)}"
    con.execute(f"create table {dest} as select {', '.join(s for s, _ in selected)} from {source}")
    con.execute(f"comment on table {dest} is {_sql_text(_table_comment(spec, relation))}")
    for column, (_, rule) in zip(relation.columns, selected, strict=True):
        comment = _column_comment(spec, relation, column, rule)
        con.execute(f"comment on column {dest}.{quote(column.name)} is {_sql_text(comment)}")
    return int(scalar(con, f"select count(*) from {dest}"))


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_analytics(
    con: duckdb.DuckDBPyConnection, target: Path, spec: PublishSpec | None = None
) -> dict[str, int]:
    """Write the analysts' snapshot of the warehouse that `con` is connected to (read-write, the
    writer's connection after a run) to `target`, atomically; return rows per published table.

    The copy is built in `<target>.tmp` inside one transaction (so it is one consistent state of
    the warehouse), checkpointed, detached and renamed over `target`. On any error the partial
    file is removed and `target` is left as it was.
    """
    spec = spec or load_spec()
    target = Path(target)
    tmp = target.with_name(target.name + ".tmp")
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in (tmp, tmp.with_name(tmp.name + ".wal")):
        stale.unlink(missing_ok=True)
    db = scalar(con, "select current_database()")
    relations = published_relations(con, spec)
    schemas = [
        s
        for s in spec.schemas
        if s
        in {
            r[0]
            for r in con.execute(
                "select schema_name from duckdb_schemas() where database_name = ?", [db]
            ).fetchall()
        }
    ]
    con.execute(f"detach database if exists {_ALIAS}")
    _install(con, spec, personal_party_names(con, relations, spec))
    attached = False
    try:
        path = _sql_text(str(tmp))
        con.execute(f"attach {path} as {_ALIAS} (storage_version '{STORAGE_VERSION}')")
        attached = True
        counts: dict[str, int] = {}
        con.begin()
        try:
            for schema in schemas:
                con.execute(f"create schema if not exists {_ALIAS}.{quote(schema)}")
            for relation in relations:
                counts[relation.name] = _copy_table(con, db, spec, relation)
            con.commit()
        except BaseException:
            con.rollback()
            raise
        con.execute(f"checkpoint {_ALIAS}")
        con.execute(f"detach {_ALIAS}")
        attached = False
        os.replace(tmp, target)
        _fsync_dir(target.parent)
        return counts
    except BaseException:
        if attached:
            with contextlib.suppress(duckdb.Error):
                con.execute(f"detach {_ALIAS}")
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)
        raise
    finally:
        _uninstall(con)
