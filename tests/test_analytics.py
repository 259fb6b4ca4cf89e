"""warehouse/analytics.duckdb: masked, commented, swapped in atomically, readable at any time.

The end-to-end tests share one generated sample (2,000 invoices) with planted personal data —
a sole proprietor's 20-digit TIN (resident ID + 01) and private persons' names as seller, 开票人
and 制单人 — run the pipeline up to `reports/analytics_db` once, and then run it again while a
second process keeps reading the snapshot.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import openpyxl
import polars as pl
import pytest

from invoice_pipeline import normalize as nz
from invoice_pipeline import project, publish
from invoice_pipeline.definitions import defs
from invoice_pipeline.defs.audit.findings import FINDINGS_KEY
from invoice_pipeline.defs.reports.analytics import ANALYTICS_DB_KEY
from invoice_pipeline.generate.ids import make_ric, make_uscc
from invoice_pipeline.tin import is_valid_resident_id
from invoice_pipeline.warehouse import connect

PLANTED_ID = make_ric("110105", "19850612", 123)
PLANTED_TIN = PLANTED_ID + "01"  # a sole proprietor (个体工商户)
PLANTED_SELLER = "欧阳娜娜"  # a private person selling to us
PLANTED_DRAWER = "司马相如"  # 开票人 on the platform export
PLANTED_CLERK = "诸葛孔明"  # 制单人 in the ERP
PLANTED_NAMES = (PLANTED_SELLER, PLANTED_DRAWER, PLANTED_CLERK)


# --------------------------------------------------------------------------- helpers


def run_to_analytics(data_dir: Path, selection: dg.AssetSelection | None = None) -> dg.ExecuteInProcessResult:
    """The pipeline up to and including reports/analytics_db (or `selection`), in this process."""
    selection = selection or dg.AssetSelection.assets(ANALYTICS_DB_KEY).upstream()
    job = dg.define_asset_job("analytics_test", selection=selection)
    definitions = dg.Definitions.merge(defs(), dg.Definitions(jobs=[job]))
    config = {
        "resources": {
            "warehouse": {"config": {"data_dir": str(data_dir)}},
            "settings": {"config": {"as_of": "2026-11-01"}},
        }
    }
    with dg.DagsterInstance.ephemeral() as instance:
        return definitions.resolve_job_def("analytics_test").execute_in_process(
            run_config=config, instance=instance
        )


def table_counts(con: duckdb.DuckDBPyConnection, schemas=("core", "audit", "report")) -> dict[str, int]:
    rows = con.execute(
        "select schema_name, table_name from duckdb_tables() where database_name = current_database() "
        "and schema_name in (select unnest(?)) union all "
        "select schema_name, view_name from duckdb_views() where database_name = current_database() "
        "and schema_name in (select unnest(?)) and not internal order by all",
        [list(schemas), list(schemas)],
    ).fetchall()
    return {f"{s}.{t}": con.execute(f'select count(*) from "{s}"."{t}"').fetchone()[0] for s, t in rows}


def text_columns(con: duckdb.DuckDBPyConnection, schemas=("core", "audit", "report")):
    return con.execute(
        "select schema_name, table_name, column_name from duckdb_columns() "
        "where database_name = current_database() and schema_name in (select unnest(?)) "
        "and (data_type like '%VARCHAR%' or data_type like '%JSON%') order by all",
        [list(schemas)],
    ).fetchall()


def rows_containing(con: duckdb.DuckDBPyConnection, needle: str, schemas=("core", "audit", "report")) -> list:
    hits = []
    for s, t, c in text_columns(con, schemas):
        n = con.execute(
            f'select count(*) from "{s}"."{t}" where contains("{c}"::varchar, ?)', [needle]
        ).fetchone()[0]
        if n:
            hits.append((f"{s}.{t}.{c}", n))
    return hits


TYPES = (
    "select table_schema, table_name, column_name, data_type from information_schema.columns "
    "where table_catalog = current_database() and table_schema in ('core', 'audit', 'report') order by all"
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def storage_version_number(path: Path) -> int:
    """The storage version in a DuckDB file's header: ≤ 68 opens in DuckDB 1.5, 2.0 writes 69."""
    header = path.read_bytes()[:20]
    assert header[8:12] == b"DUCK"
    return int.from_bytes(header[12:20], "little")


