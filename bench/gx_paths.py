"""Measure the two ways of running a GX suite on a staged DuckDB table.

- pandas: `con.sql(...).to_arrow_table().to_pandas(types_mapper=pd.ArrowDtype)` into GX's pandas
  datasource, with the per-validate DataFrame hashing off (`HASH_THRESHOLD = 0`, pitfall 33);
- pandas_pruned: the same, reading only the columns the suite names;
- sql: GX's SQL datasource on DuckDB with the §5.2 patch, as `invoice_pipeline.gx.validate_table`
  runs it in production.

Each (table, path, repetition) runs in a fresh process so that the peak RSS is its own and no
cache is shared. pandas cannot run `unexpected_rows_expectation` (SQL only), so its suite is the
real suite without those: its times are a lower bound for what the real suite would cost.

    .venv/bin/invoice-pipeline generate --out /tmp/gxbig --invoices 200000 --seed 1
    .venv/bin/invoice-pipeline run --data-dir /tmp/gxbig --as-of 2026-11-01
    .venv/bin/python bench/gx_paths.py /tmp/gxbig/warehouse/invoices.duckdb --tables erp tax_platform
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

PATHS = ("pandas", "pandas_pruned", "sql")
SQL_ONLY = {"unexpected_rows_expectation"}


def _counts(outcomes) -> dict[str, int | None]:
    return {f"{o.type}:{o.column}": o.unexpected_count for o in outcomes}


def _suite_columns(suite: dict) -> list[str]:
    names: list[str] = []
    for e in suite["expectations"]:
        kw = e["kwargs"]
        names += [kw[k] for k in ("column", "column_A", "column_B") if k in kw] + kw.get("column_list", [])
    return list(dict.fromkeys(names))


def child(db: str, table: str, path: str) -> dict:
    """One measurement, in this (fresh) process; prints a JSON line."""
    import duckdb

    started = time.perf_counter()
    import great_expectations  # noqa: F401 — timed on its own: every first check in a process pays it

    from invoice_pipeline import gx

    imported = time.perf_counter()
    con = duckdb.connect(db, read_only=True)
    suite = gx.read_suite(table)
    out: dict = {"table": table, "path": path, "import_s": imported - started}
    if path == "sql":
        t0 = time.perf_counter()
        result = gx.validate_table(con, table, suite=suite)
        t1 = time.perf_counter()
        gx.validate_table(con, table, suite=suite)
        out |= {
            "load_s": 0.0,
            "validate_s": t1 - t0,
            "warm_s": time.perf_counter() - t1,
            "rows": result.row_count,
            "columns": len(con.sql(f"select * from staging.{table} limit 0").columns),
            "expectations": len(result.outcomes),
            "counts": _counts(result.outcomes),
            "errors": sum(o.error is not None for o in result.outcomes),
        }
    else:
        import great_expectations as ge
        import great_expectations.execution_engine.pandas_execution_engine as pee
        import pandas as pd

        pee.HASH_THRESHOLD = 0
        suite = {**suite, "expectations": [e for e in suite["expectations"] if e["type"] not in SQL_ONLY]}
        columns = ", ".join(f'"{c}"' for c in _suite_columns(suite)) if path == "pandas_pruned" else "*"

        def run():
            t0 = time.perf_counter()
            frame = (
                con.sql(f"select {columns} from staging.{table}")
                .to_arrow_table()
                .to_pandas(types_mapper=pd.ArrowDtype)
            )
            t1 = time.perf_counter()
            context = gx.ephemeral_context()
            batch = (
                context.data_sources.add_pandas("frames")
                .add_dataframe_asset(table)
                .add_batch_definition_whole_dataframe("whole frame")
                .get_batch(batch_parameters={"dataframe": frame})
            )
            results = batch.validate(ge.ExpectationSuite(**suite), result_format="SUMMARY")
            return frame, results, t0, t1, time.perf_counter()

        frame, results, t0, t1, t2 = run()
        *_, w0, _, w2 = run()
        counts, errors = {}, 0
        for r in results.results:
            config = r.expectation_config
            label = gx._column_label(config.kwargs, config.meta or {})
            info = (r.exception_info or {}).values()
            raised = any(isinstance(v, dict) and v.get("raised_exception") for v in info)
            errors += raised
            counts[f"{config.type}:{label}"] = "error" if raised else (r.result or {}).get("unexpected_count")
        out |= {
            "load_s": t1 - t0,
            "validate_s": t2 - t1,
            "warm_s": w2 - w0,
            "rows": len(frame),
            "columns": frame.shape[1],
            "expectations": len(results.results),
            "counts": counts,
            "errors": errors,
        }
    out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("db", help="warehouse file (opened read-only)")
    parser.add_argument("--tables", nargs="+", default=["erp", "tax_platform"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("TABLE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.db, *args.child)))
        return

    runs: dict[tuple[str, str], list[dict]] = {}
    for _ in range(args.repeat):
        for table in args.tables:
            for path in PATHS:
                done = subprocess.run(  # noqa: S603 — this script, with our own arguments
                    [sys.executable, str(Path(__file__).resolve()), args.db, "--child", table, path],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                runs.setdefault((table, path), []).append(json.loads(done.stdout.strip().splitlines()[-1]))

    print(
        "| table | rows x cols | path | expectations (errors) | GX import | load | validate "
        "| load+validate | same again, warm | peak RSS |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (table, path), samples in runs.items():

        def med(key: str, samples: list[dict] = samples) -> float:
            return statistics.median(s[key] for s in samples)

        first = samples[0]
        print(
            f"| {table} | {first['rows']:,} x {first['columns']} | {path} "
            f"| {first['expectations']} ({first['errors']}) | {med('import_s'):.2f} s "
            f"| {med('load_s'):.2f} s "
            f"| {med('validate_s'):.2f} s (min {min(s['validate_s'] for s in samples):.2f}, "
            f"max {max(s['validate_s'] for s in samples):.2f}) | {med('load_s') + med('validate_s'):.2f} s "
            f"| {med('warm_s'):.2f} s | {med('peak_rss_gb'):.2f} GB |"
        )
    for table in args.tables:
        sql = runs[(table, "sql")][0]["counts"]
        for path in PATHS[:-1]:
            other = runs[(table, path)][0]["counts"]
            differ = {k: (other[k], sql.get(k)) for k in other if other[k] != sql.get(k)}
            print(f"{table}: unexpected counts that differ ({path}, sql): {differ or 'none'}")


if __name__ == "__main__":
    main()
