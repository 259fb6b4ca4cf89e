"""Checks on the raw layer: every landed file of a source could be read completely."""

import dagster as dg

from invoice_pipeline.defs.ingest.assets import raw_key
from invoice_pipeline.defs.metadata import markdown_table
from invoice_pipeline.defs.resources import WAREHOUSE_POOL, Warehouse
from invoice_pipeline.specs import SourceSpec, load_specs


def build_files_check(spec: SourceSpec) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=raw_key(spec.main_table.name),
        name=f"{spec.name}_files_read_completely",
        pool=WAREHOUSE_POOL,
        description=f"Every landed {spec.name} file was loaded: none quarantined, no row unreadable on read, "
        f"and every 合计行 control total held. Not blocking — the rest of the load is good — but "
        f"each listed file needs a person.",
    )
    def _check(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            problems = con.execute(
                "select file_name, status, coalesce(reason, case when control_total_ok = false "
                "then 'rows do not add up to the 合计行' else rows_rejected || ' rows rejected' end) "
                "from audit.load_log where source = ? and (status = 'quarantined' "
                "or control_total_ok = false or (is_current and rows_rejected > 0)) order by file_name",
                [spec.name],
            ).fetchall()
        quarantined = sum(1 for _, status, _ in problems if status == "quarantined")
        return dg.AssetCheckResult(
            passed=not problems,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "files_quarantined": quarantined,
                "files_with_problems": len(problems),
                "files": dg.MetadataValue.md(markdown_table(["file", "status", "why"], problems)),
            },
        )

    return _check


file_checks = [build_files_check(spec) for spec in load_specs().values()]
