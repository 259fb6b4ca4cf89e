"""The nightly backup of the warehouse (SPEC §2 `backups/`, §4.3 `audit.backups`)."""

import os

import dagster as dg

from invoice_pipeline.backup import apply_retention, create_backup, record_backup, verify_backup
from invoice_pipeline.defs.audit.alerts import ALERTS_KEY
from invoice_pipeline.defs.audit.findings import FINDINGS_KEY
from invoice_pipeline.defs.reports.analytics import ANALYTICS_DB_KEY
from invoice_pipeline.defs.resources import WAREHOUSE_POOL, Warehouse

DAILY_ENV = "INVOICE_PIPELINE_BACKUP_DAILY"
MONTHLY_ENV = "INVOICE_PIPELINE_BACKUP_MONTHLY"


class BackupConfig(dg.Config):
    """Retention. Empty (0) means `$INVOICE_PIPELINE_BACKUP_DAILY` / `_MONTHLY`, else 7 / 12."""

    daily: int = 0
    monthly: int = 0

    def retention(self) -> tuple[int, int]:
        daily = self.daily or int(os.environ.get(DAILY_ENV) or 7)
        monthly = self.monthly or int(os.environ.get(MONTHLY_ENV) or 12)
        return daily, monthly


@dg.asset(
    key=dg.AssetKey(["ops", "warehouse_backup"]),
    deps=[FINDINGS_KEY, ALERTS_KEY, ANALYTICS_DB_KEY],
    group_name="ops",
    kinds={"duckdb", "parquet"},
    pool=WAREHOUSE_POOL,
)
def warehouse_backup(
    context: dg.AssetExecutionContext, config: BackupConfig, warehouse: Warehouse
) -> dg.MaterializeResult:
    """`backups/<YYYYMMDDTHHMMSSZ>/`: a verified copy of the whole warehouse, made after each run.

    Grain: one backup folder per materialization — the warehouse exported by DuckDB (every schema,
    one Parquet file per table, plus `schema.sql`/`load.sql`) and `manifest.json` with every
    file's SHA-256 and every table's row count. Each backup is verified — every file's SHA-256
    against the manifest, every table's Parquet footer row count against the manifest (the full
    re-import is `invoice-pipeline verify-backup`) — and recorded in `audit.backups` (one row
    per backup: path, size, checksum, verified, problems). The run fails if the backup does not
    verify.

    Retention then deletes old backups, keeping the newest of each of the last 7 days and the
    newest of each of the last 12 months (and always the newest). Change the counts with the
    asset's config (`daily`, `monthly`) or `INVOICE_PIPELINE_BACKUP_DAILY` /
    `INVOICE_PIPELINE_BACKUP_MONTHLY`. Restore with `invoice-pipeline restore PATH`.
    """
    daily, monthly = config.retention()
    with warehouse.connect() as con:
        path = create_backup(con, warehouse.root)
        result = verify_backup(path, full=False)
        record_backup(con, path, result)
    if not result.ok:
        raise dg.Failure(
            description=f"backup {path.name} does not verify: {'; '.join(result.problems)}",
            metadata={"path": dg.MetadataValue.path(str(path))},
        )
    removed = apply_retention(warehouse.root, daily=daily, monthly=monthly)
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    context.log.info(f"backup {path} verified; retention removed {len(removed)} old backup(s)")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "size_bytes": size,
            "tables": len(result.tables),
            "rows": sum(result.tables.values()),
            "verified": result.ok,
            "retention": f"{daily} daily, {monthly} monthly",
            "removed_backups": dg.MetadataValue.md(
                "\n".join(f"- {p.name}" for p in removed) if removed else "_(none)_"
            ),
        }
    )