# --------------------------------------------------------------------------- masking rules


def _tin_values() -> list[str | None]:
    rng = np.random.default_rng(20261101)
    values: list[str | None] = [None, "", " ", "91110105MA01K7Q365", "91310115MA1H8R7C41", "12345"]
    for _ in range(400):
        region = str(rng.choice(["110105", "370102", "510107", "440106", "990101", "000000"]))
        birth = f"{rng.integers(1890, 2030)}{rng.integers(1, 14):02d}{rng.integers(1, 32):02d}"
        ric = make_ric(region, birth, int(rng.integers(0, 1000)))
        digits = "".join(str(d) for d in rng.integers(0, 10, 20))
        body = "".join(rng.choice(list("0123456789ABCDEFGHJKLMNPQRTUWXY"), 8))
        prefix = str(rng.choice(["91", "92", "12", "52", "93", "11"]))
        values += [
            ric,
            ric + f"{rng.integers(0, 100):02d}",
            ric[:17] + ("X" if ric[17] != "X" else "0"),  # wrong check character
            ric.lower(),
            ric[:17],
            digits[:18],
            digits,
            digits[:17] + "X",
            digits[:19],
            make_uscc(prefix, region, digits[:8]),  # all-digit USCC: the check decides
            make_uscc(prefix, region, body),
            make_uscc(prefix, region, digits[:8]) + "01",
            f" {ric}",
        ]
    return values


NAMES = [
    None,
    "",
    "张三",
    "王",
    "欧阳娜娜",
    "John Smith",
    "Ｊｏｈｎ",
    " 李四 ",
    "\u3000赵六",
    "李·四",
    "x",
    "张三\n",
    "㈱东京",
    "阿卜杜·热合曼",
    "Émile",
    "Mary-Jane O'Neil",
    "王五 ",
    "⾦大中",
    "李 四",
]


def _sql_values(con, expr_of, values):
    con.execute(
        "create or replace temp table v as "
        "select * from (select unnest(?) as x, generate_subscripts(?, 1) as i)",
        [values, values],
    )
    return [r[0] for r in con.execute(f"select {expr_of('x')} from v order by i").fetchall()]


@pytest.fixture
def udf_con():
    con = duckdb.connect()
    publish._install(con, publish.load_spec(), ["成都市罗飞欣便利店"])
    yield con
    con.close()


def test_sql_masks_agree_with_the_polars_functions(udf_con):
    tins = _tin_values()
    expected = pl.DataFrame({"x": tins}, schema={"x": pl.String}).select(nz.mask_tin(pl.col("x"))).to_series()
    assert _sql_values(udf_con, publish.sql_mask_tin, tins) == expected.to_list()
    assert sum(a != b for a, b in zip(expected.to_list(), tins, strict=True)) > 500  # many were masked

    names = NAMES + [t for t in tins[:50] if t]
    expected = pl.DataFrame({"x": names}, schema={"x": pl.String}).select(nz.mask_person_name(pl.col("x")))
    assert _sql_values(udf_con, publish.sql_mask_person_name, names) == expected.to_series().to_list()


