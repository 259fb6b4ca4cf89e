"""The floor and the product's reconciliation core, measured on one built warehouse; and the
Parquet inputs for the naive baselines (bench/baselines.py), exported from the same warehouse.

    .venv/bin/python bench/floor.py WAREHOUSE OUTDIR --json RESULT.json [--repeat 3] [--keys KEYS.json]

1. Export (not timed as part of anything): the inputs of the reconciliation as a user would
   have them, one Parquet file each, in OUTDIR:
   - `tax_invoices.parquet`    core.authoritative_invoices (one row per invoice per entity side,
                                the platform's values): identifiers, entity, direction, status,
                                dates, counterparty TIN, the three amounts (DECIMAL(18,2));
   - `erp_documents.parquet`   staging.erp: one row per ERP document, amounts as keyed,
                                is_cancelled / is_live;
   - `erp_invoice_refs.parquet` staging.erp_invoice_refs: one row per invoice number typed into
                                a document, with `ref_kind` and the normalised `ref_key`;
   - `params.json`             the thresholds of checks/rules.yaml the five rules use, so the
                                baselines need neither yaml nor duckdb.
   The product's rules also read core.invoices (sequence_gap) and core.invoice_aliases
   (missing_in_tax_platform); the baselines derive both from tax_invoices.parquet. The
   `input_checks` in the JSON show whether that derivation loses anything on this warehouse.
2. floor: DuckDB scans the two key columns of the warehouse tables (tax side
   core.authoritative_invoices.invoice_uid, ERP side staging.erp_invoice_refs.ref_key) and
   hash-aggregates each (`group by key`, count). `floor_parquet` is the same query reading
   the exported Parquet files instead (what the baselines read).
3. core: the product's five rule files (missing_in_erp, missing_in_tax_platform,
   amount_mismatch, duplicate_erp_entry, sequence_gap) evaluated on the warehouse, read-only,
   with the product's own `prepare_rule_inputs` / `evaluate_rule` (temp tables work on a
   read-only connection). These rules read core.matches, which the pipeline built earlier;
   `core_with_matching` therefore also rebuilds core.invoice_aliases and core.matches (the
   product's `build_model` on assets/models/core/*.sql) before the rules, on a scratch copy of
   the warehouse: that is the same work the baselines do, which start from the invoices and the
   typed references.

Every measurement runs in a fresh Python process (`--repeat` times, best wall reported):
seconds are the wall time of the measured step inside that process (connection open and
queries; interpreter start and imports excluded), peak RSS is that process's own
`getrusage(RUSAGE_SELF).ru_maxrss` (so it includes the interpreter, duckdb and, for core, the
product modules it imports: ~35-70 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

RULES = (
    "missing_in_erp",
    "missing_in_tax_platform",
    "amount_mismatch",
    "duplicate_erp_entry",
    "sequence_gap",
)

EXPORTS = {
    "tax_invoices": """
        select invoice_uid, entity_tin, direction, invoice_code, invoice_no, digital_invoice_no,
            status, issue_date, tax_period, counterparty_tin,
            amount_excl_tax, tax_amount, amount_incl_tax
        from core.authoritative_invoices
    """,
    "erp_documents": """
        select erp_doc_id, entity_tin, direction, tax_period, counterparty_tin, issue_date,
            amount_excl_tax, tax_amount, amount_incl_tax, is_cancelled, is_live
        from staging.erp
    """,
    "erp_invoice_refs": """
        select erp_doc_id, ref_seq, ref_token, ref_kind, ref_key
        from staging.erp_invoice_refs
    """,
}

# Preconditions under which deriving the product's other inputs from tax_invoices.parquet is
# exact; each query returns the number of rows that would be lost or gained (0 = exact).
INPUT_CHECKS = {
    # core.invoice_aliases is built from core.invoices (every tax source); the baselines build
    # the same identifier forms from the authoritative rows.
    "identifiers_only_in_core_invoices": """
        select count(*) from (
            select invoice_uid, invoice_code, invoice_no, digital_invoice_no from core.invoices
            except
            select invoice_uid, invoice_code, invoice_no, digital_invoice_no from core.authoritative_invoices)
    """,
    # an alias carried twice (two seller TINs for one invoice across sources) would make the
    # product drop that reference as ambiguous; the baselines key aliases without seller_tin.
    "aliases_repeated_by_seller_tin": """
        select count(*) - count(distinct (invoice_uid, alias, alias_kind)) from core.invoice_aliases
    """,
    # sequence_gap reads core.invoices; the baselines read the authoritative rows.
    "issued_numbers_only_in_core_invoices": """
        select count(*) from (
            select entity_tin, invoice_code, invoice_no from core.invoices
            where direction = 'issued' and invoice_code is not null and invoice_no is not null
            except
            select entity_tin, invoice_code, invoice_no from core.authoritative_invoices
            where direction = 'issued' and invoice_code is not null and invoice_no is not null)
    """,
    # references of documents that staging.erp does not have are ignored by both.
    "refs_without_document": """
        select count(*) from staging.erp_invoice_refs
        where erp_doc_id not in (select erp_doc_id from staging.erp)
    """,
}

FLOOR_SQL = (
    "select count(*) as groups, sum(n) as rows from (select {key}, count(*) as n from {table} group by {key})"
)
FLOOR_SIDES = {
    "tax": ("core.authoritative_invoices", "tax_invoices", "invoice_uid"),
    "erp": ("staging.erp_invoice_refs", "erp_invoice_refs", "ref_key"),
}

MODES = ("floor", "floor_parquet", "core", "core_with_matching")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# --------------------------------------------------------------------------- child processes


def _child(mode: str, target: str, parquet_dir: str, keys_path: str | None) -> dict:
    """One measurement; runs in its own process. Imports happen before the clock starts."""
    import duckdb

    result: dict = {}
    if mode in ("floor", "floor_parquet"):
        start = time.perf_counter()
        if mode == "floor":
            con = duckdb.connect(target, read_only=True)
            sources = {side: table for side, (table, _, _) in FLOOR_SIDES.items()}
        else:
            con = duckdb.connect()
            sources = {
                side: f"read_parquet('{Path(parquet_dir) / (name + '.parquet')}')"
                for side, (_, name, _) in FLOOR_SIDES.items()
            }
        groups = {}
        for side, (_, _, key) in FLOOR_SIDES.items():
            n_groups, n_rows = con.execute(FLOOR_SQL.format(key=key, table=sources[side])).fetchone()
            groups[side] = {"key": key, "groups": n_groups, "rows": int(n_rows or 0)}
        result["seconds"] = time.perf_counter() - start
        result["groups"] = groups
    else:
        from invoice_pipeline.findings import evaluate_rule, load_rules, prepare_rule_inputs
        from invoice_pipeline.layers import build_model, discover_models
        from invoice_pipeline.project import MODELS_DIR

        rules = load_rules()
        as_of = datetime.now(UTC)  # none of the five rules reads $as_of
        models = {(m.schema, m.table): m for m in discover_models(MODELS_DIR)}
        start = time.perf_counter()
        con = duckdb.connect(target, read_only=(mode == "core"))
        steps = {"open": time.perf_counter() - start}
        # the rate table and tin_problem() serve other rules; not part of the clock
        prepare_rule_inputs(con)
        start = time.perf_counter() - steps["open"]
        if mode == "core_with_matching":
            for name in ("invoice_aliases", "matches"):
                t = time.perf_counter()
                build_model(con, models[("core", name)], as_of)
                steps[f"build core.{name}"] = time.perf_counter() - t
        tables = {}
        for rule_id in RULES:
            t = time.perf_counter()
            tables[rule_id] = evaluate_rule(con, rules[rule_id], as_of)
            steps[rule_id] = time.perf_counter() - t
        result["seconds"] = time.perf_counter() - start
        result["steps_s"] = steps
        result["counts"] = {
            rule_id: con.execute(f"select count(*) from {table}").fetchone()[0]
            for rule_id, table in tables.items()
        }
        if keys_path:
            keys = {
                rule_id: sorted(
                    "|".join("" if v is None else str(v) for v in row)
                    for row in con.execute(f"select entity_tin, direction, subject from {table}").fetchall()
                )
                for rule_id, table in tables.items()
            }
            Path(keys_path).write_text(json.dumps(keys, ensure_ascii=False, indent=0), encoding="utf-8")
    result["rss_mb"] = round(_peak_rss_mb(), 1)
    return result


def _run_child(mode: str, target: Path, parquet_dir: Path, keys_path: Path | None) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, str(target), str(parquet_dir)]
    if keys_path:
        cmd += ["--keys", str(keys_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603 (our own script)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _measure(mode: str, target: Path, parquet_dir: Path, repeat: int, keys_path: Path | None) -> dict:
    runs = [_run_child(mode, target, parquet_dir, keys_path if i == 0 else None) for i in range(repeat)]
    best = min(runs, key=lambda r: r["seconds"])
    out = {
        "s": round(best["seconds"], 4),
        "rss_mb": max(r["rss_mb"] for r in runs),
        "runs_s": [round(r["seconds"], 4) for r in runs],
        "runs_rss_mb": [r["rss_mb"] for r in runs],
    }
    for extra in ("groups", "counts"):
        if extra in best:
            out[extra] = best[extra]
            if any(r[extra] != best[extra] for r in runs):
                raise SystemExit(f"{mode}: repetitions disagree on {extra}")
    if "steps_s" in best:
        out["steps_s"] = {k: round(v, 4) for k, v in best["steps_s"].items()}
    return out


# --------------------------------------------------------------------------- export


def export(warehouse: Path, outdir: Path) -> dict:
    import duckdb

    from invoice_pipeline.findings import load_rules

    outdir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(warehouse), read_only=True)
    info: dict = {"files": {}, "input_checks": {}}
    start = time.perf_counter()
    for name, sql in EXPORTS.items():
        path = outdir / f"{name}.parquet"
        con.execute(f"copy ({sql}) to '{path}' (format parquet, compression zstd)")
        rows = con.execute(f"select count(*) from read_parquet('{path}')").fetchone()[0]
        info["files"][name] = {"rows": rows, "bytes": path.stat().st_size}
    info["export_s"] = round(time.perf_counter() - start, 3)
    for name, sql in INPUT_CHECKS.items():
        info["input_checks"][name] = con.execute(sql).fetchone()[0]
    rules = load_rules()
    params = {
        "amount_tolerance": rules["amount_mismatch"].thresholds["amount_tolerance"],
        "max_gap": rules["sequence_gap"].thresholds["max_gap"],
        "rules": list(RULES),
        "warehouse": str(warehouse),
    }
    (outdir / "params.json").write_text(json.dumps(params, indent=2), encoding="utf-8")
    info["params"] = params
    con.close()
    return info


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("outdir", type=Path, help="where the Parquet inputs of the baselines are written")
    parser.add_argument("--json", type=Path, help="write the result here (else stdout)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="fresh processes per measurement; best wall counts"
    )
    parser.add_argument(
        "--keys", type=Path, help="write each rule's findings (entity|direction|subject) here"
    )
    parser.add_argument("--no-matching", action="store_true", help="skip core_with_matching (needs a copy)")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(
            json.dumps(
                _child(args.child, str(args.warehouse), str(args.outdir), args.keys and str(args.keys))
            )
        )
        return 0

    warehouse = args.warehouse.resolve()
    outdir = args.outdir.resolve()
    if not warehouse.is_file():
        parser.error(f"{warehouse} does not exist")
    import duckdb

    result: dict = {
        "warehouse": str(warehouse),
        "parquet_dir": str(outdir),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "duckdb": duckdb.__version__,
        },
        "repeat": args.repeat,
        "method": "each measurement in a fresh process, best wall of `repeat`; seconds exclude "
        "interpreter start and imports, include opening the database and reading; "
        "rss = peak RSS of that process (max over repetitions)",
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    result.update(export(warehouse, outdir))

    floor = _measure("floor", warehouse, outdir, args.repeat, None)
    floor_parquet = _measure("floor_parquet", warehouse, outdir, args.repeat, None)
    core = _measure("core", warehouse, outdir, args.repeat, args.keys)
    result.update(
        floor_s=floor["s"],
        floor_rss_mb=floor["rss_mb"],
        floor=floor,
        floor_parquet_s=floor_parquet["s"],
        floor_parquet_rss_mb=floor_parquet["rss_mb"],
        floor_parquet=floor_parquet,
        core_s=core["s"],
        core_rss_mb=core["rss_mb"],
        core=core,
        counts=core["counts"],
    )
    if args.keys:
        result["keys_file"] = str(args.keys.resolve())
    if not args.no_matching:
        scratch = Path(tempfile.mkdtemp(prefix="floor-", dir=outdir))
        try:
            copy = scratch / warehouse.name
            shutil.copyfile(warehouse, copy)
            wal = warehouse.with_name(warehouse.name + ".wal")
            if wal.exists():
                shutil.copyfile(wal, copy.with_name(copy.name + ".wal"))
            matching = _measure("core_with_matching", copy, outdir, args.repeat, None)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if matching["counts"] != core["counts"]:
            raise SystemExit(
                f"rebuilt core.matches changes the counts: {matching['counts']} != {core['counts']}"
            )
        result.update(
            core_with_matching_s=matching["s"],
            core_with_matching_rss_mb=matching["rss_mb"],
            core_with_matching=matching,
        )
    result["core_over_floor"] = round(result["core_s"] / result["floor_s"], 2) if result["floor_s"] else None
    result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
