"""erp: the finance system's invoice register, keyed by hand (SPEC §3.4).

Every invoice of ours that is not voided is booked once, in the month it was issued, with
the platform's amounts, date and counterparty — but typed every way SPEC §3.4 lists. The
planted rows (problems, look-alikes, rejected rows) are built as a few explicit dicts.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import xlsxwriter

from invoice_pipeline.generate import model as m
from invoice_pipeline.generate.frames import csv_bytes
from invoice_pipeline.generate.plants import ErpRow, Plan
from invoice_pipeline.specs import load_specs

# The exact headers of the real export, in order: the source spec is their one home.
COLUMNS = tuple(load_specs()["erp"].tables["erp"].columns.values())
# (组织, first and last month of 会计期间, file label, format, encoding): one file per entity and
# half-year, except GD01's last two months, exported to Excel (small at any size).
FILES = (
    ("BJ01", 1, 6, "2026H1", "csv", "utf-8-sig"),
    ("BJ01", 7, 12, "2026H2", "csv", "gb18030"),
    ("SH01", 1, 6, "2026H1", "csv", "gb18030"),
    ("SH01", 7, 12, "2026H2", "csv", "utf-8"),
    ("SD01", 1, 6, "2026H1", "csv", "utf-8-sig"),
    ("SD01", 7, 12, "2026H2", "csv", "gb18030"),
    ("GD01", 1, 8, "202601-08", "csv", "utf-8-sig"),
    ("GD01", 9, 12, "202609-10", "xlsx", None),
)
DIGITAL_KEYS = ("no20",) * 7 + ("spaces", "spaces_edge", "fullwidth", "apostrophe20", "last8", "last8")
LEGACY_KEYS = ("code_no",) * 5 + ("concat", "dash", "apostrophe8")
PAPER_DIGITAL_KEYS = ("no20", "code_no", "concat", "dash")
POSITIVE_AMOUNTS = ("fixed", "fixed", "fixed", "plain", "plain", "comma", "comma", "yen_fw", "yen")
NEGATIVE_AMOUNTS = ("fixed", "plain", "paren", "paren", "comma")
DATES = ("iso", "serial", "slash", "iso", "cn", "iso", "compact", "iso")  # variety first: small files get it
PERIODS = ("dash", "dash", "dash", "cn")
POSTINGS = ("iso", "iso", "slash", "cn")
KIND_TEXT = (
    ("数电专票", "增值税专用发票(数电)", "全电专票"),
    ("数电普票", "电子普通发票", "全电普票"),
    ("增值税专用发票", "专票"),
    ("增值税普通发票", "普票"),
    ("增值税电子普通发票", "电子普票"),
    ("数电纸质普票", "增值税普通发票"),
)
REMARKS = ("", "", "", "", "", "", "货款", "服务费", "办公用品", "差旅费", "运费", "技术服务费")
EXCEL_EPOCH = date(1899, 12, 30)
FULL_WIDTH = list("０１２３４５６７８９")


@dataclass
class ErpResult:
    files: dict[str, int] = field(default_factory=dict)
    subjects: dict[str, str] = field(default_factory=dict)  # tag -> 组织/单据编号
    variants: dict[str, int] = field(default_factory=dict)
    bad_rows: list[dict[str, Any]] = field(default_factory=list)
    bad_files: list[dict[str, str]] = field(default_factory=list)
    empty_tin_example: str = ""
    unaudited_example: str = ""


def _bookings(world: m.World, inv: pl.DataFrame, idx: np.ndarray, base: bool) -> pl.DataFrame:
    """One clean ERP row per invoice in `idx` (formats chosen at random when `base`)."""
    rng = world.rng
    k = len(idx)
    rows = inv[idx] if k else inv.clear()
    start = np.searchsorted(world.l_inv, idx)
    first_rate = world.l_rate[np.minimum(start, len(world.l_rate) - 1)] if k else np.zeros(0, np.int64)
    ents = world.entities
    cp_names = [v for name in world.cps.name for v in (name, m.flip_brackets(name))]
    cp = world.cp[idx].astype(np.int64)
    kind = world.kind[idx].astype(np.int64)
    post_days = rng.integers(0, 4, size=k)
    staff = [n for e in ents for n in e.staff]
    frame = rows.select(
        "i",
        "ent",
        "dirn",
        "kind",
        "ts",
        "code",
        "no8",
        "no20",
        "amt",
        "tax",
        "tot",
        "issue_date",
        "period",
        "cp_tin",
    ).with_columns(
        tag=pl.lit(None, pl.String),
        org=pl.Series([e.org for e in ents], dtype=pl.String).gather(world.ent[idx].astype(np.int64)),
        cp_name_keyed=pl.Series(cp_names, dtype=pl.String).gather(cp * 2 + (rng.random(k) < 0.2)),
        cp_tin_keyed=pl.when(pl.Series(rng.random(k) < (0.08 if base else 0)))
        .then(pl.lit(""))
        .otherwise(pl.col("cp_tin")),
        type_keyed=pl.Series([t for ts in KIND_TEXT for t in (ts * 3)[:3]], dtype=pl.String).gather(
            kind * 3 + rng.integers(0, 3, size=k)
        ),
        rate_keyed=pl.Series([r.text for r in m.RATES], dtype=pl.String).gather(first_rate.astype(np.int64)),
        keyed_date=pl.col("issue_date"),
        post_date=pl.min_horizontal(
            pl.col("issue_date") + pl.duration(days=pl.Series(post_days)),
            pl.col("issue_date").dt.month_end(),
        ),
        currency=pl.when(pl.Series(rng.random(k) < 0.6)).then(pl.lit("CNY")).otherwise(pl.lit("人民币")),
        audit=pl.when(pl.Series(rng.random(k) < (0.08 if base else 0)))
        .then(pl.lit("未审核"))
        .otherwise(pl.lit("已审核")),
        cancelled=pl.lit("否"),
        clerk=pl.Series(staff, dtype=pl.String).gather(
            world.ent[idx].astype(np.int64) * 3 + rng.integers(0, 3, size=k)
        ),
        remark_keyed=pl.Series(REMARKS, dtype=pl.String).gather(rng.integers(0, len(REMARKS), size=k)),
        no_text=pl.lit(None, pl.String),
    )
    frame = frame.with_columns(
        remark_keyed=pl.when(pl.col("tot") < 0).then(pl.lit("红字冲销")).otherwise(pl.col("remark_keyed")),
        key=pl.lit("no20"),
        amt_fmt=pl.lit("fixed"),
        date_fmt=pl.lit("iso"),
        period_fmt=pl.lit("dash"),
        post_fmt=pl.lit("iso"),
    )
    if base and k:
        frame = frame.with_columns(
            key=_cycle(
                rng,
                kind,
                {
                    m.SD_ZP: DIGITAL_KEYS,
                    m.SD_PP: DIGITAL_KEYS,
                    m.ZP: LEGACY_KEYS,
                    m.PP: LEGACY_KEYS,
                    m.EP: LEGACY_KEYS,
                    m.SDP: PAPER_DIGITAL_KEYS,
                },
            ),
            amt_fmt=_cycle(
                rng, (world.tot[idx] < 0).astype(np.int64), {0: POSITIVE_AMOUNTS, 1: NEGATIVE_AMOUNTS}
            ),
            period_fmt=_cycle(rng, np.zeros(k, np.int64), {0: PERIODS}),
            post_fmt=_cycle(rng, np.zeros(k, np.int64), {0: POSTINGS}),
        )
    else:
        frame = frame.with_columns(
            key=pl.when(pl.col("no20").is_null() | (pl.col("kind") == m.SDP))
            .then(pl.lit("code_no"))
            .otherwise(pl.lit("no20"))
        )
    return frame


def _cycle(rng: np.random.Generator, classes: np.ndarray, patterns: dict[int, tuple[str, ...]]) -> pl.Series:
    """Spread each class's pattern evenly over its rows in random order (every variant appears)."""
    names = sorted({name for pattern in patterns.values() for name in pattern})
    out = np.zeros(len(classes), np.int64)
    for cls, pattern in patterns.items():
        rows = np.flatnonzero(classes == cls)
        codes = np.searchsorted(names, pattern)
        out[rows] = codes[rng.permutation(len(rows)) % len(pattern)]
    return pl.Series(names, dtype=pl.String).gather(out)


