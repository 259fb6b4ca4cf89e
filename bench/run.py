"""`make bench`: the nightly job at 1M, 5M and 10M invoices, against the ways people do it without us.

For each size (`BENCH_SIZES`, default `1000000 5000000 10000000` platform invoices):
1. landing data from `invoice-pipeline generate` (cached in bench/cache/gen/, keyed by size,
   seed and a hash of the generator's code), hard-linked into a fresh data directory;
2. the full nightly job in a fresh process (bench/nightly_job.py): wall time per stage, rows per
   second, peak RSS;
3. on the warehouse it built: the DuckDB floor (scan the staged tables, hash-aggregate the key
   column) and the product's reconciliation rules (bench/floor.py), then the same reconciliation
   with a pandas merge and with datacompy (bench/baselines.py, in bench/.venv-baselines), each
   in its own process.
Then, on the largest size: one more night of 50,000 new invoices on top of the history (the
incremental scenario), and xlsx ingest of a 1,000,000-row platform export.

Every figure of one run is measured on the same machine in the same session, and the targets are
judged on ratios, because these machines are shared. Results: bench/cache/results.json and
BENCHMARKS.md (rewritten by each run).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks_md import write_benchmarks_md  # bench/ is this script's folder

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("BENCH_CACHE") or REPO / "bench" / "cache")
PYTHON = sys.executable
BASELINE_PYTHON = REPO / "bench" / ".venv-baselines" / "bin" / "python"
SEED = 1
AS_OF = "2026-11-01"
# Smaller values make a quick check of the harness itself (BENCH_XLSX_ROWS=0 skips the xlsx step).
NIGHT_INVOICES = int(os.environ.get("BENCH_NIGHT_INVOICES") or 50_000)
XLSX_ROWS = int(os.environ.get("BENCH_XLSX_ROWS") or 1_000_000)
DEFAULT_SIZES = (1_000_000, 5_000_000, 10_000_000)
GiB = 1024**3


@dataclass
class Measured:
    wall_s: float
    peak_rss_bytes: int
    returncode: int
    output: str
    stopped: str = ""  # why the guard stopped it: "memory" or "time"


# A process that passes these is stopped and reported as such: an out-of-memory kill would take
# the shared machine down with it, and `make bench` must end.
MEM_LIMIT_BYTES = int(float(os.environ.get("BENCH_MEM_LIMIT_GIB") or 18) * GiB)
TIME_LIMIT_S = float(os.environ.get("BENCH_TIME_LIMIT_S") or 1800)


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def measure(argv: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run a process to its end: its wall time and its own peak RSS (wait4's rusage), under the
    memory and time guards."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(  # noqa: S603 — argv built here from fixed scripts and paths
            argv, cwd=REPO, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT
        )
        stopped = ""
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if not stopped and _rss(proc.pid) > MEM_LIMIT_BYTES:
                stopped = "memory"
            elif not stopped and time.perf_counter() - started > TIME_LIMIT_S:
                stopped = "time"
            if stopped:
                os.kill(proc.pid, signal.SIGKILL)
            time.sleep(0.2)
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        output = log.read().decode(errors="replace")[-4000:]
    return Measured(time.perf_counter() - started, usage.ru_maxrss * 1024, proc.returncode, output, stopped)


class GuardStopped(Exception):
    """A step passed the memory or time guard: a result to report, not a crash."""


def checked(m: Measured, what: str) -> Measured:
    if m.returncode != 0:
        raise SystemExit(f"bench: {what} failed (exit {m.returncode}):\n{m.output}")
    return m


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def generator_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted((REPO / "invoice_pipeline" / "generate").glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def generated(invoices: int, seed: int = SEED) -> tuple[Path, float | None]:
    """The cached landing tree for a size: (folder, seconds it took to generate, None if cached)."""
    tree = CACHE / "gen" / f"{invoices}-s{seed}-{generator_hash()}"
    if (tree / "truth.json").is_file():
        return tree, None
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    cli = str(Path(PYTHON).with_name("invoice-pipeline"))
    m = measure([cli, "generate", "--out", str(tree), "--invoices", str(invoices), "--seed", str(seed)])
    if m.stopped:
        shutil.rmtree(tree, ignore_errors=True)
        raise GuardStopped(f"generate {invoices:,}: stopped by the {m.stopped} guard after {m.wall_s:.0f} s")
    checked(m, f"generate {invoices}")
    return tree, m.wall_s


def hardlink_landing(tree: Path, data_dir: Path, prefix: str = "") -> int:
    """Link every landed file of a generated tree into `data_dir/landing` (no copy, and not a
    symlink, which the ingest refuses); return the tree's platform + ERP + claim rows."""
    for path in sorted((tree / "landing").rglob("*")):
        if path.is_file():
            target = data_dir / "landing" / path.parent.name / f"{prefix}{path.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)
    counts = landing_rows(tree)
    return counts["tax_platform_rows"] + counts["erp_rows"] + counts["reimbursement_rows"]