def test_sql_scrub_agrees_with_python_and_masks_only_resident_ids(udf_con):
    masker = publish.JsonMasker(publish.load_spec(), ["成都市罗飞欣便利店"])
    texts = [
        None,
        "",
        "备注",
        f"身份证{PLANTED_ID}，电话13800138000",
        f"{PLANTED_TIN}",
        f"a{PLANTED_ID.lower()}b",
        "被红冲蓝字数电发票号码：26112000000000000001",
        f"{PLANTED_ID} and again {PLANTED_ID}",
        "dzfp_26112010018708314987_成都市罗飞欣便利店_20260805124514.xml",
        "dzfp_26112010018708314987_张三_20260805124514.xml",
        "dzfp_26112010018708314987_上海星河供应链管理有限公司_20260805124514.xml",
        "kept dzfp_26112010018708314987_北京示例_20260805124514.xml and "
        "dzfp_26112010018708314987_王五_20260805124514.ofd",
    ]
    texts += [t for t in _tin_values() if t]
    sql = _sql_values(udf_con, publish.sql_scrub, texts)
    assert sql == [masker.scrub(t) for t in texts]
    assert sql[3] == f"身份证{PLANTED_ID[:6]}********{PLANTED_ID[-4:]}，电话13800138000"
    assert sql[6] == texts[6]  # a 数电 number is not a resident ID
    assert sql[8] == "dzfp_26112010018708314987_成********_20260805124514.xml"
    assert sql[9] == "dzfp_26112010018708314987_张*_20260805124514.xml"
    assert sql[10] == texts[10]
    for value in sql:
        for candidate in re.findall(r"[0-9]{17}[0-9Xx]", value or ""):
            assert not is_valid_resident_id(candidate.upper()), value


def test_person_shaped_names_and_json_evidence(udf_con):
    spec = publish.load_spec()
    masker = publish.JsonMasker(spec)
    names = [
        "张三",
        "欧阳娜娜",
        "北京示例",
        "星河商店",
        "阿卜杜·热合曼",
        "上海星河供应链管理有限公司",
        "张三丰五六",
        "John",
    ]
    sql = _sql_values(udf_con, lambda x: publish.sql_looks_personal(x, spec), names)
    assert (
        sql
        == [masker.looks_personal(n) for n in names]
        == [True, True, True, False, False, False, False, False]
    )

    docs = [
        None,
        '{"source":"tax_platform","amount":5755.90,"counterparty_tin":"91120116MAK25N1M10",'
        '"counterparty_name":"天津联远印务股份有限公司"}',
        f'{{"counterparty_tin":"{PLANTED_TIN}","counterparty_name":"济南市王五餐馆","amount":1.10}}',
        f'{{"erp_counterparty_tin":"{PLANTED_ID}",'
        f'"invoice_counterparty_tins":["91610113MAPJD64P74","{PLANTED_TIN}"],'
        f'"erp_counterparty_name":"李四","drawer":"王五",'
        f'"nested":{{"clerk":"赵六","remark":"ID {PLANTED_ID}"}},'
        f'"claims":[{{"claimant":"钱七"}}],"entity_tin":"91110105MA01K7Q365"}}',
    ]
    masked = masker.mask(docs)
    assert masked[:2] == docs[:2]  # nothing personal: the text is kept byte for byte
    assert json.loads(masked[2]) == {
        "counterparty_tin": PLANTED_TIN[:6] + "**********" + PLANTED_TIN[-4:],
        "counterparty_name": "济******",
        "amount": 1.1,
    }
    assert '"amount":1.10' in masked[2]  # numbers as written
    evidence = json.loads(masked[3])
    assert evidence["erp_counterparty_tin"] == PLANTED_ID[:6] + "********" + PLANTED_ID[-4:]
    assert evidence["invoice_counterparty_tins"][0] == "91610113MAPJD64P74"
    assert evidence["invoice_counterparty_tins"][1].startswith("110105**********")
    assert (evidence["erp_counterparty_name"], evidence["drawer"]) == ("李*", "王*")
    assert evidence["nested"] == {"clerk": "赵*", "remark": f"ID {PLANTED_ID[:6]}********{PLANTED_ID[-4:]}"}
    assert evidence["claims"] == [{"claimant": "钱*"}]
    assert evidence["entity_tin"] == "91110105MA01K7Q365"


