"""Text columns for every invoice and line, built once by Polars from the world's arrays."""

from __future__ import annotations

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


def csv_bytes(frame: pl.DataFrame, encoding: str = "utf-8") -> bytes:
    """CSV as spreadsheet programs write it: empty text is an empty field, not `""`."""
    blank = frame.with_columns(pl.col(pl.String).replace("", None))
    return blank.write_csv().encode(encoding)


def gather(values: list[str], index: np.ndarray) -> pl.Series:
    return pl.Series(values, dtype=pl.String).gather(np.clip(index, 0, None))


def timestamp_text(ts: pl.Expr, fmt: str = "%Y-%m-%d %H:%M:%S") -> pl.Expr:
    return pl.from_epoch(ts + m.EPOCH_UNIX, time_unit="s").dt.strftime(fmt)


def invoice_frame(w: m.World) -> pl.DataFrame:
    """One row per invoice (platform and XML-only), every column the landing files need."""
    n = w.n
    ents = w.entities
    names_per = max(1 + len(e.aliases) for e in ents)
    ent_names = [([e.name, *e.aliases] + [e.name] * names_per)[:names_per] for e in ents]
    flat_names = [name for names in ent_names for name in names]
    cp_names = [v for name in w.cps.name for v in (name, m.flip_brackets(name))]
    issued = w.dirn == m.ISSUED
    our_tin = gather([e.tin for e in ents], w.ent)
    our_name = gather(flat_names, w.ent.astype(np.int64) * names_per + w.our_name)
    cp_tin = gather(w.cps.tin, w.cp)
    cp_name = gather(cp_names, w.cp.astype(np.int64) * 2 + w.cp_name_var)
    staff = [name for e in ents for name in e.staff]
    frame = pl.DataFrame(
        {
            "i": np.arange(n),
            "ent": w.ent,
            "dirn": w.dirn,
            "kind": w.kind,
            "cp": w.cp,
            "ts": w.ts,
            "status": w.status,
            "risk": w.risk,
            "positive": w.positive,
            "in_platform": w.in_platform,
            "blue": w.blue,
            "red_style": w.red_style,
            "amt": w.amt,
            "tax": w.tax,
            "tot": w.tot,
            "code_id": w.code_id,
            "no8_int": w.no8,
            "no20_int": w.no20,
            "our_tin": our_tin,
            "our_name": our_name,
            "cp_tin": cp_tin,
            "cp_name": cp_name,
            "drawer_theirs": gather(w.drawers, w.drawer),
            "drawer_ours": gather(staff, w.ent.astype(np.int64) * 3 + w.drawer % 3),
            "is_issued": issued,
            "code_raw": gather(w.codes, w.code_id),
            "goods_list": w.goods_list,
        }
    )
    frame = frame.with_columns(
        code=pl.when(pl.col("code_id") >= 0).then(pl.col("code_raw")),
        no8=pl.when(pl.col("no8_int") >= 0).then(pl.col("no8_int").cast(pl.String).str.zfill(8)),
        no20=pl.when(pl.col("no20_int") >= 0).then(
            pl.concat_str([pl.lit("26"), pl.col("no20_int").cast(pl.String).str.zfill(18)])
        ),
        seller_tin=pl.when(pl.col("is_issued")).then(pl.col("our_tin")).otherwise(pl.col("cp_tin")),
        seller_name=pl.when(pl.col("is_issued")).then(pl.col("our_name")).otherwise(pl.col("cp_name")),
        buyer_tin=pl.when(pl.col("is_issued")).then(pl.col("cp_tin")).otherwise(pl.col("our_tin")),
        buyer_name=pl.when(pl.col("is_issued")).then(pl.col("cp_name")).otherwise(pl.col("our_name")),
        issue_time=timestamp_text(pl.col("ts")),
        issue_date=pl.from_epoch(pl.col("ts") + m.EPOCH_UNIX, time_unit="s").dt.date(),
        period=timestamp_text(pl.col("ts"), "%Y-%m"),
        quarter=(pl.from_epoch(pl.col("ts") + m.EPOCH_UNIX, time_unit="s").dt.month() + 2) // 3,
        drawer=pl.when(pl.col("is_issued")).then(pl.col("drawer_ours")).otherwise(pl.col("drawer_theirs")),
    ).drop("code_raw", "drawer_ours", "drawer_theirs")
    frame = frame.with_columns(
        uid=pl.coalesce(pl.col("no20"), pl.concat_str([pl.col("code"), pl.lit("-"), pl.col("no8")])),
        type_text=gather(list(m.KIND_TYPE), w.kind.astype(np.int64)),
        channel=pl.when(pl.Series(m.KIND_DIGITAL[w.kind]))
        .then(pl.lit(m.PLATFORM_CHANNEL))
        .otherwise(pl.lit(m.LEGACY_CHANNEL)),
        status_text=gather(list(m.STATUS), w.status.astype(np.int64)),
        positive_text=pl.when(pl.col("positive")).then(pl.lit("是")).otherwise(pl.lit("否")),
        risk_text=gather(list(m.RISK), w.risk.astype(np.int64)),
    )
    for column, overrides in (
        ("seller_tin", w.seller_tin),
        ("buyer_tin", w.buyer_tin),
        ("buyer_name", w.buyer_name),
    ):
        if overrides:
            keys = sorted(overrides)
            frame = frame.with_columns(frame[column].scatter(keys, [overrides[k] for k in keys]))
    frame = frame.with_columns(
        cp_tin=pl.when(pl.col("is_issued")).then(pl.col("buyer_tin")).otherwise(pl.col("seller_tin")),
        remark=_remarks(w, frame),
    )
    return frame