def landing_rows(tree: Path) -> dict[str, int]:
    truth = json.loads((tree / "truth.json").read_text(encoding="utf-8"))
    return {k: v for k, v in truth["counts"].items() if isinstance(v, int)}


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------


def nightly(data_dir: Path, label: str) -> dict:
    out = CACHE / "runs" / f"{label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    m = measure([PYTHON, "bench/nightly_job.py", str(data_dir), "--as-of", AS_OF, "--json", str(out)])
    if m.stopped:
        return {
            "success": False,
            "stopped": m.stopped,
            "process_s": round(m.wall_s, 2),
            "peak_rss_bytes": m.peak_rss_bytes,
        }
    checked(m, f"nightly {label}")
    result = json.loads(out.read_text())
    if not result["success"]:
        # A failed step is a result to report (which step, and DuckDB's or Python's own words).
        errors = [line for line in m.output.splitlines() if "Error" in line or "Exception" in line]
        result["error"] = errors[-1][:300] if errors else m.output[-300:]
        result["stopped"] = f"failure of {', '.join(result['failed_steps'])}"
        print(f"bench: nightly {label} failed at {result['failed_steps']}: {result['error']}", flush=True)
    return {**result, "process_s": round(m.wall_s, 2), "peak_rss_bytes": m.peak_rss_bytes}


def floor_and_core(data_dir: Path, label: str) -> dict:
    out = CACHE / "runs" / f"{label}-floor.json"
    parquet = CACHE / "parquet" / label
    shutil.rmtree(parquet, ignore_errors=True)
    m = checked(
        measure(
            [
                PYTHON,
                "bench/floor.py",
                str(data_dir / "warehouse" / "invoices.duckdb"),
                str(parquet),
                "--json",
                str(out),
            ]
        ),
        f"floor {label}",
    )
    return {**json.loads(out.read_text()), "parquet_dir": str(parquet), "process_s": round(m.wall_s, 2)}


def baseline(parquet: Path, method: str, label: str) -> dict:
    if not BASELINE_PYTHON.exists():
        return {"skipped": f"{BASELINE_PYTHON} missing (make bench builds it)"}
    out = CACHE / "runs" / f"{label}-{method}.json"
    out.unlink(missing_ok=True)  # a verdict left by an earlier run must not pass for this one's
    m = measure(
        [str(BASELINE_PYTHON), "bench/baselines.py", str(parquet), "--method", method, "--json", str(out)]
    )
    if m.returncode != 0:
        # Out of memory is a result, not a crash of the benchmark: keep the child's own verdict.
        verdict = json.loads(out.read_text()) if out.exists() else {}
        return {
            "failed": verdict.get("status", f"exit {m.returncode}"),
            "mem_limit_mib": verdict.get("mem_limit_mib"),
            "output": m.output[-800:],
            "peak_rss_bytes": m.peak_rss_bytes,
        }
    return {
        **json.loads(out.read_text()),
        "process_s": round(m.wall_s, 2),
        "peak_rss_bytes": m.peak_rss_bytes,
    }


def xlsx_ingest(tree: Path) -> dict:
    """Ingest of one 1,000,000-row platform xlsx, built once from the generated CSV exports."""
    out = CACHE / "runs" / "xlsx.json"
    m = checked(
        measure(
            [
                PYTHON,
                "bench/xlsx_ingest.py",
                str(tree),
                str(CACHE / "xlsx"),
                "--rows",
                str(XLSX_ROWS),
                "--json",
                str(out),
            ]
        ),
        "xlsx ingest",
    )
    return {**json.loads(out.read_text()), "peak_rss_bytes": m.peak_rss_bytes}


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def machine() -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = next(
        int(line.split()[1]) * 1024
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    import duckdb
    import polars

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem / GiB, 1),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "polars": polars.__version__,
        "kernel": platform.release(),
        "load_at_start": os.getloadavg()[0],
        "duckdb_memory_limit": os.environ.get("INVOICE_PIPELINE_DUCKDB_MEMORY_LIMIT") or "default (50%)",
    }