def test_mixed_values_mask_the_parties_they_name(udf_con):
    """core.invoice_history.value_before/value_after: statuses, amounts, ERP documents, claims,
    and `<seller_tin> <seller_name> → <buyer_tin> <buyer_name>`."""
    spec = publish.load_spec()
    m = PLANTED_TIN[:6] + "**********" + PLANTED_TIN[-4:]
    ours = "91110105MA01K7Q365 北京示例科技有限公司"
    cases = {
        None: None,
        "正常": "正常",  # a status alone is not a name
        "1130.00/130.00": "1130.00/130.00",
        "BJ01/AP-0001 posted 2026-03-03 period 2026-03": "BJ01/AP-0001 posted 2026-03-03 period 2026-03",
        PLANTED_TIN: m,
        f"正常; 1.00/0.10; {PLANTED_TIN} {PLANTED_SELLER} → {ours}": f"正常; 1.00/0.10; {m} 欧*** → {ours}",
        f"XML; 1.00/0.10; 91370100MA3C4XXX1L 王五 → {ours}": (
            f"XML; 1.00/0.10; 91370100MA3C4XXX1L 王* → {ours}"
        ),
        f"91370100MA3C4XXX1L 成都市罗飞欣便利店 → {ours}": f"91370100MA3C4XXX1L 成******** → {ours}",
        f"91370100MA3C4XXX1L 济南供应商有限公司 → {ours}": f"91370100MA3C4XXX1L 济南供应商有限公司 → {ours}",
        f"备注 {PLANTED_ID}": f"备注 {PLANTED_ID[:6]}********{PLANTED_ID[-4:]}",
    }
    got = _sql_values(udf_con, lambda x: publish.sql_mask_mixed(x, spec), list(cases))
    assert got == list(cases.values())


