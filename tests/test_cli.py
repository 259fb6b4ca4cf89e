"""The command line as users run it: a subprocess, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from invoice_pipeline.project import PROJECT_ROOT

BIN = Path(sys.executable).parent


def cli(*args: str, env_extra: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("INVOICE_PIPELINE_DATA_DIR", "DAGSTER_HOME")}
    env.update(env_extra or {})
    return subprocess.run(
        [str(BIN / "invoice-pipeline"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=PROJECT_ROOT,
        check=False,
    )


def test_run_on_a_data_dir_prints_where_things_are(tiny_data_dir):
    result = cli("run", "--data-dir", str(tiny_data_dir), "--as-of", "2026-04-01")
    assert result.returncode == 0, result.stderr
    assert f"warehouse: {tiny_data_dir / 'warehouse' / 'invoices.duckdb'}" in result.stdout
    assert "files: 5 loaded" in result.stdout
    assert (tiny_data_dir / "warehouse" / "invoices.duckdb").exists()
    # The next steps are runnable as printed: find shows the invoice, annotate records on it.
    [find_line] = [line for line in result.stdout.splitlines() if line.startswith("an invoice's story:")]
    [annotate_line] = [line for line in result.stdout.splitlines() if line.startswith("record follow-up:")]
    found = cli(*find_line.split("invoice-pipeline ", 1)[1].split())
    assert found.returncode == 0, found.stdout + found.stderr
    printed = annotate_line.split("invoice-pipeline ", 1)[1]
    argv = printed.replace("NAME", "张三").replace("TEXT", "已联系").split()
    annotated = cli(*argv)
    assert annotated.returncode == 0, annotated.stdout + annotated.stderr


def test_run_without_landing_fails_with_one_line(tmp_path):
    result = cli("run", "--data-dir", str(tmp_path / "nowhere"))
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "no landing folder" in result.stderr


def test_bad_as_of_fails_with_one_line(tiny_data_dir):
    result = cli("run", "--data-dir", str(tiny_data_dir), "--as-of", "yesterday")
    assert result.returncode == 1
    assert result.stderr.strip() == "invoice-pipeline: --as-of must be a date YYYY-MM-DD, got 'yesterday'"


def test_generate_writes_landing_and_truth(tmp_path):
    result = cli("generate", "--out", str(tmp_path / "sample"), "--invoices", "300", "--seed", "3")
    assert result.returncode == 0, result.stderr
    truth = json.loads((tmp_path / "sample" / "truth.json").read_text(encoding="utf-8"))
    assert truth["counts"]["core_invoices"]["tax_platform"] > 0
    for source in ("entities", "tax_platform", "einvoice", "erp", "reimbursement", "sync_log"):
        assert any((tmp_path / "sample" / "landing" / source).iterdir()), source


def test_dagster_loads_the_workspace():
    result = subprocess.run(
        [str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
        check=False,
        env={**os.environ, "DAGSTER_HOME": str(PROJECT_ROOT / "dagster_home")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr


def test_backup_verify_and_restore_from_the_command_line(tiny_data_dir):
    assert cli("run", "--data-dir", str(tiny_data_dir), "--as-of", "2026-04-01").returncode == 0
    made = cli("backup", "--data-dir", str(tiny_data_dir))
    assert made.returncode == 0, made.stderr
    path = Path(made.stdout.split()[1].rstrip(":"))
    assert path.parent == tiny_data_dir / "backups"
    assert cli("verify-backup", str(path)).returncode == 0

    parquet = sorted(path.glob("*.parquet"))[0]
    data = bytearray(parquet.read_bytes())
    data[len(data) // 2] ^= 0xFF
    parquet.write_bytes(bytes(data))
    refused = cli("verify-backup", str(path))
    assert refused.returncode == 1 and f"{parquet.name}: sha256 mismatch" in refused.stderr
    before = (tiny_data_dir / "warehouse" / "invoices.duckdb").read_bytes()
    restore = cli("restore", str(path), "--data-dir", str(tiny_data_dir))
    assert restore.returncode == 1 and parquet.name in restore.stderr
    assert (tiny_data_dir / "warehouse" / "invoices.duckdb").read_bytes() == before
