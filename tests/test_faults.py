"""Fault tolerance, end to end: what the warehouse looks like after things go wrong.

Every test drives the real command line (`invoice-pipeline …` as a subprocess) or the real
pipeline functions on its own data directory; nothing is mocked. The suite proves that

- a run killed with SIGKILL in the middle of loading leaves the last good warehouse, grown at
  most by whole, committed per-source loads; the next run completes and ends where a clean,
  uninterrupted run of the same files ends (raw rows, file log, findings);
- a file landed twice is loaded once: the same name and bytes again add no row anywhere, the
  same bytes under another name add one `skipped_duplicate` line to the load log and nothing else;
- unreadable files (truncated workbook, GBK with invalid bytes, an XML bomb, an external entity,
  missing required columns, an empty file) are quarantined with a reason a person can act on,
  while every other file loads exactly as it would without them, and the run still exits 0;
  the external entity's target is never read into the warehouse;
- a backup with one flipped byte is refused by `verify-backup` and `restore`, naming the file,
  and leaves the warehouse untouched; a good backup restores exactly what was backed up.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
import uuid
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb
import pytest
from test_cli import BIN, cli
from test_ingest import load_everything

from invoice_pipeline import project
from invoice_pipeline.cli import run_pipeline
from invoice_pipeline.generate import generate
from invoice_pipeline.specs import load_specs
from invoice_pipeline.warehouse import connect

AS_OF = "2026-11-01"
# Logs that gain a row per run by design; everything else is compared.
RUN_LOGS = {"audit.runs", "audit.backups"}
# What an ingest step may add to the warehouse: rows of new loads, nothing else.
GROWN_BY_LOADS = {"audit.file_loads", "audit.rejected_rows"}
SOURCES = ("entities", "tax_platform", "einvoice", "erp", "reimbursement", "sync_log")


# --------------------------------------------------------------------------- helpers


def digests(db: Path, *, skip: set[str] = RUN_LOGS) -> dict[str, tuple[int, int | None]]:
    """Every base table of a DuckDB file: (row count, order-independent content hash)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = con.execute(
            "select schema_name, table_name from duckdb_tables() "
            "where database_name = current_database() order by all"
        ).fetchall()
        out = {}
        for schema, table in names:
            if f"{schema}.{table}" in skip:
                continue
            n, h = con.execute(f'select count(*), sum(hash(t)) from "{schema}"."{table}" as t').fetchone()
            out[f"{schema}.{table}"] = (n, h)
        return out
    finally:
        con.close()


def history_without_runs(db: Path) -> list[tuple]:
    """core.invoice_history's events without the columns that name the run that observed them."""
    return query(
        db,
        "select invoice_uid, aspect, event, value_before, value_after, source, file_name "
        "from core.invoice_history order by all",
    )