def _planted(world: m.World, inv: pl.DataFrame, plan: Plan, bad_rows: list[ErpRow]) -> pl.DataFrame:
    rows: list[dict[str, Any]] = []
    planted = [r for r in plan.erp_rows if r.inv is not None] + bad_rows
    booked = _bookings(world, inv, np.array([r.inv for r in planted], np.int64), base=False).to_dicts()
    for spec, row in zip(planted, booked, strict=True):
        row["tag"] = spec.tag
        o = spec.overrides
        row["amt"] += o.get("amt_delta", 0)
        row["tot"] += o.get("tot_delta", 0)
        if o.get("transpose_total"):
            row["tot"] = _transpose(row["tot"])
        if "cp_tin" in o:
            row["cp_tin_keyed"] = o["cp_tin"]
        if "date_delta" in o:
            row["keyed_date"] = row["issue_date"] + timedelta(days=o["date_delta"])
        if "next_period_day" in o:
            issued = row["issue_date"]
            first = date(issued.year + issued.month // 12, issued.month % 12 + 1, 1)
            row["post_date"] = first + timedelta(days=o["next_period_day"] - 1)
            row["period"] = first.strftime("%Y-%m")
        if "post_delta" in o:  # a later document, still in the month of issue
            issued = row["issue_date"]
            month_end = issued.replace(day=calendar.monthrange(issued.year, issued.month)[1])
            row["post_date"] = min(row["post_date"] + timedelta(days=o["post_delta"]), month_end)
        if "作废标志" in o:
            row["cancelled"] = o["作废标志"]
        if spec in bad_rows:
            ((row["bad_column"], row["bad_value"]),) = o.items()
        rows.append(row)
    for spec in plan.erp_rows:
        if spec.inv is not None:
            continue
        o = spec.overrides
        ent = next(i for i, e in enumerate(world.entities) if e.org == o["org"])
        tot = o["tot"]
        amt = round(tot / 1.13)
        rows.append(
            {
                "i": -1,
                "ent": ent,
                "dirn": o["dirn"],
                "kind": m.SD_ZP if not o["code"] else m.PP,
                "ts": m.ts_of(o["date"]),
                "code": o["code"] or None,
                "no8": o["number"] if o["code"] else None,
                "no20": None if o["code"] else o["number"],
                "amt": amt,
                "tax": tot - amt,
                "tot": tot,
                "issue_date": o["date"],
                "period": o["date"].strftime("%Y-%m"),
                "cp_tin": world.cps.tin[o["cp"]],
                "tag": spec.tag,
                "org": o["org"],
                "cp_name_keyed": world.cps.name[o["cp"]],
                "cp_tin_keyed": world.cps.tin[o["cp"]],
                "type_keyed": "增值税普通发票" if o["code"] else "数电专票",
                "rate_keyed": "13%",
                "keyed_date": o["date"],
                "post_date": o["date"] + timedelta(days=1),
                "currency": "CNY",
                "audit": "已审核",
                "cancelled": "否",
                "clerk": world.entities[ent].staff[0],
                "remark_keyed": "",
                "no_text": None,
                "key": "code_no" if o["code"] else "no20",
                "amt_fmt": "fixed",
                "date_fmt": "iso",
                "period_fmt": "dash",
                "post_fmt": "iso",
            }
        )
    members = [i for invs, _, _ in plan.multi_docs for i in invs]
    multi = _bookings(world, inv, np.array(members, np.int64), base=False).to_dicts()
    by_inv = {r["i"]: r for r in multi}
    names = {",": "multi_comma", "，": "multi_fullwidth_comma", ";": "multi_semicolon", "、": "multi_dunhao"}
    for invs, sep, tag in plan.multi_docs:
        row = dict(by_inv[invs[0]])
        for field_name in ("amt", "tax", "tot"):
            row[field_name] = sum(by_inv[i][field_name] for i in invs)
        row.update(
            tag=tag,
            key=names[sep],
            no_text=sep.join(by_inv[i]["no20"] for i in invs),
            cp_tin_keyed=row["cp_tin"],
        )
        rows.append(row)
    schema = dict(_bookings(world, inv, np.zeros(0, np.int64), base=False).schema)
    schema.update(bad_column=pl.String, bad_value=pl.String)
    return pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema)


