"""Raw text rows -> typed, canonical staging rows (SPEC §4), as plain Polars functions.

Each `stage_*` function takes the current raw rows of one table (all text, with lineage)
and returns the typed rows plus the rejected ones. A row is rejected — never dropped
silently — when a value it needs is empty, or a non-empty value cannot be parsed; one
`audit.rejected_rows` row per offending column says which value and why. Duplicate
business keys (overlapping exports, a re-keyed ERP document) keep the newest load and
reject the others with a pointer to the row that was kept. So for every table:
staged rows = current raw rows - rejected rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import polars as pl

from invoice_pipeline import normalize as nz
from invoice_pipeline.specs import TableSpec

LINEAGE = ("_load_id", "_source_file", "_source_row")
REJECT_COLUMNS = ("_load_id", "_source_file", "_source_row", "column_name", "raw_value", "reason", "stage")

_CODE = r"^(\d{10}|\d{12})$"
_NUMBER = r"^\d{8}$"
_DIGITAL = r"^\d{20}$"


@dataclass(frozen=True)
class Field:
    """One staged column: how it is computed, and when its value rejects the row.

    `raw` names the raw column the value comes from (its header label is what a user sees
    in rejected_rows). A row is rejected when `required` and the value is null, or when
    the raw text is non-empty but the value is null (it could not be parsed).
    """

    name: str
    expr: pl.Expr
    raw: str | None = None
    required: bool = False
    reason: str = "cannot be parsed"
    identifier: bool = False

    def present(self) -> pl.Expr:
        """Whether the raw value counts as given: placeholders like `--` do not, for identifiers."""
        cleaned = nz.clean_identifier(pl.col(self.raw)) if self.identifier else _text(self.raw)
        return cleaned.is_not_null()


@dataclass
class Staged:
    table: pl.DataFrame
    rejects: pl.DataFrame


def _text(column: str) -> pl.Expr:
    return nz.clean_text(pl.col(column))


def _ident(column: str) -> pl.Expr:
    return nz.clean_identifier(pl.col(column))


def _amount(column: str, required: bool = False) -> Field:
    """A money column parsed to DECIMAL(18,2)."""
    return Field(column, nz.parse_amount(pl.col(column)), column, required=required, reason="not an amount")


def _date(column: str, name: str | None = None, required: bool = False) -> Field:
    return Field(
        name or column, nz.parse_date(pl.col(column)), column, required=required, reason="not a date"
    )


def _instant(column: str, required: bool = False) -> Field:
    return Field(
        column, nz.parse_instant(pl.col(column)), column, required=required, reason="not an ISO 8601 time"
    )


def _matching(expr: pl.Expr, pattern: str) -> pl.Expr:
    """The value when it matches the pattern, else null (so the row is rejected with a reason)."""
    return pl.when(expr.str.contains(pattern)).then(expr)


def _row_order() -> pl.Expr:
    """Position of the row in its file: the trailing number of `_source_row` (0 when none)."""
    return pl.col("_source_row").str.extract(r"(\d+)\]?$").cast(pl.Int64, strict=False).fill_null(0)


def empty_rejects() -> pl.DataFrame:
    return pl.DataFrame(schema=dict.fromkeys(REJECT_COLUMNS, pl.String))


# Rows typed at a time: the text columns, one typed and one "was it given" column per field exist
# only for these rows, so staging's memory is that of the typed table, not three times the raw one.
CHUNK_ROWS = 500_000


def _chunks(raw: pl.DataFrame | Iterable[pl.DataFrame]) -> Iterator[pl.DataFrame]:
    if isinstance(raw, pl.DataFrame):
        for offset in range(0, max(raw.height, 1), CHUNK_ROWS):
            yield raw.slice(offset, CHUNK_ROWS)
    else:
        yield from raw


def apply_fields(
    raw: pl.DataFrame | Iterable[pl.DataFrame],
    fields: list[Field],
    spec: TableSpec,
    prepare: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
) -> Staged:
    """Compute every field; split rows into kept and rejected (with one reason per column).

    `raw` is one frame or the raw rows in chunks (as read from DuckDB); each chunk is typed on
    its own — every field is a function of its row alone — after `prepare` (a per-row lookup
    join), and only the typed columns are kept.
    """
    parts = [_apply_chunk(prepare(chunk) if prepare else chunk, fields, spec) for chunk in _chunks(raw)]
    if not parts:
        raise ValueError("apply_fields needs at least one chunk (an empty frame gives the columns)")
    return Staged(
        pl.concat([p.table for p in parts], how="vertical", rechunk=False),
        pl.concat([p.rejects for p in parts], how="vertical"),
    )


def _apply_chunk(raw: pl.DataFrame, fields: list[Field], spec: TableSpec) -> Staged:
    typed = raw.with_columns(
        [field.expr.alias(f"__v_{field.name}") for field in fields]
        + [field.present().alias(f"__t_{field.name}") for field in fields if field.raw]
    )
    problems = []
    for field in fields:
        value = pl.col(f"__v_{field.name}")
        label = spec.columns.get(field.raw, field.name) if field.raw else field.name
        if field.raw:
            given = pl.col(f"__t_{field.name}")
            unparseable = given & value.is_null()
            missing = ~given & value.is_null() if field.required else pl.lit(False)
            raw_value = pl.col(field.raw)
        else:
            unparseable = pl.lit(False)
            missing = value.is_null() if field.required else pl.lit(False)
            raw_value = pl.lit(None, dtype=pl.String)
        reason = (
            pl.when(missing).then(pl.lit(f"{label} is empty")).otherwise(pl.lit(f"{label}: {field.reason}"))
        )
        problems.append(
            typed.filter(unparseable | missing).select(
                *LINEAGE,
                pl.lit(label).alias("column_name"),
                raw_value.alias("raw_value"),
                reason.alias("reason"),
                pl.lit("parse").alias("stage"),
            )
        )
    rejects = pl.concat(problems, how="vertical") if problems else empty_rejects()
    bad_rows = rejects.select("_load_id", "_source_row").unique()
    kept = typed.join(bad_rows, on=["_load_id", "_source_row"], how="anti")
    table = kept.select(
        *[pl.col(f"__v_{field.name}").alias(field.name) for field in fields],
        *LINEAGE,
        "_file_seq",
        _row_order().alias("_row_order"),
    )
    return Staged(table, rejects)


def keep_newest(staged: Staged, key: list[str], what: str) -> Staged:
    """One row per key: the newest load wins (then the first row in its file).

    The others are rejected with a pointer to the kept row, so nothing vanishes.
    """
    ordered = staged.table.sort(["_file_seq", "_row_order"], descending=[True, False], maintain_order=True)
    first = pl.struct(key).is_first_distinct()
    kept = ordered.filter(first)
    losers = ordered.filter(~first)
    if losers.is_empty():
        return Staged(kept, staged.rejects)
    pointers = kept.select(
        *key, pl.col("_source_file").alias("__kept_file"), pl.col("_source_row").alias("__kept_row")
    )
    rejects = losers.join(pointers, on=key, how="left", nulls_equal=True).select(
        *LINEAGE,
        pl.lit(", ".join(key)).alias("column_name"),
        pl.concat_str([pl.col(k).cast(pl.String) for k in key], separator="/").alias("raw_value"),
        pl.format(
            "duplicate {}: the row kept is {} {}", pl.lit(what), pl.col("__kept_file"), pl.col("__kept_row")
        ).alias("reason"),
        pl.lit("duplicate").alias("stage"),
    )
    return Staged(kept, pl.concat([staged.rejects, rejects], how="vertical"))


def finish(staged: Staged, columns: list[str]) -> Staged:
    """Order the staged columns: canonical first, lineage last."""
    table = staged.table.sort("_file_seq", "_source_file", "_row_order").select(*columns, *LINEAGE)
    return Staged(table, staged.rejects)


def _period(date: pl.Expr) -> pl.Expr:
    return date.dt.strftime("%Y-%m")


# Entities ----------------------------------------------------------------------------------


def stage_entities(raw: pl.DataFrame, spec: TableSpec) -> Staged:
    """One row per entity TIN: our own legal entities and every spelling of their names."""
    fields = [
        Field("tin", _ident("tin"), "tin", required=True, identifier=True),
        Field("name", _text("name"), "name", required=True),
        Field(
            "region_code",
            _matching(_ident("region_code"), r"^\d{6}$"),
            "region_code",
            reason="not a 6-digit region code",
            identifier=True,
        ),
        Field("erp_org_code", _ident("erp_org_code"), "erp_org_code", required=True),
        Field(
            "aliases",
            _text("aliases")
            .str.split("|")
            .list.eval(nz.clean_text(pl.element()))
            .list.drop_nulls()
            .fill_null(pl.lit([], dtype=pl.List(pl.String))),
        ),
    ]
    staged = keep_newest(apply_fields(raw, fields, spec), ["tin"], "entity TIN")
    table = staged.table.with_columns(
        pl.concat_list(pl.col("name"), pl.col("aliases"))
        .list.eval(nz.normalize_name(pl.element()))
        .list.unique(maintain_order=True)
        .alias("name_keys")
    )
    return finish(
        Staged(table, staged.rejects), ["tin", "name", "region_code", "erp_org_code", "aliases", "name_keys"]
    )


# Invoices (platform export, XML, OFD) -----------------------------------------------------

INVOICE_COLUMNS = [
    "invoice_uid",
    "source",
    "entity_tin",
    "direction",
    "invoice_code",
    "invoice_no",
    "digital_invoice_no",
    "invoice_type",
    "issue_date",
    "issue_ts",
    "tax_period",
    "seller_tin",
    "seller_name",
    "buyer_tin",
    "buyer_name",
    "amount_excl_tax",
    "tax_amount",
    "amount_incl_tax",
    "is_positive",
    "status",
    "risk_level",
    "original_invoice_uid",
    "remark",
]


def _identity_fields() -> list[Field]:
    code = _ident("invoice_code")
    number = _ident("invoice_no")
    digital = _ident("digital_invoice_no")
    return [
        Field(
            "invoice_code",
            _matching(code, _CODE),
            "invoice_code",
            reason="not a 10- or 12-digit code",
            identifier=True,
        ),
        Field(
            "invoice_no",
            _matching(number, _NUMBER),
            "invoice_no",
            reason="not an 8-digit number",
            identifier=True,
        ),
        Field(
            "digital_invoice_no",
            _matching(digital, _DIGITAL),
            "digital_invoice_no",
            reason="not a 20-digit number",
            identifier=True,
        ),
        Field("invoice_uid", nz.invoice_uid(code, number, digital), required=True),
    ]


def _amount_fields(required: bool = True) -> list[Field]:
    return [_amount(column, required) for column in ("amount_excl_tax", "tax_amount", "amount_incl_tax")]


def assign_entity(table: pl.DataFrame, entities: pl.DataFrame) -> pl.DataFrame:
    """Which of our entities an invoice belongs to, and in which direction (SPEC §3.1).

    By TIN first: the seller is ours -> issued, else the buyer is ours -> received. When
    neither TIN is ours but a party's name is one of our names or aliases (a 抬头/税号
    error), the invoice is attributed by name so that it is not lost from scope.
    """
    tins = entities.select(pl.col("tin").alias("__tin"))
    names = entities.select(pl.col("tin").alias("__name_tin"), pl.col("name_keys")).explode("name_keys")
    seller_ours = pl.col("seller_tin").is_in(tins["__tin"].implode())
    buyer_ours = pl.col("buyer_tin").is_in(tins["__tin"].implode())
    with_names = (
        table.with_columns(
            nz.normalize_name(pl.col("buyer_name")).alias("__buyer_key"),
            nz.normalize_name(pl.col("seller_name")).alias("__seller_key"),
        )
        .join(
            names.rename({"__name_tin": "__buyer_name_tin"}),
            left_on="__buyer_key",
            right_on="name_keys",
            how="left",
        )
        .join(
            names.rename({"__name_tin": "__seller_name_tin"}),
            left_on="__seller_key",
            right_on="name_keys",
            how="left",
        )
        .unique(subset=["_load_id", "_source_row"], keep="first", maintain_order=True)
    )
    return with_names.with_columns(
        pl.when(seller_ours)
        .then(pl.col("seller_tin"))
        .when(buyer_ours)
        .then(pl.col("buyer_tin"))
        .when(pl.col("__buyer_name_tin").is_not_null())
        .then(pl.col("__buyer_name_tin"))
        .otherwise(pl.col("__seller_name_tin"))
        .alias("entity_tin"),
        pl.when(seller_ours)
        .then(pl.lit("issued"))
        .when(buyer_ours)
        .then(pl.lit("received"))
        .when(pl.col("__buyer_name_tin").is_not_null())
        .then(pl.lit("received"))
        .when(pl.col("__seller_name_tin").is_not_null())
        .then(pl.lit("issued"))
        .alias("direction"),
    ).drop("__buyer_key", "__seller_key", "__buyer_name_tin", "__seller_name_tin")


def stage_tax_platform(
    raw: pl.DataFrame | Iterable[pl.DataFrame], spec: TableSpec, entities: pl.DataFrame
) -> Staged:
    """One row per invoice of the platform export: the authoritative record (SPEC §4)."""
    fields = [
        *_identity_fields(),
        Field("source", pl.lit("tax_platform")),
        Field("invoice_type", _text("invoice_type")),
        Field(
            "issue_date",
            nz.parse_date(pl.col("issue_time")),
            "issue_time",
            required=True,
            reason="not a date",
        ),
        Field("issue_ts", nz.parse_timestamp(pl.col("issue_time"))),
        Field("seller_tin", _ident("seller_tin")),
        Field("seller_name", _text("seller_name")),
        Field("buyer_tin", _ident("buyer_tin")),
        Field("buyer_name", _text("buyer_name")),
        *_amount_fields(),
        Field(
            "is_positive_raw", nz.parse_bool_cn(pl.col("is_positive")), "is_positive", reason="not 是 or 否"
        ),
        Field("status", nz.map_status(pl.col("status"))),
        Field("status_raw", _text("status")),
        Field("risk_level", nz.map_risk(pl.col("risk_level"))),
        Field("issue_channel", _text("issue_channel")),
        Field("drawer", _text("drawer")),
        Field("remark", _text("remark")),
    ]
    staged = keep_newest(apply_fields(raw, fields, spec), ["invoice_uid"], "invoice")
    table = assign_entity(staged.table, entities).with_columns(
        _period(pl.col("issue_date")).alias("tax_period"),
        pl.coalesce(pl.col("is_positive_raw"), pl.col("amount_incl_tax") >= 0).alias("is_positive"),
        nz.red_reference(pl.col("remark")).alias("original_invoice_uid"),
    )
    return finish(Staged(table, staged.rejects), [*INVOICE_COLUMNS, "status_raw", "issue_channel", "drawer"])


def stage_einvoice(raw: pl.DataFrame, spec: TableSpec, entities: pl.DataFrame) -> Staged:
    """One row per 数电 XML or OFD file: `source` is einvoice_xml or einvoice_ofd."""
    fields = [
        *_identity_fields(),
        Field("source", pl.concat_str(pl.lit("einvoice_"), _text("file_format"))),
        Field(
            "invoice_type",
            pl.col("vat_label_code")
            .str.strip_chars()
            .replace_strict({"01": "数电发票（增值税专用发票）", "02": "数电发票（普通发票）"}, default=None),
        ),
        Field(
            "issue_date",
            pl.coalesce(nz.parse_date(pl.col("issue_time")), nz.parse_date(pl.col("request_time"))),
            "issue_time",
            required=True,
            reason="not a date",
        ),
        Field(
            "issue_ts",
            pl.coalesce(nz.parse_timestamp(pl.col("issue_time")), nz.parse_timestamp(pl.col("request_time"))),
        ),
        Field("seller_tin", _ident("seller_tin")),
        Field("seller_name", _text("seller_name")),
        Field("buyer_tin", _ident("buyer_tin")),
        Field("buyer_name", _text("buyer_name")),
        _amount("amount_excl_tax", required=True),
        Field(
            "tax_amount",
            pl.coalesce(
                nz.parse_amount(pl.col("tax_amount")),
                nz.parse_amount(pl.col("amount_incl_tax")) - nz.parse_amount(pl.col("amount_excl_tax")),
            ).cast(nz.MONEY),
            "tax_amount",
            required=True,
            reason="not an amount",
        ),
        _amount("amount_incl_tax", required=True),
        Field("drawer", _text("drawer")),
        Field("remark", _text("remark")),
    ]
    # An XML and an OFD of the same invoice are two sources: dedup within each format.
    staged = keep_newest(apply_fields(raw, fields, spec), ["source", "invoice_uid"], "invoice file")
    table = assign_entity(staged.table, entities).with_columns(
        _period(pl.col("issue_date")).alias("tax_period"),
        (pl.col("amount_incl_tax") >= 0).alias("is_positive"),
        pl.lit(None, dtype=pl.String).alias("status"),
        pl.lit(None, dtype=pl.String).alias("risk_level"),
        nz.red_reference(pl.col("remark")).alias("original_invoice_uid"),
    )
    return finish(Staged(table, staged.rejects), [*INVOICE_COLUMNS, "drawer"])


LINE_COLUMNS = [
    "invoice_uid",
    "source",
    "line_no",
    "tax_class_code",
    "item_name",
    "spec_model",
    "unit",
    "quantity",
    "unit_price",
    "amount_excl_tax",
    "tax_rate",
    "tax_rate_label",
    "tax_amount",
    "amount_incl_tax",
    "is_goods_list_face",
]


def _line_fields(source: pl.Expr) -> list[Field]:
    return [
        *_identity_fields(),
        Field("source", source),
        Field("tax_class_code", _ident("tax_class_code")),
        Field("item_name", _text("item_name")),
        Field("spec_model", _text("spec_model")),
        Field("unit", _text("unit")),
        Field(
            "quantity", _text("quantity").cast(pl.Float64, strict=False), "quantity", reason="not a number"
        ),
        Field(
            "unit_price",
            _text("unit_price").cast(pl.Float64, strict=False),
            "unit_price",
            reason="not a number",
        ),
        _amount("amount_excl_tax", required=True),
        _amount("tax_amount", required=True),
        _amount("amount_incl_tax"),
        Field(
            "tax_rate", nz.parse_rate(pl.col("tax_rate")), "tax_rate", required=True, reason="not a tax rate"
        ),
        Field("tax_rate_label", nz.rate_label(pl.col("tax_rate"))),
    ]


def _finish_lines(staged: Staged) -> Staged:
    """Lines of an invoice come from one file: the newest that has them; older copies are rejected."""
    newest = pl.col("_file_seq") == pl.col("_file_seq").max().over("source", "invoice_uid")
    table = staged.table
    losers = table.filter(~newest).select(
        *LINEAGE,
        pl.lit("invoice_uid").alias("column_name"),
        pl.col("invoice_uid").alias("raw_value"),
        pl.lit("duplicate invoice lines: a newer file carries this invoice's lines").alias("reason"),
        pl.lit("duplicate").alias("stage"),
    )
    kept = table.filter(newest).with_columns(
        pl.int_range(1, pl.len() + 1).over("source", "invoice_uid", order_by="_row_order").alias("line_no"),
        pl.coalesce(pl.col("amount_incl_tax"), pl.col("amount_excl_tax") + pl.col("tax_amount"))
        .cast(nz.MONEY)
        .alias("amount_incl_tax"),
        pl.col("item_name")
        .str.contains("详见销货清单", literal=True)
        .fill_null(False)
        .alias("is_goods_list_face"),
    )
    return finish(Staged(kept, pl.concat([staged.rejects, losers], how="vertical")), LINE_COLUMNS)


def stage_tax_platform_lines(raw: pl.DataFrame, spec: TableSpec) -> Staged:
    """One row per invoice line of the platform export's 信息汇总表 sheet."""
    return _finish_lines(apply_fields(raw, _line_fields(pl.lit("tax_platform")), spec))


