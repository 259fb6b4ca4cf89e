"""Checks on the core layer: scope and matching invariants."""

import dagster as dg

from invoice_pipeline.defs.metadata import markdown_table
from invoice_pipeline.defs.resources import WAREHOUSE_POOL, Warehouse
from invoice_pipeline.warehouse import scalar


@dg.asset_check(
    asset=dg.AssetKey(["core", "invoices"]),
    pool=WAREHOUSE_POOL,
    description="Every invoice in the tax sources belongs to one of our entities (by TIN, or by name for a "
    "抬头 error). An invoice of nobody's means the entity register (landing/entities) is incomplete "
    "or a file of another company landed here.",
)
def invoices_belong_to_an_entity(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        orphans = con.execute(
            "select source, invoice_uid, seller_tin, buyer_tin, amount_incl_tax from core.invoices "
            "where entity_tin is null order by amount_incl_tax desc limit 10"
        ).fetchall()
        count = scalar(con, "select count(*) from core.invoices where entity_tin is null")
    return dg.AssetCheckResult(
        passed=not count,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "invoices_without_entity": int(count or 0),
            "examples": dg.MetadataValue.md(
                markdown_table(["source", "invoice", "seller", "buyer", "价税合计"], orphans)
            ),
        },
    )


@dg.asset_check(
    asset=dg.AssetKey(["core", "matches"]),
    pool=WAREHOUSE_POOL,
    blocking=True,
    description="Each invoice number typed into an ERP document or claim links to at most one invoice: a "
    "number matched to two invoices would book one amount twice in every rule downstream.",
)
def each_reference_matches_one_invoice(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        ambiguous = con.execute(
            "select match_side, coalesce(erp_doc_id, claim_no), ref_token, count(distinct invoice_uid) "
            "from core.matches where ref_token is not null group by all "
            "having count(distinct invoice_uid) > 1 limit 10"
        ).fetchall()
    return dg.AssetCheckResult(
        passed=not ambiguous,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "ambiguous_references": len(ambiguous),
            "examples": dg.MetadataValue.md(
                markdown_table(["side", "document", "typed", "invoices"], ambiguous)
            ),
        },
    )
