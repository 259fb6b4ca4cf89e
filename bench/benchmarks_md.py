# ruff: noqa: E501 — the lines are Markdown table rows, easier to check whole than wrapped
"""BENCHMARKS.md from bench/cache/results.json (written by bench/run.py; rerun alone with
`.venv/bin/python bench/benchmarks_md.py` to re-render without measuring again)."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

GiB = 1024**3
STAGES = ("ingest", "staging", "checks", "core", "findings", "report", "publish", "backup")


def _gib(n: float | None) -> str:
    return "–" if n is None else f"{n / GiB:.2f}"


def _mb(x: float | None) -> str:
    return "–" if x is None else f"{x / 1024:.2f}"


def _s(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def exponent(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of log(time) on log(size): 1.0 is linear."""
    if len(points) < 2:
        return None
    xs = [math.log(n) for n, _ in points]
    ys = [math.log(t) for _, t in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def _baseline_s(b: dict) -> str:
    """A baseline's seconds, or why there are none (out of memory is a result)."""
    if "wall_s" in b:
        return _s(b["wall_s"])
    if b.get("failed") == "killed by the memory guard" and b.get("mem_limit_mib"):
        return f"out of memory (> {b['mem_limit_mib'] / 1024:.1f} GiB)"
    return b.get("failed") or b.get("skipped") or "–"


def _baseline_rss(b: dict) -> str:
    if "rss_mb" in b:
        return _mb(b["rss_mb"])
    if b.get("failed") == "killed by the memory guard" and b.get("mem_limit_mib"):
        return f"> {b['mem_limit_mib'] / 1024:.1f}"
    return "–"


def _ratio_text(r: float | None, digits: int = 1) -> str:
    return "–" if r is None else f"{r:.{digits}f}"


def _speedup_target(sizes: list[dict], method: str, wanted: float) -> tuple[str, bool | None]:
    """The speed-up over a baseline at the largest size where it finished, and what happened above it."""
    finished = [r for r in sizes if "wall_s" in r[method]]
    if not finished:
        return "–", None
    r = finished[-1]
    ratio = _ratio(r[method]["wall_s"], r["floor_and_core"].get("core_with_matching_s"))
    text = f"{_ratio_text(ratio)}× at {r['invoices']:,}"
    beyond = [s for s in sizes if s["invoices"] > r["invoices"]]
    if beyond:
        text += f"; at {beyond[-1]['invoices']:,}: {_baseline_s(beyond[-1][method])}"
    return text, None if ratio is None else ratio >= wanted


def _less_memory(fc: dict, *baselines: dict) -> bool | None:
    """Ours against each baseline's peak; a baseline killed by the memory guard used more than its limit."""
    ours = fc.get("core_with_matching_rss_mb")
    if ours is None:
        return None
    theirs = [
        b.get("rss_mb")
        or (b.get("mem_limit_mib") if b.get("failed") == "killed by the memory guard" else None)
        for b in baselines
    ]
    return None if None in theirs else ours < min(theirs)


def _target(ok: bool | None) -> str:
    return "–" if ok is None else ("met" if ok else "**not met**")


def render(results: dict) -> str:
    mach = results["machine"]
    attempted = sorted(results["sizes"].values(), key=lambda r: r["invoices"])
    sizes = [r for r in attempted if r["nightly"]["success"]]
    out = [
        "# Benchmarks",
        "",
        "Written by `make bench` (bench/run.py); every figure below comes from one run on one machine, and",
        "the targets are judged on ratios measured in that same run, because these machines are shared.",
        "",
        f"Machine: {mach['cpu']}, {mach['cores']} cores, {mach['memory_gib']} GiB RAM; Linux {mach['kernel']};",
        f"Python {mach['python']}, DuckDB {mach['duckdb']} (memory limit "
        f"{mach.get('duckdb_memory_limit', 'default')}), Polars {mach['polars']}. Load average at start:",
        f"{mach['load_at_start']:.2f}. Run {results['started_at']} → {results.get('finished_at', '?')}"
        + (
            f" (sizes measured by the run of {results['resumed_from']} kept)."
            if results.get("resumed_from")
            else "."
        ),
        "",
        "## The nightly job",
        "",
        "Full nightly job in a fresh process (definitions loaded, then every asset and check of the",
        "`nightly` job in-process); peak RSS is that process's own. Landing rows = platform invoices + ERP",
        "rows + claim rows of the generated tree (truth.json); stage columns are seconds.",
        "",
        "| invoices | landing rows | job wall (s) | rows/s | peak RSS (GiB) | " + " | ".join(STAGES) + " |",
        "|---:|---:|---:|---:|---:|" + "---:|" * len(STAGES),
    ]
    for r in attempted:
        run = r["nightly"]
        if not run["success"]:
            out.append(
                f"| {r['invoices']:,} | {r['landing_rows']:,} | stopped by the {run['stopped']} "
                f"{'' if 'failure' in run['stopped'] else 'guard '}after {run['process_s']:.0f} s | "
                f"| {_gib(run['peak_rss_bytes'])} |" + " |" * len(STAGES)
            )
            if run.get("error"):
                out.append(f"\n{r['invoices']:,}: `{run['error']}`\n")
            continue
        stages = run["stages_s"]
        out.append(
            f"| {r['invoices']:,} | {r['landing_rows']:,} | {run['job_s']:.1f} | {r['landing_rows'] / run['job_s']:,.0f} "
            f"| {_gib(run['peak_rss_bytes'])} | " + " | ".join(_s(stages.get(s)) for s in STAGES) + " |"
        )
    if results.get("stopped"):
        out += ["", f"Not measured: {results['stopped']}."]
    slope = exponent([(r["invoices"], r["nightly"]["job_s"]) for r in sizes])
    out += [
        "",
        f"Growth: time ∝ size^{slope:.2f} over these sizes (1.00 is linear)." if slope else "",
        "",
        "Slowest steps at the largest size:",
        "",
        "| step | s | peak RSS during the step |",
        "|---|---:|---:|",
    ]
    if not sizes:
        return "\n".join(out) + "\n\nNo size completed.\n"
    largest = sizes[-1]
    peaks = largest["nightly"].get("steps_peak_rss_bytes", {})
    for step, seconds in list(largest["nightly"]["steps_s"].items())[:12]:
        out.append(f"| `{step}` | {seconds:.1f} | {_gib(peaks.get(step))} |")

    out += [
        "",
        "## Reconciliation against the alternatives",
        "",
        "The same reconciliation — missing both ways, amount mismatches, duplicate bookings, sequence",
        "gaps — on the same staged data, each in its own process, best of 3: the product's five rule SQL",
        "files alone (rules), the product rebuilding its invoice matching (core.invoice_aliases,",
        "core.matches) and then the rules (core — the like-for-like figure, since the baselines do their",
        "own matching), a pandas merge and datacompy (reading the same tables from Parquet, in",
        "bench/.venv-baselines), and the floor: DuckDB scanning the staged tables and hash-aggregating the",
        "key column. Times exclude interpreter start; the baselines' include reading Parquet.",
        "",
        "| invoices | floor (s) | rules (s) | core (s) | core/floor | pandas (s) | pandas/core | datacompy (s) | datacompy/core "
        "| RSS core / pandas / datacompy (GiB) | same counts |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in sizes:
        fc, pd_, dc = r["floor_and_core"], r["pandas"], r["datacompy"]
        core, floor = fc.get("core_with_matching_s"), fc.get("floor_s")
        same = all(b.get("counts") == fc.get("counts") for b in (pd_, dc) if "counts" in b)
        out.append(
            f"| {r['invoices']:,} | {_s(floor)} | {_s(fc.get('core_s'))} | {_s(core)} "
            f"| {_ratio_text(_ratio(core, floor), 2)} "
            f"| {_baseline_s(pd_)} | {_ratio_text(_ratio(pd_.get('wall_s'), core))} "
            f"| {_baseline_s(dc)} | {_ratio_text(_ratio(dc.get('wall_s'), core))} "
            f"| {_mb(fc.get('core_with_matching_rss_mb'))} / {_baseline_rss(pd_)} / {_baseline_rss(dc)} "
            f"| {'yes' if same else 'no'} |"
        )

    inc = results.get("incremental")
    xl = results.get("xlsx")
    big = largest["nightly"]
    fc = largest["floor_and_core"]
    pd_big, dc_big = largest["pandas"], largest["datacompy"]
    targets = [
        (
            f"nightly job ≤ 60 s at 10M (measured at {largest['invoices']:,})",
            f"{big['job_s']:.1f} s",
            big["job_s"] <= 60 and largest["invoices"] >= 10_000_000,
        ),
        ("nightly job peak ≤ 6 GiB", f"{_gib(big['peak_rss_bytes'])} GiB", big["peak_rss_bytes"] <= 6 * GiB),
        (
            "reconciliation core ≤ 2.5× floor",
            f"{_ratio(fc.get('core_with_matching_s'), fc.get('floor_s')) or 0:.2f}×",
            (_ratio(fc.get("core_with_matching_s"), fc.get("floor_s")) or 99) <= 2.5,
        ),
        ("≥ 10× faster than pandas", *_speedup_target(sizes, "pandas", 10)),
        ("≥ 20× faster than datacompy", *_speedup_target(sizes, "datacompy", 20)),
        (
            f"less memory than pandas and datacompy (at {largest['invoices']:,})",
            f"{_mb(fc.get('core_with_matching_rss_mb'))} vs {_baseline_rss(pd_big)} / {_baseline_rss(dc_big)} GiB",
            _less_memory(fc, pd_big, dc_big),
        ),
        (
            "incremental night ≤ 15 s",
            f"{inc['nightly'].get('job_s', 0):.1f} s on {inc['history']:,}" if inc else "–",
            inc["nightly"].get("job_s", 1e9) <= 15 and inc["history"] >= 10_000_000 if inc else None,
        ),
        (
            "xlsx ingest ≥ 150,000 rows/s",
            f"{xl['rows_per_s']:,} rows/s" if xl else "–",
            xl["rows_per_s"] >= 150_000 if xl else None,
        ),
        (
            "roughly linear growth",
            f"exponent {slope:.2f}" if slope else "–",
            slope <= 1.15 if slope else None,
        ),
    ]
    out += ["", "## Targets", "", "| target | measured | |", "|---|---:|---|"]
    out += [f"| {t} | {v} | {_target(ok)} |" for t, v, ok in targets]
    if inc and not inc["nightly"]["success"]:
        out += ["", "## One more night", "", f"Stopped by the {inc['nightly']['stopped']} guard."]
    elif inc:
        out += [
            "",
            "## One more night",
            "",
            f"{inc['history']:,} invoices of history in the warehouse plus one night of {inc['new_rows']:,} new rows:",
            f"{inc['nightly']['job_s']:.1f} s, peak {_gib(inc['nightly']['peak_rss_bytes'])} GiB; by stage: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in inc["nightly"]["stages_s"].items())
            + ".",
        ]
    if xl:
        out += [
            "",
            "## xlsx ingest",
            "",
            f"One platform export of {xl['rows']:,} rows ({xl['file_bytes'] / 1e6:.0f} MB): read with calamine, written",
            f"to raw and logged in {xl['ingest_s']:.1f} s = {xl['rows_per_s']:,} rows/s, peak {_gib(xl['peak_rss_bytes'])} GiB.",
        ]
    return "\n".join(out) + "\n"


def write_benchmarks_md(results: dict, path: Path) -> None:
    path.write_text(render(results), encoding="utf-8")


if __name__ == "__main__":
    root = Path(__file__).resolve().parent
    cache = Path(os.environ.get("BENCH_CACHE") or root / "cache")
    data = json.loads((cache / "results.json").read_text())
    write_benchmarks_md(data, root.parent / "BENCHMARKS.md")
    sys.stdout.write(f"wrote {root.parent / 'BENCHMARKS.md'}\n")
