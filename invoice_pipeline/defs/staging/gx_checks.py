"""Great Expectations suites on every staged table, as Dagster asset checks.

One check per staging table, `<table>_expectations`, running `checks/expectations/<table>.json`
through `invoice_pipeline.gx` (GX itself is imported only when a check runs). A failed
`critical` expectation (null or duplicate key, malformed invoice id) fails the check with
ERROR severity and blocks everything downstream in the run; failed `warning` expectations
fail it with WARN, which never blocks: staging deliberately keeps
unusual-but-real rows, and the rules in checks/sql report them.
"""

import dagster as dg

from invoice_pipeline import gx
from invoice_pipeline.defs.resources import WAREHOUSE_POOL, Warehouse
from invoice_pipeline.defs.staging.assets import staging_key
from invoice_pipeline.layers import STAGING_TABLES

_KINDS = {
    "expect_column_values_to_not_be_null": "not null",
    "expect_column_values_to_be_unique": "unique",
    "expect_compound_columns_to_be_unique": "unique",
    "expect_column_values_to_match_regex": "format",
    "expect_column_values_to_be_in_set": "value set",
    "expect_column_values_to_be_between": "range",
    "expect_column_pair_values_a_to_be_greater_than_b": "order",
    "expect_table_row_count_to_be_between": "row count",
    "unexpected_rows_expectation": "row rule",
}


def describe_suite(table: str) -> str:
    """What the suite checks, from its JSON (no GX import at definition time)."""
    expectations = gx.read_suite(table)["expectations"]
    by_severity: dict[str, dict[str, list[str]]] = {}
    for e in expectations:
        kw = e["kwargs"]
        label = (e.get("meta") or {}).get("label") or kw.get("column") or "/".join(kw.get("column_list", []))
        if e["type"] == "expect_table_row_count_to_be_between":
            label = f">= {kw.get('min_value')}"
        elif "column_A" in kw:
            label = f"{kw['column_A']} >= {kw['column_B']}"
        kinds = by_severity.setdefault(e.get("severity", "critical"), {})
        kinds.setdefault(_KINDS.get(e["type"], e["type"]), []).append(label)

    def summary(severity: str) -> str:
        kinds = by_severity.get(severity, {})
        return "; ".join(f"{kind} {', '.join(dict.fromkeys(labels))}" for kind, labels in kinds.items())

    return (
        f"Great Expectations suite checks/expectations/{table}.json ({len(expectations)} expectations) on "
        f"staging.{table}. Critical — fails with ERROR and blocks downstream: "
        f"{summary('critical') or 'none'}. "
        f"Warning — reported with WARN, never blocks (staging keeps unusual-but-real rows): "
        f"{summary('warning') or 'none'}."
    )


def build_expectations_check(table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=staging_key(table),
        name=f"{table}_expectations",
        blocking=True,
        pool=WAREHOUSE_POOL,
        description=describe_suite(table),
    )
    def _check(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            outcome = gx.validate_table(con, table)
        return check_result(outcome)

    return _check


def check_result(outcome: gx.SuiteOutcome) -> dg.AssetCheckResult:
    critical = outcome.critical_failures
    return dg.AssetCheckResult(
        passed=outcome.success,
        severity=dg.AssetCheckSeverity.ERROR if critical else dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(critical)} critical and {len(outcome.failed) - len(critical)} warning expectation(s) "
            f"failed of {len(outcome.outcomes)}"
        ),
        metadata={
            "failed": len(outcome.failed),
            "critical_failed": len(critical),
            "expectations": len(outcome.outcomes),
            "dagster/row_count": outcome.row_count,
            "results": dg.MetadataValue.md(gx.markdown_table(outcome)),
        },
    )


expectation_checks = [
    build_expectations_check(table)
    for tables in STAGING_TABLES.values()
    for table in tables
    if gx.suite_path(table).is_file()
]
