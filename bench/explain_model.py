"""Profile one SQL model with DuckDB's profiler: which operators its time goes to.

    .venv/bin/python bench/explain_model.py WAREHOUSE.duckdb core/matches [--top 16]

Works on a copy of the warehouse (the model is rebuilt into a temporary table, nothing is
written to the file's tables, but DuckDB still needs it writable and unlocked). Prints the
query's CPU time, DuckDB's peak buffer memory and the slowest operators with their row counts
and join conditions — the EXPLAIN ANALYZE tree, flattened and sorted by time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import duckdb

from invoice_pipeline import project


def operators(node: dict, depth: int = 0) -> list[tuple[float, int, str, int, str]]:
    """(seconds, depth, operator, rows out, join conditions) of a profile tree, every node."""
    info = node.get("extra_info") or {}
    row = (
        float(node.get("timing") or 0.0),
        depth,
        str(node.get("name")),
        int(node.get("intermediate_rows") or 0),
        " ".join(filter(None, [str(info.get("Join Type", "")), str(info.get("Conditions", ""))]))[:100],
    )
    return [row] + [r for child in node.get("children", []) for r in operators(child, depth + 1)]


def profile(warehouse: Path, model: str) -> dict:
    schema, table = model.split("/", 1)
    sql = (project.MODELS_DIR / schema / f"{table}.sql").read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="explain-") as tmp:
        out = Path(tmp) / "profile.json"
        con = duckdb.connect(str(warehouse))
        try:
            con.execute("pragma enable_profiling = 'json'")
            con.execute(f"pragma profiling_output = '{out}'")
            started = time.perf_counter()
            con.execute(
                f"create or replace temp table explained as {sql}",
                {"as_of": "2026-11-01"} if "$as_of" in sql else {},
            )
            wall = time.perf_counter() - started
        finally:
            con.close()
        tree = json.loads(out.read_text())
    rows = sorted((r for op in tree["operator"] for r in operators(op)), reverse=True)
    return {
        "model": model,
        "wall_s": round(wall, 2),
        "cpu_s": round(tree["query"]["cpu_time"], 2),
        "peak_buffer_gib": round(tree["system"]["peak_buffer_memory"] / 2**30, 2),
        "operators": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("model", help="schema/table of a model in assets/models, e.g. core/matches")
    parser.add_argument("--top", type=int, default=16)
    args = parser.parse_args()
    result = profile(args.warehouse, args.model)
    print(
        f"{result['model']}: {result['wall_s']} s wall, {result['cpu_s']} s CPU, "
        f"peak buffer {result['peak_buffer_gib']} GiB"
    )
    for seconds, depth, name, rows, join in result["operators"][: args.top]:
        print(f"{seconds:7.2f} s  depth {depth:2d}  {name:<22} {rows:>12,} rows  {join}")


if __name__ == "__main__":
    main()
