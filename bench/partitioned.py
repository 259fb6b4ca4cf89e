"""The nightly job partitioned by entity, in parallel processes, against one run over everything.

    .venv/bin/python bench/partitioned.py TREE WORK [--json OUT] [--parallel 2] [--single-json PATH]

TREE is a generated tree (`invoice-pipeline generate --out TREE`, or bench/run.py's cache:
TREE/landing/<source>/…). WORK is a scratch folder the script creates (and deletes at the end
unless --keep). What it measures, in one invocation so that every ratio is between figures taken
on the same machine under the same load (docs/scaling.md):

1. **Layout.** One data directory per entity, WORK/partitions/<erp org code>/landing/<source>/,
   holding hard links (os.link; the ingest refuses symlinks) to that entity's landed files.
2. **Fan-out.** The full nightly job (bench/nightly_job.py DATA_DIR --as-of 2026-11-01) for
   every partition as its own process, at most --parallel at a time (largest partition first),
   each followed by a small export process that writes the partition's rows to Hive-partitioned
   Parquet, WORK/parquet/<schema.table>/entity=<tin>/part.parquet — the layout of
   docs/scaling.md, where each partition writes its own Parquet. Wall time and peak RSS of every
   process (bench/run.py's `measure`), and of the whole fan-out.
3. **Global step.** One DuckDB process over all partitions' Parquet (read_parquet(…/*/*.parquet,
   hive_partitioning = true), as docs/scaling.md designs it): the rules a per-entity run cannot
   see (GLOBAL_RULES, evaluated with the product's own checks/sql files over the union), the
   claim side of core.matches (a claim may carry an invoice received by any entity), and the
   cross-partition checks (invoices held by several partitions, booked or claimed by several
   organisations). It returns the partitioned run's findings: the per-entity rules' findings
   from each partition's own audit.findings (those about its own entity), plus the global rules'.
4. **Single run.** The nightly job over the whole tree in one process (skipped when
   --single-json names an earlier result of this script), and the reconciliation: findings by
   rule — the single run's, the plain sum over the partitions' runs, and the partitioned result —
   and the findings (rule, entity, direction, subject) only one side has.

How landed files map to partitions (decisions; the JSON's `layout` lists them):

- tax_platform: a platform export is one entity's 进项 or 销项 export, named
  `<short name>_…` (北京星河_进项_2026Q1_…): the entity whose short name (truth.json of a
  generated tree) is the first token, else the one entity whose name or an alias begins with it.
- erp and reimbursement: the token that is an ERP organisation code (BJ01_发票登记簿_2026H1.csv,
  报销明细_BJ01_2026.csv). The register's rows carry 组织 as well; the per-partition export counts
  rows whose entity is not the partition's (`foreign_rows`), which is how a file put in the wrong
  partition would show.
- einvoice: one invoice per file, and its name's company may be the counterparty, so the file is
  read (the product's reader) and goes where staging's assign_entity would put it: to the seller's
  and to the buyer's partition when their TINs are ours (both for an invoice between two of our
  entities, like core.invoices' issued and received rows), else to the entity named as buyer,
  else as seller.
- entities (the register) and sync_log: copied (linked) into every partition. The register is
  master data every partition needs (an invoice between two of our entities, 抬头 by name); the
  sync log is small and its rules (sync_failed, sync_stale) are global: they run once in the
  global step from the first partition's copy. Split rows would change sync_stale, which is per
  system across entities.
- Files no entity owns (an unreadable e-invoice, one whose parties are none of ours, a file
  whose name names no entity) go to the first entity of the register (the "home" partition), so
  each is still ingested — loaded, quarantined or reported — exactly once.

No rows are split: every landed file here is already one entity's, but for the two copied ones.
Per entity × month was not split further: the generated exports are quarterly and the ERP
registers half-yearly, so a month partition means splitting rows of every file; and the nightly
job rebuilds all history (docs/scaling.md, "Where one machine stops"), so a month partition would
re-read the whole entity anyway, and the rules that span months (cross_period_booking, a
document booked in the month after the invoice; sequence_gap) would need months joined again.
Per entity × month pays off once ingest and staging are incremental by load.

Which partition owns a row: an invoice side (core.authoritative_invoices) whose entity_tin is the
partition's, or null (an invoice none of ours, only ever in one partition); an ERP document of
the partition's entity. A per-entity rule's finding is the partition's when its entity_tin is the
partition's or null. The partition of an invoice between two of our entities also holds the other
entity's side (core.invoices adds it), which that partition does not own; it is counted
(`foreign_rows`) and left out.

Internal commands (the child processes it starts; not for direct use):
    partitioned.py export-partition DATA_DIR PARQUET_ROOT --tin TIN [--home]
    partitioned.py global-step PARQUET_ROOT --json OUT
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT = Path(__file__).resolve()
BENCH = SCRIPT.parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from run import AS_OF, PYTHON, REPO, GiB, hardlink_landing, machine, measure  # noqa: E402

# Rules the per-entity runs cannot decide alone (docs/scaling.md, "Global rules"): a number known
# to any entity's tax sources is known; claims are not kept per entity (a claim filed under one
# organisation may carry an invoice another entity received), so their matching is global; one
# invalid_tin finding per TIN whichever entities' invoices carry it; the sync log is group-wide.
GLOBAL_RULES = (
    "missing_in_tax_platform",
    "claim_without_invoice",
    "duplicate_claim",
    "claim_exceeds_invoice",
    "invalid_tin",
    "sync_failed",
    "sync_stale",
)
WHY_GLOBAL = {
    "missing_in_tax_platform": "an ERP number may be known only to another entity's tax sources",
    "claim_without_invoice": "a claim may carry an invoice another entity received",
    "duplicate_claim": "the same invoice may be claimed in two organisations' claim files",
    "claim_exceeds_invoice": "claims of one invoice may be filed in two organisations",
    "invalid_tin": "one finding per TIN across entities (entity is null when several carry it)",
    "sync_failed": "the sync log is copied to every partition: each would report the same runs",
    "sync_stale": "the sync log is copied to every partition: each would report the same systems",
}
COPIED_SOURCES = ("entities", "sync_log")
# Tables the global step reads, and which rows of a partition it owns ({tin}: the partition's).
EXPORTS = {
    "core.authoritative_invoices": "entity_tin = {tin} or entity_tin is null",
    "core.invoice_aliases": "true",
    "core.matches": "match_side = 'erp' and entity_tin = {tin}",
    "staging.erp": "entity_tin = {tin}",
    "staging.erp_invoice_refs": (
        "erp_doc_id in (select erp_doc_id from p.staging.erp where entity_tin = {tin})"
    ),
    "staging.reimbursement": "true",
}
HOME_EXPORTS = ("staging.entities", "staging.sync_log", "audit.sync_health", "audit.runs")
FINDING_COLUMNS = "rule_id, entity_tin, direction, period, invoice_uid, subject, amount"
RAW_ROWS = ("tax_platform", "erp", "reimbursement", "einvoice")
MARKER = ".bench-partitioned"


# ---------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entity:
    tin: str
    name: str
    org: str
    aliases: tuple[str, ...]
    short: str | None = None

    @property
    def partition(self) -> str:
        return self.org


@dataclass
class Layout:
    entities: list[Entity]
    placements: dict[Path, list[str]]  # landed file -> partitions it is linked into
    reasons: dict[Path, str] = field(default_factory=dict)  # why a file went home

    @property
    def home(self) -> Entity:
        return self.entities[0]

    def files_of(self, partition: str) -> list[Path]:
        return sorted(path for path, parts in self.placements.items() if partition in parts)


def read_register(tree: Path) -> list[Entity]:
    """Our entities from the landed register (in its order), with short names from truth.json."""
    import polars as pl

    from invoice_pipeline import normalize as nz

    rows = []
    for path in sorted((tree / "landing" / "entities").glob("*.csv")):
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows += list(csv.DictReader(f))
    if not rows:
        raise SystemExit(f"partitioned: no entity register under {tree / 'landing' / 'entities'}")
    tins = pl.select(nz.clean_identifier(pl.Series([r["tin"] for r in rows]))).to_series().to_list()
    shorts = {}
    truth = tree / "truth.json"
    if truth.is_file():
        shorts = {
            e["tin"]: e.get("short_name")
            for e in json.loads(truth.read_text(encoding="utf-8")).get("entities", [])
        }
    entities, seen = [], set()
    for row, tin in zip(rows, tins, strict=True):
        if not tin or tin in seen:
            continue
        seen.add(tin)
        aliases = tuple(a.strip() for a in (row.get("aliases") or "").split("|") if a.strip())
        entities.append(
            Entity(tin, row["name"].strip(), row["erp_org_code"].strip(), aliases, shorts.get(tin))
        )
    return entities


def owner_by_name(file_name: str, entities: list[Entity]) -> Entity | None:
    """The entity a file's name names: an ERP organisation code among its `_`-separated tokens,
    or a first token that is the entity's short name or begins its name or one of its aliases."""
    tokens = [t for t in re.split(r"[_\s]+", file_name.rsplit(".", 1)[0]) if t]
    if not tokens:
        return None
    by_org = [e for e in entities if e.org in tokens]
    if len(by_org) == 1:
        return by_org[0]
    by_short = [e for e in entities if e.short and e.short == tokens[0]]
    if len(by_short) == 1:
        return by_short[0]
    by_prefix = [e for e in entities if any(n.startswith(tokens[0]) for n in (e.name, *e.aliases))]
    return by_prefix[0] if len(by_prefix) == 1 else None