def _transpose(cents: int) -> int:
    """A keying slip: two neighbouring digits of the yuan part swapped (else +90.00)."""
    text = str(abs(cents) // 100)
    for k in range(len(text) - 1):
        if text[k] != text[k + 1]:
            swapped = text[:k] + text[k + 1] + text[k] + text[k + 2 :]
            return (int(swapped) * 100 + abs(cents) % 100) * (1 if cents >= 0 else -1)
    return cents + 9000


def _money_text(cents: pl.Expr, fmt: pl.Expr) -> pl.Expr:
    a = cents.abs()
    yuan = a // 100
    frac = a % 100
    plain_frac = (
        pl.when(frac == 0)
        .then(pl.lit(""))
        .when(frac % 10 == 0)
        .then(pl.concat_str([pl.lit("."), (frac // 10).cast(pl.String)]))
        .otherwise(pl.concat_str([pl.lit("."), frac.cast(pl.String).str.zfill(2)]))
    )
    fixed_frac = pl.concat_str([pl.lit("."), frac.cast(pl.String).str.zfill(2)])

    def group(value: pl.Expr) -> pl.Expr:
        return value.cast(pl.String).str.zfill(3)

    grouped = (
        pl.when(yuan >= 1_000_000_000)
        .then(
            pl.concat_str(
                [
                    (yuan // 1_000_000_000).cast(pl.String),
                    pl.lit(","),
                    group(yuan // 1_000_000 % 1000),
                    pl.lit(","),
                    group(yuan // 1000 % 1000),
                    pl.lit(","),
                    group(yuan % 1000),
                ]
            )
        )
        .when(yuan >= 1_000_000)
        .then(
            pl.concat_str(
                [
                    (yuan // 1_000_000).cast(pl.String),
                    pl.lit(","),
                    group(yuan // 1000 % 1000),
                    pl.lit(","),
                    group(yuan % 1000),
                ]
            )
        )
        .when(yuan >= 1000)
        .then(pl.concat_str([(yuan // 1000).cast(pl.String), pl.lit(","), group(yuan % 1000)]))
        .otherwise(yuan.cast(pl.String))
    )
    sign = pl.when(cents < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    comma = pl.concat_str([grouped, fixed_frac])
    return (
        pl.when(fmt == "plain")
        .then(pl.concat_str([sign, yuan.cast(pl.String), plain_frac]))
        .when(fmt == "comma")
        .then(pl.concat_str([sign, comma]))
        .when(fmt == "yen_fw")
        .then(pl.concat_str([pl.lit("￥"), sign, comma]))
        .when(fmt == "yen")
        .then(pl.concat_str([pl.lit("¥"), sign, comma]))
        .when(fmt == "paren")
        .then(pl.concat_str([pl.lit("("), comma, pl.lit(")")]))
        .otherwise(pl.concat_str([sign, yuan.cast(pl.String), fixed_frac]))
    )


def _date_text(day: pl.Expr, fmt: pl.Expr) -> pl.Expr:
    y, mo, d = day.dt.year().cast(pl.String), day.dt.month().cast(pl.String), day.dt.day().cast(pl.String)
    serial = (day - pl.lit(EXCEL_EPOCH)).dt.total_days().cast(pl.String)
    return (
        pl.when(fmt == "slash")
        .then(pl.concat_str([y, pl.lit("/"), mo, pl.lit("/"), d]))
        .when(fmt == "cn")
        .then(pl.concat_str([y, pl.lit("年"), mo, pl.lit("月"), d, pl.lit("日")]))
        .when(fmt == "compact")
        .then(day.dt.strftime("%Y%m%d"))
        .when(fmt == "serial")
        .then(serial)
        .otherwise(day.dt.strftime("%Y-%m-%d"))
    )


def _number_text(key: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    no20, code, no8 = pl.col("no20"), pl.col("code"), pl.col("no8")
    spaced = pl.concat_str([no20.str.slice(k, 4) for k in range(0, 20, 4)], separator=" ")
    number = (
        pl.when(pl.col("no_text").is_not_null())
        .then(pl.col("no_text"))
        .when(key == "spaces")
        .then(spaced)
        .when(key == "spaces_edge")
        .then(pl.concat_str([pl.lit(" "), no20, pl.lit("  ")]))
        .when(key == "fullwidth")
        .then(no20.str.replace_many(list("0123456789"), FULL_WIDTH))
        .when(key == "apostrophe20")
        .then(pl.concat_str([pl.lit("'"), no20]))
        .when(key == "last8")
        .then(no20.str.slice(12, 8))
        .when(key == "code_no")
        .then(no8)
        .when(key == "apostrophe8")
        .then(pl.concat_str([pl.lit("'"), no8]))
        .when(key == "concat")
        .then(pl.concat_str([code, no8]))
        .when(key == "dash")
        .then(pl.concat_str([code, pl.lit("-"), no8]))
        .otherwise(no20)
    )
    code_col = pl.when(key.is_in(["code_no", "apostrophe8"])).then(code).otherwise(pl.lit(""))
    return code_col, number


def _shared_tails(inv: pl.DataFrame) -> pl.Series:
    """8-digit tails that do not identify one invoice (a 20-digit number's last 8, or a 发票号码):
    keying only those would be ambiguous, so such rows keep the full number."""
    tails = pl.concat([inv["no20"].drop_nulls().str.slice(12, 8), inv["no8"].drop_nulls()]).alias("tail")
    counts = tails.value_counts()
    return counts.filter(pl.col("count") > 1)["tail"]


def write_erp(out: Path, world: m.World, inv: pl.DataFrame, plan: Plan, bad_rows: list[ErpRow]) -> ErpResult:
    result = ErpResult()
    bookable = world.in_platform & (world.status != m.VOIDED)
    bookable[sorted(plan.erp_skip)] = False
    base = _bookings(world, inv, np.flatnonzero(bookable), base=True)
    shared = _shared_tails(inv)
    base = base.with_columns(
        key=pl.when((pl.col("key") == "last8") & pl.col("no20").str.slice(12, 8).is_in(shared.implode()))
        .then(pl.lit("no20"))
        .otherwise(pl.col("key"))
    )
    planted = _planted(world, inv, plan, bad_rows)
    rows = pl.concat(
        [base.with_columns(bad_column=pl.lit(None, pl.String), bad_value=pl.lit(None, pl.String)), planted]
    )
    months = pl.DataFrame(
        [
            {"org": org, "month": mo, "file_no": k, "gbk": enc == "gb18030"}
            for k, (org, first, last, _, _, enc) in enumerate(FILES)
            for mo in range(first, last + 1)
        ],
        schema={"org": pl.String, "month": pl.Int32, "file_no": pl.Int64, "gbk": pl.Boolean},
    )
    rows = rows.with_columns(month=pl.col("period").str.slice(5, 2).cast(pl.Int32))
    rows = rows.join(months, on=["org", "month"], how="left", maintain_order="left")
    # Every file carries every date spelling (the xlsx's serials become real date cells).
    classes = rows["file_no"].to_numpy()
    rows = rows.with_columns(
        date_fmt=pl.when(pl.col("tag").is_null())
        .then(_cycle(world.rng, classes, dict.fromkeys(range(len(FILES)), DATES)))
        .otherwise(pl.col("date_fmt"))
    )
    rows = rows.with_columns(
        amt_fmt=pl.when(pl.col("gbk") & (pl.col("amt_fmt") == "yen"))
        .then(pl.lit("yen_fw"))
        .otherwise(pl.col("amt_fmt"))
    )
    rows = rows.sort(["org", "period", "post_date", "ts", "i", "tag"], nulls_last=True)
    prefix = pl.when(pl.col("dirn") == m.ISSUED).then(pl.lit("XS")).otherwise(pl.lit("CG"))
    yyyymm = pl.col("period").str.replace("-", "")
    rows = rows.with_columns(
        doc_no=pl.concat_str(
            [
                prefix,
                yyyymm,
                (pl.int_range(1, pl.len() + 1).over(["org", "dirn", "period"])).cast(pl.String).str.zfill(4),
            ]
        ),
        voucher_seq=pl.int_range(1, pl.len() + 1).over(["org", "period", "audit"]),
    )
    code_col, number = _number_text(pl.col("key"))
    text = rows.with_columns(
        组织=pl.col("org"),
        方向=pl.when(pl.col("dirn") == m.ISSUED).then(pl.lit("销项")).otherwise(pl.lit("进项")),
        单据编号=pl.col("doc_no"),
        凭证号=pl.when(pl.col("audit") == "已审核")
        .then(
            pl.concat_str(
                [
                    pl.lit("记-"),
                    pl.col("period").str.slice(5, 2),
                    pl.lit("-"),
                    pl.col("voucher_seq").cast(pl.String).str.zfill(4),
                ]
            )
        )
        .otherwise(pl.lit("")),
        记账日期=_date_text(pl.col("post_date"), pl.col("post_fmt")),
        会计期间=pl.when(pl.col("period_fmt") == "cn")
        .then(
            pl.concat_str(
                [
                    pl.col("period").str.slice(0, 4),
                    pl.lit("年"),
                    pl.col("period").str.slice(5, 2),
                    pl.lit("月"),
                ]
            )
        )
        .otherwise(pl.col("period")),
        往来单位名称=pl.col("cp_name_keyed"),
        往来单位税号=pl.col("cp_tin_keyed"),
        发票类型=pl.col("type_keyed"),
        发票代码=code_col,
        发票号码=number,
        开票日期=_date_text(pl.col("keyed_date"), pl.col("date_fmt")),
        不含税金额=_money_text(pl.col("amt"), pl.col("amt_fmt")),
        税率=pl.col("rate_keyed"),
        税额=_money_text(pl.col("tax"), pl.col("amt_fmt")),
        价税合计=_money_text(pl.col("tot"), pl.col("amt_fmt")),
        币种=pl.col("currency"),
        审核状态=pl.col("audit"),
        作废标志=pl.col("cancelled"),
        制单人=pl.col("clerk"),
        备注=pl.col("remark_keyed"),
    )
    text = text.with_columns(
        价税合计=pl.when(pl.col("bad_column") == "价税合计")
        .then(pl.col("bad_value"))
        .otherwise(pl.col("价税合计")),
        开票日期=pl.when(pl.col("bad_column") == "开票日期")
        .then(pl.col("bad_value"))
        .otherwise(pl.col("开票日期")),
    )
    for tag, org, doc in text.filter(pl.col("tag").is_not_null()).select("tag", "org", "doc_no").iter_rows():
        result.subjects[tag] = f"{org}/{doc}"
    counts = text.filter(pl.col("tag").is_null() | pl.col("tag").str.starts_with("multi"))[
        "key"
    ].value_counts()
    result.variants = {k: int(v) for k, v in sorted(counts.iter_rows())}
    for column, fmt_col in (("amount", "amt_fmt"), ("date", "date_fmt"), ("period", "period_fmt")):
        counts = text.filter(pl.col("tag").is_null())[fmt_col].value_counts()
        for k, v in sorted(counts.iter_rows()):
            result.variants[f"{column}_{k}"] = int(v)
    for value in ("CNY", "人民币"):
        result.variants[f"currency_{value}"] = int((text["币种"] == value).sum())
    example = text.filter(pl.col("tag").is_null() & (pl.col("往来单位税号") == ""))
    result.empty_tin_example = f"{example['组织'][0]}/{example['单据编号'][0]}" if example.height else ""
    example = text.filter(pl.col("tag").is_null() & (pl.col("审核状态") == "未审核"))
    result.unaudited_example = f"{example['组织'][0]}/{example['单据编号'][0]}" if example.height else ""

    text = text.select(
        *COLUMNS, "file_no", "tag", "bad_column", "bad_value", "amt", "tax", "tot", "amt_fmt", "date_fmt"
    )
    parts = text.partition_by("file_no", as_dict=True, maintain_order=True)
    for k, (org, _, _, label, fmt, encoding) in enumerate(FILES):
        part = parts.get((k,), text.clear())
        name = f"{org}_发票登记簿_{label}.{fmt}"
        if fmt == "xlsx":
            _write_xlsx(out / name, part)
        else:
            _write_csv(out / name, part.select(COLUMNS), encoding or "utf-8")
        result.files[name] = part.height
        for k, (column, value) in enumerate(zip(part["bad_column"], part["bad_value"], strict=True)):
            if column is not None:
                result.bad_rows.append(
                    {
                        "source": "erp",
                        "file": name,
                        "row": f"line {k + 2}",
                        "column": column,
                        "raw_value": value,
                    }
                )
    _bad_files(out, text, result)
    return result


def _write_csv(path: Path, frame: pl.DataFrame, encoding: str) -> None:
    path.write_bytes(csv_bytes(frame, encoding))


def _write_xlsx(path: Path, part: pl.DataFrame) -> None:
    workbook = xlsxwriter.Workbook(str(path), {"in_memory": True})
    workbook.set_properties({"created": datetime(2026, 11, 1, 1, 0, 0), "author": "财务共享中心"})
    sheet = workbook.add_worksheet("发票登记簿")
    date_format = workbook.add_format({"num_format": "yyyy-mm-dd"})
    sheet.write_row(0, 0, COLUMNS)
    numbers = {"不含税金额": "amt", "税额": "tax", "价税合计": "tot"}
    values = {c: part[c].to_list() for c in (*COLUMNS, *numbers.values())}
    as_number = part.select(pl.col("amt_fmt").is_in(["fixed", "plain"])).to_series().to_list()
    serial = part.select(pl.col("date_fmt") == "serial").to_series().to_list()
    for c, column in enumerate(COLUMNS):
        cells = values[column]
        for r, value in enumerate(cells, start=1):
            if column == "开票日期" and serial[r - 1]:
                sheet.write_number(r, c, int(value), date_format)  # a real Excel date cell
            elif column in numbers and as_number[r - 1]:
                sheet.write_number(r, c, values[numbers[column]][r - 1] / 100)
            else:
                sheet.write_string(r, c, value)
    workbook.close()


def _bad_files(out: Path, text: pl.DataFrame, result: ErpResult) -> None:
    """An empty export, a GBK export with invalid bytes, and one without 组织 and 方向."""
    empty = "SD01_发票登记簿_202611.csv"
    (out / empty).write_bytes(b"")
    sample = text.filter(pl.col("tag").is_null() & (pl.col("组织") == "BJ01")).head(3).select(COLUMNS)
    data = csv_bytes(sample, "gb18030")
    name = sample["往来单位名称"][0].encode("gb18030")
    data = data.replace(name, name[:2] + b"\xff\xfe" + name[2:], 1)
    corrupt = "BJ01_发票登记簿_补录.csv"
    (out / corrupt).write_bytes(data)
    missing = "SH01_手工台账.csv"
    (out / missing).write_bytes(
        csv_bytes(
            text.filter(pl.col("tag").is_null() & (pl.col("组织") == "SH01"))
            .head(3)
            .select([c for c in COLUMNS if c not in ("组织", "方向")])
        )
    )
    result.bad_files += [
        {"source": "erp", "file": empty, "reason_contains": "empty"},
        {"source": "erp", "file": corrupt, "reason_contains": "decode"},
        {"source": "erp", "file": missing, "reason_contains": "missing columns"},
    ]
