"""tax_platform: one 全量发票查询 export per entity × direction × quarter (SPEC §3.2)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from invoice_pipeline.generate import model as m
from invoice_pipeline.generate.frames import InvoiceText, line_frame, money, write_csv
from invoice_pipeline.generate.ids import make_ric
from invoice_pipeline.generate.xlsx import Sheet, write_workbook
from invoice_pipeline.specs import load_specs

# The exact headers of the real export, in order: the source spec is their one home.
HEADER_COLUMNS = tuple(load_specs()["tax_platform"].tables["tax_platform"].columns.values())
# The exact headers of the real export, in order: the source spec is their one home.
LINE_COLUMNS = tuple(load_specs()["tax_platform"].tables["tax_platform_lines"].columns.values())
TRAVEL_COLUMNS = (
    "序号",
    "发票代码",
    "发票号码",
    "数电发票号码",
    "销方识别号",
    "销方名称",
    "购方识别号",
    "购买方名称",
    "开票日期",
    "发票来源",
    "发票票种",
    "发票状态",
    "是否正数发票",
    "发票风险等级",
    "开票人",
    "备注",
    "出行人",
    "有效身份证号",
    "出行日期",
    "出发地",
    "到达地",
    "等级",
    "交通工具类型",
)
MONEY = frozenset({"金额", "税额", "价税合计"})
# Invoice columns the line sheet repeats on every line.
LINE_INVOICE_COLUMNS = (
    "code",
    "no8",
    "no20",
    "seller_tin",
    "seller_name",
    "buyer_tin",
    "buyer_name",
    "issue_time",
    "channel",
    "type_text",
    "status_text",
    "positive_text",
    "risk_text",
    "drawer",
    "remark",
)
# What the export's sheets are made from.
EXPORT_COLUMNS = ("i", "ts", "uid", *LINE_INVOICE_COLUMNS, "amt", "tax", "tot", "issue_date")
MAX_SHEET_ROWS = 200_000
CSV_ONLY_FROM = 1_000_000


@dataclass
class PlatformResult:
    files: dict[str, int] = field(default_factory=dict)  # file -> invoice rows (合计行 excluded)
    line_rows: int = 0
    control_mismatch: list[tuple[str, int, int, str]] = field(default_factory=list)  # (file, ent, dirn, what)
    truncated: str = ""
    travel_file: str = ""


def _ident_columns(frame: pl.DataFrame) -> list[pl.Expr]:
    return [
        pl.col("code").fill_null("").alias("发票代码"),
        pl.col("no8").fill_null("").alias("发票号码"),
        pl.col("no20").fill_null("--").alias("数电发票号码"),
        pl.col("seller_tin").alias("销方识别号"),
        pl.col("seller_name").alias("销方名称"),
        pl.col("buyer_tin").alias("购方识别号"),
        pl.col("buyer_name").alias("购买方名称"),
        pl.col("issue_time").alias("开票日期"),
    ]


def _tail_columns() -> list[pl.Expr]:
    return [
        pl.col("channel").alias("发票来源"),
        pl.col("type_text").alias("发票票种"),
        pl.col("status_text").alias("发票状态"),
        pl.col("positive_text").alias("是否正数发票"),
        pl.col("risk_text").alias("发票风险等级"),
        pl.col("drawer").alias("开票人"),
        pl.col("remark").alias("备注"),
    ]


def header_sheet(invoices: pl.DataFrame) -> pl.DataFrame:
    return invoices.select(
        pl.int_range(1, pl.len() + 1).cast(pl.String).alias("序号"),
        *_ident_columns(invoices),
        money(pl.col("amt")).alias("金额"),
        money(pl.col("tax")).alias("税额"),
        money(pl.col("tot")).alias("价税合计"),
        *_tail_columns(),
    )


def total_row(invoices: pl.DataFrame, amt_delta: int = 0, tax_delta: int = 0) -> pl.DataFrame:
    """The 合计行: 序号 = 合计行, only 金额 and 税额 filled."""
    amt = int(invoices["amt"].sum()) + amt_delta
    tax = int(invoices["tax"].sum()) + tax_delta
    row = {c: None for c in HEADER_COLUMNS}
    row.update({"序号": "合计行", "金额": _cents(amt), "税额": _cents(tax)})
    return pl.DataFrame([row], schema=dict.fromkeys(HEADER_COLUMNS, pl.String))


def _cents(value: int) -> str:
    sign = "-" if value < 0 else ""
    return f"{sign}{abs(value) // 100}.{abs(value) % 100:02d}"


def line_sheet(lines: pl.DataFrame) -> pl.DataFrame:
    return lines.select(
        pl.int_range(1, pl.len() + 1).cast(pl.String).alias("序号"),
        *_ident_columns(lines),
        pl.col("tax_class").alias("税收分类编码"),
        pl.col("special").alias("特定业务类型"),
        pl.col("item").alias("货物或应税劳务名称"),
        pl.col("spec").alias("规格型号"),
        pl.col("unit").alias("单位"),
        pl.col("quantity").alias("数量"),
        pl.col("unit_price").alias("单价"),
        pl.col("amount").alias("金额"),
        pl.col("rate_text").alias("税率"),
        pl.col("tax_amount").alias("税额"),
        pl.col("total").alias("价税合计"),
        *_tail_columns(),
    )


def travel_sheet(invoices: pl.DataFrame, world: m.World, travellers: list[str]) -> pl.DataFrame:
    rng = world.rng
    rows = invoices.select(
        pl.int_range(1, pl.len() + 1).cast(pl.String).alias("序号"),
        *_ident_columns(invoices),
        *_tail_columns(),
    )
    routes = [
        ("北京", "上海", "经济舱", "飞机"),
        ("北京", "济南", "二等座", "火车"),
        ("北京", "广州", "经济舱", "飞机"),
    ]
    extra = []
    for k, day in enumerate(invoices["issue_date"].to_list()):
        start, end, grade, vehicle = routes[k % len(routes)]
        birth = f"19{int(rng.integers(70, 99))}{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}"
        extra.append(
            {
                "出行人": travellers[k % len(travellers)],
                "有效身份证号": make_ric("110105", birth, int(rng.integers(1, 999))),
                "出行日期": day.isoformat(),
                "出发地": start,
                "到达地": end,
                "等级": grade,
                "交通工具类型": vehicle,
            }
        )
    return pl.concat(
        [rows, pl.DataFrame(extra, schema=dict.fromkeys(TRAVEL_COLUMNS[16:], pl.String))], how="horizontal"
    )


def file_name(entity: m.Entity, dirn: int, quarter: int, ext: str) -> str:
    return f"{entity.short}_{m.DIRECTION_CN[dirn]}_2026Q{quarter}_全量发票查询导出结果.{ext}"


def _groups(world: m.World) -> dict[tuple[int, int, int], np.ndarray]:
    """The platform's invoices of each export (entity, direction, quarter), in index order."""
    idx = np.flatnonzero(world.in_platform)
    quarter = (m.month_of(world.ts[idx]) + 2) // 3
    key = (world.ent[idx].astype(np.int64) * 2 + world.dirn[idx]) * 5 + quarter  # quarter is 1..4
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    groups = {}
    for part in np.split(order, bounds):
        if len(part):
            k = int(key[part[0]])
            groups[(k // 10, k // 5 % 2, k % 5)] = idx[part]
    return groups


def _export_rows(texts: InvoiceText, idx: np.ndarray) -> pl.DataFrame:
    """One export's invoices in the platform's order (issue time, then number)."""
    return texts.frame(idx, EXPORT_COLUMNS).sort(["ts", "uid"])


def _first_rows(texts: InvoiceText, idx: np.ndarray, k: int) -> pl.DataFrame:
    """The first `k` rows of an export, without making the text of all of it."""
    ts = texts.w.ts[idx]
    if len(idx) > k:
        idx = idx[ts <= np.partition(ts, k - 1)[k - 1]]  # ties at the k-th time included
    return _export_rows(texts, idx).head(k)


def _export_lines(world: m.World, invoices: pl.DataFrame) -> pl.DataFrame:
    """The lines of an export's invoices, in its order, with the invoice columns they repeat."""
    start, end = m.line_slices(world, invoices["i"].to_numpy())
    lines = line_frame(world, m.line_rows(start, end))
    repeated = invoices.select(LINE_INVOICE_COLUMNS).gather(
        np.repeat(np.arange(invoices.height), end - start)
    )
    return pl.concat([lines, repeated], how="horizontal")


def write_platform(
    out: Path,
    world: m.World,
    texts: InvoiceText,
    travel: list[int],
    travellers: list[str],
) -> PlatformResult:
    rng = world.rng
    result = PlatformResult()
    csv_only = world.n_platform >= CSV_ONLY_FROM
    groups = _groups(world)
    keys = sorted(groups)
    mismatch = {keys[int(k)] for k in rng.choice(len(keys), size=min(2, len(keys)), replace=False)}
    deltas = iter([(100_000, 0, "金额 +1000.00"), (0, -50, "税额 -0.50")])
    travel_set = set(travel)
    for key in keys:
        ent, dirn, quarter = key
        entity = world.entities[ent]
        group = _export_rows(texts, groups[key])
        group_lines = None if csv_only else _export_lines(world, group)
        n_lines = 0 if group_lines is None else group_lines.height
        head = header_sheet(group)
        amt_delta = tax_delta = 0
        if key in mismatch:
            amt_delta, tax_delta, what = next(deltas)
        total = total_row(group, amt_delta, tax_delta)
        as_csv = csv_only or max(group.height + 2, n_lines + 1) > MAX_SHEET_ROWS
        name = file_name(entity, dirn, quarter, "csv" if as_csv else "xlsx")
        if key in mismatch:
            result.control_mismatch.append((name, ent, dirn, what))
        if as_csv:
            write_csv(out / name, pl.concat([head, total]))
        else:
            sheets = [Sheet("发票基础信息", pl.concat([head, total]), MONEY)]
            sheets.append(
                Sheet(
                    "信息汇总表",
                    line_sheet(group_lines)
                    if group_lines is not None
                    else pl.DataFrame(schema=dict.fromkeys(LINE_COLUMNS, pl.String)),
                    MONEY,
                )
            )
            result.line_rows += n_lines
            rides = group.filter(pl.col("i").is_in(sorted(travel_set)))
            if rides.height:
                sheets.append(Sheet("旅客运输服务", travel_sheet(rides, world, travellers)))
                result.travel_file = name
            write_workbook(out / name, sheets, m.CREATED)
        result.files[name] = group.height
    # An interrupted second download of the first export: a truncated workbook (quarantined).
    first = file_name(world.entities[keys[0][0]], keys[0][1], keys[0][2], "xlsx")
    if (out / first).exists():
        data = (out / first).read_bytes()
    else:  # every export is a CSV: the download that broke was a small workbook
        buffer = io.BytesIO()
        head = header_sheet(_first_rows(texts, groups[keys[0]], 500))
        write_workbook(buffer, [Sheet("发票基础信息", head, MONEY)], m.CREATED)
        data = buffer.getvalue()
    result.truncated = first.replace(".xlsx", " (1).xlsx")
    (out / result.truncated).write_bytes(data[: len(data) * 3 // 5])
    return result
