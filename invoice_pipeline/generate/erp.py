"""erp: the finance system's invoice register, keyed by hand (SPEC §3.4).

Every invoice of ours that is not voided is booked once, in the month it was issued, with
the platform's amounts, date and counterparty — but typed every way SPEC §3.4 lists. The
planted rows (problems, look-alikes, rejected rows) are built as a few explicit dicts.

At ten million invoices the register is as big as the platform export. So the booked rows
are planned as small per-row codes in numpy (which spelling of the number, which clerk, …),
ordered and numbered there, and turned into text one chunk of rows at a time as the files are
written; only the planted rows exist as text from the start.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from invoice_pipeline.generate import model as m
from invoice_pipeline.generate.frames import InvoiceText, append_csv, csv_bytes, gather
from invoice_pipeline.generate.plants import ErpRow, Plan
from invoice_pipeline.generate.xlsx import Sheet, write_workbook
from invoice_pipeline.specs import load_specs

# The exact headers of the real export, in order: the source spec is their one home.
COLUMNS = tuple(load_specs()["erp"].tables["erp"].columns.values())
# (组织, first and last month of 会计期间, file label, format, encoding): one file per entity and
# half-year, except GD01's last two months, exported to Excel (2% of the rows).
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


# Every spelling a per-row code can name, sorted: a code is an index into one of these.
KEYS = tuple(sorted({*DIGITAL_KEYS, *LEGACY_KEYS, *PAPER_DIGITAL_KEYS}))
AMOUNT_FORMATS = tuple(sorted({*POSITIVE_AMOUNTS, *NEGATIVE_AMOUNTS}))
DATE_FORMATS = tuple(sorted(set(DATES)))
PERIOD_FORMATS = tuple(sorted(set(PERIODS)))
POSTING_FORMATS = tuple(sorted(set(POSTINGS)))
TYPE_TEXT = tuple(t for spellings in KIND_TEXT for t in (spellings * 3)[:3])  # 3 per kind
ORGS = tuple(sorted({org for org, *_ in FILES}))  # the register is sorted by 组织 first
CHUNK_ROWS = 500_000
INVOICE_FIELDS = (  # what a booking row takes from its invoice
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
)


@dataclass
class ErpResult:
    files: dict[str, int] = field(default_factory=dict)
    subjects: dict[str, str] = field(default_factory=dict)  # tag -> 组织/单据编号
    variants: dict[str, int] = field(default_factory=dict)
    bad_rows: list[dict[str, Any]] = field(default_factory=list)
    bad_files: list[dict[str, str]] = field(default_factory=list)
    empty_tin_example: str = ""
    unaudited_example: str = ""


@dataclass
class Bookings:
    """ERP rows booking the invoices `inv`, one each, as small codes (text comes from `_rows`)."""

    inv: np.ndarray
    post_days: np.ndarray  # posted this many days after issue (not past the month's end)
    flip_name: np.ndarray  # the counterparty's name keyed with the other kind of brackets
    blank_tin: np.ndarray  # 往来单位税号 left empty
    type_pick: np.ndarray  # which spelling of the invoice type (0..2)
    cny: np.ndarray  # 币种 `CNY`, else `人民币`
    unaudited: np.ndarray
    clerk: np.ndarray  # which of the entity's three clerks
    remark: np.ndarray  # index into REMARKS
    rate: np.ndarray  # 税率 as keyed: the rate of the invoice's first line
    key: np.ndarray  # how 发票号码 is keyed: index into KEYS
    amt_fmt: np.ndarray  # index into AMOUNT_FORMATS
    date_fmt: np.ndarray  # index into DATE_FORMATS
    period_fmt: np.ndarray  # index into PERIOD_FORMATS
    post_fmt: np.ndarray  # index into POSTING_FORMATS

    def __len__(self) -> int:
        return len(self.inv)

    def take(self, rows: np.ndarray) -> Bookings:
        return Bookings(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})


def _draw(world: m.World, idx: np.ndarray, base: bool) -> Bookings:
    """Bookings of the invoices `idx`: every spelling at random when `base`, else the plain one."""
    rng = world.rng
    k = len(idx)
    # The draws stay in this order, whatever uses them: the same seed gives the same files.
    post_days = rng.integers(0, 4, size=k).astype(np.int8)
    flip_name = rng.random(k) < 0.2
    blank_tin = rng.random(k) < (0.08 if base else 0)
    type_pick = rng.integers(0, 3, size=k).astype(np.int8)
    cny = rng.random(k) < 0.6
    unaudited = rng.random(k) < (0.08 if base else 0)
    clerk = rng.integers(0, 3, size=k).astype(np.int8)
    remark = rng.integers(0, len(REMARKS), size=k).astype(np.int8)
    kind = world.kind[idx].astype(np.int64)
    if base and k:
        key = _cycle(
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
        )
        amt_fmt = _cycle(
            rng, (world.tot[idx] < 0).astype(np.int64), {0: POSITIVE_AMOUNTS, 1: NEGATIVE_AMOUNTS}
        )
        period_fmt = _cycle(rng, np.zeros(k, np.int64), {0: PERIODS})
        post_fmt = _cycle(rng, np.zeros(k, np.int64), {0: POSTINGS})
    else:
        by_code = (world.no20[idx] < 0) | (kind == m.SDP)
        key = np.where(by_code, KEYS.index("code_no"), KEYS.index("no20")).astype(np.int8)
        amt_fmt = np.full(k, AMOUNT_FORMATS.index("fixed"), np.int8)
        period_fmt = np.full(k, PERIOD_FORMATS.index("dash"), np.int8)
        post_fmt = np.full(k, POSTING_FORMATS.index("iso"), np.int8)
    date_fmt = np.full(k, DATE_FORMATS.index("iso"), np.int8)  # varied per file later
    lines = np.bincount(world.l_inv, minlength=world.n)
    first_line = (np.cumsum(lines) - lines)[idx]  # lines are sorted by invoice
    rate = world.l_rate[np.minimum(first_line, len(world.l_rate) - 1)]
    return Bookings(
        np.asarray(idx, np.int64),
        post_days,
        flip_name,
        blank_tin,
        type_pick,
        cny,
        unaudited,
        clerk,
        remark,
        rate,
        key,
        amt_fmt,
        date_fmt,
        period_fmt,
        post_fmt,
    )


def _cycle(rng: np.random.Generator, classes: np.ndarray, patterns: dict[int, tuple[str, ...]]) -> np.ndarray:
    """Spread each class's pattern evenly over its rows in random order (every variant appears).
    Returns codes: indices into the sorted names of all the patterns."""
    names = sorted({name for pattern in patterns.values() for name in pattern})
    out = np.zeros(len(classes), np.int8)
    for cls, pattern in patterns.items():
        rows = np.flatnonzero(classes == cls)
        codes = np.searchsorted(names, pattern)
        out[rows] = codes[rng.permutation(len(rows)) % len(pattern)]
    return out


def _rows(world: m.World, texts: InvoiceText, b: Bookings) -> pl.DataFrame:
    """The columns the register's text is made from, for bookings `b` (in their order)."""
    idx = b.inv
    ent = world.ent[idx].astype(np.int64)
    kind = world.kind[idx].astype(np.int64)
    frame = texts.frame(idx, INVOICE_FIELDS).with_columns(
        tag=pl.lit(None, pl.String),
        org=gather([e.org for e in world.entities], ent),
        cp_name_keyed=gather(texts.cp_names, world.cp[idx].astype(np.int64) * 2 + b.flip_name),
        cp_tin_keyed=pl.when(pl.Series(b.blank_tin)).then(pl.lit("")).otherwise(pl.col("cp_tin")),
        type_keyed=gather(TYPE_TEXT, kind * 3 + b.type_pick),
        rate_keyed=gather([r.text for r in m.RATES], b.rate.astype(np.int64)),
        keyed_date=pl.col("issue_date"),
        post_date=pl.min_horizontal(
            pl.col("issue_date") + pl.duration(days=pl.Series(b.post_days.astype(np.int64))),
            pl.col("issue_date").dt.month_end(),
        ),
        currency=pl.when(pl.Series(b.cny)).then(pl.lit("CNY")).otherwise(pl.lit("人民币")),
        audit=pl.when(pl.Series(b.unaudited)).then(pl.lit("未审核")).otherwise(pl.lit("已审核")),
        cancelled=pl.lit("否"),
        clerk=gather(texts.staff, ent * 3 + b.clerk),
        remark_keyed=gather(REMARKS, b.remark.astype(np.int64)),
        no_text=pl.lit(None, pl.String),
    )
    return frame.with_columns(
        remark_keyed=pl.when(pl.col("tot") < 0).then(pl.lit("红字冲销")).otherwise(pl.col("remark_keyed")),
        key=gather(KEYS, b.key.astype(np.int64)),
        amt_fmt=gather(AMOUNT_FORMATS, b.amt_fmt.astype(np.int64)),
        date_fmt=gather(DATE_FORMATS, b.date_fmt.astype(np.int64)),
        period_fmt=gather(PERIOD_FORMATS, b.period_fmt.astype(np.int64)),
        post_fmt=gather(POSTING_FORMATS, b.post_fmt.astype(np.int64)),
    )


