"""Ingest one platform export of N rows in xlsx form: read (calamine) + raw insert + load log.

    .venv/bin/python bench/xlsx_ingest.py GENERATED_TREE WORK_DIR --rows 1000000 --json OUT.json

The workbook is built once (kept in WORK_DIR) from the generated tree's CSV-form platform
exports — the same columns as the xlsx form — with the project's own deterministic xlsx writer:
the first N data rows, no 合计 row (so no control total is checked). A single sheet holds at most
1,048,576 rows, so N = 1,000,000 is about the largest export the platform can produce.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import polars as pl

from invoice_pipeline.generate import model as m
from invoice_pipeline.generate.platform import MONEY
from invoice_pipeline.generate.xlsx import Sheet, write_workbook
from invoice_pipeline.ingest import ingest_source
from invoice_pipeline.specs import load_specs
from invoice_pipeline.warehouse import connect, row_count

SHEET = "发票基础信息"


def build_workbook(tree: Path, path: Path, rows: int) -> None:
    frames, have = [], 0
    for csv in sorted((tree / "landing" / "tax_platform").glob("*.csv")):
        frame = pl.read_csv(csv, infer_schema=False, encoding="utf8-lossy")
        frame = frame.filter(~pl.col(frame.columns[0]).str.contains("合计").fill_null(False))
        frames.append(frame.head(rows - have))
        have += frames[-1].height
        if have >= rows:
            break
    if have < rows:
        raise SystemExit(f"{tree} has only {have:,} platform rows in CSV form; need {rows:,}")
    data = pl.concat(frames)
    data = data.with_columns(pl.int_range(1, data.height + 1).cast(pl.String).alias(data.columns[0]))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    write_workbook(tmp, [Sheet(SHEET, data, MONEY)], m.CREATED)
    tmp.rename(path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("tree", type=Path)
    parser.add_argument("work", type=Path)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()

    workbook = args.work / f"platform_{args.rows}.xlsx"
    built_s = None
    if not workbook.is_file():
        started = time.perf_counter()
        build_workbook(args.tree, workbook, args.rows)
        built_s = time.perf_counter() - started
    data_dir = args.work / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    landing = data_dir / "landing" / "tax_platform"
    landing.mkdir(parents=True)
    (landing / "BJ01_进项_2026Q4_全量发票查询导出结果.xlsx").hardlink_to(workbook)

    con = connect(data_dir / "warehouse" / "invoices.duckdb")
    started = time.perf_counter()
    summary = ingest_source(con, data_dir / "landing", load_specs()["tax_platform"])
    seconds = time.perf_counter() - started
    raw_rows = row_count(con, "raw", "tax_platform")
    con.close()
    if summary.quarantined or raw_rows != args.rows:
        raise SystemExit(f"xlsx ingest: {raw_rows:,} rows loaded of {args.rows:,}; {summary.quarantined}")
    args.json.write_text(
        json.dumps(
            {
                "rows": raw_rows,
                "file_bytes": workbook.stat().st_size,
                "ingest_s": round(seconds, 3),
                "rows_per_s": round(raw_rows / seconds),
                "workbook_built_s": built_s,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