def test_publish_masks_by_column_on_a_small_warehouse(tmp_path):
    live = tmp_path / "warehouse" / "invoices.duckdb"
    target = tmp_path / "warehouse" / "analytics.duckdb"
    con = connect(live)
    con.execute("create schema core; create schema audit; create schema raw; create schema staging")
    con.execute(
        "create table core.people as select * from (values "
        f"(1, '{PLANTED_TIN}', '济南市欧阳娜娜餐馆', '91310115MA1H8R7C41', "
        "'上海星河供应链管理有限公司', '王五', "
        f"'李四', '赵六', '张三', '备注 {PLANTED_ID}', ['{PLANTED_TIN}', '91310115MA1H8R7C41'], "
        f'\'{{"buyer_tin":"{PLANTED_TIN}","buyer_name":"钱七"}}\'::json, \'91110105MA01K7Q365\', '
        "'dzfp_26112010018708314987_济南市欧阳娜娜餐馆_20260805124514.xml', 12.50, "
        f"['dzfp_26112010018708314987_张三_20260805124514.xml', 'ID {PLANTED_ID}', 'ok']), "
        "(2, null, null, '91310115MA1H8R7C41', '北京示例', null, null, null, "
        "'上海星河供应链管理有限公司', null, "
        "null, null, null, null, null, null)) "
        "t(id, seller_tin, seller_name, buyer_tin, buyer_name, drawer, clerk, claimant, counterparty_name, "
        "remark, evidence_tins, details, entity_tin, _source_file, amount, notes)"
    )
    con.execute("create view core.people_view as select id, seller_tin, seller_name from core.people")
    con.execute(
        "create table audit.findings as select * from (values "
        f"('f1', 'invalid_tin', '{PLANTED_ID}'), ('f2', 'sequence_gap', '011002600111:02642729-02642730'), "
        f"('f3', 'control_total_mismatch', 'dzfp_26112010018708314987_张三_20260805124514.xml')) "
        "t(finding_id, rule_id, subject)"
    )
    con.execute(
        "create table audit.rejected_rows as select * from (values "
        f"('购方识别号', '{PLANTED_TIN}'), ('报销人', '钱七'), ('往来单位名称', '孙八'), "
        f"(null, '{PLANTED_TIN},王五,line with everything'), ('价税合计', 'abc'), ('备注', 'x{PLANTED_ID}')) "
        "t(column_name, raw_value)"
    )
    con.execute(f"create table raw.secret as select '{PLANTED_TIN}' as tin")
    con.execute(f"create table staging.secret as select '{PLANTED_TIN}' as tin")
    counts = publish.publish_analytics(con, target)
    con.close()

    assert counts == {"core.people": 2, "core.people_view": 2, "audit.findings": 3, "audit.rejected_rows": 6}
    assert sorted(p.name for p in target.parent.iterdir()) == [
        "analytics.duckdb",
        "invoices.duckdb",
    ]  # no tmp, wal
    assert storage_version_number(target) <= 68
    with duckdb.connect(str(live), read_only=True) as con:  # the warehouse itself is never masked
        assert con.execute("select seller_tin, drawer from core.people where id = 1").fetchone() == (
            PLANTED_TIN,
            "王五",
        )
    snap = duckdb.connect(str(target), read_only=True)
    try:
        schemas = snap.execute(
            "select schema_name from duckdb_schemas() where database_name = current_database() "
            "and schema_name <> 'main'"
        ).fetchall()
        assert {s for (s,) in schemas} == {"core", "audit"}
        m = PLANTED_TIN[:6] + "**********" + PLANTED_TIN[-4:]
        row = snap.execute("select * exclude (id) from core.people where id = 1").fetchone()
        assert row == (
            m,
            "济********",
            "91310115MA1H8R7C41",
            "上海星河供应链管理有限公司",
            "王*",
            "李*",
            "赵*",
            "张*",
            f"备注 {PLANTED_ID[:6]}********{PLANTED_ID[-4:]}",
            [m, "91310115MA1H8R7C41"],
            f'{{"buyer_tin":"{m}","buyer_name":"钱*"}}',
            "91110105MA01K7Q365",
            "dzfp_26112010018708314987_济********_20260805124514.xml",
            12.5,
            [
                "dzfp_26112010018708314987_张*_20260805124514.xml",
                f"ID {PLANTED_ID[:6]}********{PLANTED_ID[-4:]}",
                "ok",
            ],
        )
        assert snap.execute(
            "select buyer_name, counterparty_name from core.people where id = 2"
        ).fetchone() == (
            "北***",
            "上海星河供应链管理有限公司",
        )  # 4 Han characters without an organisation word
        assert snap.execute(
            "select seller_tin, seller_name from core.people_view where id = 1"
        ).fetchone() == (m, "济********")
        assert snap.execute("select subject from audit.findings order by finding_id").fetchall() == [
            (PLANTED_ID[:6] + "********" + PLANTED_ID[-4:],),
            ("011002600111:02642729-02642730",),
            ("dzfp_26112010018708314987_张*_20260805124514.xml",),
        ]
        assert [v for (v,) in snap.execute("select raw_value from audit.rejected_rows").fetchall()] == [
            m,
            "钱*",
            "孙*",
            f"[withheld: whole record of {len(PLANTED_TIN) + 24} characters]",
            "abc",
            f"x{PLANTED_ID[:6]}********{PLANTED_ID[-4:]}",
        ]
        for needle in (PLANTED_ID, "王五", "李四", "赵六", "钱七", "孙八", "欧阳娜娜"):
            assert rows_containing(snap, needle) == [], needle
        comments = snap.execute(
            "select comment from duckdb_columns() where table_name = 'people' and column_name = 'seller_tin'"
        ).fetchone()[0]
        assert "Seller's TIN" in comments and "Masked" in comments
    finally:
        snap.close()


# --------------------------------------------------------------------------- end to end


