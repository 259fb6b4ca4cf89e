"""Audit: the findings ledger, the run log, and one asset check per rule family."""

import json

import dagster as dg

from invoice_pipeline.defs.metadata import markdown_table, table_metadata
from invoice_pipeline.defs.resources import WAREHOUSE_POOL, RunSettings, Warehouse
from invoice_pipeline.findings import load_rules, merge_findings
from invoice_pipeline.warehouse import row_count, scalar

FINDINGS_KEY = dg.AssetKey(["audit", "findings"])
RUNS_KEY = dg.AssetKey(["audit", "runs"])
_RULE_INPUTS = [
    dg.AssetKey(["core", "authoritative_invoices"]),
    dg.AssetKey(["core", "matches"]),
    dg.AssetKey(["core", "invoices"]),
    dg.AssetKey(["core", "invoice_lines"]),
    dg.AssetKey(["staging", "erp"]),
    dg.AssetKey(["staging", "erp_invoice_refs"]),
    dg.AssetKey(["staging", "reimbursement"]),
    dg.AssetKey(["staging", "sync_log"]),
    dg.AssetKey(["audit", "sync_health"]),
    dg.AssetKey(["staging", "entities"]),
    dg.AssetKey(["audit", "load_log"]),
]
FAMILIES = sorted({rule.family for rule in load_rules().values()})


def _family_check_specs() -> list[dg.AssetCheckSpec]:
    rules = load_rules()
    return [
        dg.AssetCheckSpec(
            f"{family}_rules",
            asset=FINDINGS_KEY,
            description="Open findings (accepted risks counted apart, not failing the check) of: "
            + "; ".join(
                f"{r.rule_id} ({r.severity}): {r.description}" for r in rules.values() if r.family == family
            ),
        )
        for family in FAMILIES
    ]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            FINDINGS_KEY,
            deps=_RULE_INPUTS,
            description=(
                "The ledger of every gap and inconsistency (SPEC §4.1): one row per problem, kept across "
                "runs with first_seen_at, last_seen_at, resolved_at and status open/resolved. Every rule of "
                "checks/rules.yaml runs as checks/sql/<rule_id>.sql; audit.<rule_id> is a typed view of its "
                "open findings and audit.finding_events the history of openings, resolutions and reopenings. "
                "audit.finding_status adds people's actions (audit.finding_actions) and the state every "
                "count uses: open, accepted (an accepted_risk in force: counted apart) or resolved."
            ),
            kinds={"duckdb", "sql"},
            metadata={"dagster/table_name": "audit.findings"},
        ),
        dg.AssetSpec(
            RUNS_KEY,
            deps=[FINDINGS_KEY],
            description="One row per pipeline run: when, the as-of date, rows per layer, findings open "
            "(accepted risks not counted), accepted, opened, reopened and resolved.",
            kinds={"duckdb"},
            metadata={"dagster/table_name": "audit.runs"},
        ),
    ],
    check_specs=_family_check_specs(),
    group_name="audit",
    pool=WAREHOUSE_POOL,
)
def findings(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: RunSettings):
    """Evaluate every rule and merge the results into audit.findings; log the run in audit.runs."""
    at = settings.as_of_instant()
    rules = load_rules()
    with warehouse.connect() as con:
        result = merge_findings(con, context.run.run_id, at, rules)
        layer_rows = {
            f"{schema}.{table}": row_count(con, schema, table)
            for schema, table in con.execute(
                "select schema_name, table_name from duckdb_tables() "
                "where schema_name in ('raw', 'staging', 'core') order by all"
            ).fetchall()
        }
        con.execute(
            "insert or replace into audit.runs (run_id, started_at, evaluated_at, as_of, layer_rows, "
            "findings_open, findings_opened, findings_reopened, findings_resolved, findings_accepted) "
            "values (?, now(), ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                context.run.run_id,
                at,
                settings.as_of or None,
                json.dumps(layer_rows),
                result.open,
                result.opened,
                result.reopened,
                result.resolved,
                result.accepted,
            ],
        )
        family_rows = {}
        for family in FAMILIES:
            ids = [r.rule_id for r in rules.values() if r.family == family]
            family_rows[family] = (
                con.execute(
                    "select rule_id, severity, count(*) as open_findings, sum(amount) as money_at_stake "
                    "from audit.finding_status where state = 'open' and rule_id in (select unnest(?)) "
                    "group by rule_id, severity order by rule_id",
                    [ids],
                ).fetchall(),
                con.sql(
                    "select rule_id, subject, entity_tin, period, amount from audit.finding_status "
                    "where state = 'open' and rule_id in (select unnest($ids)) "
                    "order by amount desc nulls last, rule_id, subject limit 10",
                    params={"ids": ids},
                ).fetchall(),
                int(
                    scalar(
                        con,
                        "select count(*) from audit.finding_status where state = 'accepted' "
                        "and rule_id in (select unnest(?))",
                        [ids],
                    )
                    or 0
                ),
            )
        total_money = scalar(con, "select sum(amount) from audit.finding_status where state = 'open'")
        findings_table = table_metadata(con, "audit", "findings")
        runs_table = table_metadata(con, "audit", "runs")
    yield dg.MaterializeResult(
        asset_key=FINDINGS_KEY,
        metadata={
            **findings_table,
            "findings_open": result.open,
            "findings_opened": result.opened,
            "findings_reopened": result.reopened,
            "findings_resolved": result.resolved,
            "findings_accepted": result.accepted,
            "money_at_stake": float(total_money or 0),
            "open_by_rule": dg.MetadataValue.md(
                markdown_table(["rule", "open"], sorted(result.by_rule.items()))
            ),
        },
    )
    yield dg.MaterializeResult(asset_key=RUNS_KEY, metadata={**runs_table, "as_of": settings.as_of or "now"})
    for family in FAMILIES:
        counts, worst, accepted = family_rows[family]
        errors = sum(n for _, severity, n, _ in counts if severity == "error")
        yield dg.AssetCheckResult(
            asset_key=FINDINGS_KEY,
            check_name=f"{family}_rules",
            passed=not counts,
            severity=dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN,
            metadata={
                "open_findings": sum(n for _, _, n, _ in counts),
                "accepted_findings": accepted,
                "money_at_stake": float(sum((m or 0) for *_, m in counts)),
                "by_rule": dg.MetadataValue.md(
                    markdown_table(
                        ["rule", "severity", "open", "money at stake (元)"],
                        [(r, s, n, f"{m:,.2f}" if m is not None else "") for r, s, n, m in counts],
                    )
                ),
                "worst_offenders": dg.MetadataValue.md(
                    markdown_table(
                        ["rule", "subject", "entity", "period", "amount (元)"],
                        [(r, s, e, p, f"{a:,.2f}" if a is not None else "") for r, s, e, p, a in worst],
                    )
                ),
            },
        )