def query(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = connect(db, read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def landed(data_dir: Path) -> dict[tuple[str, str], Path]:
    """Every file in the landing folders, by (source, file name)."""
    landing = project.landing_dir(data_dir)
    return {
        (source, p.name): p
        for source in SOURCES
        if (landing / source).is_dir()
        for p in sorted((landing / source).iterdir())
        if p.is_file()
    }


def bad_files(truth: dict) -> dict[tuple[str, str], str]:
    """The generator's deliberately unreadable files -> the words their reason must contain."""
    return {(b["source"], b["file"]): b["reason_contains"] for b in truth["bad_files"]}


def cli_env(extra: dict | None = None) -> dict[str, str]:
    """The environment `test_cli.cli` gives the command: no data dir or Dagster home of ours."""
    env = {k: v for k, v in os.environ.items() if k not in ("INVOICE_PIPELINE_DATA_DIR", "DAGSTER_HOME")}
    env.update(extra or {})
    return env


@contextmanager
def started(*args: str, env_extra: dict | None = None, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE):
    """`invoice-pipeline …` in its own session (process group = its pid); killed on the way out."""
    proc = subprocess.Popen(
        [str(BIN / "invoice-pipeline"), *args],
        stdout=stdout,
        stderr=stderr,
        encoding="utf-8",
        errors="replace",
        env=cli_env(env_extra),
        cwd=project.PROJECT_ROOT,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            kill_group(proc)
        proc.wait(timeout=60)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process, then the whole process group it leads (start_new_session: pgid == pid)."""
    for kill in (os.kill, os.killpg):
        with suppress(ProcessLookupError):
            kill(proc.pid, signal.SIGKILL)


def move_files(files: list[Path], target: Path) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.move(str(f), target / f.name)) for f in files]


# --------------------------------------------------------------------------- 1. SIGKILL mid-load

KILL_INVOICES = 3000
KILL_SEED = 41
# Sources some of whose files land only after the last good run. Dagster runs the ingest steps
# in key order (einvoice, entities, erp, reimbursement, sync_log, tax_platform): the first two
# commit before the kill, tax_platform (the largest, ~1 s of reading) is the one killed.
HELD_BACK = ("einvoice", "erp", "tax_platform")
KILLED_STEP = "ingest_tax_platform"


def step_started(step: str) -> str:
    return f'Started execution of step "{step}"'


def step_finished(step: str) -> str:
    return f'Finished execution of step "{step}"'


def open_files(pid: int) -> set[str]:
    """What a process has open right now (Linux: /proc/<pid>/fd)."""
    names = set()
    with suppress(FileNotFoundError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with suppress(OSError):
                names.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return names


def run_and_kill_mid_step(data_dir: Path, step: str, targets: list[Path], timeout: float = 180):
    """Start `run`; once `step` has started, SIGKILL its process group the moment it has one of
    `targets` open (it reads a source's files in name order, so the files before it are read).

    Returns (exit status, everything it wrote to stderr, the target it had open or None).
    """
    wanted = {str(p.resolve()): p for p in targets}
    lines: list[str] = []
    arrived: queue.Queue[str | None] = queue.Queue()
    with started(
        "run",
        "--data-dir",
        str(data_dir),
        "--as-of",
        AS_OF,
        env_extra={"INVOICE_PIPELINE_LOG_LEVEL": "DEBUG"},
    ) as proc:

        def pump() -> None:
            for line in proc.stderr:
                lines.append(line)
                arrived.put(line)
            arrived.put(None)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        in_step, caught = False, None
        deadline = time.monotonic() + timeout
        while caught is None and time.monotonic() < deadline:
            try:  # until the step starts, wait for lines; then take them as they come
                line = arrived.get_nowait() if in_step else arrived.get(timeout=0.5)
            except queue.Empty:
                line = ""
            if line is None or step_finished(step) in line:
                break  # the run ended, or the step finished first: the test reports it
            in_step = in_step or step_started(step) in line
            if in_step:
                hits = open_files(proc.pid) & wanted.keys()
                if hits:
                    kill_group(proc)
                    caught = wanted[min(hits)]
                else:
                    time.sleep(0.001)  # a file stays open for tens of milliseconds while it is read
        if caught is None and proc.poll() is None:
            kill_group(proc)
        status = proc.wait(timeout=60)
        reader.join(timeout=60)
    return status, "".join(lines), caught


def check_lineage(con: duckdb.DuckDBPyConnection) -> None:
    """Every raw row belongs to a loaded file, and every loaded file has all its rows in raw."""
    specs = load_specs()
    loaded = {
        load_id: (source, name, rows_read)
        for load_id, source, name, rows_read in con.execute(
            "select load_id, source, file_name, rows_read from audit.file_loads where status = 'loaded'"
        ).fetchall()
    }
    for spec in specs.values():
        for table in spec.tables:
            orphans = con.execute(
                f"select count(*) from raw.{table} where _load_id not in "
                "(select load_id from audit.file_loads where status = 'loaded')"
            ).fetchone()[0]
            assert orphans == 0, f"raw.{table}: {orphans} rows of no loaded file"
        main = spec.main_table.name
        per_load = dict(con.execute(f"select _load_id, count(*) from raw.{main} group by all").fetchall())
        not_in_raw = dict(
            con.execute(
                "select load_id, count(distinct source_row) from audit.rejected_rows "
                "where stage = 'read' and table_name = ? group by all",
                [main],
            ).fetchall()
        )
        for load_id, (source, name, rows_read) in loaded.items():
            if source != spec.name:
                continue
            in_raw = per_load.get(load_id, 0)
            assert in_raw + not_in_raw.get(load_id, 0) == rows_read, (
                f"{source}/{name}: {in_raw} rows in raw.{main}, "
                f"{not_in_raw.get(load_id, 0)} unreadable, but rows_read = {rows_read}"
            )
            assert rows_read > 0, f"{source}/{name}: loaded without rows"


def findings(db: Path) -> set[tuple]:
    return set(query(db, "select rule_id, subject, entity_tin, status from audit.findings"))


@pytest.mark.slow
def test_sigkill_mid_load_leaves_last_good_warehouse_and_next_run_completes(tmp_path):
    data_dir, clean_dir = tmp_path / "data", tmp_path / "clean"
    truth = generate(data_dir, invoices=KILL_INVOICES, seed=KILL_SEED)
    shutil.copytree(project.landing_dir(data_dir), project.landing_dir(clean_dir))
    bad = bad_files(truth)
    everything = landed(data_dir)
    held_back = {
        source: [p for (s, name), p in everything.items() if s == source and (s, name) not in bad][::2]
        for source in HELD_BACK
    }
    aside = {s: move_files(files, tmp_path / "aside" / s) for s, files in held_back.items()}
    db = project.warehouse_path(data_dir)

    # The clean, uninterrupted run of the whole tree runs alongside the last good run.
    clean_log = tmp_path / "clean.stderr"
    with (
        open(clean_log, "w") as clean_err,
        started("run", "--data-dir", str(clean_dir), "--as-of", AS_OF, stderr=clean_err) as clean,
    ):
        first = cli("run", "--data-dir", str(data_dir), "--as-of", AS_OF)
        assert first.returncode == 0, first.stderr
        assert clean.wait(timeout=300) == 0, clean_log.read_text()
    last_good = digests(db)
    last_good_loads = {r[0] for r in query(db, "select load_id from audit.file_loads")}
    last_good_findings = findings(db)

    # The held-back files land; the next run is killed while it is loading them.
    for source, files in aside.items():
        move_files(files, project.landing_dir(data_dir) / source)
    # Killed while reading the second half of the held-back platform exports: the first half
    # has been read (files are read in name order) and not one row of them may be committed.
    platform = sorted(project.landing_dir(data_dir) / "tax_platform" / p.name for p in aside["tax_platform"])
    status, log, caught = run_and_kill_mid_step(data_dir, KILLED_STEP, platform[len(platform) // 2 :])
    (tmp_path / "killed_run.stderr").write_text(f"{log}# SIGKILL while {caught} was open\n", encoding="utf-8")
    assert caught is not None, f"never saw {KILLED_STEP} reading the held-back exports:\n{log[-3000:]}"
    assert status == -signal.SIGKILL
    # Evidence that the kill landed mid-load: two ingest steps that load held-back files had
    # finished (committed); the tax_platform ingest had started, had read the first half of its
    # new exports, was reading one of the second half, and never finished.
    for step in ("ingest_einvoice", "ingest_erp"):
        assert step_finished(step) in log, f"{step} had not finished when the run was killed"
    assert step_started(KILLED_STEP) in log
    assert step_finished(KILLED_STEP) not in log, "killed too late: the tax_platform ingest had finished"
    assert 'Started execution of step "stage_' not in log, "killed too late: staging had started"
    assert platform.index(caught) >= len(platform) // 2 >= 1

    # The warehouse opens (as the next run would open it, read-write) …
    con = duckdb.connect(str(db))
    try:
        assert con.execute("select count(*) from audit.file_loads").fetchone()[0] >= len(last_good_loads)
        check_lineage(con)
        old = list(last_good_loads)
        new_loads = con.execute(
            "select source, file_name, status from audit.file_loads where not list_contains(?, load_id)",
            [old],
        ).fetchall()
        # … grown only by rows of whole loads: the old loads' rows are exactly as they were.
        for name in last_good:
            if name.split(".")[0] != "raw" and name not in GROWN_BY_LOADS:
                continue
            key = "load_id" if name.startswith("audit.") else "_load_id"
            kept = con.execute(
                f"select count(*), sum(hash(t)) from {name} as t where list_contains(?, {key})", [old]
            ).fetchone()
            assert kept == last_good[name], f"{name}: rows of the last good loads changed"
        # A load adds to the rejected rows only what it could not read; staging never ran.
        assert (
            con.execute(
                "select count(*) from audit.rejected_rows "
                "where not list_contains(?, load_id) and stage <> 'read'",
                [old],
            ).fetchone()[0]
            == 0
        )
    finally:
        con.close()
    after_kill = digests(db)
    assert set(after_kill) == set(last_good)
    for name, before in last_good.items():
        if name.split(".")[0] != "raw" and name not in GROWN_BY_LOADS:
            assert after_kill[name] == before, f"{name} changed although no step after ingest ran"
    # One transaction per source: a source's held-back files are all committed or none is.
    committed = {s: sorted(n for src, n, _ in new_loads if src == s) for s in SOURCES}
    assert committed == {
        "entities": [],
        "tax_platform": [],  # the step that was killed left nothing behind
        "einvoice": sorted(p.name for p in aside["einvoice"]),
        "erp": sorted(p.name for p in aside["erp"]),
        "reimbursement": [],
        "sync_log": [],
    }
    assert {status for _, _, status in new_loads} == {"loaded"}

    # The next run completes and ends where the clean run ended.
    rerun = cli("run", "--data-dir", str(data_dir), "--as-of", AS_OF)
    assert rerun.returncode == 0, rerun.stderr
    statuses = {
        (source, name): list(s)
        for source, name, s in query(
            db, "select source, file_name, list(status order by file_seq) from audit.file_loads group by all"
        )
    }
    assert statuses == {key: ["quarantined" if key in bad else "loaded"] for key in landed(data_dir)}
    for (source, name), words in bad.items():
        (reason,) = query(
            db, "select reason from audit.file_loads where source = ? and file_name = ?", [source, name]
        )[0]
        assert words.lower() in reason.lower(), (name, reason)
    con = connect(db, read_only=True)
    try:
        check_lineage(con)
    finally:
        con.close()

    clean_db = project.warehouse_path(clean_dir)
    final, reference = digests(db), digests(clean_db)
    assert set(final) == set(reference)
    # Which copy of an invoice exported twice wins depends on load order (the newest load); this
    # tree has no such copies, so raw, staging and core equal the clean run's, row for row.
    assert not query(db, "select 1 from audit.rejected_rows where stage = 'duplicate' limit 1")
    for name in final:
        if name == "core.invoice_history":
            continue  # records which run saw each change: compared below without the run's own columns
        if name.split(".")[0] in ("raw", "staging", "core") or name == "audit.rejected_rows":
            assert final[name] == reference[name], (
                f"{name}: {final[name][0]} rows, clean run {reference[name][0]}"
            )
    # The history saw the same changes, from the same files; only when (which run) differs.
    assert history_without_runs(db) == history_without_runs(clean_db)
    # Findings: the clean run's, plus the last good run's findings the full data no longer
    # shows, which the rerun resolved (the ledger keeps them, as it must).
    opened = {f for f in findings(db) if f[3] == "open"}
    resolved = {f for f in findings(db) if f[3] != "open"}
    assert opened == findings(clean_db)
    assert {f[:3] for f in resolved} == {f[:3] for f in last_good_findings} - {f[:3] for f in opened}
    assert {f[3] for f in resolved} <= {"resolved"}


# --------------------------------------------------------------------------- 2. loaded once


def test_the_same_file_landed_twice_is_loaded_once(tiny_data_dir, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)  # an ephemeral Dagster instance
    db = project.warehouse_path(tiny_data_dir)
    landing = project.landing_dir(tiny_data_dir)
    run_pipeline(tiny_data_dir, "2026-04-01")
    first = digests(db)

    # The same bytes under another name: one skipped_duplicate line, no row anywhere else.
    original = landing / "tax_platform" / "BJ_2026Q1_全量发票查询导出结果.xlsx"
    copy = landing / "tax_platform" / "BJ_2026Q1_全量发票查询导出结果 - 副本.xlsx"
    shutil.copy2(original, copy)
    run_pipeline(tiny_data_dir, "2026-04-01")
    second = digests(db)
    log = query(
        db, "select file_name, status, reason, rows_read, rows_loaded, is_current from audit.load_log"
    )
    assert sorted(r for r in log if r[1] != "loaded") == [
        (copy.name, "skipped_duplicate", f"same content as {original.name}, already loaded", 0, 0, False)
    ]
    assert sum(1 for r in log if r[0] == original.name) == 1
    for name in first:
        if name.split(".")[0] in ("raw", "staging", "core"):
            assert second[name] == first[name], f"{name} changed for a duplicate file"
    assert second["audit.file_loads"][0] == first["audit.file_loads"][0] + 1
    assert second["audit.rejected_rows"] == first["audit.rejected_rows"]

    # The same names with the same bytes again: no new row at all, the duplicate is not re-logged.
    run_pipeline(tiny_data_dir, "2026-04-01")
    assert digests(db) == second


# --------------------------------------------------------------------------- 3. quarantine

BOMB = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE EInvoice [
  <!ENTITY a "哈哈哈哈哈哈哈哈哈哈">
  <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
  <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
  <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
  <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
  <!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
  <!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;">
  <!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">
  <!ENTITY i "&h;&h;&h;&h;&h;&h;&h;&h;&h;&h;">
  <!ENTITY j "&i;&i;&i;&i;&i;&i;&i;&i;&i;&i;">
]>
<EInvoice><Header><EIid>26119000000000000777</EIid></Header>
<EInvoiceData><AdditionalInformation><Remark>&j;</Remark></AdditionalInformation></EInvoiceData>
</EInvoice>
"""


def plant_bad_files(landing: Path, canary: Path) -> dict[tuple[str, str], list[str]]:
    """Write one file of each unreadable kind next to good ones; return the words each reason needs."""
    expected: dict[tuple[str, str], list[str]] = {}

    # Half the bytes of a real platform export: the zip's central directory is gone.
    export = next(p for p in sorted((landing / "tax_platform").glob("*.xlsx")) if " (" not in p.name)
    truncated = landing / "tax_platform" / f"半截_{export.name}"
    truncated.write_bytes(export.read_bytes()[: export.stat().st_size // 2])
    expected["tax_platform", truncated.name] = ["not a readable xlsx", "truncated"]

    # A GBK register with two bytes that are neither GBK/GB18030 nor UTF-8 at the start of line 3.
    register = next(p for p in sorted((landing / "erp").glob("*_2026H1.csv")))
    raw = register.read_bytes()
    text = raw.decode("utf-8-sig") if raw[:3] == b"\xef\xbb\xbf" else raw.decode("gb18030")
    data = text.encode("gb18030")
    offset = data.index(b"\n", data.index(b"\n") + 1) + 1
    gbk = landing / "erp" / "BJ01_发票登记簿_GBK坏字节.csv"
    gbk.write_bytes(data[:offset] + b"\xff\xfe" + data[offset:])
    expected["erp", gbk.name] = ["cannot decode", "GB18030", f"byte 0xff at offset {offset}"]

    # A register without its 发票号码 column (a required column).
    rows = list(csv.reader(io.StringIO(text)))
    drop = rows[0].index("发票号码")
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows([r[:drop] + r[drop + 1 :] for r in rows])
    missing = landing / "erp" / "SD01_发票登记簿_缺列.csv"
    missing.write_bytes(buffer.getvalue().encode("utf-8-sig"))
    expected["erp", missing.name] = ["missing column", "发票号码"]

    # An empty claims export.
    empty = landing / "reimbursement" / "报销单_202611.csv"
    empty.write_bytes(b"")
    expected["reimbursement", empty.name] = ["empty"]

    # Billion laughs in the 数电 XML folder.
    bomb = landing / "einvoice" / "dzfp_26119000000000000777_炸弹_20261030120000.xml"
    bomb.write_text(BOMB, encoding="utf-8")
    expected["einvoice", bomb.name] = ["entity", "refused"]

    # A real 数电 XML that pulls /etc/passwd and a canary file into its seller name and remark.
    real = next(p for p in sorted((landing / "einvoice").glob("dzfp_*.xml")) if " (" not in p.name)
    invoice = real.read_text(encoding="utf-8")
    assert "<Remark>" in invoice and "<SellerName>" in invoice
    doctype = (
        '<!DOCTYPE EInvoice [\n  <!ENTITY x SYSTEM "file:///etc/passwd">\n'
        f'  <!ENTITY y SYSTEM "{canary.as_uri()}">\n]>\n'
    )
    head, body = invoice.split("\n", 1)
    body = body.replace("<Remark>", "<Remark>&x;", 1).replace("<SellerName>", "<SellerName>&y;", 1)
    xxe = landing / "einvoice" / real.name.replace(".xml", "_xxe.xml")
    xxe.write_text(f"{head}\n{doctype}{body}", encoding="utf-8")
    expected["einvoice", xxe.name] = ["entity", "refused"]
    return expected


def text_found(db: Path, needles: list[str]) -> list[str]:
    """Tables of a DuckDB file with a row whose text contains one of `needles`."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        hits = []
        for schema, table in con.execute(
            "select schema_name, table_name from duckdb_tables() where database_name = current_database()"
        ).fetchall():
            for needle in needles:
                n = con.execute(
                    f'select count(*) from "{schema}"."{table}" as t where contains(cast(t as varchar), ?)',
                    [needle],
                ).fetchone()[0]
                if n:
                    hits.append(f"{schema}.{table}: {n} rows with {needle!r}")
        return hits
    finally:
        con.close()


def test_each_bad_file_is_quarantined_with_a_clear_reason_while_the_rest_loads(generated_data_dir, tmp_path):
    data_dir = generated_data_dir
    landing = project.landing_dir(data_dir)
    truth = json.loads((data_dir / "truth.json").read_text(encoding="utf-8"))
    token = f"XXE-CANARY-{uuid.uuid4().hex}"
    canary = tmp_path / "secret.txt"
    canary.write_text(token + "\n", encoding="utf-8")
    passwd = Path("/etc/passwd").read_text(encoding="utf-8").splitlines()[0]
    planted = plant_bad_files(landing, canary)
    generator_bad = bad_files(truth)
    all_bad = set(planted) | set(generator_bad)

    # The same tree without any bad file, loaded by the same ingest and staging functions.
    reference = tmp_path / "reference"
    for (source, name), path in landed(data_dir).items():
        if (source, name) not in all_bad:
            (reference / "landing" / source).mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, reference / "landing" / source / name)
    con = connect(project.warehouse_path(reference))
    try:
        load_everything(con, reference)
    finally:
        con.close()

    result = cli("run", "--data-dir", str(data_dir), "--as-of", AS_OF)
    assert result.returncode == 0, result.stderr
    db = project.warehouse_path(data_dir)
    log = {
        (source, name): (status, reason)
        for source, name, status, reason in query(
            db, "select source, file_name, status, reason from audit.load_log"
        )
    }
    for key, words in planted.items():
        status, reason = log[key]
        assert status == "quarantined", (key, status, reason)
        for word in words:
            assert word.lower() in reason.lower(), (key, reason, word)
        assert f"quarantined {key[0]}/{key[1]}: {reason}" in result.stdout
    for key, words in generator_bad.items():
        assert log[key][0] == "quarantined" and words.lower() in log[key][1].lower(), (key, log[key])
    assert {k for k, (status, _) in log.items() if status != "loaded"} == all_bad

    # Nothing the external entities point at was read: not in either database, the reports or the output.
    analytics = project.analytics_path(data_dir)
    assert text_found(db, [passwd, token]) == []
    assert text_found(analytics, [passwd, token]) == []
    for html in (data_dir / "reports").rglob("*.html"):
        page = html.read_text(encoding="utf-8")
        assert token not in page and passwd not in page, html
    assert token not in result.stdout + result.stderr and passwd not in result.stdout + result.stderr

    # Every other file loaded exactly as it does without the bad ones.
    columns = "source, file_name, status, rows_read, rows_loaded, rows_rejected, control_total_ok"
    ref_db = project.warehouse_path(reference)
    assert set(query(db, f"select {columns} from audit.load_log where status <> 'quarantined'")) == set(
        query(ref_db, f"select {columns} from audit.load_log")
    )
    got, want = digests(db), digests(ref_db)
    for name, value in want.items():
        if name.startswith("raw."):
            assert got[name] == value, name
        elif name.startswith("staging."):
            assert got[name][0] == value[0], name


# --------------------------------------------------------------------------- 4. backups


@pytest.fixture(scope="module")
def backed_up(generated_tree, tmp_path_factory) -> tuple[Path, Path, dict[str, list[Path]], dict]:
    """A warehouse from part of the generated tree, a CLI backup of it, and the rows it holds.

    Returns (data dir, backup folder, files held back from the run, every table at backup time).
    """
    root = tmp_path_factory.mktemp("backed_up")
    data_dir = root / "data"
    shutil.copytree(generated_tree / "landing", project.landing_dir(data_dir))
    landing = project.landing_dir(data_dir)
    held = {
        "tax_platform": sorted((landing / "tax_platform").glob("*Q4_*.xlsx")),
        "erp": sorted((landing / "erp").glob("*_2026H2.*")),
    }
    assert all(held.values())
    held = {source: move_files(files, root / "held" / source) for source, files in held.items()}
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("DAGSTER_HOME", raising=False)
        mp.setenv(project.DATA_DIR_ENV, str(data_dir))
        run_pipeline(data_dir, AS_OF)
    at_backup = digests(project.warehouse_path(data_dir), skip=set())
    made = cli("backup", "--data-dir", str(data_dir))
    assert made.returncode == 0, made.stderr
    path = Path(made.stdout.split()[1].rstrip(":"))
    assert path.parent == data_dir / "backups" and path.is_dir()
    return data_dir, path, held, at_backup


def copied(backed: tuple, tmp_path: Path) -> tuple[Path, Path]:
    """This test's own copy of the backed-up data dir, and its backup folder."""
    data_dir, path, _, _ = backed
    mine = tmp_path / "data"
    shutil.copytree(data_dir, mine)
    return mine, mine / "backups" / path.name


def file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.xdist_group("faults_backup")
def test_backup_with_one_flipped_byte_is_refused_and_warehouse_untouched(backed_up, tmp_path):
    data_dir, path = copied(backed_up, tmp_path)
    assert cli("verify-backup", str(path)).returncode == 0
    victim = path / "raw_erp.parquet"
    data = bytearray(victim.read_bytes())
    data[len(data) // 3] ^= 0x01
    victim.write_bytes(bytes(data))
    db = project.warehouse_path(data_dir)
    before, warehouse_files = file_sha(db), sorted(p.name for p in db.parent.iterdir())

    verify = cli("verify-backup", str(path))
    assert verify.returncode == 1
    assert verify.stderr.strip().count("\n") == 0
    assert f"{victim.name}: sha256 mismatch" in verify.stderr

    restore = cli("restore", str(path), "--data-dir", str(data_dir))
    assert restore.returncode == 1
    assert restore.stderr.strip().count("\n") == 0
    assert victim.name in restore.stderr
    assert file_sha(db) == before
    assert sorted(p.name for p in db.parent.iterdir()) == warehouse_files


@pytest.mark.xdist_group("faults_backup")
def test_restore_gives_back_exactly_the_tables_and_rows_backed_up(backed_up, monkeypatch, tmp_path):
    _, _, held, at_backup = backed_up
    data_dir, path = copied(backed_up, tmp_path)
    db = project.warehouse_path(data_dir)

    # The warehouse moves on: the held-back files land and the nightly job runs again.
    for source, files in held.items():
        for f in files:
            shutil.copy2(f, project.landing_dir(data_dir) / source / f.name)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv(project.DATA_DIR_ENV, str(data_dir))
    run_pipeline(data_dir, AS_OF)
    assert path.is_dir()  # a manual backup outlives the run's retention (one kept per day)
    moved_on = digests(db, skip=set())
    assert moved_on["raw.tax_platform"][0] > at_backup["raw.tax_platform"][0]
    assert moved_on["raw.erp"][0] > at_backup["raw.erp"][0]

    restore = cli("restore", str(path), "--data-dir", str(data_dir))
    assert restore.returncode == 0, restore.stderr
    restored = digests(db, skip=set())
    assert restored == at_backup  # every table, its rows and their content; run logs included
    assert f"{len(at_backup)} tables, {sum(n for n, _ in at_backup.values()):,} rows" in restore.stdout
    assert digests(db.with_name("invoices.duckdb.before-restore"), skip=set()) == moved_on