def stage_einvoice_lines(raw: pl.DataFrame, spec: TableSpec, files: pl.DataFrame) -> Staged:
    """One row per IssuItemInformation / GoodsInfo line of an XML or OFD invoice."""
    with_format = raw.join(files, on="_load_id", how="left")
    return _finish_lines(
        apply_fields(with_format, _line_fields(pl.concat_str(pl.lit("einvoice_"), pl.col("__format"))), spec)
    )


# ERP register ------------------------------------------------------------------------------

ERP_COLUMNS = [
    "erp_doc_id",
    "org_code",
    "doc_no",
    "entity_tin",
    "direction",
    "voucher_no",
    "posting_date",
    "accounting_period",
    "tax_period",
    "counterparty_name",
    "counterparty_tin",
    "seller_tin",
    "seller_name",
    "buyer_tin",
    "buyer_name",
    "invoice_type",
    "invoice_code",
    "invoice_no_raw",
    "invoice_refs",
    "issue_date",
    "amount_excl_tax",
    "tax_rate",
    "tax_amount",
    "amount_incl_tax",
    "currency",
    "is_approved",
    "is_cancelled",
    "is_live",
    "clerk",
    "remark",
]


def stage_erp(raw: pl.DataFrame | Iterable[pl.DataFrame], spec: TableSpec, entities: pl.DataFrame) -> Staged:
    """One row per ERP document (组织 + 单据编号), as booked, with the invoice numbers it names."""
    orgs = entities.select(pl.col("erp_org_code").alias("__org"), pl.col("tin").alias("__entity_tin"))

    def with_entity(chunk: pl.DataFrame) -> pl.DataFrame:
        return chunk.with_columns(_ident("org_code").alias("__org")).join(orgs, on="__org", how="left")

    fields = [
        Field(
            "org_code",
            pl.when(pl.col("__entity_tin").is_not_null()).then(pl.col("__org")),
            "org_code",
            required=True,
            reason="organisation code is not in the entity register (erp_org_code)",
            identifier=True,
        ),
        Field("entity_tin", pl.col("__entity_tin")),
        Field(
            "direction",
            nz.map_direction(pl.col("direction")),
            "direction",
            required=True,
            reason="not 进项 or 销项",
        ),
        Field("doc_no", _text("doc_no"), "doc_no", required=True),
        Field("voucher_no", _text("voucher_no")),
        _date("posting_date"),
        Field(
            "accounting_period",
            nz.parse_period(pl.col("accounting_period")),
            "accounting_period",
            reason="not a period (YYYY-MM or YYYY年MM月)",
        ),
        Field("counterparty_name", _text("counterparty_name")),
        Field("counterparty_tin", _ident("counterparty_tin")),
        Field("invoice_type", _text("invoice_type")),
        Field(
            "invoice_code",
            _matching(_ident("invoice_code"), _CODE),
            "invoice_code",
            reason="not a 10- or 12-digit code",
            identifier=True,
        ),
        Field("invoice_no_raw", _text("invoice_no")),
        Field("invoice_refs", nz.split_invoice_refs(pl.col("invoice_no"))),
        _date("issue_date"),
        _amount("amount_excl_tax"),
        Field("tax_rate", nz.parse_rate(pl.col("tax_rate")), "tax_rate", reason="not a tax rate"),
        _amount("tax_amount"),
        _amount("amount_incl_tax", required=True),
        Field(
            "currency",
            pl.col("currency")
            .str.strip_chars()
            .replace_strict({"CNY": "CNY", "人民币": "CNY", "RMB": "CNY", "cny": "CNY"}, default=None)
            .fill_null(pl.when(_text("currency").is_null()).then(pl.lit("CNY"))),
            "currency",
            reason="not CNY/人民币",
        ),
        Field("is_approved", _text("review_status").is_in(["已审核", "审核", "已审批"])),
        Field(
            "is_cancelled",
            nz.parse_bool_cn(pl.col("is_cancelled")).fill_null(False),
            "is_cancelled",
            reason="not 是 or 否",
        ),
        Field("clerk", _text("clerk")),
        Field("remark", _text("remark")),
    ]
    staged = keep_newest(apply_fields(raw, fields, spec, with_entity), ["org_code", "doc_no"], "ERP document")
    is_received = pl.col("direction") == "received"
    table = staged.table.with_columns(
        pl.concat_str(pl.col("org_code"), pl.lit("/"), pl.col("doc_no")).alias("erp_doc_id"),
        pl.coalesce(pl.col("accounting_period"), _period(pl.col("posting_date"))).alias("tax_period"),
        pl.when(is_received)
        .then(pl.col("counterparty_tin"))
        .otherwise(pl.col("entity_tin"))
        .alias("seller_tin"),
        pl.when(is_received).then(pl.col("counterparty_name")).alias("seller_name"),
        pl.when(is_received)
        .then(pl.col("entity_tin"))
        .otherwise(pl.col("counterparty_tin"))
        .alias("buyer_tin"),
        pl.when(is_received).then(None).otherwise(pl.col("counterparty_name")).alias("buyer_name"),
        (pl.col("is_approved") & ~pl.col("is_cancelled")).alias("is_live"),
    )
    return finish(Staged(table, staged.rejects), ERP_COLUMNS)


