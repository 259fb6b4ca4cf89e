"""Core: one asset per SQL model in `assets/models/<schema>/<table>.sql`."""

import dagster as dg

from invoice_pipeline.defs.metadata import table_metadata
from invoice_pipeline.defs.resources import WAREHOUSE_POOL, RunSettings, Warehouse
from invoice_pipeline.layers import Model, build_model, discover_models
from invoice_pipeline.project import MODELS_DIR

# Dagster groups (SPEC §5) by warehouse schema.
GROUP_OF_SCHEMA = {"core": "core", "audit": "audit", "report": "reports"}


# Relations written by an asset of another name: the audit tables the ledger and loads own.
PRODUCED_BY = {
    ("audit", "finding_events"): dg.AssetKey(["audit", "findings"]),
    # The view over the ledger and people's actions (written by `annotate`, not by an asset).
    ("audit", "finding_status"): dg.AssetKey(["audit", "findings"]),
    ("audit", "finding_actions"): dg.AssetKey(["audit", "findings"]),
    ("audit", "file_loads"): dg.AssetKey(["audit", "load_log"]),
    ("audit", "rejected_rows"): dg.AssetKey(["audit", "load_log"]),
    ("audit", "current_loads"): dg.AssetKey(["audit", "load_log"]),
}


def build_model_asset(model: Model, known: set[dg.AssetKey]) -> dg.AssetsDefinition:
    keys = {PRODUCED_BY.get((s, t), dg.AssetKey([s, t])) for s, t in model.depends_on}
    deps = sorted((key for key in keys if key in known), key=lambda k: k.to_user_string())

    @dg.asset(
        key=dg.AssetKey([model.schema, model.table]),
        deps=deps,
        group_name=GROUP_OF_SCHEMA[model.schema],
        description=model.description,
        kinds={"duckdb", "sql"},
        pool=WAREHOUSE_POOL,
        metadata={"sql_file": str(model.path.relative_to(MODELS_DIR.parent.parent))},
    )
    def _model(warehouse: Warehouse, settings: RunSettings) -> dg.MaterializeResult:
        with warehouse.connect() as con:
            build_model(con, model, settings.as_of_instant())
            return dg.MaterializeResult(metadata=table_metadata(con, model.schema, model.table))

    return _model


def known_upstream_keys() -> set[dg.AssetKey]:
    from invoice_pipeline.defs.ingest.assets import raw_key
    from invoice_pipeline.defs.staging.assets import staging_key
    from invoice_pipeline.layers import STAGING_TABLES
    from invoice_pipeline.specs import load_specs

    keys = {raw_key(t) for spec in load_specs().values() for t in spec.tables}
    keys |= {staging_key(t) for tables in STAGING_TABLES.values() for t in tables}
    keys |= {dg.AssetKey(["audit", t]) for t in ("findings", "runs", "load_log", "alerts")}
    return keys


_MODELS = discover_models(MODELS_DIR)
_KNOWN = known_upstream_keys() | {dg.AssetKey([m.schema, m.table]) for m in _MODELS}
model_assets = [build_model_asset(model, _KNOWN) for model in _MODELS]