def _remarks(w: m.World, frame: pl.DataFrame) -> pl.Series:
    """备注: reds name their blue invoice (two spellings each); a few free-text notes."""
    rng = w.rng
    n = w.n
    blue = np.clip(w.blue, 0, None)
    blue_no20 = frame["no20"].gather(blue)
    blue_code = frame["code"].gather(blue)
    blue_no8 = frame["no8"].gather(blue)
    province = frame["seller_tin"].str.slice(2, 2)
    conf = pl.concat_str(
        [
            province,
            pl.lit("1491"),
            pl.lit("26"),
            timestamp_text(pl.Series(w.ts), "%m%d"),
            pl.Series(rng.integers(0, 10**8, size=n)).cast(pl.String).str.zfill(8),
        ]
    )
    style = pl.Series(w.red_style)
    digital_blue = blue_no20.is_not_null()
    red = pl.Series(w.blue >= 0)
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
            blue_no8,
        ]
    )
    pick = rng.random(n)
    number = pl.Series(rng.integers(1, 10**5, size=n)).cast(pl.String).str.zfill(5)
    notes = (
        pl.when(pl.Series(pick < 0.03))
        .then(pl.concat_str([pl.lit("合同号：HT2026"), number]))
        .when(pl.Series(pick < 0.045))
        .then(pl.concat_str([pl.lit("项目编号：XM-"), number, pl.lit("/n收款人：财务部")]))
        .when(pl.Series(pick < 0.05))
        .then(pl.concat_str([pl.lit("订单号：PO"), number, pl.lit("\n开户行：中国工商银行")]))
        .otherwise(pl.lit(""))
    )
    remark = pl.select(
        pl.when(red & digital_blue).then(digital_text).when(red).then(legacy_text).otherwise(notes)
    ).to_series()
    if w.remark:
        keys = sorted(w.remark)
        remark = remark.scatter(keys, [w.remark[k] for k in keys])
    return remark.alias("remark")


def line_frame(w: m.World, inv: pl.DataFrame) -> pl.DataFrame:
    """One row per invoice line, with its invoice's identifiers and header fields."""
    item = w.l_item.astype(np.int64)
    face = w.l_face
    table = m.ITEM_TABLE
    discount = (w.l_amt < 0) & w.positive[w.l_inv]
    frame = pl.DataFrame(
        {
            "inv": w.l_inv,
            "line_no": w.l_no,
            "l_amt": w.l_amt,
            "l_tax": w.l_tax,
            "rate": w.l_rate,
            "qty_int": w.l_qty,
            "face": face,
            "travel": w.l_travel,
            "discount": discount,
            "tax_class": table["tax_class"].gather(np.clip(item, 0, None)),
            "item": table["item"].gather(np.clip(item, 0, None)),
            "spec": table["spec"].gather(np.clip(item, 0, None)),
            "unit": table["unit"].gather(np.clip(item, 0, None)),
        }
    )
    frame = frame.with_columns(
        tax_class=pl.when(pl.col("face")).then(pl.lit("")).otherwise(pl.col("tax_class")),
        item=pl.when(pl.col("face")).then(pl.lit("(详见销货清单)")).otherwise(pl.col("item")),
        spec=pl.when(pl.col("face") | pl.col("discount")).then(pl.lit("")).otherwise(pl.col("spec")),
        unit=pl.when(pl.col("face") | pl.col("discount")).then(pl.lit("")).otherwise(pl.col("unit")),
        quantity=pl.when(pl.col("face") | pl.col("discount"))
        .then(pl.lit(""))
        .otherwise(pl.col("qty_int").cast(pl.String)),
        unit_price=pl.when(pl.col("face") | pl.col("discount") | (pl.col("qty_int") == 0))
        .then(pl.lit(""))
        .otherwise((pl.col("l_amt").abs() / pl.col("qty_int").abs() / 100).round(10).cast(pl.String)),
        amount=money(pl.col("l_amt")),
        tax_amount=money(pl.col("l_tax")),
        total=money(pl.col("l_amt") + pl.col("l_tax")),
        rate_text=gather([r.text for r in m.RATES], w.l_rate.astype(np.int64)),
        rate_xml=gather([r.xml for r in m.RATES], w.l_rate.astype(np.int64)),
        special=pl.when(pl.col("travel")).then(pl.lit("旅客运输服务")).otherwise(pl.lit("")),
    )
    return frame
