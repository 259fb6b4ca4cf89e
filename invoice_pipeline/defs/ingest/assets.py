"""Ingest: landing files -> `raw.<table>`, one multi-asset per source spec."""

import dagster as dg

from invoice_pipeline.defs.metadata import table_metadata
from invoice_pipeline.defs.resources import WAREHOUSE_POOL, Warehouse
from invoice_pipeline.ingest import ingest_source
from invoice_pipeline.specs import SourceSpec, load_specs


def raw_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", table])


def build_ingest_asset(spec: SourceSpec) -> dg.AssetsDefinition:
    specs = [
        dg.AssetSpec(
            raw_key(table.name),
            description=(
                f"{spec.description} Every value exactly as landed (text), plus lineage "
                f"(_load_id, _source_file, _source_row) and unknown columns in _extra. "
                f"Grain: {table.grain}; all loads kept, audit.current_loads says which are current."
            ),
            kinds={"duckdb", "polars"},
            metadata={
                "dagster/table_name": f"raw.{table.name}",
                "landing": f"landing/{spec.landing}",
                "file_globs": ", ".join(spec.globs),
            },
        )
        for table in spec.tables.values()
    ]

    @dg.multi_asset(name=f"ingest_{spec.name}", specs=specs, group_name="ingest", pool=WAREHOUSE_POOL)
    def _ingest(context: dg.AssetExecutionContext, warehouse: Warehouse):
        with warehouse.connect() as con:
            summary = ingest_source(con, warehouse.landing, spec)
            tables = {table: table_metadata(con, "raw", table) for table in spec.tables}
        for name in summary.quarantined:
            context.log.warning(f"{spec.name}: quarantined {name}: {summary.quarantined[name]}")
        for table in spec.tables.values():
            yield dg.MaterializeResult(
                asset_key=raw_key(table.name),
                metadata={
                    **tables[table.name],
                    "rows_added": summary.rows_read.get(table.name, 0),
                    "files_loaded": len(summary.loaded),
                    "files_unchanged": summary.unchanged,
                    "files_skipped_duplicate": len(summary.skipped_duplicate),
                    "files_quarantined": len(summary.quarantined),
                    "rows_rejected_on_read": summary.rows_rejected,
                },
            )

    _ingest.__doc__ = f"Load new landing files of source `{spec.name}` into its raw tables."
    return _ingest


ingest_assets = [build_ingest_asset(spec) for spec in load_specs().values()]
