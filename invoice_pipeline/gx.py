"""Great Expectations suites (`checks/expectations/<table>.json`) run against staged DuckDB tables.

Plain functions, no Dagster: `load_suite` reads a suite, `validate_table` runs the whole suite
in one `validate` call on an ephemeral GX context (progress bars off) and returns one
`ExpectationOutcome` per expectation. GX is imported lazily, inside these functions: the import
costs ~2.7 s and modules under `defs/` are imported by every `dg` command and every run.

Path chosen by measurement: the SQL path with the documented two-function patch
------------------------------------------------------------------------
`bench/gx_paths.py` ran the real `erp` and `tax_platform` suites on a warehouse generated from
200,000 invoices (`invoice-pipeline generate --invoices 200000 --seed 1`, then `run`), each
(table, path) in a fresh process, 3 repetitions, medians, on the project's 2-core machine type:

    table (rows x cols)          path                                 load    validate            peak RSS
    erp (199,305 x 33)           pandas ArrowDtype, HASH_THRESHOLD=0  0.13 s  3.07 s (2.95-3.47)  0.75 GB
    erp                          same, only the suite's 18 columns    0.06 s  2.42 s (2.17-2.45)  0.57 GB
    erp                          SQL + §5.2 patch                     -       0.52 s (0.47-0.63)  0.35 GB
    tax_platform (200,000 x 29)  pandas ArrowDtype, HASH_THRESHOLD=0  0.11 s  2.19 s (2.17-2.26)  0.71 GB
    tax_platform                 same, only the suite's 17 columns    0.05 s  1.82 s (1.70-1.90)  0.54 GB
    tax_platform                 SQL + §5.2 patch                     -       0.56 s (0.55-0.72)  0.35 GB

`validate` includes building the ephemeral context and batch, not the one-off GX import
(~2.5 s per process); RSS includes ~0.3 GB of imports. Load + validate, the SQL path is 4.1x
(tax_platform) to 6.2x (erp) faster than the pandas path, with half its memory (an earlier
run on a busier box: 3.6x and 7.5x). It is also the only path that can run
`unexpected_rows_expectation` (金额 + 税额 = 价税合计 and the other row-wise rules): the pandas
runs had to leave those out (1 in erp, 2 in tax_platform), so their times are a lower bound.
Every unexpected count the two paths could both compute agreed.
All nine suites on that 200k warehouse take ~6 s through the SQL path, ~3 s of it the import.

Costs of the choice, kept small:
- it needs `duckdb-engine` 0.17.0 (+ SQLAlchemy 2.1.9, which Dagster already installs), imported
  lazily too;
- it patches two private GX functions (`apply_duckdb_patch`), so GX is pinned exactly and
  `apply_duckdb_patch` refuses any other version; tests/test_gx.py fails if the patch stops
  applying;
- SQLAlchemy never opens the warehouse file itself: its one pooled connection is a cursor of
  the caller's DuckDB connection (`creator=`), so there is no second connection config in the
  process and no second lock.
"""

from __future__ import annotations

import importlib
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoice_pipeline import project

if TYPE_CHECKING:
    import duckdb
    import great_expectations as gx

SUITES_DIR = project.CHECKS_DIR / "expectations"
# The §5.2 patch replaces private GX functions: any other version must be re-verified first.
GX_VERSION = "1.24.1"
SAMPLE_SIZE = 5

# GX modules that bind get_dialect_regex_expression by name at import time.
_REGEX_MODULES = (
    "column_map_metrics.column_values_match_regex",
    "column_map_metrics.column_values_not_match_regex",
    "column_map_metrics.column_values_match_regex_list",
    "column_map_metrics.column_values_not_match_regex_list",
    "column_aggregate_metrics.column_values_match_regex_values",
    "column_aggregate_metrics.column_values_not_match_regex_values",
)