def bench_size(n: int) -> dict:
    """Generate (cached), run the nightly job, then the reconciliations on what it built."""
    label = f"n{n}"
    tree, gen_s = generated(n)
    data_dir = CACHE / "data" / label
    shutil.rmtree(data_dir, ignore_errors=True)
    rows = hardlink_landing(tree, data_dir)
    print(f"[{label}] landing ready ({rows:,} rows; generated in {gen_s or 0:.0f} s)", flush=True)
    run = nightly(data_dir, label)
    result = {
        "invoices": n,
        "landing_rows": rows,
        "counts": landing_rows(tree),
        "generate_s": gen_s,
        "nightly": run,
    }
    if not run["success"]:
        print(
            f"[{label}] nightly stopped by the {run['stopped']} guard after {run['process_s']:.0f} s",
            flush=True,
        )
        return result
    print(f"[{label}] nightly {run['job_s']:.1f} s, peak {run['peak_rss_bytes'] / GiB:.2f} GiB", flush=True)
    recon = floor_and_core(data_dir, label)
    parquet = Path(recon["parquet_dir"])
    result |= {
        "floor_and_core": recon,
        "pandas": baseline(parquet, "pandas", label),
        "datacompy": baseline(parquet, "datacompy", label),
    }
    print(f"[{label}] reconciliations measured", flush=True)
    return result


def main() -> None:
    sizes = sorted(
        int(s) for s in (os.environ.get("BENCH_SIZES") or " ".join(map(str, DEFAULT_SIZES))).split()
    )
    results: dict = {"machine": machine(), "started_at": datetime.now(UTC).isoformat(), "sizes": {}}
    completed = []
    if os.environ.get("BENCH_RESUME") and (CACHE / "results.json").is_file():
        # Keep the sizes an earlier run of this machine completed; measure only the others.
        earlier = json.loads((CACHE / "results.json").read_text())
        results["resumed_from"] = earlier["started_at"]
        for label, r in earlier["sizes"].items():
            if r["nightly"]["success"] and r["invoices"] in sizes:
                results["sizes"][label] = r
                completed.append(r["invoices"])
        sizes = [n for n in sizes if n not in completed]
    for n in sizes:
        try:
            results["sizes"][f"n{n}"] = bench_size(n)
        except GuardStopped as exc:
            results["stopped"] = str(exc)
            print(f"[n{n}] {exc}", flush=True)
            break
        save(results)
        if not results["sizes"][f"n{n}"]["nightly"]["success"]:
            break  # a bigger size would only be stopped later
        if completed:  # only the largest warehouse is needed again (the incremental night)
            shutil.rmtree(CACHE / "data" / f"n{completed[-1]}", ignore_errors=True)
        completed.append(n)
    if completed:
        largest = completed[-1]
        data_dir = CACHE / "data" / f"n{largest}"
        night, _ = generated(NIGHT_INVOICES, seed=SEED + 1000)
        night_rows = hardlink_landing(night, data_dir, prefix="night_")
        run = nightly(data_dir, "incremental")
        results["incremental"] = {"history": largest, "new_rows": night_rows, "nightly": run}
        print(f"[incremental] {run.get('job_s', run.get('process_s'))} s", flush=True)
    if XLSX_ROWS:
        xlsx_tree, _ = generated(max(XLSX_ROWS, 1_000_000))  # CSV-form exports start at 1M invoices
        results["xlsx"] = xlsx_ingest(xlsx_tree)
    results["finished_at"] = datetime.now(UTC).isoformat()
    save(results)
    print(f"wrote {REPO / 'BENCHMARKS.md'}")


def save(results: dict) -> None:
    """Write results.json and BENCHMARKS.md now, so a run stopped later still leaves its figures."""
    (CACHE / "results.json").write_text(json.dumps(results, indent=1))
    write_benchmarks_md(results, REPO / "BENCHMARKS.md")


if __name__ == "__main__":
    main()
