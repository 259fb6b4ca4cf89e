"""The reconciliation done without the product: (a) plain pandas, (b) datacompy — on the Parquet
files that bench/floor.py exports from a built warehouse, with the same definitions as the
product's five rules (checks/sql/{missing_in_erp, missing_in_tax_platform, amount_mismatch,
duplicate_erp_entry, sequence_gap}.sql), so that the counts are equal and the timings comparable.

Runs in its own environment (bench/requirements-baselines.txt; datacompy pins pandas<3.1 and
polars<1.45, the product pins pandas 3.1 and polars 2.1):

    python3.11 -m venv bench/.venv-baselines
    bench/.venv-baselines/bin/pip install -r bench/requirements-baselines.txt
    .venv/bin/python bench/floor.py WAREHOUSE PARQUET_DIR --json floor.json --keys floor-keys.json
    bench/.venv-baselines/bin/python bench/baselines.py PARQUET_DIR --method pandas \
        --json pandas.json --expect floor.json

What is measured. Each repetition is a fresh process. `wall_s` starts after `import pandas`
(and `import datacompy`) and INCLUDES reading the three Parquet files (`read_s`), then the
reconciliation (`reconcile_s`, broken down in `steps_s`); interpreter start and imports
(`import_s`) are not in it. `rss_mb` is that process's peak RSS (`getrusage(RUSAGE_SELF)`),
interpreter and imports included. The best wall of `--repeat` runs is reported, the peak RSS
is the maximum over them. A guard thread ends a run with exit code 137 when its RSS passes
`RECON_MEM_LIMIT_MIB` (default 18000) so a runaway pandas run cannot take the machine down.

How a competent pandas user would write it, and the choices made:
- `pd.read_parquet(path)` with pandas' defaults (`--dtypes default`): strings become pandas 3's
  `str` dtype, DECIMAL(18,2) money becomes `object` columns of `decimal.Decimal` (exact, as the
  product's DECIMAL, but slow), DATE becomes `object` of `datetime.date`. `--dtypes arrow`
  reads with `dtype_backend="pyarrow"` (decimal128 money, date32, Arrow strings): what a user who
  knows pandas 2+/3 well would do; the code is the same. It is not the headline: pandas 3.0's
  groupby-sum of a decimal128 column runs a Python loop with one Arrow reduction per group
  (~80 µs a group: 26-32 s at 200,000 invoices for the per-document invoice totals alone).
- Anti and semi joins are `merge(..., indicator=True)`, not `Series.isin`: pandas 3's `str`
  dtype turns every element of `isin`'s argument into a Python object (~5 µs each).
- Matching an ERP reference to an invoice is what the product's core.matches does, written in
  pandas: the invoice's identifier forms (core.invoice_aliases), the forms each kind of typed
  reference may match, one entity, an 8-digit number kept only when exactly one invoice fits
  (the counterparty's preferred), and the amount-and-date "fuzzy" match for documents with no
  matching number. Without it the counts are not the product's, so the work would not be the same.
- The definitions are the product's rules', word for word (the SQL is the specification):
  missing_in_erp: an invoice of ours (entity known, not voided) that no document which is not
  cancelled (作废) books — a document that is neither cancelled nor approved still books it;
  missing_in_tax_platform: one per document not cancelled with a typed number that no number
  match used and that is no form of any invoice a tax source knows (documents matched by amount
  are not reported); amount_mismatch: a document not cancelled against the sum of its invoices,
  any of 不含税金额/税额/价税合计 beyond the tolerance; duplicate_erp_entry: one invoice booked by
  two or more live documents (审核, not 作废); sequence_gap: issued invoices with a 发票代码, per
  entity and code, consecutive numbers held 2..max_gap+1 apart.
- datacompy: `datacompy.PandasCompare` (datacompy 1.x's name for the old `Compare`) does
  missing-both-ways (unique rows of each side on the join key) and the amount comparison
  (`all_mismatch()` with `abs_tol`); the matching, duplicates and sequence gaps are pandas (the
  same functions as the pandas method). Money is handed to datacompy as integer fen with
  `abs_tol=1`: datacompy compares through float, where a difference of exactly 0.01 元 may come
  out as 0.010000000000005 and be reported although the product (DECIMAL) does not report it.
  (A NULL amount would differ too: datacompy calls NULL against a value a mismatch, the product's
  rule skips it; staging has no NULL amounts, and `_fen` fails loudly if one appears.)
"""