class GXPatchError(RuntimeError):
    """The DuckDB patch cannot be applied to the installed Great Expectations."""


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation of a suite, validated."""

    type: str
    column: str
    success: bool
    unexpected_count: int | None
    severity: str
    unexpected_sample: tuple[str, ...] = ()
    observed: Any = None
    error: str | None = None


@dataclass(frozen=True)
class SuiteOutcome:
    """A whole suite validated against one table."""

    table: str
    row_count: int
    outcomes: tuple[ExpectationOutcome, ...] = field(default_factory=tuple)

    @property
    def failed(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.success)

    @property
    def critical_failures(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(o for o in self.failed if o.severity == "critical")

    @property
    def success(self) -> bool:
        return not self.failed


def suite_path(table: str) -> Path:
    return SUITES_DIR / f"{table}.json"


def suite_tables() -> list[str]:
    """Tables that have a suite, by file stem."""
    return sorted(path.stem for path in SUITES_DIR.glob("*.json"))


def read_suite(table: str) -> dict[str, Any]:
    """The suite as plain JSON (no GX import): name, expectations[{type, kwargs, meta, severity}]."""
    return json.loads(suite_path(table).read_text(encoding="utf-8"))


def load_suite(table: str) -> gx.ExpectationSuite:
    """The suite as a GX ExpectationSuite (imports GX; raises if any expectation is invalid)."""
    import great_expectations as gx

    return gx.ExpectationSuite(**read_suite(table))


def _execute_query_buffered(self, query):
    """SqlAlchemyExecutionEngine.execute_query, but the rows are fetched before the connection
    goes back to the pool: duckdb-engine's cursor *is* the connection, so the original returns
    a result whose rows are gone (GX #10738 / #11579: IndexError on every expectation)."""
    with self.get_connection() as connection:
        result = self._execute_query_with_recovery(connection, query)
        return result.freeze()() if result.returns_rows else result


def _make_regex_expression(original):
    import sqlalchemy as sa

    def get_dialect_regex_expression(column, regex, dialect, positive=True):
        # DuckDB is not a dialect GX knows; regexp_matches has re.search semantics like the others.
        if getattr(dialect, "name", None) == "duckdb":
            expression = sa.func.regexp_matches(column, sa.literal(regex))
            return expression if positive else sa.not_(expression)
        return original(column, regex, dialect, positive)

    get_dialect_regex_expression._invoice_pipeline_patch = True
    return get_dialect_regex_expression


def _regex_modules() -> list[Any]:
    return [importlib.import_module(f"great_expectations.expectations.metrics.{m}") for m in _REGEX_MODULES]


def apply_duckdb_patch() -> None:
    """Make GX's SQL engine work on DuckDB (idempotent). Fails loudly on any other GX version."""
    import great_expectations as gx

    if gx.__version__ != GX_VERSION:
        raise GXPatchError(
            f"great_expectations {gx.__version__} is installed; the DuckDB patch in invoice_pipeline/gx.py "
            f"is verified for {GX_VERSION} only — re-verify it (tests/test_gx.py) and update GX_VERSION"
        )
    import great_expectations.execution_engine.sqlalchemy_execution_engine as sae
    import great_expectations.expectations.metrics.util as gx_util

    engine = sae.SqlAlchemyExecutionEngine
    for name in ("execute_query", "get_connection", "_execute_query_with_recovery"):
        if not callable(getattr(engine, name, None)):
            raise GXPatchError(f"SqlAlchemyExecutionEngine.{name} is gone: the DuckDB patch does not apply")
    modules = _regex_modules()
    for module in [gx_util, *modules]:
        if not callable(getattr(module, "get_dialect_regex_expression", None)):
            raise GXPatchError(
                f"{module.__name__}.get_dialect_regex_expression is gone: the patch does not apply"
            )
    current = gx_util.get_dialect_regex_expression
    regex = current if getattr(current, "_invoice_pipeline_patch", False) else _make_regex_expression(current)
    engine.execute_query = _execute_query_buffered
    for module in [gx_util, *modules]:
        module.get_dialect_regex_expression = regex


def patch_is_applied() -> bool:
    """Whether every function the patch replaces is the patched one."""
    import great_expectations.execution_engine.sqlalchemy_execution_engine as sae
    import great_expectations.expectations.metrics.util as gx_util

    return sae.SqlAlchemyExecutionEngine.execute_query is _execute_query_buffered and all(
        getattr(module.get_dialect_regex_expression, "_invoice_pipeline_patch", False)
        for module in [gx_util, *_regex_modules()]
    )


def ephemeral_context() -> gx.data_context.AbstractDataContext:
    """A throw-away GX context: nothing written to disk, no progress bars."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def validate_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    schema: str = "staging",
    suite: dict[str, Any] | None = None,
) -> SuiteOutcome:
    """Validate `<schema>.<table>` against its suite (or `suite`), through the caller's connection.

    GX's SQLAlchemy engine gets a cursor of `con` as its only connection, so the warehouse is
    read with the connection's own config and lock.
    """
    import duckdb_engine
    import great_expectations as gx
    import sqlalchemy as sa

    apply_duckdb_patch()
    suite_dict = suite if suite is not None else read_suite(table)
    # Ids let results be reported in the suite's (reviewed) order: GX puts table-level ones first.
    ids = [str(uuid.uuid4()) for _ in suite_dict["expectations"]]
    expectations = [{**e, "id": i} for e, i in zip(suite_dict["expectations"], ids, strict=True)]
    gx_suite = gx.ExpectationSuite(**{**suite_dict, "expectations": expectations})
    row_count = con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]

    def connect() -> duckdb_engine.ConnectionWrapper:
        cursor = con.cursor()
        cursor.execute(f'use "{schema}"')
        return duckdb_engine.ConnectionWrapper(cursor)

    context = ephemeral_context()
    datasource = context.data_sources.add_sql(
        "warehouse",
        connection_string="duckdb:///:memory:",  # only names the dialect: connections come from creator
        kwargs={"creator": connect, "poolclass": sa.pool.StaticPool},
    )
    try:
        batch = (
            datasource.add_table_asset(table, table_name=table)
            .add_batch_definition_whole_table("whole table")
            .get_batch()
        )
        results = batch.validate(gx_suite, result_format="SUMMARY")
    finally:  # close the cursors GX holds (one for the datasource, one for its execution engine)
        datasource.get_execution_engine().engine.dispose()
        datasource.get_engine().dispose()
    order = {expectation_id: i for i, expectation_id in enumerate(ids)}
    ordered = sorted(results.results, key=lambda r: order.get(r.expectation_config.id, len(order)))
    outcomes = tuple(_outcome(con, schema, table, result) for result in ordered)
    return SuiteOutcome(table=table, row_count=int(row_count), outcomes=outcomes)


def _outcome(con: duckdb.DuckDBPyConnection, schema: str, table: str, result: Any) -> ExpectationOutcome:
    config = result.expectation_config
    kwargs = config.kwargs
    meta = config.meta or {}
    details = result.result or {}
    severity = getattr(config.severity, "value", config.severity) or "critical"
    exception = result.exception_info or {}
    error = None
    if exception.get("raised_exception"):
        error = str(exception.get("exception_message") or "expectation raised an exception").splitlines()[0]
    else:  # GX nests metric errors one level down, keyed by metric id
        for value in exception.values():
            if isinstance(value, dict) and value.get("raised_exception"):
                error = str(value.get("exception_message") or "metric raised an exception").splitlines()[0]
                break
    observed = details.get("observed_value")
    count = details.get("unexpected_count")
    sample: tuple[str, ...] = ()
    if config.type == "unexpected_rows_expectation":
        count = observed
        if not result.success and error is None and observed:
            sample = _unexpected_rows_sample(con, schema, table, kwargs["unexpected_rows_query"])
    elif details.get("partial_unexpected_list"):
        sample = tuple(dict.fromkeys(_short(v) for v in details["partial_unexpected_list"]))[:SAMPLE_SIZE]
    return ExpectationOutcome(
        type=config.type,
        column=_column_label(kwargs, meta),
        success=bool(result.success) and error is None,
        unexpected_count=int(count) if count is not None else None,
        severity=str(severity),
        unexpected_sample=sample,
        observed=None if config.type == "unexpected_rows_expectation" else observed,
        error=error,
    )


def _column_label(kwargs: dict[str, Any], meta: dict[str, Any]) -> str:
    if meta.get("label"):
        return str(meta["label"])
    if kwargs.get("column"):
        return str(kwargs["column"])
    if kwargs.get("column_list"):
        return ", ".join(kwargs["column_list"])
    if kwargs.get("column_A"):
        return f"{kwargs['column_A']}, {kwargs['column_B']}"
    return ""


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "/".join(str(v) for v in value.values())
    return str(value)


def _unexpected_rows_sample(
    con: duckdb.DuckDBPyConnection, schema: str, table: str, query: str
) -> tuple[str, ...]:
    """The first rows an unexpected_rows_expectation found (GX's SUMMARY format only counts them)."""
    sql = query.replace("{batch}", f'"{schema}"."{table}"')
    rows = con.execute(f"select * from ({sql}) limit {SAMPLE_SIZE}").fetchall()
    return tuple(" / ".join(str(v) for v in row) for row in rows)


def markdown_table(outcome: SuiteOutcome) -> str:
    """One row per expectation: what a reviewer reads in the Dagster UI."""
    lines = [
        "| expectation | column | ok | unexpected | severity | sample of unexpected values |",
        "|---|---|---|---|---|---|",
    ]
    for o in outcome.outcomes:
        ok = "✅" if o.success else "❌"
        count = "" if o.unexpected_count is None else str(o.unexpected_count)
        sample = o.error if o.error else ", ".join(o.unexpected_sample)
        if not sample and o.observed is not None:
            sample = f"observed: {o.observed}"
        lines.append(f"| {o.type} | {_cell(o.column)} | {ok} | {count} | {o.severity} | {_cell(sample)} |")
    return "\n".join(lines)


def _cell(text: str) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 160 else text[:157] + "…"