def _plant_platform(landing: Path, entity_tins: set[str]) -> None:
    """A private person's invoice to us in one platform export: seller TIN, name and 开票人."""
    for path in sorted((landing / "tax_platform").glob("*.xlsx")):
        try:
            book = openpyxl.load_workbook(path)
        except Exception:  # the sample's deliberately broken workbook
            continue
        sheet = book["发票基础信息"]
        header = [c.value for c in sheet[1]]
        col = {name: header.index(name) for name in ("销方识别号", "销方名称", "开票人")}
        for row in sheet.iter_rows(min_row=2):
            if row[col["销方识别号"]].value not in entity_tins and row[0].value != "合计行":
                row[col["销方识别号"]].value = PLANTED_TIN
                row[col["销方名称"]].value = PLANTED_SELLER
                row[col["开票人"]].value = PLANTED_DRAWER
                book.save(path)
                return
    raise AssertionError("no platform export to plant into")


def _plant_erp(landing: Path) -> None:
    """A clerk's name and a keyed personal counterparty TIN on one ERP register row."""
    for path in sorted((landing / "erp").glob("*.csv")):
        raw = path.read_bytes()
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                text = raw.decode(encoding)
                break
            except UnicodeDecodeError:
                text = None
        if not text:
            continue
        rows = list(csv.reader(io.StringIO(text)))
        if len(rows) < 3 or not {"组织", "方向", "制单人", "往来单位税号"} <= set(rows[0]):
            continue
        header = rows[0]
        rows[1][header.index("制单人")] = PLANTED_CLERK
        rows[1][header.index("往来单位税号")] = PLANTED_TIN
        rows[1][header.index("往来单位名称")] = PLANTED_SELLER
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n" if "\r\n" in text else "\n").writerows(rows)
        bom = raw.startswith(b"\xef\xbb\xbf")
        path.write_bytes(out.getvalue().encode("utf-8-sig" if bom else encoding))
        return
    raise AssertionError("no ERP register to plant into")