from __future__ import annotations

import time

_T_IMPORT = time.perf_counter()
import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from decimal import Decimal  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

IMPORT_S = time.perf_counter() - _T_IMPORT

METHODS = ("pandas", "datacompy")
RULES = (
    "missing_in_erp",
    "missing_in_tax_platform",
    "amount_mismatch",
    "duplicate_erp_entry",
    "sequence_gap",
)
FILES = ("tax_invoices", "erp_documents", "erp_invoice_refs")

# assets/models/core/matches.sql: which identifier form each kind of typed reference may match
MATCHABLE_FORMS = pd.DataFrame(
    [
        ("digits20", "digital_no"),
        ("digits20", "code_number_joined"),
        ("code_number", "code_number"),
        ("digits18", "code_number_joined"),
        ("number8", "number8"),
        ("number8", "suffix8"),
    ],
    columns=["ref_kind", "alias_kind"],
)
# assets/models/core/matches.sql: a document without a matching number is matched by amount
# (within 0.01) and issue date (within 3 days) when exactly one invoice fits.
FUZZY_AMOUNT = Decimal("0.01")
FUZZY_DAYS = 3

INV_KEY = ["invoice_uid", "entity_tin"]
DOC = "erp_doc_id"
MONEY = ["amount_excl_tax", "tax_amount", "amount_incl_tax"]


def _true(mask: pd.Series) -> pd.Series:
    """A comparison as plain bool, null (Arrow dtypes) counting as False, as SQL's WHERE does."""
    return mask.fillna(False).astype(bool)


def _anti(frame: pd.DataFrame, other: pd.DataFrame | pd.Series, on) -> pd.DataFrame:
    """Rows of `frame` whose `on` is not among `other`'s: an anti join as merge(indicator=True).

    Not `~frame[on].isin(other)`: for pandas 3's `str` dtype, `isin` turns every element of its
    argument into a Python object (~5 µs each), so `small.isin(big)` costs seconds per million.
    """
    keys = (
        other[[on] if isinstance(on, str) else on] if isinstance(other, pd.DataFrame) else other.to_frame(on)
    )
    merged = frame.merge(keys.drop_duplicates(), on=on, how="left", indicator=True)
    return merged[merged._merge == "left_only"].drop(columns="_merge")


def _semi(frame: pd.DataFrame, other: pd.DataFrame | pd.Series, on) -> pd.DataFrame:
    """Rows of `frame` whose `on` is among `other`'s (a semi join)."""
    keys = (
        other[[on] if isinstance(on, str) else on] if isinstance(other, pd.DataFrame) else other.to_frame(on)
    )
    return frame.merge(keys.drop_duplicates(), on=on)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _start_memory_guard(limit_mib: float) -> None:
    page = os.sysconf("SC_PAGE_SIZE")

    def watch() -> None:
        while True:
            with open("/proc/self/statm") as f:
                rss = int(f.read().split()[1]) * page
            if rss > limit_mib * 2**20:
                sys.stderr.write(f"memory guard: RSS {rss / 2**20:.0f} MiB > {limit_mib:.0f} MiB, exiting\n")
                sys.stderr.flush()
                os._exit(137)
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()


# --------------------------------------------------------------------------- reading


def read_inputs(parquet_dir: Path, dtypes: str) -> dict[str, pd.DataFrame]:
    kwargs = {"dtype_backend": "pyarrow"} if dtypes == "arrow" else {}
    return {name: pd.read_parquet(parquet_dir / f"{name}.parquet", **kwargs) for name in FILES}


# --------------------------------------------------------------------------- matching (both methods)