def erp_invoice_refs(erp: pl.DataFrame) -> pl.DataFrame:
    """One row per invoice number typed into an ERP document, classified for matching."""
    refs = (
        erp.select("erp_doc_id", "org_code", "doc_no", "invoice_code", "invoice_refs", *LINEAGE)
        .with_columns(pl.int_ranges(1, pl.col("invoice_refs").list.len() + 1).alias("ref_seq"))
        .explode("invoice_refs", "ref_seq")
        .filter(pl.col("invoice_refs").is_not_null())
        .rename({"invoice_refs": "ref_token"})
    )
    classified = refs.with_columns(
        nz.classify_invoice_ref(pl.col("ref_token"), pl.col("invoice_code")).alias("__c")
    )
    return classified.select(
        "erp_doc_id",
        "org_code",
        "doc_no",
        pl.col("ref_seq").cast(pl.Int32),
        "ref_token",
        pl.col("__c").struct.field("ref_kind"),
        pl.col("__c").struct.field("ref_key"),
        *LINEAGE,
    )


# Claims and sync logs ----------------------------------------------------------------------

CLAIM_STATUSES = ("草稿", "审批中", "已通过", "已驳回", "已支付")


def stage_reimbursement(raw: pl.DataFrame, spec: TableSpec) -> Staged:
    """One row per invoice attached to an expense claim."""
    code = _matching(_ident("invoice_code"), _CODE)
    ref = nz.classify_invoice_ref(_ident("invoice_no"), code)
    fields = [
        Field("claim_no", _text("claim_no"), "claim_no", required=True),
        Field("claimant", _text("claimant")),
        Field("department", _text("department")),
        _date("submitted_date"),
        Field(
            "approval_status",
            pl.when(_text("approval_status").is_in(list(CLAIM_STATUSES))).then(_text("approval_status")),
            "approval_status",
            required=True,
            reason="not one of " + "/".join(CLAIM_STATUSES),
        ),
        Field("invoice_code", code, "invoice_code", reason="not a 10- or 12-digit code", identifier=True),
        Field("invoice_no", _ident("invoice_no"), "invoice_no", required=True, identifier=True),
        Field("ref_kind", ref.struct.field("ref_kind")),
        Field("ref_key", ref.struct.field("ref_key")),
        _date("issue_date"),
        _amount("amount_incl_tax"),
        _amount("claimed_amount", required=True),
    ]
    staged = keep_newest(apply_fields(raw, fields, spec), ["claim_no", "invoice_no"], "claim line")
    table = staged.table.with_columns(
        pl.col("approval_status").is_in(["审批中", "已通过", "已支付"]).alias("is_effective"),
    )
    return finish(
        Staged(table, staged.rejects),
        [
            "claim_no",
            "claimant",
            "department",
            "submitted_date",
            "approval_status",
            "is_effective",
            "invoice_code",
            "invoice_no",
            "ref_kind",
            "ref_key",
            "issue_date",
            "amount_incl_tax",
            "claimed_amount",
        ],
    )


