"""Backups: create, verify, restore, retention, audit.backups (issue 5, SPEC §2/§4.3/§5)."""

import hashlib
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from invoice_pipeline import project
from invoice_pipeline.backup import (
    BackupError,
    apply_retention,
    create_backup,
    read_manifest,
    record_backup,
    restore_backup,
    verify_backup,
)
from invoice_pipeline.cli import run_pipeline
from invoice_pipeline.generate import generate
from invoice_pipeline.warehouse import connect


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("built")
    generate(d, invoices=300, seed=3)
    run_pipeline(d, "2026-11-01")
    return d


@pytest.fixture
def data_dir(built, tmp_path) -> Path:
    d = tmp_path / "data"
    (d / "warehouse").mkdir(parents=True)
    shutil.copy2(project.warehouse_path(built), project.warehouse_path(d))
    return d


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(db: Path) -> dict[str, tuple[int, str]]:
    """Every base table: row count and a checksum of its sorted contents."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = con.execute(
            "select schema_name, table_name from duckdb_tables() where database_name = current_database()"
        ).fetchall()
        out = {}
        for s, t in names:
            n, digest = con.execute(
                f"select count(*), md5(coalesce(string_agg(cast(x as varchar), chr(10) "
                f'order by cast(x as varchar)), \'\')) from "{s}"."{t}" as x'
            ).fetchall()[0]
            out[f"{s}.{t}"] = (n, digest)
        return out
    finally:
        con.close()


def _backup(d: Path, now: datetime | None = None) -> Path:
    con = duckdb.connect(str(project.warehouse_path(d)))
    try:
        return create_backup(con, d, now=now)
    finally:
        con.close()


def test_nightly_run_made_a_verified_backup(built):
    folders = [p for p in (built / "backups").iterdir()]
    assert len(folders) == 1 and not folders[0].name.endswith(".tmp")
    con = duckdb.connect(str(project.warehouse_path(built)), read_only=True)
    try:
        rows = con.execute("select backup_id, verified, tables, rows, problems from audit.backups").fetchall()
    finally:
        con.close()
    assert rows == [(folders[0].name, True, rows[0][2], rows[0][3], [])]
    assert rows[0][2] > 20 and rows[0][3] > 1000


def test_backup_verifies_and_is_recorded(data_dir):
    path = _backup(data_dir, datetime(2026, 11, 28, 1, 2, 3, tzinfo=UTC))
    assert path == data_dir / "backups" / "20261128T010203Z"
    manifest = read_manifest(path)
    assert {"schema.sql", "load.sql"} <= {f["path"] for f in manifest["files"]}
    assert manifest["tables"]["core.invoices"] > 0
    assert any(c["kind"] == "view" for c in manifest["comments"])  # the per-rule views carry comments

    result = verify_backup(path)
    assert result.ok, result.problems
    assert result.tables == manifest["tables"]

    con = duckdb.connect(str(project.warehouse_path(data_dir)))
    try:
        record_backup(con, path, result)
        row = con.execute(
            "select backup_id, path, size_bytes, checksum, tables, rows, verified, problems "
            "from audit.backups where backup_id = ?",
            [path.name],
        ).fetchall()
    finally:
        con.close()
    assert row == [
        (
            "20261128T010203Z",
            str(path),
            sum(p.stat().st_size for p in path.iterdir()),
            _file_hash(path / "manifest.json"),
            len(manifest["tables"]),
            sum(manifest["tables"].values()),
            True,
            [],
        )
    ]


def test_restore_gives_back_exactly_what_was_backed_up(data_dir):
    db = project.warehouse_path(data_dir)
    before = _snapshot(db)
    path = _backup(data_dir)
    con = duckdb.connect(str(db))
    con.execute(
        "delete from core.invoices where invoice_uid in (select invoice_uid from core.invoices limit 5)"
    )
    con.execute("drop table core.matches")
    con.execute("create table core.stray as select 1 as x")
    con.close()
    changed = _file_hash(db)

    counts = restore_backup(path, data_dir)

    after = _snapshot(db)
    assert after == before
    assert counts == {t: n for t, (n, _) in before.items()}
    assert _file_hash(db.with_name("invoices.duckdb.before-restore")) == changed
    assert not db.with_name("invoices.duckdb.restore.tmp").exists()
    con = duckdb.connect(str(db), read_only=True)
    try:  # comments dropped by EXPORT DATABASE are back
        assert con.execute(
            "select count(*) from duckdb_views() where not internal and comment is not null"
        ).fetchall()[0][0] == sum(1 for c in read_manifest(path)["comments"] if c["kind"] == "view")
    finally:
        con.close()


def test_flipped_byte_is_named_and_restore_refused(data_dir):
    path = _backup(data_dir)
    victim = path / "core_invoices.parquet"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))

    result = verify_backup(path)
    assert not result.ok
    assert result.problems == ["core_invoices.parquet: sha256 mismatch"]

    db = project.warehouse_path(data_dir)
    untouched = _file_hash(db)
    with pytest.raises(BackupError, match=r"core_invoices\.parquet: sha256 mismatch"):
        restore_backup(path, data_dir)
    assert _file_hash(db) == untouched
    assert sorted(p.name for p in db.parent.iterdir()) == ["invoices.duckdb"]


def _rewrite_manifest(path: Path, edit) -> None:
    """Change the manifest as a careless tool would, keeping its file checksums consistent."""
    manifest = read_manifest(path)
    edit(manifest)
    for entry in manifest["files"]:
        f = path / entry["path"]
        entry["size"], entry["sha256"] = f.stat().st_size, _file_hash(f)
    (path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_footer_verification_agrees_with_the_full_import(data_dir):
    path = _backup(data_dir)
    quick, full = verify_backup(path, full=False), verify_backup(path)
    assert quick.ok and full.ok, (quick.problems, full.problems)
    assert quick.tables == full.tables == read_manifest(path)["tables"]


def test_footer_verification_catches_what_checksums_cannot(data_dir):
    path = _backup(data_dir)
    _rewrite_manifest(path, lambda m: m["tables"].update({"core.invoices": m["tables"]["core.invoices"] + 1}))
    result = verify_backup(path, full=False)
    assert not result.ok
    assert result.problems == [
        f"core.invoices: {read_manifest(path)['tables']['core.invoices'] - 1} rows after import, "
        f"manifest says {read_manifest(path)['tables']['core.invoices']}"
    ]

    (path / "core_invoices.parquet").write_bytes(b"PAR1 not really parquet")
    _rewrite_manifest(path, lambda m: None)
    result = verify_backup(path, full=False)
    assert not result.ok
    assert result.problems[0].startswith("core_invoices.parquet: not a readable Parquet file")


def test_missing_and_extra_files_are_reported(data_dir):
    path = _backup(data_dir)
    (path / "load.sql").unlink()
    (path / "notes.txt").write_text("hello")
    result = verify_backup(path)
    assert not result.ok
    assert result.problems == ["load.sql: missing", "notes.txt: extra file, not in the manifest"]
    (path / "notes.txt").unlink()
    shutil.copy2(path / "schema.sql", path / "load.sql")
    assert "load.sql: size" in verify_backup(path).problems[0]


def test_tmp_folder_is_ignored_then_cleaned(data_dir):
    backups = data_dir / "backups"
    crashed = backups / "20261127T010000Z.tmp"
    crashed.mkdir(parents=True)
    (crashed / "schema.sql").write_text("-- half written")
    (crashed / "manifest.json").write_text(json.dumps({"files": [], "tables": {}}))

    assert not verify_backup(crashed).ok
    assert apply_retention(data_dir, daily=0, monthly=0) == []
    assert crashed.exists()

    path = _backup(data_dir)
    assert not crashed.exists()
    assert sorted(p.name for p in backups.iterdir()) == [path.name]


def _fake_backup(root: Path, when: datetime) -> Path:
    p = root / when.strftime("%Y%m%dT%H%M%SZ")
    p.mkdir(parents=True)
    (p / "manifest.json").write_text(json.dumps({"created_at": when.isoformat(), "files": [], "tables": {}}))
    return p


def test_retention_keeps_7_daily_and_12_monthly(tmp_path):
    root = tmp_path / "backups"
    now = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    made = [_fake_backup(root, now - timedelta(days=i, hours=1)) for i in range(400)]
    # a second backup on the newest day, and things retention must never touch
    newest = _fake_backup(root, now - timedelta(minutes=5))
    (root / "20250101T000000Z.tmp").mkdir()
    (root / "20250102T000000Z").mkdir()  # no manifest
    (root / "README").write_text("not a backup")

    removed = apply_retention(tmp_path, daily=7, monthly=12, now=now)

    kept = sorted(p.name for p in root.iterdir())
    expected_daily = {(now - timedelta(days=i)).strftime("%Y%m%d") for i in range(7)}
    months = []
    y, m = now.year, now.month
    for _ in range(12):
        months.append(f"{y}{m:02d}")
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    backups = sorted([*made, newest])
    expected = {max(p.name for p in backups if p.name.startswith(d)) for d in expected_daily}
    expected |= {max(p.name for p in backups if p.name.startswith(mo)) for mo in months}
    assert newest.name in expected
    assert len(expected) == 7 + 11  # this month's newest is also today's
    assert set(kept) == expected | {"20250101T000000Z.tmp", "20250102T000000Z", "README"}
    assert len(removed) == 401 - len(expected)
    assert all(not p.exists() for p in removed)
    # idempotent
    assert apply_retention(tmp_path, daily=7, monthly=12, now=now) == []


def test_retention_never_removes_the_newest(tmp_path):
    root = tmp_path / "backups"
    old = [_fake_backup(root, datetime(2020, 1, d, tzinfo=UTC)) for d in (1, 2, 3)]
    removed = apply_retention(tmp_path, daily=7, monthly=12, now=datetime(2026, 11, 28, tzinfo=UTC))
    assert removed == old[:2]
    assert [p.name for p in root.iterdir()] == [old[2].name]


def test_backup_moved_elsewhere_still_verifies(data_dir, tmp_path):
    path = _backup(data_dir)
    moved = shutil.copytree(path, tmp_path / "offsite" / path.name)
    assert verify_backup(moved).ok


def test_retention_config_from_env(monkeypatch):
    from invoice_pipeline.defs.ops.backups import BackupConfig

    assert BackupConfig().retention() == (7, 12)
    monkeypatch.setenv("INVOICE_PIPELINE_BACKUP_DAILY", "3")
    monkeypatch.setenv("INVOICE_PIPELINE_BACKUP_MONTHLY", "24")
    assert BackupConfig().retention() == (3, 24)
    assert BackupConfig(daily=10).retention() == (10, 24)


def test_retention_never_removes_manual_backups(tmp_path):
    con = connect(project.warehouse_path(tmp_path))
    try:
        now = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
        manual = create_backup(con, tmp_path, now=now - timedelta(days=400), kind="manual")
        same_day_manual = create_backup(con, tmp_path, now=now, kind="manual")
        old = create_backup(con, tmp_path, now=now - timedelta(days=400))
        nightly = create_backup(con, tmp_path, now=now + timedelta(hours=1))
    finally:
        con.close()
    removed = apply_retention(tmp_path, now=now + timedelta(hours=2))
    assert removed == [old]
    assert manual.is_dir() and same_day_manual.is_dir() and nightly.is_dir()
    assert read_manifest(manual)["kind"] == "manual" and read_manifest(nightly)["kind"] == "scheduled"
