"""Text columns for invoices and lines, built by Polars for just the rows a writer asks for.

The world holds numbers only. Text is made per slice — one platform export, one chunk of the
ERP register, the few invoices of the XML files — and dropped once written, so that ten
million invoices never sit in memory as strings at once. The random parts of the text (the
备注 notes) are drawn once for every invoice up front, so any slice gives the same text.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO

import numpy as np
import polars as pl

from invoice_pipeline.generate import model as m


def money(cents: pl.Expr) -> pl.Expr:
    """Cents -> `1234.50` / `-1234.50`."""
    a = cents.abs()
    return pl.concat_str(
        [
            pl.when(cents < 0).then(pl.lit("-")).otherwise(pl.lit("")),
            (a // 100).cast(pl.String),
            pl.lit("."),
            (a % 100).cast(pl.String).str.zfill(2),
        ]
    )


def _blank_empty(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col(pl.String).replace("", None))


def csv_bytes(frame: pl.DataFrame, encoding: str = "utf-8") -> bytes:
    """CSV as spreadsheet programs write it: empty text is an empty field, not `""`."""
    return _blank_empty(frame).write_csv().encode(encoding)


def append_csv(out: IO[bytes], frame: pl.DataFrame, encoding: str, header: bool) -> None:
    """`frame` as CSV rows (after a header line when `header`) onto an open file: chunks written
    one after another give the same bytes as `csv_bytes` of the whole frame."""
    text = _blank_empty(frame)
    if encoding in ("utf-8", "utf-8-sig"):  # Polars writes UTF-8 itself: no Python string
        if header and encoding == "utf-8-sig":
            out.write("\ufeff".encode())
        text.write_csv(out, include_header=header)
    else:
        out.write(text.write_csv(include_header=header).encode(encoding))


def write_csv(path: Path, frame: pl.DataFrame, encoding: str = "utf-8") -> None:
    with path.open("wb") as out:
        append_csv(out, frame, encoding, header=True)


def gather(values: Sequence[str], index: np.ndarray) -> pl.Series:
    return pl.Series(values, dtype=pl.String).gather(np.clip(index, 0, None))


def timestamp_text(ts: pl.Expr, fmt: str = "%Y-%m-%d %H:%M:%S") -> pl.Expr:
    return pl.from_epoch(ts + m.EPOCH_UNIX, time_unit="s").dt.strftime(fmt)


def uid_text(world: m.World, i: int) -> str:
    """invoice_uid of one invoice (the `uid` column of `InvoiceText.frame`), without a frame."""
    if world.no20[i] >= 0:
        return f"26{int(world.no20[i]):018d}"
    return f"{world.codes[world.code_id[i]]}-{int(world.no8[i]):08d}"


class InvoiceText:
    """Every column the landing files need, for any subset of the world's invoices.

    Construct it once the world is final: it draws the random parts of 备注 for every invoice.
    """

    def __init__(self, world: m.World) -> None:
        self.w = world
        rng, n = world.rng, world.n
        # Drawn in this order since the first version: the same seed keeps giving the same files.
        self.conf = rng.integers(0, 10**8, size=n).astype(np.int32)  # a red's 确认单编号 tail
        pick = rng.random(n)
        self.note = np.select([pick < 0.03, pick < 0.045, pick < 0.05], [1, 2, 3], 0).astype(np.int8)
        self.number = rng.integers(1, 10**5, size=n).astype(np.int32)
        ents = world.entities
        names_per = max(1 + len(e.aliases) for e in ents)
        self.names_per = names_per
        self.our_names = [
            name for e in ents for name in ([e.name, *e.aliases] + [e.name] * names_per)[:names_per]
        ]
        self.cp_names = [v for name in world.cps.name for v in (name, m.flip_brackets(name))]
        self.staff = [name for e in ents for name in e.staff]

    def frame(self, idx: np.ndarray, columns: Sequence[str] | None = None) -> pl.DataFrame:
        """One row per invoice in `idx` (in that order); only `columns` are computed when given."""
        w = self.w
        idx = np.asarray(idx, np.int64)
        ent = w.ent[idx].astype(np.int64)
        blue = np.clip(w.blue[idx], 0, None)
        base = pl.DataFrame(
            {
                "i": idx,
                "ent": w.ent[idx],
                "dirn": w.dirn[idx],
                "kind": w.kind[idx],
                "cp": w.cp[idx],
                "ts": w.ts[idx],
                "status": w.status[idx],
                "risk": w.risk[idx],
                "positive": w.positive[idx],
                "in_platform": w.in_platform[idx],
                "blue": w.blue[idx],
                "red_style": w.red_style[idx],
                "amt": w.amt[idx],
                "tax": w.tax[idx],
                "tot": w.tot[idx],
                "code_id": w.code_id[idx],
                "no8_int": w.no8[idx],
                "no20_int": w.no20[idx],
                "our_tin": gather([e.tin for e in w.entities], ent),
                "our_name": gather(self.our_names, ent * self.names_per + w.our_name[idx]),
                "cp_tin": gather(w.cps.tin, w.cp[idx]),
                "cp_name": gather(self.cp_names, w.cp[idx].astype(np.int64) * 2 + w.cp_name_var[idx]),
                "drawer_theirs": gather(w.drawers, w.drawer[idx]),
                "drawer_ours": gather(self.staff, ent * 3 + w.drawer[idx] % 3),
                "is_issued": w.dirn[idx] == m.ISSUED,
                "code_raw": gather(w.codes, w.code_id[idx]),
                "goods_list": w.goods_list[idx],
                "digital": m.KIND_DIGITAL[w.kind[idx]],
                "type_text": gather(m.KIND_TYPE, w.kind[idx].astype(np.int64)),
                "status_text": gather(m.STATUS, w.status[idx].astype(np.int64)),
                "risk_text": gather(m.RISK, w.risk[idx].astype(np.int64)),
                # what a red invoice's 备注 says about its blue one
                "blue_no20_int": w.no20[blue],
                "blue_code": gather(w.codes, w.code_id[blue]),
                "blue_code_id": w.code_id[blue],
                "blue_no8_int": w.no8[blue],
                "conf": self.conf[idx],
                "note": self.note[idx],
                "number": self.number[idx],
            }
        )
        lazy = base.lazy().with_columns(
            code=pl.when(pl.col("code_id") >= 0).then(pl.col("code_raw")),
            no8=_number8(pl.col("no8_int")),
            no20=_number20(pl.col("no20_int")),
            issue_time=timestamp_text(pl.col("ts")),
            issue_date=pl.from_epoch(pl.col("ts") + m.EPOCH_UNIX, time_unit="s").dt.date(),
            period=timestamp_text(pl.col("ts"), "%Y-%m"),
            quarter=(pl.from_epoch(pl.col("ts") + m.EPOCH_UNIX, time_unit="s").dt.month() + 2) // 3,
            drawer=pl.when(pl.col("is_issued"))
            .then(pl.col("drawer_ours"))
            .otherwise(pl.col("drawer_theirs")),
            channel=pl.when(pl.col("digital"))
            .then(pl.lit(m.PLATFORM_CHANNEL))
            .otherwise(pl.lit(m.LEGACY_CHANNEL)),
            positive_text=pl.when(pl.col("positive")).then(pl.lit("是")).otherwise(pl.lit("否")),
        )
        issued = pl.col("is_issued")
        lazy = lazy.with_columns(
            uid=pl.coalesce(pl.col("no20"), pl.concat_str([pl.col("code"), pl.lit("-"), pl.col("no8")])),
            seller_tin=_with_override(
                pl.when(issued).then(pl.col("our_tin")).otherwise(pl.col("cp_tin")), w.seller_tin
            ),
            seller_name=pl.when(issued).then(pl.col("our_name")).otherwise(pl.col("cp_name")),
            buyer_tin=_with_override(
                pl.when(issued).then(pl.col("cp_tin")).otherwise(pl.col("our_tin")), w.buyer_tin
            ),
            buyer_name=_with_override(
                pl.when(issued).then(pl.col("cp_name")).otherwise(pl.col("our_name")), w.buyer_name
            ),
        )
        lazy = lazy.with_columns(
            cp_tin=pl.when(issued).then(pl.col("buyer_tin")).otherwise(pl.col("seller_tin")),
            remark=_with_override(_remark(), w.remark),
        )
        return lazy.select(columns or INVOICE_COLUMNS).collect()


def _with_override(value: pl.Expr, overrides: dict[int, str]) -> pl.Expr:
    """`value`, but the planted text of `overrides` (by invoice index) in those few rows."""
    if not overrides:
        return value
    keys = sorted(overrides)
    planted = pl.col("i").replace_strict(
        keys, [overrides[k] for k in keys], default=None, return_dtype=pl.String
    )
    return pl.when(pl.col("i").is_in(keys)).then(planted).otherwise(value)


def _number8(value: pl.Expr) -> pl.Expr:
    """发票号码: 8 digits with leading zeros; null where the invoice has none."""
    return pl.when(value >= 0).then(value.cast(pl.String).str.zfill(8))


def _number20(value: pl.Expr) -> pl.Expr:
    """数电发票号码: `26` and the 18 low digits; null where the invoice has none."""
    return pl.when(value >= 0).then(pl.concat_str([pl.lit("26"), value.cast(pl.String).str.zfill(18)]))


def _remark() -> pl.Expr:
    """备注: reds name their blue invoice (two spellings each); a few free-text notes."""
    style = pl.col("red_style")
    blue_no20 = _number20(pl.col("blue_no20_int"))
    blue_code = pl.when(pl.col("blue_code_id") >= 0).then(pl.col("blue_code"))
    conf = pl.concat_str(
        [
            pl.col("seller_tin").str.slice(2, 2),
            pl.lit("1491"),
            pl.lit("26"),
            timestamp_text(pl.col("ts"), "%m%d"),
            pl.col("conf").cast(pl.String).str.zfill(8),
        ]
    )
    digital_text = pl.concat_str(
        [
            pl.when(style == 0)
            .then(pl.lit("被红冲蓝字数电发票号码："))
            .otherwise(pl.lit("被红冲蓝字数电票号码：")),
            blue_no20,
            pl.lit(" 红字发票信息确认单编号："),
            conf,
        ]
    )
    legacy_text = pl.concat_str(
        [
            pl.lit("对应正数发票代码:"),
            blue_code,
            pl.when(style == 0).then(pl.lit("号码:")).otherwise(pl.lit(" 号码:")),
            _number8(pl.col("blue_no8_int")),
        ]
    )
    number = pl.col("number").cast(pl.String).str.zfill(5)
    note = pl.col("note")
    notes = (
        pl.when(note == 1)
        .then(pl.concat_str([pl.lit("合同号：HT2026"), number]))
        .when(note == 2)
        .then(pl.concat_str([pl.lit("项目编号：XM-"), number, pl.lit("/n收款人：财务部")]))
        .when(note == 3)
        .then(pl.concat_str([pl.lit("订单号：PO"), number, pl.lit("\n开户行：中国工商银行")]))
        .otherwise(pl.lit(""))
    )
    red = pl.col("blue") >= 0
    return (
        pl.when(red & (pl.col("blue_no20_int") >= 0))
        .then(digital_text)
        .when(red)
        .then(legacy_text)
        .otherwise(notes)
    )


# Every column `InvoiceText.frame` can give, in this order unless asked otherwise.
INVOICE_COLUMNS = (
    "i",
    "ent",
    "dirn",
    "kind",
    "cp",
    "ts",
    "status",
    "risk",
    "positive",
    "in_platform",
    "blue",
    "red_style",
    "amt",
    "tax",
    "tot",
    "code",
    "no8",
    "no20",
    "uid",
    "our_tin",
    "our_name",
    "cp_tin",
    "cp_name",
    "seller_tin",
    "seller_name",
    "buyer_tin",
    "buyer_name",
    "issue_time",
    "issue_date",
    "period",
    "quarter",
    "drawer",
    "is_issued",
    "goods_list",
    "type_text",
    "channel",
    "status_text",
    "positive_text",
    "risk_text",
    "remark",
)


def line_frame(w: m.World, rows: np.ndarray) -> pl.DataFrame:
    """One row per invoice line in `rows` (indices into the world's line arrays), in that order."""
    rows = np.asarray(rows, np.int64)
    item = w.l_item[rows].astype(np.int64)
    amt = w.l_amt[rows]
    inv = w.l_inv[rows]
    table = m.ITEM_TABLE
    frame = pl.DataFrame(
        {
            "inv": inv,
            "line_no": w.l_no[rows],
            "l_amt": amt,
            "l_tax": w.l_tax[rows],
            "rate": w.l_rate[rows],
            "qty_int": w.l_qty[rows],
            "face": w.l_face[rows],
            "travel": w.l_travel[rows],
            "discount": (amt < 0) & w.positive[inv],
            "tax_class": table["tax_class"].gather(np.clip(item, 0, None)),
            "item": table["item"].gather(np.clip(item, 0, None)),
            "spec": table["spec"].gather(np.clip(item, 0, None)),
            "unit": table["unit"].gather(np.clip(item, 0, None)),
        }
    )
    plain = ~(pl.col("face") | pl.col("discount"))
    return frame.with_columns(
        tax_class=pl.when(pl.col("face")).then(pl.lit("")).otherwise(pl.col("tax_class")),
        item=pl.when(pl.col("face")).then(pl.lit("(详见销货清单)")).otherwise(pl.col("item")),
        spec=pl.when(plain).then(pl.col("spec")).otherwise(pl.lit("")),
        unit=pl.when(plain).then(pl.col("unit")).otherwise(pl.lit("")),
        quantity=pl.when(plain).then(pl.col("qty_int").cast(pl.String)).otherwise(pl.lit("")),
        unit_price=pl.when(plain & (pl.col("qty_int") != 0))
        .then((pl.col("l_amt").abs() / pl.col("qty_int").abs() / 100).round(10).cast(pl.String))
        .otherwise(pl.lit("")),
        amount=money(pl.col("l_amt")),
        tax_amount=money(pl.col("l_tax")),
        total=money(pl.col("l_amt") + pl.col("l_tax")),
        rate_text=gather([r.text for r in m.RATES], w.l_rate[rows].astype(np.int64)),
        rate_xml=gather([r.xml for r in m.RATES], w.l_rate[rows].astype(np.int64)),
        special=pl.when(pl.col("travel")).then(pl.lit("旅客运输服务")).otherwise(pl.lit("")),
    )