def stage_sync_log(raw: pl.DataFrame, spec: TableSpec) -> Staged:
    """One row per sync-job run."""
    fields = [
        Field("run_id", _text("run_id"), "run_id", required=True),
        Field("system", _text("system"), "system", required=True),
        Field("entity_tin", _ident("entity_tin")),
        _instant("started_at", required=True),
        _instant("finished_at"),
        Field(
            "status",
            pl.when(_text("status").is_in(["success", "partial", "failed"])).then(_text("status")),
            "status",
            required=True,
            reason="not success/partial/failed",
        ),
        Field("records_read", nz.parse_int(pl.col("records_read")), "records_read", reason="not a count"),
        Field(
            "records_written",
            nz.parse_int(pl.col("records_written")),
            "records_written",
            reason="not a count",
        ),
        Field(
            "records_failed", nz.parse_int(pl.col("records_failed")), "records_failed", reason="not a count"
        ),
        Field("error", _text("error")),
    ]
    staged = keep_newest(apply_fields(raw, fields, spec), ["run_id"], "sync run")
    return finish(
        staged,
        [
            "run_id",
            "system",
            "entity_tin",
            "started_at",
            "finished_at",
            "status",
            "records_read",
            "records_written",
            "records_failed",
            "error",
        ],
    )


StageFunction = Callable[..., Staged]