def einvoice_owners(paths: list[Path], entities: list[Entity]) -> dict[Path, list[Entity]]:
    """Where staging would put each e-invoice file: the seller's and the buyer's entity when their
    TINs are ours, else the entity named as buyer, else as seller (staging.assign_entity)."""
    import polars as pl

    from invoice_pipeline import normalize as nz
    from invoice_pipeline.sources import einvoice
    from invoice_pipeline.sources.base import UnreadableFile
    from invoice_pipeline.specs import load_specs

    spec = load_specs()["einvoice"]
    parties: list[dict] = []
    for path in paths:
        try:
            table = einvoice.read(path, spec).tables.get("einvoice")
        except UnreadableFile:
            continue
        if table is not None and table.height:
            row = table.row(0, named=True)
            parties.append({"path": str(path), **{k: row.get(k) for k in _PARTY_COLUMNS}})
    owners: dict[Path, list[Entity]] = {path: [] for path in paths}
    if not parties:
        return owners
    frame = pl.DataFrame(parties, schema={"path": pl.String, **dict.fromkeys(_PARTY_COLUMNS, pl.String)})
    frame = frame.select(
        "path",
        nz.clean_identifier(pl.col("seller_tin")).alias("seller_tin"),
        nz.clean_identifier(pl.col("buyer_tin")).alias("buyer_tin"),
        nz.normalize_name(pl.col("seller_name")).alias("seller_key"),
        nz.normalize_name(pl.col("buyer_name")).alias("buyer_key"),
    )
    by_tin = {e.tin: e for e in entities}
    keys = pl.DataFrame({"tin": [e.tin for e in entities], "names": [[e.name, *e.aliases] for e in entities]})
    keys = keys.explode("names").select("tin", nz.normalize_name(pl.col("names")).alias("key"))
    by_key: dict[str, Entity] = {}
    for tin, key in keys.iter_rows():
        by_key.setdefault(key, by_tin[tin])
    for row in frame.iter_rows(named=True):
        found = [by_tin[t] for t in (row["seller_tin"], row["buyer_tin"]) if t in by_tin]
        if not found:
            named = by_key.get(row["buyer_key"]) or by_key.get(row["seller_key"])
            found = [named] if named else []
        owners[Path(row["path"])] = list(dict.fromkeys(found))
    return owners


