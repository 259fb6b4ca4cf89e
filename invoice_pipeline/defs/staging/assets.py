"""Staging: raw text -> typed canonical rows (SPEC §4), one multi-asset per source."""

import dagster as dg

from invoice_pipeline.defs.ingest.assets import raw_key
from invoice_pipeline.defs.metadata import table_metadata
from invoice_pipeline.defs.resources import WAREHOUSE_POOL, Warehouse
from invoice_pipeline.layers import NEEDS_ENTITIES, STAGING_TABLES, stage, write_staged
from invoice_pipeline.specs import SourceSpec, load_specs

GRAIN = {
    "entities": "one row per entity TIN",
    "tax_platform": "one row per invoice of the platform export (newest load wins)",
    "tax_platform_lines": "one row per invoice line of the platform export",
    "einvoice": "one row per invoice per file format (xml, ofd)",
    "einvoice_lines": "one row per line of an XML or OFD invoice",
    "erp": "one row per ERP document (组织 + 单据编号)",
    "erp_invoice_refs": "one row per invoice number typed into an ERP document",
    "reimbursement": "one row per invoice attached to a claim (报销单号 + 发票号码)",
    "sync_log": "one row per sync-job run",
}


def staging_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["staging", table])


def build_staging_asset(spec: SourceSpec) -> dg.AssetsDefinition:
    deps = [raw_key(table) for table in spec.tables]
    if spec.name in NEEDS_ENTITIES:
        deps.append(staging_key("entities"))
    specs = [
        dg.AssetSpec(
            staging_key(table),
            deps=deps,
            description=(
                f"{spec.description} Typed and normalised: identifiers as text, money DECIMAL(18,2), "
                f"dates as DATE; rows that cannot be parsed are in audit.rejected_rows with the reason. "
                f"Grain: {GRAIN[table]}."
            ),
            kinds={"duckdb", "polars"},
            metadata={"dagster/table_name": f"staging.{table}"},
        )
        for table in STAGING_TABLES[spec.name]
    ]

    @dg.multi_asset(name=f"stage_{spec.name}", specs=specs, group_name="staging", pool=WAREHOUSE_POOL)
    def _stage(context: dg.AssetExecutionContext, warehouse: Warehouse):
        with warehouse.connect() as con:
            staged = stage(con, spec)
            counts = write_staged(con, spec.name, staged)
            for table in STAGING_TABLES[spec.name]:
                rejected = staged[table].rejects.height
                if rejected:
                    context.log.warning(
                        f"staging.{table}: {rejected} rejected value(s), see audit.rejected_rows"
                    )
                yield dg.MaterializeResult(
                    asset_key=staging_key(table),
                    metadata={
                        **table_metadata(con, "staging", table),
                        "dagster/row_count": counts[table],
                        "rejects": rejected,
                    },
                )

    _stage.__doc__ = f"Type and normalise the current raw rows of source `{spec.name}`."
    return _stage


staging_assets = [build_staging_asset(spec) for spec in load_specs().values()]
