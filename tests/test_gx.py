"""Great Expectations suites on staging: valid GX, pass on generated data, fail on doctored rows.

One generated sample (500 invoices, seed 7) is run through the whole pipeline once per module
and only read; every test that changes rows works on its own copy of the warehouse file.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from invoice_pipeline import gx, project
from invoice_pipeline.cli import run_pipeline
from invoice_pipeline.defs.resources import WAREHOUSE_POOL, Warehouse
from invoice_pipeline.defs.staging.gx_checks import expectation_checks
from invoice_pipeline.generate import generate
from invoice_pipeline.layers import STAGING_TABLES

TABLES = [table for tables in STAGING_TABLES.values() for table in tables]
ARITHMETIC = "amount_excl_tax + tax_amount = amount_incl_tax"
TIN_COLUMNS = {"tin", "entity_tin", "seller_tin", "buyer_tin", "counterparty_tin"}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("gx_sample")
    truth = generate(root, invoices=500, seed=7)
    # run_pipeline points $INVOICE_PIPELINE_DATA_DIR at the sample, and uses $DAGSTER_HOME's
    # instance when set: keep both to this fixture (ephemeral instance).
    with pytest.MonkeyPatch.context() as env:
        env.delenv("DAGSTER_HOME", raising=False)
        env.setenv(project.DATA_DIR_ENV, str(root))
        run_pipeline(root, "2026-11-01")
    return root, truth


@pytest.fixture(scope="module")
def sample_outcomes(sample) -> dict[str, gx.SuiteOutcome]:
    root, _ = sample
    with Warehouse(data_dir=str(root)).connect() as con:
        return {table: gx.validate_table(con, table) for table in TABLES}


@pytest.fixture
def doctored_dir(sample, tmp_path: Path) -> Path:
    """A private copy of the sample's warehouse, for tests that change rows."""
    root, _ = sample
    target = project.warehouse_path(tmp_path)
    target.parent.mkdir(parents=True)
    shutil.copy(project.warehouse_path(root), target)
    return tmp_path


def by_key(outcome: gx.SuiteOutcome) -> dict[tuple[str, str], gx.ExpectationOutcome]:
    return {(o.type, o.column): o for o in outcome.outcomes}


def failed(outcome: gx.SuiteOutcome) -> dict[tuple[str, str], int | None]:
    return {(o.type, o.column): o.unexpected_count for o in outcome.failed}


def test_every_staging_table_has_a_valid_gx_suite(sample):
    root, _ = sample
    assert sorted(TABLES) == gx.suite_tables()
    with Warehouse(data_dir=str(root)).connect() as con:
        for table in TABLES:
            raw = gx.read_suite(table)
            assert set(raw) <= {"name", "expectations", "meta", "notes"}, table
            assert raw["name"] == table
            suite = gx.load_suite(table)  # GX validates every expectation's kwargs
            assert len(suite.expectations) == len(raw["expectations"])
            assert {e["severity"] for e in raw["expectations"]} <= {"critical", "warning"}
            assert any(e["severity"] == "critical" for e in raw["expectations"]), table
            assert all(e["meta"].get("why") for e in raw["expectations"]), table
            columns = {row[0] for row in con.execute(f"describe staging.{table}").fetchall()}
            for e in raw["expectations"]:
                kw = e["kwargs"]
                named = [kw.get("column"), kw.get("column_A"), kw.get("column_B"), *kw.get("column_list", [])]
                assert {c for c in named if c} <= columns, (table, e)


def test_critical_only_guards_keys_and_invoice_ids():
    allowed = {
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_unique",
        "expect_compound_columns_to_be_unique",
        "expect_column_values_to_match_regex",
    }
    for table in TABLES:
        for e in gx.read_suite(table)["expectations"]:
            if e["severity"] == "critical":
                assert e["type"] in allowed, (table, e)
                if e["type"] == "expect_column_values_to_match_regex":
                    assert e["kwargs"]["column"] == "invoice_uid" and "mostly" not in e["kwargs"], (table, e)