_PARTY_COLUMNS = ("seller_tin", "buyer_tin", "seller_name", "buyer_name")


def plan_layout(tree: Path, entities: list[Entity] | None = None) -> Layout:
    """Which partitions every landed file of the tree goes to (see the module docstring)."""
    entities = entities or read_register(tree)
    everyone = [e.partition for e in entities]
    home = entities[0].partition
    layout = Layout(entities, {})
    landing = tree / "landing"
    einvoices = []
    for path in sorted(p for p in landing.rglob("*") if p.is_file()):
        source = path.relative_to(landing).parts[0]
        if source in COPIED_SOURCES:
            layout.placements[path] = list(everyone)
        elif source == "einvoice":
            einvoices.append(path)
        else:
            owner = owner_by_name(path.name, entities)
            layout.placements[path] = [owner.partition if owner else home]
            if owner is None:
                layout.reasons[path] = "its name names no entity"
    for path, owners in einvoice_owners(einvoices, entities).items():
        layout.placements[path] = [e.partition for e in owners] or [home]
        if not owners:
            layout.reasons[path] = "unreadable, or neither party is one of ours"
    return layout


def build_layout(tree: Path, layout: Layout, root: Path) -> dict[str, Path]:
    """Hard-link every file into its partitions' landing folders: root/<partition>/landing/…"""
    landing = tree / "landing"
    dirs = {}
    for entity in layout.entities:
        data_dir = root / entity.partition
        for path in layout.files_of(entity.partition):
            target = data_dir / "landing" / path.relative_to(landing)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)
        (data_dir / "landing").mkdir(parents=True, exist_ok=True)
        dirs[entity.partition] = data_dir
    return dirs