@pytest.fixture(scope="module")
def published(generated_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A generated sample with planted personal data, run up to reports/analytics_db."""
    root = tmp_path_factory.mktemp("analytics") / "data"
    shutil.copytree(generated_tree / "landing", root / "landing")
    entity_tins = {
        r["tin"]
        for f in (root / "landing" / "entities").glob("*.csv")
        for r in csv.DictReader(f.open(encoding="utf-8-sig"))
    }
    _plant_platform(root / "landing", entity_tins)
    _plant_erp(root / "landing")
    result = run_to_analytics(root)
    assert result.success
    event = next(e for e in result.get_asset_materialization_events() if e.asset_key == ANALYTICS_DB_KEY)
    return {"root": root, "metadata": event.materialization.metadata}


@pytest.mark.slow
def test_snapshot_matches_the_warehouse_is_commented_and_masked(published):
    root = published["root"]
    target = project.analytics_path(root)
    metadata = published["metadata"]
    assert metadata["path"].value == str(target)
    assert metadata["tables"].value >= 30

    live = connect(project.warehouse_path(root), read_only=True)
    try:
        live_counts = table_counts(live)
        # The planted values are in the warehouse, where masking must not touch them.
        assert (
            live.execute(
                "select count(*) from core.invoices where seller_tin = ? and seller_name = ?",
                [PLANTED_TIN, PLANTED_SELLER],
            ).fetchone()[0]
            >= 1
        )
        assert rows_containing(live, PLANTED_ID, ("audit",)), "the planted TIN reached the findings"
        assert (
            live.execute(
                "select count(*) from staging.tax_platform where drawer = ?", [PLANTED_DRAWER]
            ).fetchone()[0]
            == 1
        )
        assert (
            live.execute("select count(*) from staging.erp where clerk = ?", [PLANTED_CLERK]).fetchone()[0]
            == 1
        )
        gaps = publish.glossary_gaps(live)
        live_types = live.execute(TYPES).fetchall()
    finally:
        live.close()
    assert gaps == [], "add these to assets/publish/analytics.yaml"
    assert storage_version_number(target) <= 68

    snap = duckdb.connect(str(target), read_only=True)
    try:
        assert table_counts(snap) == live_counts
        assert snap.execute(TYPES).fetchall() == live_types  # masking keeps every column's type
        assert {k.split(".")[0] for k in live_counts} >= {"core", "audit"}
        assert snap.execute("select count(*) from duckdb_views() where not internal").fetchone()[0] == 0
        assert (
            snap.execute(
                "select count(*) from duckdb_schemas() where schema_name in ('raw', 'staging')"
            ).fetchone()[0]
            == 0
        )
        uncommented = snap.execute(
            "select schema_name || '.' || table_name from duckdb_tables() where coalesce(comment, '') = '' "
            "union all select schema_name || '.' || table_name || '.' || column_name from duckdb_columns() "
            "where database_name = current_database() and coalesce(comment, '') = ''"
        ).fetchall()
        assert uncommented == []
        # No planted value and no valid resident ID anywhere in a text or JSON column.
        for needle in (PLANTED_ID, *PLANTED_NAMES):
            assert rows_containing(snap, needle) == [], needle
        for s, t, c in text_columns(snap):
            values = snap.execute(
                f'select distinct "{c}"::varchar from "{s}"."{t}" where regexp_matches("{c}"::varchar, '
                "'[0-9]{17}[0-9Xx]')"
            ).fetchall()
            for (value,) in values:
                ids = [x for x in re.findall(r"[0-9]{17}[0-9Xx]", value) if is_valid_resident_id(x.upper())]
                assert not ids, (s, t, c, value)
        masked = PLANTED_TIN[:6] + "**********" + PLANTED_TIN[-4:]
        assert (
            snap.execute(
                "select count(*) from core.invoices where seller_tin = ? and seller_name = '欧***'", [masked]
            ).fetchone()[0]
            >= 1
        )
    finally:
        snap.close()


READER = r"""
import json, os, sys, time
import duckdb

mode, path, stop, out = sys.argv[1], sys.argv[2], sys.argv[3], open(sys.argv[4], "w")
deadline = time.monotonic() + 90  # never outlives the test by much


def counts(con):
    tables = con.execute("select schema_name, table_name from duckdb_tables() order by all").fetchall()
    return {f"{s}.{t}": con.execute(f'select count(*) from "{s}"."{t}"').fetchone()[0] for s, t in tables}


def emit(**kw):
    out.write(json.dumps(kw) + "\n")
    out.flush()


if mode == "hold":  # an analyst's session left open all along
    con = duckdb.connect(path, read_only=True)
    emit(held=counts(con))
    while time.monotonic() < deadline and not os.path.exists(stop):
        time.sleep(0.05)
    emit(held=counts(con))
else:  # an analyst opening the file again and again
    after_stop = 0
    while time.monotonic() < deadline and after_stop < 3:
        try:
            con = duckdb.connect(path, read_only=True)
            try:
                emit(seen=counts(con))
            finally:
                con.close()
        except Exception as e:
            emit(error=repr(e))
        if os.path.exists(stop):
            after_stop += 1
"""


@pytest.mark.slow
def test_readers_never_block_and_always_see_a_whole_snapshot(published, tmp_path):
    """Two analysts' processes read analytics.duckdb while the pipeline writes the warehouse
    (the ledger, the reports) and republishes: one reconnecting in a loop, one holding a session.
    (Connections of one process share the file they opened first: a session sees a new snapshot
    once all its connections are closed and it connects again.)"""
    root = published["root"]
    target = project.analytics_path(root)
    with duckdb.connect(str(target), read_only=True) as con:
        old = table_counts(con)
    stop = tmp_path / "stop"
    logs = {mode: tmp_path / f"{mode}.jsonl" for mode in ("loop", "hold")}
    readers = [
        subprocess.Popen([sys.executable, "-c", READER, mode, str(target), str(stop), str(log)])
        for mode, log in logs.items()
    ]
    try:
        deadline = time.monotonic() + 30
        while not all(log.exists() and log.read_text().strip() for log in logs.values()):
            assert all(r.poll() is None for r in readers) and time.monotonic() < deadline, "no reader started"
            time.sleep(0.05)
        rerun = (
            dg.AssetSelection.assets(FINDINGS_KEY).downstream()
            & dg.AssetSelection.assets(ANALYTICS_DB_KEY).upstream()
        )
        assert run_to_analytics(root, rerun).success
        stop.touch()
        assert [r.wait(timeout=60) for r in readers] == [0, 0]
    finally:
        for reader in readers:
            if reader.poll() is None:
                os.kill(reader.pid, signal.SIGKILL)
                reader.wait()
    with duckdb.connect(str(target), read_only=True) as con:
        new = table_counts(con)
    assert new["audit.runs"] == old["audit.runs"] + 1
    lines = [json.loads(line) for line in logs["loop"].read_text().splitlines()]
    assert [x for x in lines if "error" in x] == []
    seen = [x["seen"] for x in lines]
    assert all(s in (old, new) for s in seen), "a reader saw a partial snapshot"
    assert seen[0] == old and seen[-1] == new and len(seen) > 10
    # Once a reader saw the new snapshot it never saw the old one again.
    assert seen == sorted(seen, key=lambda s: s == new)
    held = [json.loads(line)["held"] for line in logs["hold"].read_text().splitlines()]
    assert held == [old, old]  # the open session kept reading the file it opened


@pytest.mark.slow
def test_a_failed_publish_leaves_the_previous_snapshot(published, monkeypatch):
    root = published["root"]
    target = project.analytics_path(root)
    before = sha256(target)
    copy = publish._copy_table

    done = []

    def fail_on_second(con, db, spec, relation):
        if done:
            raise OSError("No space left on device (simulated)")
        done.append(relation)
        return copy(con, db, spec, relation)

    monkeypatch.setattr(publish, "_copy_table", fail_on_second)
    con = connect(project.warehouse_path(root))
    try:
        with pytest.raises(OSError, match="simulated"):
            publish.publish_analytics(con, target)
        # The connection is usable again: nothing attached, no function left behind.
        assert (
            con.execute(
                "select count(*) from duckdb_databases() where database_name = 'analytics_publish'"
            ).fetchone()[0]
            == 0
        )
    finally:
        con.close()
    assert sha256(target) == before
    assert not target.with_name("analytics.duckdb.tmp").exists()
    with duckdb.connect(str(target), read_only=True) as snap:
        assert snap.execute("select count(*) from core.invoices").fetchone()[0] > 0


KILLED_WRITER = r"""
import sys, time
from pathlib import Path
import duckdb
from invoice_pipeline import publish

copy = publish._copy_table
def slow(*args):
    rows = copy(*args)
    print("copying", flush=True)
    time.sleep(60)
    return rows
publish._copy_table = slow
publish.publish_analytics(duckdb.connect(sys.argv[1]), Path(sys.argv[2]))
"""


@pytest.mark.slow
def test_a_writer_killed_mid_publish_leaves_the_previous_snapshot(published):
    root = published["root"]
    target = project.analytics_path(root)
    tmp = target.with_name("analytics.duckdb.tmp")
    before = sha256(target)
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(project.warehouse_path(root)), str(target)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([writer.stdout], [], [], 30)
        assert ready and writer.stdout.readline().strip() == "copying"
        assert tmp.exists()
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
    assert sha256(target) == before
    with duckdb.connect(str(target), read_only=True) as snap:
        assert snap.execute("select count(*) from core.invoices").fetchone()[0] > 0
    # The next publish clears the dead writer's partial file and swaps in a complete snapshot.
    con = connect(project.warehouse_path(root))
    try:
        counts = publish.publish_analytics(con, target)
    finally:
        con.close()
    assert not tmp.exists()
    with duckdb.connect(str(target), read_only=True) as snap:
        assert table_counts(snap) == counts