def test_duckdb_patch_applies_idempotently_and_makes_the_sql_path_work():
    """Fails if the documented two-function patch stops applying to the pinned GX."""
    gx.apply_duckdb_patch()
    gx.apply_duckdb_patch()
    assert gx.patch_is_applied()
    suite = {
        "name": "probe",
        "expectations": [
            {
                "type": "expect_column_values_to_not_be_null",
                "severity": "critical",
                "kwargs": {"column": "uid"},
            },
            {
                "type": "expect_column_values_to_match_regex",
                "severity": "critical",
                "kwargs": {"column": "uid", "regex": r"^\d{20}$|^\d{10,12}-\d{8}$"},
            },
            {
                "type": "expect_column_values_to_not_match_regex",
                "severity": "warning",
                "kwargs": {"column": "uid", "regex": "-"},
            },
            {
                "type": "unexpected_rows_expectation",
                "severity": "warning",
                "kwargs": {"unexpected_rows_query": "select uid from {batch} where amount > 100"},
            },
        ],
    }
    with duckdb.connect(":memory:") as con:
        con.execute("create schema staging")
        con.execute(
            "create table staging.probe as select * from (values ('12345678901234567890', 1), "
            "('1234567890-12345678', 200), ('X-1', 3), (null, 4)) as t(uid, amount)"
        )
        outcome = gx.validate_table(con, "probe", suite=suite)
    assert [(o.success, o.unexpected_count, o.error) for o in outcome.outcomes] == [
        (False, 1, None),
        (False, 1, None),
        (False, 2, None),
        (False, 1, None),
    ]
    assert outcome.outcomes[1].unexpected_sample == ("X-1",)
    assert outcome.outcomes[3].unexpected_sample == ("1234567890-12345678",)


def test_patch_refuses_an_unverified_gx_version(monkeypatch):
    import great_expectations

    monkeypatch.setattr(great_expectations, "__version__", "1.25.0")
    with pytest.raises(gx.GXPatchError, match=r"verified for 1\.24\.1 only"):
        gx.apply_duckdb_patch()