def describe_layout(tree: Path, layout: Layout) -> dict:
    landing = tree / "landing"
    out: dict = {"home": layout.home.partition, "partitions": {}, "files_in_tree": len(layout.placements)}
    for entity in layout.entities:
        files = layout.files_of(entity.partition)
        out["partitions"][entity.partition] = {
            "tin": entity.tin,
            "name": entity.name,
            "files": len(files),
            "bytes": sum(p.stat().st_size for p in files),
            "files_by_source": dict(Counter(p.relative_to(landing).parts[0] for p in files)),
        }
    out["placements"] = sum(len(v) for v in layout.placements.values())
    out["copied_to_every_partition"] = sorted(
        str(p.relative_to(landing)) for p, v in layout.placements.items() if len(v) == len(layout.entities)
    )
    out["in_several_partitions"] = sorted(
        str(p.relative_to(landing)) for p, v in layout.placements.items() if 1 < len(v) < len(layout.entities)
    )
    out["sent_home"] = {str(p.relative_to(landing)): why for p, why in sorted(layout.reasons.items())}
    return out


# ---------------------------------------------------------------------------------------------
# Per-partition export (runs in its own process after the partition's nightly job)
# ---------------------------------------------------------------------------------------------


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def export_partition(data_dir: Path, root: Path, tin: str, home: bool) -> dict:
    """Write the partition's own rows of the tables the global step reads to
    root/<schema.table>/entity=<tin>/part.parquet; return its row counts."""
    import duckdb

    from invoice_pipeline import project

    con = duckdb.connect()
    con.execute(f"attach {_lit(str(project.warehouse_path(data_dir)))} as p (read_only)")
    tables = dict(EXPORTS)
    tables["audit.findings"] = "status = 'open'"
    if home:
        tables |= dict.fromkeys(HOME_EXPORTS, "true")
    for table, owned in tables.items():
        folder = root / table / f"entity={tin}"
        folder.mkdir(parents=True, exist_ok=True)
        columns = FINDING_COLUMNS if table == "audit.findings" else "*"
        where = owned.format(tin=_lit(tin))
        con.execute(
            f"copy (select {columns} from p.{table} where {where}) "
            f"to {_lit(str(folder / 'part.parquet'))} (format parquet)"
        )
    raw = {t: con.execute(f"select count(*) from p.raw.{t}").fetchone()[0] for t in RAW_ROWS}
    foreign = {
        "invoice_sides": con.execute(
            "select count(*) from p.core.authoritative_invoices where entity_tin <> ?", [tin]
        ).fetchone()[0],
        "erp_documents": con.execute(
            "select count(*) from p.staging.erp where entity_tin <> ?", [tin]
        ).fetchone()[0],
    }
    con.close()
    return {"raw_rows": raw, "foreign_rows": foreign}


# ---------------------------------------------------------------------------------------------
# Global step (one DuckDB process over every partition's Parquet)
# ---------------------------------------------------------------------------------------------


def _parquet(root: Path, table: str) -> str:
    pattern = str(root / table / "*" / "*.parquet")
    return f"read_parquet({_lit(pattern)}, hive_partitioning = true, hive_types = {{'entity': varchar}})"