def invoice_aliases(inv: pd.DataFrame) -> pd.DataFrame:
    """Every identifier form of every invoice a tax source knows (core.invoice_aliases)."""
    ids = inv[["invoice_uid", "invoice_code", "invoice_no", "digital_invoice_no"]].drop_duplicates()
    legacy = ids[ids.invoice_code.notna() & ids.invoice_no.notna()]
    digital = ids[ids.digital_invoice_no.notna()]
    numbered = ids[ids.invoice_no.notna()]
    forms = [
        pd.DataFrame({"invoice_uid": ids.invoice_uid, "alias": ids.invoice_uid, "alias_kind": "uid"}),
        pd.DataFrame(
            {
                "invoice_uid": digital.invoice_uid,
                "alias": digital.digital_invoice_no,
                "alias_kind": "digital_no",
            }
        ),
        pd.DataFrame(
            {
                "invoice_uid": legacy.invoice_uid,
                "alias": legacy.invoice_code + legacy.invoice_no,
                "alias_kind": "code_number_joined",
            }
        ),
        pd.DataFrame(
            {
                "invoice_uid": legacy.invoice_uid,
                "alias": legacy.invoice_code + "-" + legacy.invoice_no,
                "alias_kind": "code_number",
            }
        ),
        pd.DataFrame(
            {"invoice_uid": numbered.invoice_uid, "alias": numbered.invoice_no, "alias_kind": "number8"}
        ),
        pd.DataFrame(
            {
                "invoice_uid": digital.invoice_uid,
                "alias": digital.digital_invoice_no.str[-8:],
                "alias_kind": "suffix8",
            }
        ),
    ]
    return pd.concat(forms, ignore_index=True).drop_duplicates()