def test_loading_definitions_does_not_import_gx():
    code = (
        "import sys; from invoice_pipeline.definitions import defs; defs(); "
        "print(sorted(n for n in ('great_expectations', 'duckdb_engine') if n in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_suites_pass_on_the_generated_sample_but_for_real_warnings(sample, sample_outcomes):
    root, truth = sample
    for table, outcome in sample_outcomes.items():
        assert outcome.row_count > 0, table
        assert not [o for o in outcome.outcomes if o.error], table
        assert not outcome.critical_failures, (table, outcome.critical_failures)
    # The only failures are the planted 金额 + 税额 ≠ 价税合计 rows (warning level): the platform's,
    # and the ERP's (a copy of the platform's error, and ERP-side typos in 价税合计).
    planted = {
        p["invoice_uid"]
        for p in truth["problems"]
        if p["rule_id"] == "arithmetic_error" and p["details"].get("check") == "金额 + 税额 ≠ 价税合计"
    }
    with Warehouse(data_dir=str(root)).connect() as con:
        erp_errors = con.execute(
            "select count(*) from staging.erp "
            "where abs(amount_excl_tax + tax_amount - amount_incl_tax) > 0.01"
        ).fetchone()[0]
    assert planted and erp_errors
    assert {t: failed(o) for t, o in sample_outcomes.items() if o.failed} == {
        "tax_platform": {("unexpected_rows_expectation", ARITHMETIC): len(planted)},
        "erp": {("unexpected_rows_expectation", ARITHMETIC): erp_errors},
    }
    found = by_key(sample_outcomes["tax_platform"])[("unexpected_rows_expectation", ARITHMETIC)]
    assert {row.split(" / ")[1] for row in found.unexpected_sample} == planted


def test_tin_shape_flags_only_tins_that_really_are_invalid(sample, sample_outcomes):
    _, truth = sample
    invalid = {p["subject"] for p in truth["problems"] if p["rule_id"] == "invalid_tin"}
    flagged = set()
    for outcome in sample_outcomes.values():
        for o in outcome.outcomes:
            if o.type == "expect_column_values_to_match_regex" and o.column in TIN_COLUMNS:
                assert o.success, o  # mostly=0.99: messy-but-real TINs do not fail the suite
                flagged |= set(o.unexpected_sample)
    assert flagged and flagged <= invalid


def test_status_mapping_and_value_sets_hold_on_the_sample(sample_outcomes):
    tp = by_key(sample_outcomes["tax_platform"])
    assert tp[("expect_column_values_to_be_in_set", "status")].unexpected_count == 0
    assert tp[("expect_column_values_to_be_unique", "invoice_uid")].unexpected_count == 0
    rows = tp[("expect_table_row_count_to_be_between", "")]
    assert rows.success and rows.observed == sample_outcomes["tax_platform"].row_count


def test_doctored_platform_rows_fail_the_right_expectations(doctored_dir):
    with Warehouse(data_dir=str(doctored_dir)).connect() as con:
        uids = [
            r[0]
            for r in con.execute(
                "select invoice_uid from staging.tax_platform "
                "where status = 'normal' and amount_incl_tax > 0 "
                "and abs(amount_excl_tax + tax_amount - amount_incl_tax) <= 0.01 "
                "order by invoice_uid limit 4"
            ).fetchall()
        ]
        dup, bad_uid, bad_sum, bad_status = uids
        table = "staging.tax_platform"
        planted = con.execute(
            f"select count(*) from {table} where abs(amount_excl_tax + tax_amount - amount_incl_tax) > 0.01"
        ).fetchone()[0]
        con.execute(f"insert into {table} select * from {table} where invoice_uid = ?", [dup])
        con.execute(f"update {table} set invoice_uid = 'INV-0001' where invoice_uid = ?", [bad_uid])
        con.execute(
            f"update {table} set amount_incl_tax = amount_incl_tax + 100 where invoice_uid = ?", [bad_sum]
        )
        con.execute(f"update {table} set status = 'cancelled' where invoice_uid = ?", [bad_status])
        outcome = gx.validate_table(con, "tax_platform")

    assert failed(outcome) == {
        ("expect_column_values_to_be_unique", "invoice_uid"): 2,  # both copies are unexpected
        ("expect_column_values_to_match_regex", "invoice_uid"): 1,
        ("unexpected_rows_expectation", ARITHMETIC): planted + 1,
        ("expect_column_values_to_be_in_set", "status"): 1,
    }
    assert {(o.type, o.column) for o in outcome.critical_failures} == {
        ("expect_column_values_to_be_unique", "invoice_uid"),
        ("expect_column_values_to_match_regex", "invoice_uid"),
    }
    results = by_key(outcome)
    assert results[("expect_column_values_to_be_unique", "invoice_uid")].unexpected_sample == (dup,)
    assert results[("expect_column_values_to_match_regex", "invoice_uid")].unexpected_sample == ("INV-0001",)
    assert results[("expect_column_values_to_be_in_set", "status")].unexpected_sample == ("cancelled",)
    assert any(bad_sum in s for s in results[("unexpected_rows_expectation", ARITHMETIC)].unexpected_sample)


def test_doctored_keys_and_ranges_in_other_tables(doctored_dir):
    with Warehouse(data_dir=str(doctored_dir)).connect() as con:
        con.execute("insert into staging.tax_platform_lines select * from staging.tax_platform_lines limit 1")
        con.execute(
            "update staging.erp set erp_doc_id = null, amount_incl_tax = -2e12 "
            "where erp_doc_id = (select min(erp_doc_id) from staging.erp)"
        )
        con.execute(
            "update staging.sync_log set finished_at = started_at - interval 1 hour, "
            "records_written = records_read + 5 "
            "where run_id = (select min(run_id) from staging.sync_log)"
        )
        lines = gx.validate_table(con, "tax_platform_lines")
        erp = gx.validate_table(con, "erp")
        sync = gx.validate_table(con, "sync_log")
    assert failed(lines) == {("expect_compound_columns_to_be_unique", "source, invoice_uid, line_no"): 2}
    assert lines.critical_failures
    erp_failed = failed(erp)
    assert erp_failed[("expect_column_values_to_not_be_null", "erp_doc_id")] == 1
    assert erp_failed[("expect_column_values_to_be_between", "amount_incl_tax")] == 1
    assert [o.column for o in erp.critical_failures] == ["erp_doc_id"]
    assert failed(sync) == {
        ("expect_column_pair_values_a_to_be_greater_than_b", "finished_at, started_at"): 1,
        ("unexpected_rows_expectation", "records_written + records_failed ≤ records_read"): 1,
    }
    assert not sync.critical_failures


def checks_by_name() -> dict[str, dg.AssetChecksDefinition]:
    return {next(iter(c.check_keys)).name: c for c in expectation_checks}


def test_one_blocking_pooled_check_per_staging_table():
    checks = checks_by_name()
    assert sorted(checks) == sorted(f"{t}_expectations" for t in TABLES)
    for table in TABLES:
        definition = checks[f"{table}_expectations"]
        (spec,) = definition.check_specs
        assert spec.asset_key == dg.AssetKey(["staging", table])
        assert spec.blocking
        assert definition.node_def.pool == WAREHOUSE_POOL
        assert f"checks/expectations/{table}.json" in spec.description
        assert "Critical" in spec.description


def test_check_passes_or_warns_on_the_sample(sample):
    root, _ = sample
    warehouse = Warehouse(data_dir=str(root))
    einvoice = checks_by_name()["einvoice_expectations"](warehouse=warehouse)
    assert einvoice.passed and einvoice.metadata["failed"].value == 0
    platform = checks_by_name()["tax_platform_expectations"](warehouse=warehouse)
    assert platform.passed is False  # the planted arithmetic error: reported, never blocking
    assert platform.severity == dg.AssetCheckSeverity.WARN
    assert platform.metadata["failed"].value == 1
    table = platform.metadata["results"].value
    assert table.startswith(
        "| expectation | column | ok | unexpected | severity | sample of unexpected values |"
    )
    assert table.count("\n") == 1 + len(gx.read_suite("tax_platform")["expectations"])
    assert f"| unexpected_rows_expectation | {ARITHMETIC} | ❌ | 1 | warning |" in table


def test_check_fails_with_error_on_a_critical_failure_and_blocks_the_run(doctored_dir):
    with Warehouse(data_dir=str(doctored_dir)).connect() as con:
        con.execute(
            "update staging.einvoice set invoice_uid = 'not-an-id' "
            "where invoice_uid = (select min(invoice_uid) from staging.einvoice)"
        )
    check = checks_by_name()["einvoice_expectations"]
    context = dg.build_asset_check_context(resources={"warehouse": Warehouse(data_dir=str(doctored_dir))})
    result = check(context)
    assert result.passed is False
    assert result.severity == dg.AssetCheckSeverity.ERROR
    assert result.metadata["critical_failed"].value == 1
    assert "| expect_column_values_to_match_regex | invoice_uid | ❌ | 1 | critical | not-an-id |" in (
        result.metadata["results"].value
    )

    # Executed as a step: a failed blocking ERROR check fails the run.
    job = dg.define_asset_job("gx_only", selection=dg.AssetSelection.checks(check))
    defs = dg.Definitions(
        asset_checks=[check], jobs=[job], resources={"warehouse": Warehouse(data_dir=str(doctored_dir))}
    )
    with dg.instance_for_test() as instance:
        run = defs.resolve_job_def("gx_only").execute_in_process(instance=instance, raise_on_error=False)
    (evaluation,) = run.get_asset_check_evaluations()
    assert evaluation.passed is False and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert not run.success


def test_the_nightly_job_runs_every_suite():
    """The sample fixture's run_pipeline succeeded with these checks in it: no critical failure."""
    from invoice_pipeline.definitions import defs

    job = defs().resolve_job_def("nightly")
    assert set(checks_by_name()) <= {key.name for key in job.asset_layer.asset_graph.asset_check_keys}
