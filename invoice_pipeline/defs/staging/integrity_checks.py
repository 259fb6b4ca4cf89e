"""Blocking integrity checks on staging: if these fail, every later layer would be wrong."""

import dagster as dg

from invoice_pipeline.defs.resources import WAREHOUSE_POOL, Warehouse
from invoice_pipeline.defs.staging.assets import staging_key
from invoice_pipeline.warehouse import quote, scalar

# Business key of each staged table: one row per key, or duplicates double-count downstream.
STAGING_KEYS = {
    "entities": ("tin",),
    "tax_platform": ("invoice_uid",),
    "tax_platform_lines": ("source", "invoice_uid", "line_no"),
    "einvoice": ("source", "invoice_uid"),
    "einvoice_lines": ("source", "invoice_uid", "line_no"),
    "erp": ("erp_doc_id",),
    "erp_invoice_refs": ("erp_doc_id", "ref_seq"),
    "reimbursement": ("claim_no", "invoice_no"),
    "sync_log": ("run_id",),
}
# Staged tables read from a raw table of the same name (erp_invoice_refs is derived from staging.erp).
ROW_ACCOUNTED = tuple(t for t in STAGING_KEYS if t != "erp_invoice_refs")


def build_unique_key_check(table: str, key: tuple[str, ...]) -> dg.AssetChecksDefinition:
    columns = ", ".join(quote(c) for c in key)

    @dg.asset_check(
        asset=staging_key(table),
        name=f"{table}_key_is_unique",
        blocking=True,
        pool=WAREHOUSE_POOL,
        description=f"staging.{table} has exactly one row per ({', '.join(key)}) and no null key: "
        f"a duplicate would be counted twice by every match and rule downstream.",
    )
    def _check(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            duplicates = con.execute(
                f"select {columns}, count(*) as copies from staging.{quote(table)} "
                f"group by all having count(*) > 1 order by copies desc limit 10"
            ).fetchall()
            nulls = scalar(
                con,
                f"select count(*) from staging.{quote(table)} where "
                + " or ".join(f"{quote(c)} is null" for c in key),
            )
        table_md = "| key | copies |\n|---|---|\n" + "\n".join(
            f"| {' / '.join(str(v) for v in row[:-1])} | {row[-1]} |" for row in duplicates
        )
        return dg.AssetCheckResult(
            passed=not duplicates and not nulls,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "duplicate_keys": len(duplicates),
                "null_keys": int(nulls or 0),
                "examples": dg.MetadataValue.md(table_md if duplicates else "_(none)_"),
            },
        )

    return _check


def build_row_accounting_check(table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=staging_key(table),
        name=f"{table}_rows_accounted_for",
        blocking=True,
        pool=WAREHOUSE_POOL,
        description=f"Every current raw.{table} row is either in staging.{table} or in audit.rejected_rows "
        f"with a reason: staged = raw - rejected, so no row vanished silently.",
    )
    def _check(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            raw = scalar(
                con,
                f"select count(*) from raw.{quote(table)} as r "
                "join audit.current_loads as c on r._load_id = c.load_id",
            )
            rejected = scalar(
                con,
                "select count(distinct (r.load_id, r.source_row)) from audit.rejected_rows as r "
                "join audit.current_loads as c on r.load_id = c.load_id "
                "where r.table_name = ? and r.stage <> 'read'",
                [table],
            )
            staged = scalar(con, f"select count(*) from staging.{quote(table)}")
        return dg.AssetCheckResult(
            passed=staged == raw - rejected,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "raw_rows": raw,
                "rejected_rows": rejected,
                "staged_rows": staged,
                "unaccounted": raw - rejected - staged,
            },
        )

    return _check


key_checks = [build_unique_key_check(table, key) for table, key in STAGING_KEYS.items()]
row_checks = [build_row_accounting_check(table) for table in ROW_ACCOUNTED]