def match_erp(frames: dict[str, pd.DataFrame], aliases: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ERP document ↔ invoice links (core.matches, ERP side): (by number, fuzzy)."""
    inv, erp, refs = frames["tax_invoices"], frames["erp_documents"], frames["erp_invoice_refs"]
    ours = inv.loc[inv.entity_tin.notna(), ["invoice_uid", "entity_tin", "direction", "counterparty_tin"]]

    # candidates: every invoice of the document's entity whose identifier form fits the reference
    cand = refs[refs.ref_key.notna()].merge(erp[[DOC, "entity_tin", "counterparty_tin"]], on=DOC)
    cand = cand.merge(aliases, left_on="ref_key", right_on="alias")
    cand = cand.merge(MATCHABLE_FORMS, on=["ref_kind", "alias_kind"])
    cand = cand.merge(ours, on=INV_KEY, suffixes=("_erp", "_inv"))
    cand["same_counterparty"] = _true(cand.counterparty_tin_inv == cand.counterparty_tin_erp)
    # an 8-digit number can fit several invoices: prefer the counterparty's, keep a reference
    # only when exactly one candidate is left
    ref = [DOC, "ref_seq"]
    has_cp = cand.groupby(ref).same_counterparty.transform("max")
    cand = cand[cand.same_counterparty | ~has_cp]
    cand = cand[cand.groupby(ref)[DOC].transform("size") == 1]
    by_number = cand[["invoice_uid", "entity_tin", "direction", DOC, "ref_token"]].drop_duplicates()

    # documents no number matched: the only invoice with their counterparty, 价税合计 and date
    docs = _anti(erp[erp.counterparty_tin.notna() & erp.issue_date.notna()], by_number, DOC)
    fz = docs[[DOC, "entity_tin", "direction", "counterparty_tin", "amount_incl_tax", "issue_date"]].merge(
        inv.loc[
            inv.entity_tin.notna(),
            ["invoice_uid", "entity_tin", "direction", "counterparty_tin", "amount_incl_tax", "issue_date"],
        ],
        on=["entity_tin", "direction", "counterparty_tin"],
        suffixes=("_erp", "_inv"),
    )
    close = _true((fz.amount_incl_tax_erp - fz.amount_incl_tax_inv).abs() <= FUZZY_AMOUNT)
    days = (pd.to_datetime(fz.issue_date_erp) - pd.to_datetime(fz.issue_date_inv)).abs()
    fz = _anti(fz[close & _true(days <= pd.Timedelta(days=FUZZY_DAYS))], by_number, "invoice_uid")
    fz = fz[(fz.groupby(DOC)[DOC].transform("size") == 1) & (fz.groupby(INV_KEY)[DOC].transform("size") == 1)]
    fuzzy = fz[["invoice_uid", "entity_tin", "direction", DOC]]
    return by_number, fuzzy


def _links(by_number: pd.DataFrame, fuzzy: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([by_number[["invoice_uid", "entity_tin", "direction", DOC]], fuzzy], ignore_index=True)


# --------------------------------------------------------------------------- the five checks in pandas


def missing_in_erp(inv, erp, links) -> pd.DataFrame:
    ours = inv[inv.entity_tin.notna() & (inv.status.fillna("normal") != "voided")]
    booked = links.merge(erp.loc[~erp.is_cancelled, [DOC]], on=DOC)[INV_KEY].drop_duplicates()
    both = ours[[*INV_KEY, "direction"]].merge(booked, on=INV_KEY, how="left", indicator=True)
    found = both[both._merge == "left_only"]
    return pd.DataFrame(
        {"entity_tin": found.entity_tin, "direction": found.direction, "subject": found.invoice_uid}
    )


def _unmatched_refs(refs, erp, by_number, fuzzy) -> pd.DataFrame:
    """References of documents not cancelled that no number match used, outside fuzzy-matched docs."""
    r = _anti(_anti(refs, by_number, [DOC, "ref_token"]), fuzzy, DOC)
    r = r.merge(erp.loc[~erp.is_cancelled, [DOC, "entity_tin", "direction"]], on=DOC)
    return r.assign(invoice_ref=r.ref_key.fillna(r.ref_token))


def missing_in_tax_platform(refs, erp, by_number, fuzzy, aliases) -> pd.DataFrame:
    r = _unmatched_refs(refs, erp, by_number, fuzzy)
    r = _anti(r, aliases.alias.rename("invoice_ref"), "invoice_ref")
    docs = r[[DOC, "entity_tin", "direction"]].drop_duplicates(DOC)
    return pd.DataFrame({"entity_tin": docs.entity_tin, "direction": docs.direction, "subject": docs[DOC]})


def invoice_totals(inv, links) -> pd.DataFrame:
    linked = links[[*INV_KEY, DOC]].merge(inv[INV_KEY + MONEY], on=INV_KEY)
    return linked.groupby(DOC)[MONEY].sum(min_count=1).reset_index()


def amount_mismatch(inv, erp, links, tolerance: Decimal) -> pd.DataFrame:
    totals = invoice_totals(inv, links)
    c = erp.loc[~erp.is_cancelled, [DOC, "entity_tin", "direction", *MONEY]].merge(
        totals, on=DOC, suffixes=("_erp", "_inv")
    )
    over = pd.Series(False, index=c.index)
    for col in MONEY:
        over |= _true((c[f"{col}_erp"] - c[f"{col}_inv"]).abs() > tolerance)
    c = c[over]
    return pd.DataFrame({"entity_tin": c.entity_tin, "direction": c.direction, "subject": c[DOC]})


def duplicate_erp_entry(inv, erp, links) -> pd.DataFrame:
    live = links.merge(erp.loc[erp.is_live, [DOC]], on=DOC).merge(inv[INV_KEY], on=INV_KEY)
    n = live.groupby(INV_KEY)[DOC].nunique()
    dup = n[n >= 2].reset_index()[INV_KEY].merge(inv[[*INV_KEY, "direction"]], on=INV_KEY)
    return pd.DataFrame(
        {"entity_tin": dup.entity_tin, "direction": dup.direction, "subject": dup.invoice_uid}
    )


def sequence_gap(inv, max_gap: int) -> pd.DataFrame:
    issued = inv[(inv.direction == "issued") & inv.invoice_code.notna() & inv.invoice_no.notna()]
    s = pd.DataFrame(
        {
            "entity_tin": issued.entity_tin,
            "invoice_code": issued.invoice_code,
            "number": issued.invoice_no.astype("int64"),
            "issue_date": issued.issue_date,
        }
    ).drop_duplicates()
    s = s.sort_values(["entity_tin", "invoice_code", "number"])
    s["next_number"] = s.groupby(["entity_tin", "invoice_code"]).number.shift(-1)
    step = s.next_number - s.number
    g = s[(step >= 2) & (step <= max_gap + 1)]
    first = (g.number + 1).astype("int64").astype(str).str.zfill(8)
    last = (g.next_number - 1).astype("int64").astype(str).str.zfill(8)
    return pd.DataFrame(
        {
            "entity_tin": g.entity_tin,
            "direction": "issued",
            "subject": g.invoice_code + ":" + first + "-" + last,
        }
    )


# --------------------------------------------------------------------------- methods


def _step(steps: dict, name: str, fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    steps[name] = time.perf_counter() - t
    return out


def reconcile_pandas(frames, params, steps) -> dict[str, pd.DataFrame]:
    inv, erp, refs = frames["tax_invoices"], frames["erp_documents"], frames["erp_invoice_refs"]
    tolerance = Decimal(str(params["amount_tolerance"]))
    aliases = _step(steps, "aliases", invoice_aliases, inv)
    by_number, fuzzy = _step(steps, "matching", match_erp, frames, aliases)
    links = _links(by_number, fuzzy)
    return {
        "missing_in_erp": _step(steps, "missing_in_erp", missing_in_erp, inv, erp, links),
        "missing_in_tax_platform": _step(
            steps, "missing_in_tax_platform", missing_in_tax_platform, refs, erp, by_number, fuzzy, aliases
        ),
        "amount_mismatch": _step(steps, "amount_mismatch", amount_mismatch, inv, erp, links, tolerance),
        "duplicate_erp_entry": _step(steps, "duplicate_erp_entry", duplicate_erp_entry, inv, erp, links),
        "sequence_gap": _step(steps, "sequence_gap", sequence_gap, inv, int(params["max_gap"])),
    }


def _fen(frame: pd.DataFrame) -> pd.DataFrame:
    """Money as integer fen (exact under datacompy's float comparison)."""
    out = frame.copy()
    for col in MONEY:
        out[col] = (out[col].astype("float64") * 100).round().astype("int64")
    return out


def reconcile_datacompy(frames, params, steps) -> dict[str, pd.DataFrame]:
    import datacompy

    inv, erp, refs = frames["tax_invoices"], frames["erp_documents"], frames["erp_invoice_refs"]
    aliases = _step(steps, "aliases", invoice_aliases, inv)
    by_number, fuzzy = _step(steps, "matching", match_erp, frames, aliases)
    links = _links(by_number, fuzzy)
    found: dict[str, pd.DataFrame] = {}

    def both_ways():
        # tax side: our invoices (not voided); ERP side: the invoices a non-cancelled document books
        tax = inv.loc[
            inv.entity_tin.notna() & (inv.status.fillna("normal") != "voided"), [*INV_KEY, "direction"]
        ]
        booked = links.merge(erp.loc[~erp.is_cancelled, [DOC]], on=DOC)[[*INV_KEY, "direction"]]
        cmp = datacompy.PandasCompare(
            tax, booked.drop_duplicates(INV_KEY), join_columns=INV_KEY, df1_name="tax", df2_name="erp"
        )
        m = cmp.df1_unq_rows
        found["missing_in_erp"] = pd.DataFrame(
            {"entity_tin": m.entity_tin, "direction": m.direction, "subject": m.invoice_uid}
        )
        # the other way: references no match used, against every form of every known invoice
        r = _unmatched_refs(refs, erp, by_number, fuzzy)
        known = aliases[["alias"]].drop_duplicates().rename(columns={"alias": "invoice_ref"})
        cmp = datacompy.PandasCompare(
            known,
            r[["invoice_ref"]].drop_duplicates(),
            join_columns="invoice_ref",
            df1_name="tax",
            df2_name="erp",
        )
        r = _semi(r, cmp.df2_unq_rows, "invoice_ref")
        docs = r[[DOC, "entity_tin", "direction"]].drop_duplicates(DOC)
        found["missing_in_tax_platform"] = pd.DataFrame(
            {"entity_tin": docs.entity_tin, "direction": docs.direction, "subject": docs[DOC]}
        )

    def amounts():
        totals = _fen(invoice_totals(inv, links))
        docs = _fen(erp.loc[~erp.is_cancelled, [DOC, *MONEY]])
        tolerance = round(float(params["amount_tolerance"]) * 100)
        cmp = datacompy.PandasCompare(
            docs, totals, join_columns=DOC, abs_tol=tolerance, rel_tol=0, df1_name="erp", df2_name="tax"
        )
        bad = cmp.all_mismatch()[[DOC]].merge(erp[[DOC, "entity_tin", "direction"]], on=DOC)
        found["amount_mismatch"] = pd.DataFrame(
            {"entity_tin": bad.entity_tin, "direction": bad.direction, "subject": bad[DOC]}
        )

    _step(steps, "missing_both_ways (datacompy)", both_ways)
    _step(steps, "amount_mismatch (datacompy)", amounts)
    found["duplicate_erp_entry"] = _step(steps, "duplicate_erp_entry", duplicate_erp_entry, inv, erp, links)
    found["sequence_gap"] = _step(steps, "sequence_gap", sequence_gap, inv, int(params["max_gap"]))
    return {rule: found[rule] for rule in RULES}


# --------------------------------------------------------------------------- processes


def _keys(frame: pd.DataFrame) -> list[str]:
    cols = [
        frame[c].astype(object).where(frame[c].notna(), "").astype(str) for c in ("entity_tin", "direction")
    ]
    return sorted((cols[0] + "|" + cols[1] + "|" + frame.subject.astype(str)).tolist())


def child(args) -> dict:
    _start_memory_guard(float(os.environ.get("RECON_MEM_LIMIT_MIB", 18000)))
    import_s = IMPORT_S
    if args.method == "datacompy":
        t = time.perf_counter()
        import datacompy  # noqa: F401

        import_s += time.perf_counter() - t
    params = json.loads((args.parquet_dir / "params.json").read_text(encoding="utf-8"))
    steps: dict[str, float] = {}
    start = time.perf_counter()
    frames = read_inputs(args.parquet_dir, args.dtypes)
    read_s = time.perf_counter() - start
    rss_after_read = _rss_mb()
    reconcile = reconcile_pandas if args.method == "pandas" else reconcile_datacompy
    found = reconcile(frames, params, steps)
    wall_s = time.perf_counter() - start
    out = {
        "wall_s": wall_s,
        "read_s": read_s,
        "reconcile_s": wall_s - read_s,
        "import_s": import_s,
        "steps_s": steps,
        "rss_mb": round(_rss_mb(), 1),
        "rss_after_read_mb": round(rss_after_read, 1),
        "counts": {rule: len(frame) for rule, frame in found.items()},
    }
    if args.keys:
        keys = {rule: _keys(frame) for rule, frame in found.items()}
        Path(args.keys).write_text(json.dumps(keys, ensure_ascii=False, indent=0), encoding="utf-8")
    return out


def _compare(result: dict, expect_path: Path, keys_path: Path | None) -> None:
    floor = json.loads(expect_path.read_text(encoding="utf-8"))
    expected = floor["counts"]
    result["expected_counts"] = expected
    result["counts_equal"] = result["counts"] == expected
    result["count_diff"] = {
        r: result["counts"].get(r, 0) - expected.get(r, 0)
        for r in RULES
        if result["counts"].get(r, 0) != expected.get(r, 0)
    }
    for name in ("core", "core_with_matching", "floor", "floor_parquet"):
        if floor.get(f"{name}_s"):
            result[f"ratio_to_{name}"] = round(result["wall_s"] / floor[f"{name}_s"], 2)
            result[f"rss_ratio_to_{name}"] = round(result["rss_mb"] / floor[f"{name}_rss_mb"], 2)
    if keys_path and floor.get("keys_file") and Path(floor["keys_file"]).is_file():
        ours = json.loads(keys_path.read_text(encoding="utf-8"))
        theirs = json.loads(Path(floor["keys_file"]).read_text(encoding="utf-8"))
        diff = {}
        for rule in RULES:
            a, b = set(ours.get(rule, [])), set(theirs.get(rule, []))
            if a != b:
                diff[rule] = {"only_baseline": sorted(a - b)[:10], "only_product": sorted(b - a)[:10]}
        result["keys_equal"] = not diff
        if diff:
            result["keys_diff"] = diff


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("parquet_dir", type=Path, help="the OUTDIR of bench/floor.py")
    parser.add_argument("--method", choices=METHODS, required=True)
    parser.add_argument("--dtypes", choices=("default", "arrow"), default="default")
    parser.add_argument("--json", type=Path, help="write the result here (else stdout)")
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes; the best wall counts")
    parser.add_argument(
        "--keys", type=Path, help="write each check's findings (entity|direction|subject) here"
    )
    parser.add_argument(
        "--expect", type=Path, help="floor.py's JSON: compare counts (and keys) and give ratios"
    )
    parser.add_argument(
        "--budget-s", type=float, default=120, help="no further repetition once this many seconds have passed"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(child(args)))
        return 0

    runs = []
    result: dict | None = None  # set when a run fails
    budget_start = time.perf_counter()
    for i in range(args.repeat):
        if runs and time.perf_counter() - budget_start > args.budget_s:
            break  # a 10M pandas run takes minutes: its noise is small next to its length
        cmd = [sys.executable, __file__, str(args.parquet_dir), "--method", args.method]
        cmd += ["--dtypes", args.dtypes, "--child"]
        if args.keys and i == 0:
            cmd += ["--keys", str(args.keys)]
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603 (our own script)
        process_s = time.perf_counter() - started
        if proc.returncode != 0:
            status = "killed by the memory guard" if proc.returncode == 137 else f"exit {proc.returncode}"
            sys.stderr.write(proc.stderr[-4000:])
            result = {
                "method": args.method,
                "dtypes": args.dtypes,
                "status": status,
                "mem_limit_mib": float(os.environ.get("RECON_MEM_LIMIT_MIB", 18000)),
                "runs": runs,
            }
            break
        run = json.loads(proc.stdout.strip().splitlines()[-1])
        run["process_s"] = process_s
        runs.append(run)
    if result is None:
        best = min(runs, key=lambda r: r["wall_s"])
        if any(r["counts"] != best["counts"] for r in runs):
            raise SystemExit("repetitions disagree on the counts")
        import numpy

        result = {
            "method": args.method,
            "dtypes": args.dtypes,
            "status": "ok",
            "parquet_dir": str(args.parquet_dir.resolve()),
            "versions": {
                "python": platform.python_version(),
                "pandas": pd.__version__,
                "numpy": numpy.__version__,
                "pyarrow": __import__("pyarrow").__version__,
            },
            "measured": "wall_s: reading the Parquet files + reconciliation, in a fresh process, "
            "after imports (interpreter start and imports excluded, see import_s); best of repeat. "
            "rss_mb: peak RSS of that process (max over repeats)",
            "repeat": len(runs),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
            "wall_s": round(best["wall_s"], 4),
            "read_s": round(best["read_s"], 4),
            "reconcile_s": round(best["reconcile_s"], 4),
            "import_s": round(best["import_s"], 4),
            "rss_mb": max(r["rss_mb"] for r in runs),
            "rss_after_read_mb": best["rss_after_read_mb"],
            "steps_s": {k: round(v, 4) for k, v in best["steps_s"].items()},
            "runs_wall_s": [round(r["wall_s"], 4) for r in runs],
            "runs_process_s": [round(r["process_s"], 4) for r in runs],
            "runs_rss_mb": [r["rss_mb"] for r in runs],
            "counts": best["counts"],
        }
        if args.method == "datacompy":
            import datacompy

            result["versions"]["datacompy"] = datacompy.__version__
        if args.expect:
            _compare(result, args.expect, args.keys)
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