def global_step(root: Path) -> dict:
    """The global rules over all partitions, and the partitioned run's findings."""
    import duckdb

    from invoice_pipeline.findings import evaluate_rule, load_rules, prepare_rule_inputs
    from invoice_pipeline.project import MODELS_DIR

    timings: dict[str, float] = {}
    started = time.perf_counter()
    con = duckdb.connect()
    for schema in ("core", "staging", "audit"):
        con.execute(f"create schema {schema}")
    for table in HOME_EXPORTS:
        con.execute(f"create table {table} as select * exclude (entity) from {_parquet(root, table)}")
    con.execute(
        "create table partition_invoices as select * from " + _parquet(root, "core.authoritative_invoices")
    )
    con.execute(
        "create view core.authoritative_invoices as select * exclude (entity) from partition_invoices"
    )
    # An invoice between two of our entities is in both partitions: its aliases once.
    con.execute(
        "create table core.invoice_aliases as select distinct * exclude (entity) from "
        + _parquet(root, "core.invoice_aliases")
    )
    con.execute("create table partition_claims as select * from " + _parquet(root, "staging.reimbursement"))
    con.execute("create view staging.reimbursement as select * exclude (entity) from partition_claims")
    timings["load_s"] = time.perf_counter() - started

    # The claim side of core.matches, by the product's own model with no ERP rows: a claim may
    # carry an invoice received by any entity. The ERP side is each partition's own.
    mark = time.perf_counter()
    for table in ("staging.erp", "staging.erp_invoice_refs"):
        con.execute(f"create table {table} as select * exclude (entity) from {_parquet(root, table)} limit 0")
    matches_sql = (MODELS_DIR / "core" / "matches.sql").read_text(encoding="utf-8")
    con.execute(f"create table claim_matches as {matches_sql}")
    for table in ("staging.erp", "staging.erp_invoice_refs"):
        con.execute(f"drop table {table}")
        con.execute(f"create view {table} as select * exclude (entity) from {_parquet(root, table)}")
    con.execute(
        "create view core.matches as "
        f"select * exclude (entity) from {_parquet(root, 'core.matches')} "
        "union all by name select * from claim_matches"
    )
    timings["claim_matching_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    rules = load_rules()
    prepare_rule_inputs(con)
    as_of = con.execute("select max(evaluated_at) from audit.runs").fetchone()[0]
    findings = []
    for rule_id in GLOBAL_RULES:
        table = evaluate_rule(con, rules[rule_id], as_of)
        findings += [
            (rule_id, *row)
            for row in con.execute(
                f"select entity_tin, direction, subject, cast(amount as double) from {table}"
            ).fetchall()
        ]
    timings["global_rules_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    all_findings = f"select *, entity as partition from {_parquet(root, 'audit.findings')}"
    by_partition = con.execute(
        f"select rule_id, partition, count(*) from ({all_findings}) group by all order by all"
    ).fetchall()
    owned = con.execute(
        f"select rule_id, entity_tin, direction, subject, cast(amount as double) from ({all_findings}) "
        "where not list_contains($global, rule_id) and (entity_tin = partition or entity_tin is null)",
        {"global": list(GLOBAL_RULES)},
    ).fetchall()
    findings += owned
    checks = cross_partition_checks(con)
    timings["cross_partition_checks_s"] = time.perf_counter() - mark
    con.close()
    raw: dict[str, dict[str, int]] = {}
    for rule_id, partition, n in by_partition:
        raw.setdefault(rule_id, {})[partition] = n
    return {
        "as_of_instant": as_of.isoformat(),
        "global_rules": list(GLOBAL_RULES),
        "findings": sorted(findings, key=lambda f: tuple("" if v is None else str(v) for v in f)),
        "partition_findings_by_rule": raw,
        "cross_partition": checks,
        "steps_s": {k: round(v, 3) for k, v in timings.items()},
    }


def cross_partition_checks(con) -> dict:
    """What only the union shows: the same invoice in several partitions, booked or claimed in
    several organisations."""
    held = con.execute(
        """
        with sides as (
            select invoice_uid, entity, direction from partition_invoices where entity_tin = entity
        ),
        several as (
            select invoice_uid, count(distinct entity) as partitions,
                list(distinct direction order by direction) as directions
            from sides group by invoice_uid having count(distinct entity) > 1
        )
        select count(*),
            count(*) filter (where partitions = 2 and directions = ['issued', 'received'])
        from several
        """
    ).fetchone()
    booked = con.execute(
        """
        select count(*), count(*) filter (where directions = ['issued', 'received']) from (
            select m.invoice_uid, list(distinct m.direction order by m.direction) as directions
            from core.matches as m
            inner join staging.erp as e on m.erp_doc_id = e.erp_doc_id
            where m.match_side = 'erp' and e.is_live
            group by m.invoice_uid
            having count(distinct e.org_code) > 1
        )
        """
    ).fetchone()
    claimed = con.execute(
        """
        with lines as (
            select m.invoice_uid, m.entity_tin, c.entity
            from claim_matches as m
            inner join partition_claims as c on c.claim_no = m.claim_no and c.invoice_no = m.ref_token
            where c.is_effective
        )
        select
            (select count(*) from (
                select invoice_uid from lines group by invoice_uid having count(distinct entity) > 1
            )),
            (select count(*) from lines where entity_tin <> entity)
        """
    ).fetchone()
    return {
        "invoices_owned_by_several_partitions": held[0],
        "of_which_issued_by_one_received_by_another": held[1],
        "invoices_booked_by_live_erp_documents_of_several_orgs": booked[0],
        "of_which_one_org_issued_the_other_received": booked[1],
        "invoices_on_effective_claims_of_several_orgs": claimed[0],
        "claim_lines_matching_an_invoice_of_another_entity": claimed[1],
    }


# ---------------------------------------------------------------------------------------------
# Reconciliation
# ---------------------------------------------------------------------------------------------


def open_findings(data_dir: Path) -> list[tuple]:
    """A warehouse's open findings: (rule_id, entity_tin, direction, subject, amount)."""
    import duckdb

    from invoice_pipeline import project

    con = duckdb.connect(str(project.warehouse_path(data_dir)), read_only=True)
    try:
        return con.execute(
            "select rule_id, entity_tin, direction, subject, cast(amount as double) from audit.findings "
            "where status = 'open' order by all"
        ).fetchall()
    finally:
        con.close()


def raw_rows(data_dir: Path) -> dict[str, int]:
    import duckdb

    from invoice_pipeline import project

    con = duckdb.connect(str(project.warehouse_path(data_dir)), read_only=True)
    try:
        return {t: con.execute(f"select count(*) from raw.{t}").fetchone()[0] for t in RAW_ROWS}
    finally:
        con.close()


def _key(finding) -> tuple:
    return tuple(finding[:4])


def reconcile(single: list, partitioned: list, partition_counts: dict[str, dict[str, int]]) -> dict:
    """Findings by rule of the single run, of the partitions' runs summed, and of the partitioned
    result (per-entity findings of each partition + the global step's), and the findings
    (rule, entity, direction, subject) that only one side has; amounts compared where both have it."""
    single_keys = Counter(_key(f) for f in single)
    part_keys = Counter(_key(f) for f in partitioned)
    amounts_single = {_key(f): f[4] for f in single}
    amounts_part = {_key(f): f[4] for f in partitioned}
    rules = sorted({k[0] for k in single_keys} | {k[0] for k in part_keys} | set(partition_counts))
    by_rule = {}
    for rule in rules:
        s = sum(n for k, n in single_keys.items() if k[0] == rule)
        p = sum(n for k, n in part_keys.items() if k[0] == rule)
        summed = sum(partition_counts.get(rule, {}).values())
        row = {
            "single": s,
            "partitions_summed": summed,
            "partitioned": p,
            "where": "global step" if rule in GLOBAL_RULES else "per entity",
            "equal": s == p,
        }
        if summed != s:
            row["why_the_sum_differs"] = WHY_GLOBAL.get(
                rule, "per-entity rule: only findings about the partition's own entity are kept"
            )
        by_rule[rule] = row
    only_single = sorted(single_keys - part_keys, key=str)
    only_part = sorted(part_keys - single_keys, key=str)
    amount_differs = sorted(
        (k for k in amounts_single.keys() & amounts_part.keys() if amounts_single[k] != amounts_part[k]),
        key=str,
    )
    total_single = sum(single_keys.values())
    return {
        "by_rule": by_rule,
        "total": {
            "single": total_single,
            "partitions_summed": sum(sum(v.values()) for v in partition_counts.values()),
            "partitioned": sum(part_keys.values()),
        },
        "only_in_single": [list(k) for k in only_single[:20]],
        "only_in_partitioned": [list(k) for k in only_part[:20]],
        "only_in_single_count": len(only_single),
        "only_in_partitioned_count": len(only_part),
        "amount_differs": [list(k) for k in amount_differs[:20]],
        "equal": not only_single and not only_part and not amount_differs,
    }


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------


def _checked(m, what: str):
    if m.stopped:
        raise SystemExit(f"partitioned: {what} stopped by the {m.stopped} guard after {m.wall_s:.0f} s")
    if m.returncode != 0:
        raise SystemExit(f"partitioned: {what} failed (exit {m.returncode}):\n{m.output}")
    return m


def nightly_process(data_dir: Path, out: Path, label: str) -> dict:
    m = _checked(
        measure([PYTHON, "bench/nightly_job.py", str(data_dir), "--as-of", AS_OF, "--json", str(out)]),
        f"nightly {label}",
    )
    result = json.loads(out.read_text())
    if not result["success"]:
        raise SystemExit(f"partitioned: nightly {label} failed at {result['failed_steps']}")
    return {
        "wall_s": round(m.wall_s, 2),
        "job_s": result["job_s"],
        "load_definitions_s": result["load_definitions_s"],
        "peak_rss_bytes": m.peak_rss_bytes,
        "stages_s": result["stages_s"],
    }


def run_partition(entity: Entity, data_dir: Path, parquet: Path, runs: Path, home: bool, keep: bool) -> dict:
    nightly = nightly_process(data_dir, runs / f"{entity.partition}.json", entity.partition)
    out = runs / f"{entity.partition}-export.json"
    argv = [PYTHON, str(SCRIPT), "export-partition", str(data_dir), str(parquet), "--tin", entity.tin]
    m = _checked(measure([*argv, "--json", str(out), *(["--home"] if home else [])]), f"export {entity.org}")
    exported = json.loads(out.read_text())
    if not keep:
        shutil.rmtree(data_dir)  # the global step reads the Parquet; this bounds the disk used
    rows = exported["raw_rows"]
    return {
        "tin": entity.tin,
        "rows": {**rows, "platform_erp_claims": rows["tax_platform"] + rows["erp"] + rows["reimbursement"]},
        "nightly": nightly,
        "export": {"wall_s": round(m.wall_s, 2), "peak_rss_bytes": m.peak_rss_bytes},
        "wall_s": round(nightly["wall_s"] + m.wall_s, 2),
        "peak_rss_bytes": max(nightly["peak_rss_bytes"], m.peak_rss_bytes),
        "foreign_rows": exported["foreign_rows"],
    }


def fan_out(layout: Layout, dirs: dict[str, Path], parquet: Path, runs: Path, parallel: int, keep: bool):
    """Every partition's nightly job + export, at most `parallel` at a time, largest first."""
    sizes = {
        e.partition: sum(p.stat().st_size for p in layout.files_of(e.partition)) for e in layout.entities
    }
    order = sorted(layout.entities, key=lambda e: -sizes[e.partition])
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = {
            e.partition: pool.submit(
                run_partition, e, dirs[e.partition], parquet, runs, e == layout.home, keep
            )
            for e in order
        }
        results = {p: f.result() for p, f in futures.items()}
    wall = time.perf_counter() - started
    for partition, result in results.items():
        print(
            f"[{partition}] {result['rows']['platform_erp_claims']:,} rows: nightly "
            f"{result['nightly']['wall_s']:.1f} s, {result['nightly']['peak_rss_bytes'] / GiB:.2f} GiB; "
            f"export {result['export']['wall_s']:.1f} s",
            flush=True,
        )
    return {p: results[p] for p in sorted(results)}, wall


def single_run(tree: Path, work: Path, keep: bool) -> dict:
    data_dir = work / "single"
    hardlink_landing(tree, data_dir)
    nightly = nightly_process(data_dir, work / "runs" / "single.json", "single")
    rows = raw_rows(data_dir)
    findings = open_findings(data_dir)
    if not keep:
        shutil.rmtree(data_dir)
    return {
        "rows": {**rows, "platform_erp_claims": rows["tax_platform"] + rows["erp"] + rows["reimbursement"]},
        "nightly": nightly,
        "findings": [list(f) for f in findings],
    }


def prepare_work(work: Path) -> None:
    if work.exists() and any(work.iterdir()):
        if not (work / MARKER).exists():
            raise SystemExit(f"partitioned: {work} is not empty and was not made by this script")
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / MARKER).write_text("scratch folder of bench/partitioned.py\n")


def benchmark(args) -> dict:
    tree, work = args.tree.resolve(), args.work.resolve()
    if not (tree / "landing").is_dir():
        raise SystemExit(f"partitioned: {tree}/landing is not a landing tree")
    prepare_work(work)
    runs, parquet = work / "runs", work / "parquet"
    runs.mkdir()
    results: dict = {"tree": str(tree), "as_of": AS_OF, "parallel": args.parallel, "machine": machine()}
    truth = tree / "truth.json"
    if truth.is_file():
        results["invoices"] = json.loads(truth.read_text(encoding="utf-8")).get("invoices")

    mark = time.perf_counter()
    layout = plan_layout(tree)
    dirs = build_layout(tree, layout, work / "partitions")
    results["layout"] = describe_layout(tree, layout) | {"build_s": round(time.perf_counter() - mark, 2)}
    print(f"layout: {len(dirs)} partitions in {results['layout']['build_s']} s", flush=True)

    partitions, fanout_wall = fan_out(layout, dirs, parquet, runs, args.parallel, args.keep)
    results["partitions"] = partitions
    results["fanout"] = {
        "wall_s": round(fanout_wall, 2),
        "sum_of_partition_wall_s": round(sum(p["wall_s"] for p in partitions.values()), 2),
        "max_peak_rss_bytes": max(p["peak_rss_bytes"] for p in partitions.values()),
    }
    print(f"fan-out: {fanout_wall:.1f} s at {args.parallel} in parallel", flush=True)

    out = runs / "global.json"
    m = _checked(
        measure([PYTHON, str(SCRIPT), "global-step", str(parquet), "--json", str(out)]), "global step"
    )
    glob = json.loads(out.read_text())
    results["global_step"] = {
        "wall_s": round(m.wall_s, 2),
        "peak_rss_bytes": m.peak_rss_bytes,
        "steps_s": glob["steps_s"],
        "parquet_bytes": sum(p.stat().st_size for p in parquet.rglob("*.parquet")),
        "cross_partition": glob["cross_partition"],
    }
    print(f"global step: {m.wall_s:.1f} s, {m.peak_rss_bytes / GiB:.2f} GiB", flush=True)

    if args.single_json and args.single_json.is_file():
        single = json.loads(args.single_json.read_text())["single"] | {"from": str(args.single_json)}
    else:
        single = single_run(tree, work, args.keep)
        if args.single_json:
            args.single_json.write_text(json.dumps({"tree": str(tree), "single": single}, indent=1))
    results["single"] = {k: v for k, v in single.items() if k != "findings"}
    print(f"single: {single['nightly']['wall_s']:.1f} s", flush=True)

    total = fanout_wall + m.wall_s
    # With --parallel 1 every partition ran alone: the largest one plus the global step is then
    # what one machine per partition would take (the run launcher's fan-out), before start-up.
    largest = max(p["wall_s"] for p in partitions.values())
    results["largest_partition_plus_global_s"] = round(largest + m.wall_s, 2)
    single_wall = single["nightly"]["wall_s"]
    results["partitioned_total_s"] = round(total, 2)
    results["ratios"] = {
        "partitioned_total_over_single": round(total / single_wall, 3),
        "fanout_over_single": round(fanout_wall / single_wall, 3),
        "global_step_over_single": round(m.wall_s / single_wall, 3),
        "largest_partition_plus_global_over_single": round((largest + m.wall_s) / single_wall, 3),
        "sum_of_partition_walls_over_single": round(
            results["fanout"]["sum_of_partition_wall_s"] / single_wall, 3
        ),
        "largest_partition_rss_over_single_rss": round(
            results["fanout"]["max_peak_rss_bytes"] / single["nightly"]["peak_rss_bytes"], 3
        ),
    }
    results["rows_check"] = {
        "single_platform_erp_claims": single["rows"]["platform_erp_claims"],
        "partitions_platform_erp_claims": sum(p["rows"]["platform_erp_claims"] for p in partitions.values()),
    }
    results["findings"] = reconcile(
        [tuple(f) for f in single["findings"]],
        [tuple(f) for f in glob["findings"]],
        glob["partition_findings_by_rule"],
    )
    if not args.keep:
        shutil.rmtree(work)
    return results


def _internal(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="partitioned.py " + argv[0])
    if argv[0] == "export-partition":
        parser.add_argument("data_dir", type=Path)
        parser.add_argument("root", type=Path)
        parser.add_argument("--tin", required=True)
        parser.add_argument("--home", action="store_true")
        parser.add_argument("--json", type=Path, required=True)
        args = parser.parse_args(argv[1:])
        result = export_partition(args.data_dir, args.root, args.tin, args.home)
    else:
        parser.add_argument("root", type=Path)
        parser.add_argument("--json", type=Path, required=True)
        args = parser.parse_args(argv[1:])
        result = global_step(args.root)
    args.json.write_text(json.dumps(result, indent=1, default=str))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("export-partition", "global-step"):
        _internal(argv)
        return
    parser = argparse.ArgumentParser(
        prog="partitioned.py",
        description="Run the nightly job per entity in parallel processes against a partitioned layout, "
        "then the global rules as one DuckDB step over the partitions' Parquet, and compare the "
        "total and the findings with one run over the whole tree.",
        epilog="example: .venv/bin/invoice-pipeline generate --out /tmp/gen1m --invoices 1000000; "
        ".venv/bin/python bench/partitioned.py /tmp/gen1m "
        "/tmp/part1m --json /tmp/part1m.json",
    )
    parser.add_argument("tree", type=Path, help="a generated tree (TREE/landing/<source>/…)")
    parser.add_argument("work", type=Path, help="scratch folder to create (deleted at the end unless --keep)")
    parser.add_argument("--json", type=Path, help="write the result here (default: print it)")
    parser.add_argument(
        "--parallel", type=int, default=2, help="partition processes at a time (default 2, the cores here)"
    )
    parser.add_argument(
        "--single-json",
        type=Path,
        help="reuse the single run of an earlier result of this script if the file exists; "
        "else run it and also save it there",
    )
    parser.add_argument("--keep", action="store_true", help="keep WORK (data directories and Parquet)")
    args = parser.parse_args(argv)
    if args.parallel < 1:
        parser.error("--parallel must be at least 1")
    os.environ.setdefault("DAGSTER_HOME", str(REPO / "dagster_home"))
    results = benchmark(args)
    text = json.dumps(results, indent=1, ensure_ascii=False)
    if args.json:
        args.json.write_text(text)
    summary = {
        "partitioned_total_s": results["partitioned_total_s"],
        "single_s": results["single"]["nightly"]["wall_s"],
        **results["ratios"],
        "findings_equal": results["findings"]["equal"],
    }
    print(json.dumps(summary, indent=1) if args.json else text)


if __name__ == "__main__":
    main()
