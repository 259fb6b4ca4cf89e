"""Landing -> raw -> staging on hand-made files: idempotence, duplicates, changes, quarantine."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import ERP_ROWS, write_erp_csv, write_platform_workbook

from invoice_pipeline import project
from invoice_pipeline.ingest import ingest_source, list_landed_files
from invoice_pipeline.layers import stage, write_staged
from invoice_pipeline.specs import load_specs
from invoice_pipeline.warehouse import connect, ensure_audit_tables, scalar


@pytest.fixture
def con(data_dir: Path):
    connection = connect(project.warehouse_path(data_dir))
    ensure_audit_tables(connection)
    yield connection
    connection.close()


def load_everything(con, data_dir: Path) -> None:
    specs = load_specs()
    for spec in specs.values():
        ingest_source(con, project.landing_dir(data_dir), spec)
    for spec in specs.values():
        write_staged(con, spec.name, stage(con, spec))


# Logs that gain one row per run by design: the run itself and the backup it made.
RUN_LOGS = {("audit", "runs"), ("audit", "backups")}


def snapshot(con) -> dict[str, list[tuple]]:
    """Every table of every layer, fully sorted: equal snapshots mean an identical warehouse.

    Load times and the run logs (one row per run) are left out: they record when, not what.
    """
    tables = con.execute(
        "select schema_name, table_name from duckdb_tables() order by schema_name, table_name"
    ).fetchall()
    result = {}
    for schema, table in tables:
        if (schema, table) in RUN_LOGS:
            continue
        rows = con.execute(
            f'select * exclude (loaded_at) from {schema}."{table}"'
            if table == "file_loads"
            else f'select * from {schema}."{table}"'
        ).fetchall()
        result[f"{schema}.{table}"] = sorted(rows, key=repr)
    return result


def load_log(con) -> dict[str, tuple]:
    return {
        row[0]: row[1:]
        for row in con.execute(
            "select file_name, status, rows_read, rows_loaded, rows_rejected, control_total_ok, reason, "
            "is_current from audit.load_log"
        ).fetchall()
    }


def test_tiny_tree_lands_in_raw_and_staging(tiny_data_dir, con):
    load_everything(con, tiny_data_dir)
    log = load_log(con)
    assert log["BJ_2026Q1_全量发票查询导出结果.xlsx"][:5] == ("loaded", 3, 3, 0, True)
    assert log["erp_bj.csv"][:4] == ("loaded", 3, 2, 1)
    assert scalar(con, "select count(*) from raw.tax_platform") == 3
    assert scalar(con, "select count(*) from raw.tax_platform_lines") == 3
    platform = dict(con.execute("select invoice_uid, amount_incl_tax from staging.tax_platform").fetchall())
    assert {str(k): str(v) for k, v in platform.items()} == {
        "26112000000000000001": "1130.00",
        "011002100511-00290716": "212.00",
        "26112000000000000002": "-1130.00",
    }
    red = con.execute(
        "select original_invoice_uid, is_positive, direction, entity_tin from staging.tax_platform "
        "where invoice_uid = '26112000000000000002'"
    ).fetchall()[0]
    assert red == ("26112000000000000001", False, "received", "91110105MA0000000Y")


def test_unparseable_value_is_rejected_with_reason_not_dropped(tiny_data_dir, con):
    load_everything(con, tiny_data_dir)
    rejected = con.execute(
        "select file_name, source_row, column_name, raw_value, reason from audit.rejected_rows"
    ).fetchall()
    assert rejected == [("erp_bj.csv", "line 4", "价税合计", "abc", "价税合计: not an amount")]
    raw = scalar(con, "select count(*) from raw.erp")
    staged = scalar(con, "select count(*) from staging.erp")
    assert staged == raw - len(rejected)


def test_erp_keying_variants_are_normalised(tiny_data_dir, con):
    load_everything(con, tiny_data_dir)
    refs = dict(con.execute("select erp_doc_id, ref_key from staging.erp_invoice_refs").fetchall())
    assert refs == {"BJ01/AP-0001": "26112000000000000001", "BJ01/AR-0001": "011002100511-00290716"}
    amounts = con.execute(
        "select erp_doc_id, amount_excl_tax, issue_date, tax_period from staging.erp order by erp_doc_id"
    ).fetchall()
    assert [(a, str(b), str(c), d) for a, b, c, d in amounts] == [
        ("BJ01/AP-0001", "1000.00", "2026-03-02", "2026-03"),
        ("BJ01/AR-0001", "200.00", "2026-03-05", "2026-03"),
    ]


def test_loading_the_same_tree_twice_changes_nothing(tiny_data_dir, con):
    load_everything(con, tiny_data_dir)
    first = snapshot(con)
    load_everything(con, tiny_data_dir)
    assert snapshot(con) == first


def test_same_bytes_under_another_name_are_skipped_and_logged_once(tiny_data_dir, con):
    landing = project.landing_dir(tiny_data_dir)
    load_everything(con, tiny_data_dir)
    shutil.copy(landing / "erp" / "erp_bj.csv", landing / "erp" / "erp_bj_copy.csv")
    load_everything(con, tiny_data_dir)
    load_everything(con, tiny_data_dir)
    log = load_log(con)
    assert log["erp_bj_copy.csv"][0] == "skipped_duplicate"
    assert "erp_bj.csv" in log["erp_bj_copy.csv"][5]
    assert scalar(con, "select count(*) from audit.load_log where file_name = 'erp_bj_copy.csv'") == 1
    assert scalar(con, "select count(*) from staging.erp") == 2


def test_changed_file_with_same_name_is_a_new_load_that_supersedes(tiny_data_dir, con):
    landing = project.landing_dir(tiny_data_dir)
    load_everything(con, tiny_data_dir)
    fixed = [row[:] for row in ERP_ROWS]
    fixed[2][15] = "(1,130.00)"
    write_erp_csv(landing / "erp" / "erp_bj.csv", fixed)
    load_everything(con, tiny_data_dir)
    versions = con.execute(
        "select rows_loaded, rows_rejected, is_current from audit.load_log where file_name = 'erp_bj.csv' "
        "order by loaded_at, load_id"
    ).fetchall()
    assert sorted(versions) == [(2, 1, False), (3, 0, True)]
    assert scalar(con, "select count(*) from raw.erp") == 6
    assert scalar(con, "select count(*) from staging.erp") == 3
    current_rejects = (
        "select count(*) from audit.rejected_rows where stage = 'parse' "
        "and load_id in (select load_id from audit.current_loads)"
    )
    assert scalar(con, current_rejects) == 0


def test_unreadable_files_are_quarantined_and_the_rest_loads(tiny_data_dir, con):
    landing = project.landing_dir(tiny_data_dir)
    (landing / "erp" / "empty.csv").write_bytes(b"")
    good = landing / "tax_platform" / "BJ_2026Q1_全量发票查询导出结果.xlsx"
    (landing / "tax_platform" / "truncated.xlsx").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (landing / "erp" / "bad_bytes.csv").write_bytes("组织,方向\n".encode("gb18030") + b"\xff\xfe\xfd\n")
    load_everything(con, tiny_data_dir)
    log = load_log(con)
    assert log["empty.csv"][0] == "quarantined" and "empty" in log["empty.csv"][5]
    assert log["truncated.xlsx"][0] == "quarantined" and log["truncated.xlsx"][5]
    assert log["bad_bytes.csv"][0] == "quarantined" and log["bad_bytes.csv"][5]
    assert log["erp_bj.csv"][0] == "loaded"
    assert scalar(con, "select count(*) from staging.tax_platform") == 3


def test_control_total_mismatch_is_flagged(tiny_data_dir, con):
    landing = project.landing_dir(tiny_data_dir)
    write_platform_workbook(landing / "tax_platform" / "short.xlsx", control_total=(999.0, 1.0))
    load_everything(con, tiny_data_dir)
    assert load_log(con)["short.xlsx"][4] is False


def test_temporary_hidden_and_escaping_files_are_not_listed(tiny_data_dir, tmp_path):
    landing = project.landing_dir(tiny_data_dir)
    (landing / "erp" / "upload.csv.part").write_text("x")
    (landing / "erp" / ".hidden.csv").write_text("x")
    outside = tmp_path / "outside.csv"
    outside.write_text("x")
    (landing / "erp" / "escape.csv").symlink_to(outside)
    names = [p.name for p in list_landed_files(landing, load_specs()["erp"])]
    assert names == ["erp_bj.csv"]


def test_staging_in_chunks_gives_the_same_rows_and_rejects(tiny_data_dir, con, monkeypatch):
    """Large sources are typed a chunk at a time; the result must not depend on the chunk size."""
    from invoice_pipeline import staging

    load_everything(con, tiny_data_dir)
    whole = snapshot(con)
    monkeypatch.setattr(staging, "CHUNK_ROWS", 1)
    for spec in load_specs().values():
        write_staged(con, spec.name, stage(con, spec))
    assert snapshot(con) == whole
    assert scalar(con, "select count(*) from audit.rejected_rows where stage = 'parse'") > 0