def _planted(world: m.World, texts: InvoiceText, plan: Plan, bad_rows: list[ErpRow]) -> pl.DataFrame:
    def booked(idx: list[int]) -> list[dict[str, Any]]:
        return _rows(world, texts, _draw(world, np.array(idx, np.int64), base=False)).to_dicts()

    rows: list[dict[str, Any]] = []
    planted = [r for r in plan.erp_rows if r.inv is not None] + bad_rows
    for spec, row in zip(planted, booked([r.inv for r in planted]), strict=True):
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
    multi = booked(members)
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
    schema = dict(_rows(world, texts, _draw(world, np.zeros(0, np.int64), base=False)).schema)
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
    """Cents as keyed in format `fmt`: `1234.5` (plain), `1234.50` (fixed), `1,234.50` (comma),
    `￥1,234.50` / `¥1,234.50` (yen_fw / yen), `(1,234.50)` (paren, for negatives).

    Built as prefix + sign + yuan + fraction + suffix, each part chosen by `fmt`: a Polars
    when/then computes every branch for every row, so each costly part appears only once.
    """
    a = cents.abs()
    yuan = a // 100
    frac = a % 100
    fixed_frac = pl.concat_str([pl.lit("."), frac.cast(pl.String).str.zfill(2)])
    plain_frac = (
        pl.when(frac == 0)
        .then(pl.lit(""))
        .when(frac % 10 == 0)
        .then(pl.concat_str([pl.lit("."), (frac // 10).cast(pl.String)]))
        .otherwise(fixed_frac)
    )
    prefix = (
        pl.when(fmt == "yen_fw")
        .then(pl.lit("￥"))
        .when(fmt == "yen")
        .then(pl.lit("¥"))
        .when(fmt == "paren")
        .then(pl.lit("("))
        .otherwise(pl.lit(""))
    )
    sign = pl.when((cents < 0) & (fmt != "paren")).then(pl.lit("-")).otherwise(pl.lit(""))
    grouped = fmt.is_in(["comma", "yen_fw", "yen", "paren"])
    return pl.concat_str(
        [
            prefix,
            sign,
            pl.when(grouped).then(_thousands(yuan)).otherwise(yuan.cast(pl.String)),
            pl.when(fmt == "plain").then(plain_frac).otherwise(fixed_frac),
            pl.when(fmt == "paren").then(pl.lit(")")).otherwise(pl.lit("")),
        ]
    )


def _thousands(yuan: pl.Expr) -> pl.Expr:
    """A whole number with `,` between groups of three digits: `1,234,567`."""

    def group(value: pl.Expr) -> pl.Expr:
        return value.cast(pl.String).str.zfill(3)

    return (
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


def _keep_unique_tails(world: m.World, base: Bookings) -> None:
    """Rows keyed by a 20-digit number's last 8 digits keep the full number where those 8 digits
    are also another invoice's tail or 发票号码: keying only them would be ambiguous."""
    tails = np.concatenate(
        [world.no20[world.no20 >= 0] % 10**8, world.no8[(world.no8 >= 0) & (world.no8 < 10**8)]]
    )
    values, counts = np.unique(tails, return_counts=True)
    shared = values[counts > 1]
    last8 = np.flatnonzero(base.key == KEYS.index("last8"))
    ambiguous = last8[np.isin(world.no20[base.inv[last8]] % 10**8, shared)]
    base.key[ambiguous] = KEYS.index("no20")


@dataclass
class Register:
    """The order of the register's rows — the booked ones (`base`) then the planted ones — and
    the numbers that follow from it. Arrays by row are in that order; `order` lists the rows
    as the files have them (by 组织, 会计期间, 记账日期, issue time, invoice, tag)."""

    base: Bookings
    planted: pl.DataFrame
    org: np.ndarray  # index into ORGS, by row
    dirn: np.ndarray
    month: np.ndarray  # of 会计期间
    file_no: np.ndarray  # index into FILES
    order: np.ndarray
    doc_seq: np.ndarray  # by position in `order`: the number in 单据编号 (per 组织, 方向, month)
    voucher_seq: np.ndarray  # by position: the number in 凭证号 (per 组织, month, 审核状态)

    @property
    def n_base(self) -> int:
        return len(self.base)

    def positions(self, file_no: int) -> tuple[int, int]:
        """The rows of one file: a run of positions, as the files are sorted by 组织 and month."""
        found = np.flatnonzero(self.file_no[self.order] == file_no)
        if not len(found):
            return 0, 0
        assert found[-1] - found[0] + 1 == len(found)
        return int(found[0]), int(found[-1]) + 1

    def document(self, position: int) -> str:
        """`组织/单据编号` of the row at `position`."""
        row = self.order[position]
        prefix = "XS" if self.dirn[row] == m.ISSUED else "CG"
        period = f"{m.EPOCH.year}{self.month[row]:02d}"
        return f"{ORGS[self.org[row]]}/{prefix}{period}{self.doc_seq[position]:04d}"


def _register(world: m.World, base: Bookings, planted: pl.DataFrame) -> Register:
    """Put the rows in the files' order and number their documents and vouchers."""
    booked, keyed = _booked_keys(world, base), _planted_keys(planted)
    keys = {name: np.concatenate([booked[name], keyed[name]]) for name in booked}
    org, dirn, month = (
        keys["org"].astype(np.int8),
        keys["dirn"].astype(np.int8),
        keys["month"].astype(np.int8),
    )
    order = np.lexsort((keys["tag"], keys["inv"], keys["ts"], keys["post"], month, org))
    file_of = np.zeros((len(ORGS), 13), np.int8)  # (组织, month) -> file
    for k, (name, first, last, *_) in enumerate(FILES):
        file_of[ORGS.index(name), first : last + 1] = k
    in_order = {name: keys[name][order] for name in ("org", "dirn", "month", "unaudited")}
    return Register(
        base=base,
        planted=planted,
        org=org,
        dirn=dirn,
        month=month,
        file_no=file_of[org, month],
        order=order,
        doc_seq=_running_count((in_order["org"] * 2 + in_order["dirn"]) * 13 + in_order["month"]),
        voucher_seq=_running_count((in_order["org"] * 13 + in_order["month"]) * 2 + in_order["unaudited"]),
    )


def _booked_keys(world: m.World, base: Bookings) -> dict[str, np.ndarray]:
    """What orders and numbers the booked rows: 组织, 方向, month, 记账日期 (day), issue time, …"""
    org_of_entity = np.array([ORGS.index(e.org) for e in world.entities])
    ts = world.ts[base.inv]
    month = m.month_of(ts)
    last_day = np.array(
        [(date(2026 + mo // 12, mo % 12 + 1, 1) - m.EPOCH.date()).days - 1 for mo in range(1, 13)]
    )
    return {
        "org": org_of_entity[world.ent[base.inv]],
        "dirn": world.dirn[base.inv].astype(np.int64),
        "month": month,
        "post": np.minimum(ts // m.DAY + base.post_days, last_day[month - 1]),  # not past the month
        "ts": ts,
        "inv": base.inv,
        "tag": np.full(len(base), np.iinfo(np.int64).max),  # untagged rows after tagged ones
        "unaudited": base.unaudited.astype(np.int64),
    }


def _planted_keys(planted: pl.DataFrame) -> dict[str, np.ndarray]:
    """The same for the planted rows, from their columns (a tag ranks as the text sorts)."""
    rank = {tag: k for k, tag in enumerate(sorted(planted["tag"]))}
    return {
        "org": np.array([ORGS.index(org) for org in planted["org"]], np.int64),
        "dirn": planted["dirn"].to_numpy().astype(np.int64),
        "month": np.array([int(period[5:7]) for period in planted["period"]], np.int64),
        "post": np.array([(day - m.EPOCH.date()).days for day in planted["post_date"]], np.int64),
        "ts": planted["ts"].to_numpy(),
        "inv": planted["i"].to_numpy(),
        "tag": np.array([rank[tag] for tag in planted["tag"]], np.int64),
        "unaudited": (planted["audit"] == "未审核").to_numpy().astype(np.int64),
    }


def _running_count(groups: np.ndarray) -> np.ndarray:
    """1, 2, 3, … within each value of `groups`, in array order."""
    order = np.argsort(groups, kind="stable")
    ranked = groups[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(groups)]))
    count = np.empty(len(groups), np.int32)
    count[order] = np.arange(len(groups)) - run_start + 1
    return count


def _vary_formats(world: m.World, reg: Register) -> None:
    """Every file carries every date spelling (the xlsx's serials become real date cells); the
    GBK-family files write the yen sign full-width."""
    dates = _cycle(world.rng, reg.file_no.astype(np.int64), dict.fromkeys(range(len(FILES)), DATES))
    base, n = reg.base, reg.n_base
    base.date_fmt = dates[:n]  # the planted rows keep their plain ISO dates
    gbk = np.array([encoding == "gb18030" for *_, encoding in FILES])[reg.file_no]
    base.amt_fmt[gbk[:n] & (base.amt_fmt == AMOUNT_FORMATS.index("yen"))] = AMOUNT_FORMATS.index("yen_fw")
    yen = pl.Series(gbk[n:]) & (pl.col("amt_fmt") == "yen")
    reg.planted = reg.planted.with_columns(
        amt_fmt=pl.when(yen).then(pl.lit("yen_fw")).otherwise(pl.col("amt_fmt"))
    )


def _text_rows(world: m.World, texts: InvoiceText, reg: Register, positions: np.ndarray) -> pl.DataFrame:
    """The register's text columns (and what the xlsx needs) for the rows at `positions`."""
    rows = reg.order[positions]
    booked = rows < reg.n_base
    parts = []
    if booked.any():
        frame = _rows(world, texts, reg.base.take(rows[booked]))
        parts.append(
            frame.with_columns(
                bad_column=pl.lit(None, pl.String),
                bad_value=pl.lit(None, pl.String),
                position=pl.Series(positions[booked]),
            )
        )
    if not booked.all():
        planted = reg.planted[rows[~booked] - reg.n_base]
        parts.append(planted.with_columns(position=pl.Series(positions[~booked])))
    frame = pl.concat(parts).sort("position") if parts else _empty(world, texts)
    return _text(
        frame.with_columns(
            doc_seq=pl.Series(reg.doc_seq[positions]), voucher_seq=pl.Series(reg.voucher_seq[positions])
        )
    )


def _empty(world: m.World, texts: InvoiceText) -> pl.DataFrame:
    frame = _rows(world, texts, _draw(world, np.zeros(0, np.int64), base=False))
    return frame.with_columns(
        bad_column=pl.lit(None, pl.String), bad_value=pl.lit(None, pl.String), position=pl.lit(0, pl.Int64)
    )


def _text(rows: pl.DataFrame) -> pl.DataFrame:
    """SPEC §3.4's columns as keyed, from the planned rows (with their document numbers)."""
    code_col, number = _number_text(pl.col("key"))
    text = rows.with_columns(
        组织=pl.col("org"),
        方向=pl.when(pl.col("dirn") == m.ISSUED).then(pl.lit("销项")).otherwise(pl.lit("进项")),
        单据编号=pl.concat_str(
            [
                pl.when(pl.col("dirn") == m.ISSUED).then(pl.lit("XS")).otherwise(pl.lit("CG")),
                pl.col("period").str.replace("-", ""),
                pl.col("doc_seq").cast(pl.String).str.zfill(4),
            ]
        ),
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
    # The rejected rows: one planted raw value each.
    return text.with_columns(
        价税合计=pl.when(pl.col("bad_column") == "价税合计")
        .then(pl.col("bad_value"))
        .otherwise(pl.col("价税合计")),
        开票日期=pl.when(pl.col("bad_column") == "开票日期")
        .then(pl.col("bad_value"))
        .otherwise(pl.col("开票日期")),
    ).select(*COLUMNS, "bad_column", "bad_value", "amt", "tax", "tot", "amt_fmt", "date_fmt")


def write_erp(out: Path, world: m.World, texts: InvoiceText, plan: Plan, bad_rows: list[ErpRow]) -> ErpResult:
    result = ErpResult()
    bookable = world.in_platform & (world.status != m.VOIDED)
    bookable[sorted(plan.erp_skip)] = False
    base = _draw(world, np.flatnonzero(bookable), base=True)
    _keep_unique_tails(world, base)
    reg = _register(world, base, _planted(world, texts, plan, bad_rows))
    _vary_formats(world, reg)
    _summarise(reg, result)
    for k, (org, _, _, label, fmt, encoding) in enumerate(FILES):
        name = f"{org}_发票登记簿_{label}.{fmt}"
        first, end = reg.positions(k)
        chunks = (_text_rows(world, texts, reg, positions) for positions in _chunks(first, end))
        if fmt == "xlsx":
            _write_xlsx(out / name, pl.concat(chunks))
        else:
            with (out / name).open("wb") as f:
                for n, chunk in enumerate(chunks):
                    append_csv(f, chunk.select(COLUMNS), encoding or "utf-8", header=n == 0)
        result.files[name] = end - first
        _bad_rows(reg, result, name, first, end)
    _bad_files(out, world, texts, reg, result)
    return result


def _chunks(first: int, end: int) -> list[np.ndarray]:
    """Positions `first`..`end` in chunks of CHUNK_ROWS: the text of one chunk at a time is in
    memory. An empty file is one empty chunk (it still gets its header)."""
    starts = range(first, end, CHUNK_ROWS) if end > first else [first]
    return [np.arange(lo, min(lo + CHUNK_ROWS, end)) for lo in starts]


def _summarise(reg: Register, result: ErpResult) -> None:
    """Documents of the planted rows, how often each spelling occurs, and two example documents."""
    base, planted, n = reg.base, reg.planted, reg.n_base
    where = np.empty(len(reg.order), np.int64)
    where[reg.order] = np.arange(len(reg.order))  # position of each row
    for k, tag in enumerate(planted["tag"]):
        result.subjects[tag] = reg.document(int(where[n + k]))
    multi = planted.filter(pl.col("tag").str.starts_with("multi"))
    counts = {KEYS[c]: int(v) for c, v in enumerate(np.bincount(base.key, minlength=len(KEYS))) if v}
    for key in multi["key"]:
        counts[key] = counts.get(key, 0) + 1
    result.variants = {k: int(v) for k, v in sorted(counts.items())}
    for column, names, codes in (
        ("amount", AMOUNT_FORMATS, base.amt_fmt),
        ("date", DATE_FORMATS, base.date_fmt),
        ("period", PERIOD_FORMATS, base.period_fmt),
    ):
        for code, count in enumerate(np.bincount(codes, minlength=len(names))):
            if count:
                result.variants[f"{column}_{names[code]}"] = int(count)
    cny = int(base.cny.sum()) + int((planted["currency"] == "CNY").sum())
    result.variants["currency_CNY"] = cny
    result.variants["currency_人民币"] = len(reg.order) - cny
    for flags, attr in ((base.blank_tin, "empty_tin_example"), (base.unaudited, "unaudited_example")):
        rows = np.flatnonzero(flags)
        if len(rows):
            setattr(result, attr, reg.document(int(where[rows].min())))


def _bad_rows(reg: Register, result: ErpResult, name: str, first: int, end: int) -> None:
    rows = reg.order[first:end]
    for k in np.flatnonzero(rows >= reg.n_base):
        row = reg.planted.row(int(rows[k]) - reg.n_base, named=True)
        if row["bad_column"] is not None:
            result.bad_rows.append(
                {
                    "source": "erp",
                    "file": name,
                    "row": f"line {k + 2}",
                    "column": row["bad_column"],
                    "raw_value": row["bad_value"],
                }
            )


def _write_xlsx(path: Path, part: pl.DataFrame) -> None:
    """The Excel export: amounts keyed as plain numbers are number cells, serial dates real date
    cells, the rest text. Written by the generator's own xlsx writer: xlsxwriter's cell-by-cell
    Python calls took 20 s for this file at 10 million invoices."""
    frame = part.select(
        *COLUMNS,
        amount_cell=pl.col("amt_fmt").is_in(["fixed", "plain"]) & pl.col("bad_column").is_null(),
        date_cell=(pl.col("date_fmt") == "serial") & pl.col("bad_column").is_null(),
    )
    numbers = {"不含税金额": "amount_cell", "税额": "amount_cell", "价税合计": "amount_cell"}
    sheet = Sheet(
        "发票登记簿", frame, numeric_rows={**numbers, "开票日期": "date_cell"}, dates=frozenset({"开票日期"})
    )
    write_workbook(path, [sheet], datetime(2026, 11, 1, 1, 0, 0), creator="财务共享中心")


def _bad_files(out: Path, world: m.World, texts: InvoiceText, reg: Register, result: ErpResult) -> None:
    """An empty export, a GBK export with invalid bytes, and one without 组织 and 方向."""
    empty = "SD01_发票登记簿_202611.csv"
    (out / empty).write_bytes(b"")
    sample = _text_rows(world, texts, reg, _first_booked(reg, "BJ01")).select(COLUMNS)
    data = csv_bytes(sample, "gb18030")
    name = sample["往来单位名称"][0].encode("gb18030")
    data = data.replace(name, name[:2] + b"\xff\xfe" + name[2:], 1)
    corrupt = "BJ01_发票登记簿_补录.csv"
    (out / corrupt).write_bytes(data)
    missing = "SH01_手工台账.csv"
    sample = _text_rows(world, texts, reg, _first_booked(reg, "SH01"))
    (out / missing).write_bytes(csv_bytes(sample.select([c for c in COLUMNS if c not in ("组织", "方向")])))
    result.bad_files += [
        {"source": "erp", "file": empty, "reason_contains": "empty"},
        {"source": "erp", "file": corrupt, "reason_contains": "decode"},
        {"source": "erp", "file": missing, "reason_contains": "missing columns"},
    ]


def _first_booked(reg: Register, org: str, k: int = 3) -> np.ndarray:
    """Positions of the first `k` rows of `org` that are not planted."""
    rows = reg.order
    return np.flatnonzero((reg.org[rows] == ORGS.index(org)) & (rows < reg.n_base))[:k]
