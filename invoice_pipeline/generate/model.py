"""The synthetic world: our entities, counterparties, and every invoice and invoice line.

Invoices live in numpy arrays (one element per invoice, one per line), never as Python
objects, so a million invoices cost seconds. Text is made at the end by Polars, gathering
from small lookup tables, one file (or chunk of a file) at a time (frames.py). Time is
seconds from 2026-01-01 00:00 Asia/Shanghai, kept naive: every date in the landing files is
a Shanghai wall-clock date.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl

from invoice_pipeline.generate.ids import make_ric, make_uscc

EPOCH = datetime(2026, 1, 1)
EPOCH_UNIX = 1767225600  # 2026-01-01T00:00:00 as if UTC: formats Shanghai wall-clock time
DAYS = 304  # 2026-01-01 .. 2026-10-31
DAY = 86_400
LAST_TS = DAYS * DAY - 1
AS_OF = date(2026, 11, 1)
CREATED = datetime(2026, 11, 1, 2, 0, 0)

ISSUED, RECEIVED = 0, 1
DIRECTION = ("issued", "received")
DIRECTION_CN = ("销项", "进项")

# Invoice kinds: (发票票种, 发票来源, has a 20-digit number, legacy code kind, paper, 专票, share).
SD_ZP, SD_PP, ZP, PP, EP, SDP = range(6)
KIND_TYPE = (
    "数电发票（增值税专用发票）",
    "数电发票（普通发票）",
    "增值税专用发票",
    "增值税普通发票",
    "增值税电子普通发票",
    "数电纸质发票（普通发票）",
)
PLATFORM_CHANNEL = "电子发票服务平台"
LEGACY_CHANNEL = "增值税发票管理系统"
KIND_DIGITAL = np.array([True, True, False, False, False, True])
KIND_LEGACY_CODE = (None, None, "zp", "pp", "ep", "sdp")
KIND_PAPER = np.array([False, False, True, True, False, True])
KIND_SPECIAL = np.array([True, False, True, False, False, False])
KIND_SHARE = np.array([0.38, 0.36, 0.07, 0.05, 0.135, 0.005])

STATUS = ("正常", "已作废", "已红冲-全额", "已红冲-部分", "失控", "异常")
NORMAL, VOIDED, RED_FULL, RED_PARTIAL, OUT_OF_CONTROL, ABNORMAL = range(6)
RISK = ("正常", "异常凭证", "疑点发票")


@dataclass(frozen=True)
class Rate:
    text: str
    bp: int  # basis points: 13% -> 1300
    xml: str  # TaxRate as the XML writes it


RATES = (
    Rate("13%", 1300, "0.130000"),
    Rate("9%", 900, "0.090000"),
    Rate("6%", 600, "0.060000"),
    Rate("3%", 300, "0.030000"),
    Rate("1%", 100, "0.010000"),
    Rate("0%", 0, "0.000000"),
    Rate("免税", 0, "免税"),
    Rate("不征税", 0, "不征税"),
    Rate("16%", 1600, "0.160000"),  # abolished 2019-04-01: only planted
    Rate("10%", 1000, "0.100000"),  # abolished 2019-04-01: only planted
)
R13, R9, R6, R3, R1, R0, EXEMPT, NONTAX, R16, R10 = range(10)
PERCENT_RATES = frozenset({R13, R9, R6, R3, R1, R0, R16, R10})
SPECIAL_RATE_P = np.array([0.45, 0.12, 0.30, 0.08, 0.05, 0, 0, 0, 0, 0])
GENERAL_RATE_P = np.array([0.25, 0.08, 0.25, 0.10, 0.15, 0.02, 0.10, 0.05, 0, 0])

# 税收分类编码, 货物或应税劳务名称, 规格型号, 单位 — per rate.
ITEMS: dict[int, tuple[tuple[str, str, str, str], ...]] = {
    R13: (
        ("1090511030000000000", "*计算机外部设备*液晶显示器", "P2422H", "台"),
        ("1060201070000000000", "*纸制品*复印纸", "A4 70g", "箱"),
        ("1090315010000000000", "*电子元件*贴片电阻", "0603", "个"),
        ("1090514010000000000", "*计算机配套产品*固态硬盘", "1TB", "块"),
        ("1070213010000000000", "*塑料制品*包装周转箱", "*", "个"),
        ("1100301010000000000", "*机械设备*工业控制器", "XC-200", "套"),
    ),
    R9: (
        ("3010102020100000000", "*运输服务*国内道路货物运输服务", "", "次"),
        ("3050200000000000000", "*建筑服务*安装服务", "", "项"),
        ("1010115010100000000", "*蔬菜*新鲜蔬菜", "", "千克"),
    ),
    R6: (
        ("3040201990000000000", "*信息技术服务*软件维护服务", "", "项"),
        ("3040802010000000000", "*咨询服务*管理咨询服务", "", "次"),
        ("3070401000000000000", "*餐饮服务*餐饮服务", "", "次"),
        ("3040502020000000000", "*会议展览服务*会议服务", "", "次"),
        ("3040205000000000000", "*信息技术服务*云计算服务", "", "月"),
    ),
    R3: (
        ("3040801010000000000", "*人力资源服务*劳务派遣服务", "", "人月"),
        ("1060512990000000000", "*日用杂品*办公用品", "", "批"),
    ),
    R1: (
        ("1060512990000000000", "*日用杂品*清洁用品", "", "批"),
        ("3070201000000000000", "*住宿服务*住宿费", "", "晚"),
        ("1030303020000000000", "*饮料*瓶装水", "550ml", "箱"),
    ),
    R0: (("1090511030000000000", "*计算机外部设备*出口显示器", "P2422H", "台"),),
    EXEMPT: (
        ("1010101010000000000", "*谷物*大米", "5kg", "袋"),
        ("3070101020000000000", "*教育服务*职业技能培训", "", "人次"),
    ),
    NONTAX: (
        ("6010000000000000000", "*预付卡销售和充值*预付卡充值", "", ""),
        ("6130000000000000000", "*代收代付*代收水电费", "", ""),
    ),
    R16: (("1090511030000000000", "*计算机外部设备*液晶显示器", "P2422H", "台"),),
    R10: (("3010102020100000000", "*运输服务*国内道路货物运输服务", "", "次"),),
}
TRAVEL_ITEM = ("3010101020000000000", "*运输服务*客运服务费", "", "次")


def _item_table() -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    rows, offsets, counts = [], np.zeros(len(RATES), np.int64), np.zeros(len(RATES), np.int64)
    for rate in range(len(RATES)):
        offsets[rate] = len(rows)
        counts[rate] = len(ITEMS[rate])
        rows.extend(ITEMS[rate])
    rows.append(TRAVEL_ITEM)
    table = pl.DataFrame(rows, schema=["tax_class", "item", "spec", "unit"], orient="row")
    return table, offsets, counts


ITEM_TABLE, ITEM_OFFSET, ITEM_COUNT = _item_table()
TRAVEL_ITEM_ID = ITEM_TABLE.height - 1


@dataclass(frozen=True)
class Entity:
    short: str
    name: str
    region: str
    org: str
    tin: str
    aliases: tuple[str, ...]
    staff: tuple[str, ...]
    share: float

    @property
    def province(self) -> str:
        return self.region[:2]


_ENTITIES = (
    (
        "北京星河",
        "星河智能科技（北京）有限公司",
        "110105",
        "BJ01",
        "MA01K7Q3",
        ("星河智能科技(北京)有限公司", "北京星河智能科技有限公司"),
        ("王丽", "赵敏", "陈浩"),
        0.40,
    ),
    (
        "上海星河",
        "上海星河供应链管理有限公司",
        "310115",
        "SH01",
        "MA1H8R7C",
        ("星河供应链管理（上海）有限公司", "上海星河供应链"),
        ("周婷", "吴磊", "郑洁"),
        0.25,
    ),
    (
        "山东星河",
        "山东星河新材料股份有限公司",
        "370102",
        "SD01",
        "MA3C2N6Y",
        ("山东星河新材料有限公司", "星河新材料（山东）股份有限公司"),
        ("孙强", "李娜", "刘洋"),
        0.25,
    ),
    (
        "广州星河",
        "广州星河贸易有限公司",
        "440106",
        "GD01",
        "MA5K9W1P",
        ("星河贸易（广州）有限公司",),
        ("黄伟", "林静", "何芳"),
        0.10,
    ),
)


def make_entities() -> list[Entity]:
    return [
        Entity(short, name, region, org, make_uscc("91", region, body), aliases, staff, share)
        for short, name, region, org, body, aliases, staff, share in _ENTITIES
    ]


# Counterparty regions: (行政区划, city). Plan cities (计划单列市) have their own codes.
REGIONS = (
    ("110108", "北京"),
    ("110101", "北京"),
    ("310104", "上海"),
    ("310112", "上海"),
    ("370102", "济南"),
    ("370203", "青岛"),
    ("440106", "广州"),
    ("440305", "深圳"),
    ("320506", "苏州"),
    ("330106", "杭州"),
    ("510107", "成都"),
    ("420106", "武汉"),
    ("120116", "天津"),
    ("500112", "重庆"),
    ("350203", "厦门"),
    ("610113", "西安"),
)
_PLAN_CITY_PROVINCE = {"3702": "92", "3502": "94", "4403": "95"}


def invoice_province(region: str) -> str:
    """Digits 3–4 of a 20-digit 数电 number for a seller registered in `region`."""
    return _PLAN_CITY_PROVINCE.get(region[:4], region[:2])


def code_region(region: str) -> str:
    """Digits of a legacy 发票代码's region part (plan cities keep their 4 digits)."""
    return region[:4] if region[:4] in _PLAN_CITY_PROVINCE else region[:2] + "00"


BRANDS = "华瑞恒泰鑫博创远盛达嘉信宏联润安永金凯诚源兴明昊睿航峰汇德顺通"
INDUSTRIES = (
    "科技",
    "电子",
    "物流",
    "建设工程",
    "餐饮管理",
    "商贸",
    "信息技术",
    "咨询",
    "机械设备",
    "印务",
    "酒店管理",
    "物业服务",
    "软件",
    "医疗器械",
    "办公用品",
    "文化传媒",
    "人力资源服务",
    "包装材料",
    "汽车租赁",
    "会务服务",
    "新能源",
    "环保工程",
)
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董袁潘蒋蔡余杜叶程魏苏吕丁任沈姚卢"
    "姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建文辉力鹏飞斌宇浩凯俊婷雪琳晨欣怡然博文轩"


def person_names(rng: np.random.Generator, n: int) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        given = "".join(rng.choice(list(GIVEN), size=int(rng.integers(1, 3))))
        name = str(rng.choice(list(SURNAMES))) + given
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def flip_brackets(name: str) -> str:
    """The same name with full-width brackets made half-width, or the other way round."""
    if "（" in name:
        return name.replace("（", "(").replace("）", ")")
    return name.replace("(", "（").replace(")", "）")


@dataclass
class Counterparties:
    tin: list[str]
    name: list[str]
    region: list[str]
    label: list[str]  # how the TIN is special, for the look-alike list ('' when ordinary)

    def __len__(self) -> int:
        return len(self.tin)


def make_counterparties(rng: np.random.Generator, n: int) -> Counterparties:
    """`n` companies with valid TINs; a few are 事业单位 (12…), 其他 (Y1…), cooperatives (N2…)
    or sole proprietors with 20-character TINs (resident ID + 2 digits) — all valid."""
    specials = ["12", "12", "Y1", "N2", "52", "sole", "sole"]
    tins, names, regions, labels = [], [], [], []
    seen_names: set[str] = set()
    seen_tins: set[str] = set()
    i = 0
    while len(tins) < n:
        region, city = REGIONS[int(rng.integers(len(REGIONS)))]
        kind = specials[i] if i < len(specials) else "91"
        brand = "".join(rng.choice(list(BRANDS), size=2, replace=False))
        industry = INDUSTRIES[int(rng.integers(len(INDUSTRIES)))]
        body = "".join(rng.choice(list("0123456789ABCDEFGHJKLMNPQRTUWXY"), size=6))
        if kind == "12":
            name = f"{city}市{brand}{'职业技术学院' if i == 0 else '人民医院'}"
            tin = make_uscc("12", region, f"4{rng.integers(10**6, 10**7)}")
        elif kind == "Y1":
            name = f"{city}市{brand}商会"
            tin = make_uscc("Y1", region, "MJ" + body)
        elif kind == "N2":
            name = f"{city}{brand}果蔬种植农民专业合作社"
            tin = make_uscc("N2", region, "MA" + body)
        elif kind == "52":
            name = f"{city}市{brand}职业培训学校"
            tin = make_uscc("52", region, "MJ" + body)
        elif kind == "sole":
            person = person_names(rng, 1)[0]
            name = f"{city}市{person}{'便利店' if i == 5 else '餐馆'}"
            birth = (date(1970, 1, 1) + timedelta(days=int(rng.integers(0, 9000)))).strftime("%Y%m%d")
            tin = make_ric(region, birth, int(rng.integers(1, 999))) + f"{int(rng.integers(1, 3)):02d}"
        else:
            style = rng.random()
            if style < 0.45:
                name = f"{city}{brand}{industry}有限公司"
            elif style < 0.7:
                name = f"{brand}{industry}（{city}）有限公司"
            elif style < 0.85:
                name = f"{city}{brand}{industry}股份有限公司"
            else:
                name = f"{brand}{industry}有限责任公司"
            tin = make_uscc("91", region, "MA" + body)
        i += 1
        if name in seen_names or tin in seen_tins:
            continue
        seen_names.add(name)
        seen_tins.add(tin)
        tins.append(tin)
        names.append(name)
        regions.append(region)
        labels.append({"91": ""}.get(kind, kind))
    return Counterparties(tins, names, regions, labels)


@dataclass
class World:
    """Every invoice (platform and XML-only) and line, as arrays; plus the plan of edits."""

    rng: np.random.Generator
    entities: list[Entity]
    cps: Counterparties
    n_platform: int
    # invoices
    ent: np.ndarray
    dirn: np.ndarray
    kind: np.ndarray
    cp: np.ndarray
    ts: np.ndarray
    status: np.ndarray
    risk: np.ndarray
    positive: np.ndarray
    blue: np.ndarray  # index of the blue invoice of a red one, else -1
    red_style: np.ndarray  # which 备注 spelling a red invoice uses (0/1), else -1
    goods_list: np.ndarray
    in_platform: np.ndarray
    our_name: np.ndarray  # 0 = registered name, k = alias k-1
    cp_name_var: np.ndarray  # 0 = as registered, 1 = brackets flipped
    drawer: np.ndarray
    # lines
    l_inv: np.ndarray
    l_no: np.ndarray
    l_amt: np.ndarray
    l_rate: np.ndarray
    l_tax: np.ndarray
    l_item: np.ndarray
    l_qty: np.ndarray
    l_face: np.ndarray
    l_travel: np.ndarray
    # filled later
    amt: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    tax: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    tot: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    code_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    no8: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    no20: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # 18 low digits after '26'
    codes: list[str] = field(default_factory=list)
    drawers: list[str] = field(default_factory=list)
    # string overrides, by invoice index (few)
    remark: dict[int, str] = field(default_factory=dict)
    seller_tin: dict[int, str] = field(default_factory=dict)
    buyer_tin: dict[int, str] = field(default_factory=dict)
    buyer_name: dict[int, str] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.ent)


_BP = np.array([r.bp for r in RATES], np.int64)


def line_tax(amount: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """round(amount × rate, 2) half away from zero, in cents; 0 for 免税/不征税."""
    product = np.abs(amount) * _BP[rate]
    return np.sign(amount) * ((product + 5000) // 10000)


def base_world(rng: np.random.Generator, n: int, entities: list[Entity], cps: Counterparties) -> World:
    """`n` blue invoices with lines: the bulk, drawn in one vectorised pass."""
    shares = np.array([e.share for e in entities])
    ent = rng.choice(len(entities), size=n, p=shares / shares.sum()).astype(np.int8)
    dirn = (rng.random(n) < 0.55).astype(np.int8)
    kind = rng.choice(6, size=n, p=KIND_SHARE / KIND_SHARE.sum()).astype(np.int8)
    weights = 1.0 / (np.arange(len(cps)) + 5.0)
    cp = rng.choice(len(cps), size=n, p=weights / weights.sum()).astype(np.int32)
    day = rng.integers(0, DAYS, size=n)
    seconds = rng.integers(8 * 3600, 20 * 3600, size=n)
    late = rng.random(n) < 0.03
    seconds[late] = rng.integers(0, DAY, size=int(late.sum()))
    ts = (day * DAY + seconds).astype(np.int64)
    status = np.zeros(n, np.int8)
    status[KIND_PAPER[kind] & (rng.random(n) < 0.03)] = VOIDED
    goods_list = ~KIND_SPECIAL[kind] & (rng.random(n) < 0.01)

    n_lines = rng.choice([1, 2, 3], size=n, p=[0.55, 0.30, 0.15])
    n_lines[goods_list] = rng.integers(3, 6, size=int(goods_list.sum()))
    l_inv = np.repeat(np.arange(n, dtype=np.int64), n_lines)
    starts = np.cumsum(n_lines) - n_lines
    l_no = (np.arange(len(l_inv)) - np.repeat(starts, n_lines)).astype(np.int16)
    special = KIND_SPECIAL[kind][l_inv]
    l_rate = np.where(
        special,
        rng.choice(len(RATES), size=len(l_inv), p=SPECIAL_RATE_P),
        rng.choice(len(RATES), size=len(l_inv), p=GENERAL_RATE_P),
    ).astype(np.int8)
    first = l_rate[starts]  # one rate per goods list
    l_rate = np.where(goods_list[l_inv], np.repeat(first, n_lines), l_rate).astype(np.int8)
    yuan = np.exp(rng.normal(7.2, 1.5, size=len(l_inv)))
    l_amt = np.clip(np.round(yuan * 100), 100, 500_000_000).astype(np.int64)
    l_item = ITEM_OFFSET[l_rate] + (rng.random(len(l_inv)) * ITEM_COUNT[l_rate]).astype(np.int64)
    l_qty = np.where(rng.random(len(l_inv)) < 0.5, 1, rng.integers(1, 60, size=len(l_inv)))
    world = World(
        rng=rng,
        entities=entities,
        cps=cps,
        n_platform=n,
        ent=ent,
        dirn=dirn,
        kind=kind,
        cp=cp,
        ts=ts,
        status=status,
        risk=np.zeros(n, np.int8),
        positive=np.ones(n, bool),
        blue=np.full(n, -1, np.int64),
        red_style=np.full(n, -1, np.int8),
        goods_list=goods_list,
        in_platform=np.ones(n, bool),
        # Suppliers sometimes type one of our aliases; our own exports use the registered name.
        our_name=np.where((rng.random(n) < 0.1) & (dirn == RECEIVED), 1, 0).astype(np.int8),
        cp_name_var=(rng.random(n) < 0.15).astype(np.int8),
        drawer=rng.integers(0, 40, size=n).astype(np.int16),
        l_inv=l_inv,
        l_no=l_no,
        l_amt=l_amt,
        l_rate=l_rate,
        l_tax=line_tax(l_amt, l_rate),
        l_item=l_item.astype(np.int32),
        l_qty=l_qty.astype(np.int64),
        l_face=np.zeros(len(l_inv), bool),
        l_travel=np.zeros(len(l_inv), bool),
    )
    world.drawers = person_names(rng, 40)
    return world


def append_invoices(world: World, **columns: np.ndarray) -> np.ndarray:
    """Append invoices (given columns; the rest default) and return their indices."""
    k = len(columns["ent"])
    defaults = {
        "status": np.zeros(k, np.int8),
        "risk": np.zeros(k, np.int8),
        "positive": np.ones(k, bool),
        "blue": np.full(k, -1, np.int64),
        "red_style": np.full(k, -1, np.int8),
        "goods_list": np.zeros(k, bool),
        "in_platform": np.ones(k, bool),
        "our_name": np.zeros(k, np.int8),
        "cp_name_var": np.zeros(k, np.int8),
        "drawer": world.rng.integers(0, 40, size=k).astype(np.int16),
    }
    defaults.update(columns)
    start = world.n
    for name, values in defaults.items():
        current = getattr(world, name)
        setattr(world, name, np.concatenate([current, np.asarray(values, dtype=current.dtype)]))
    return np.arange(start, start + k)


def append_lines(
    world: World,
    inv: np.ndarray,
    amt: np.ndarray,
    rate: np.ndarray,
    item: np.ndarray,
    qty: np.ndarray | None = None,
    no: np.ndarray | None = None,
    tax: np.ndarray | None = None,
    face: np.ndarray | None = None,
    travel: np.ndarray | None = None,
) -> None:
    k = len(inv)
    if no is None:
        no = np.full(k, 99, np.int16)  # sorted after existing lines, renumbered in finish_lines
    world.l_inv = np.concatenate([world.l_inv, inv.astype(np.int64)])
    world.l_no = np.concatenate([world.l_no, no.astype(np.int16)])
    world.l_amt = np.concatenate([world.l_amt, amt.astype(np.int64)])
    world.l_rate = np.concatenate([world.l_rate, rate.astype(np.int8)])
    world.l_tax = np.concatenate([world.l_tax, line_tax(amt, rate) if tax is None else tax.astype(np.int64)])
    world.l_item = np.concatenate([world.l_item, item.astype(np.int32)])
    world.l_qty = np.concatenate([world.l_qty, np.ones(k, np.int64) if qty is None else qty.astype(np.int64)])
    world.l_face = np.concatenate([world.l_face, np.zeros(k, bool) if face is None else face])
    world.l_travel = np.concatenate([world.l_travel, np.zeros(k, bool) if travel is None else travel])


LINE_FIELDS = ("l_inv", "l_no", "l_amt", "l_rate", "l_tax", "l_item", "l_qty", "l_face", "l_travel")


def drop_lines(world: World, keep: np.ndarray) -> None:
    for name in LINE_FIELDS:
        setattr(world, name, getattr(world, name)[keep])


def replace_lines(
    world: World, inv: int, amt: np.ndarray, rate: np.ndarray, item: np.ndarray, travel: bool = False
) -> None:
    """Give invoice `inv` these lines instead of its own, numbered 0.. in this order.

    Lines must be in `finish_lines` order: the new ones are spliced in where the old ones were,
    which costs one copy of the line arrays instead of a sort of millions of lines.
    """
    start, end = np.searchsorted(world.l_inv, [inv, inv + 1])
    k = len(amt)
    new = {
        "l_inv": np.full(k, inv),
        "l_no": np.arange(k),
        "l_amt": amt,
        "l_rate": rate,
        "l_tax": line_tax(amt, rate),
        "l_item": item,
        "l_qty": np.ones(k),
        "l_face": np.zeros(k, bool),
        "l_travel": np.full(k, travel),
    }
    for name, values in new.items():
        old = getattr(world, name)
        setattr(world, name, np.concatenate([old[:start], values.astype(old.dtype), old[end:]]))


def line_slices(world: World, invoices: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Start and end of the lines of `invoices` (default: every invoice); lines sorted by invoice."""
    invoices = np.arange(world.n) if invoices is None else invoices
    start = np.searchsorted(world.l_inv, invoices, side="left")
    end = np.searchsorted(world.l_inv, invoices, side="right")
    return start, end


def finish_lines(world: World) -> None:
    """Sort lines by invoice and line number, renumber them 0.. and drop stale face lines."""
    if world.l_face.any():
        drop_lines(world, ~world.l_face)
    _sort_lines(world)
    counts = np.bincount(world.l_inv, minlength=world.n)
    starts = np.cumsum(counts) - counts
    world.l_no = (np.arange(len(world.l_inv)) - starts[world.l_inv]).astype(np.int16)


def compute_headers(world: World) -> None:
    """Header 金额/税额 = Σ lines; 价税合计 = 金额 + 税额; then goods-list face lines."""
    finish_lines(world)
    world.amt = np.bincount(world.l_inv, weights=world.l_amt, minlength=world.n).round().astype(np.int64)
    world.tax = np.bincount(world.l_inv, weights=world.l_tax, minlength=world.n).round().astype(np.int64)
    world.tot = world.amt + world.tax
    goods = np.flatnonzero(world.goods_list)
    start, _ = line_slices(world)
    append_lines(
        world,
        goods,
        world.amt[goods],
        world.l_rate[start[goods]],
        np.full(len(goods), -1),
        qty=np.zeros(len(goods)),
        no=np.full(len(goods), -1),
        tax=world.tax[goods],
        face=np.ones(len(goods), bool),
    )
    _sort_lines(world)


def _sort_lines(world: World) -> None:
    """Lines in order of invoice, then line number (a stable sort).

    Lines are appended after the sorted bulk, mostly for invoices appended after all others:
    then only the appended tail is sorted, not the millions of lines before it.
    """
    inv, no = world.l_inv, world.l_no
    later = inv[1:] > inv[:-1]
    in_order = later | ((inv[1:] == inv[:-1]) & (no[1:] > no[:-1]))
    if in_order.all():
        return
    head = int(np.argmin(in_order)) + 1  # lines [0, head) are in order
    if inv[head:].min() > inv[head - 1]:
        tail = np.lexsort((no[head:], inv[head:]))
        order = np.concatenate([np.arange(head), head + tail])
    else:
        order = np.lexsort((no, inv))
    drop_lines(world, order)


def month_of(ts: np.ndarray) -> np.ndarray:
    """Month number (1..12) of each timestamp."""
    days = ts // DAY
    month_starts = np.array([(date(2026, m, 1) - date(2026, 1, 1)).days for m in range(1, 13)])
    return np.searchsorted(month_starts, days, side="right")


def ts_of(d: date, seconds: int = 36_000) -> int:
    return (d - EPOCH.date()).days * DAY + seconds


def line_rows(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Indices of all lines in the half-open ranges [start, end), concatenated."""
    lengths = end - start
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(start, lengths) + offsets


def add_reds(world: World, count: int, eligible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Red-letter invoices for `count` blue ones: two in three reverse in full (blue becomes
    已红冲-全额), the rest a part of the first line (已红冲-部分). Returns (blues, reds)."""
    rng = world.rng
    finish_lines(world)
    # A quarter are legacy invoices (at least 4), so every 备注 spelling appears at any size.
    legacy = eligible[~KIND_DIGITAL[world.kind[eligible]]]
    digital = eligible[KIND_DIGITAL[world.kind[eligible]]]
    n_legacy = min(len(legacy), max(4, count // 4))
    blues = np.sort(
        np.concatenate(
            [
                rng.choice(legacy, size=n_legacy, replace=False),
                rng.choice(digital, size=min(count - n_legacy, len(digital)), replace=False),
            ]
        )
    )
    full = np.arange(len(blues)) % 3 != 1
    is_digital = KIND_DIGITAL[world.kind[blues]]
    style = np.zeros(len(blues), np.int8)
    for group in (is_digital, ~is_digital):  # alternate the two spellings within each family
        style[group] = np.arange(int(group.sum())) % 2
    delay = rng.integers(DAY, 45 * DAY, size=len(blues))
    ts = np.minimum(world.ts[blues] + delay, LAST_TS - rng.integers(3600, 6 * 3600, size=len(blues)))
    ts = np.maximum(ts, world.ts[blues] + 600)
    reds = append_invoices(
        world,
        ent=world.ent[blues],
        dirn=world.dirn[blues],
        kind=world.kind[blues],
        cp=world.cp[blues],
        ts=ts,
        positive=np.zeros(len(blues), bool),
        blue=blues,
        red_style=style,
        our_name=world.our_name[blues],
        cp_name_var=world.cp_name_var[blues],
        drawer=world.drawer[blues],
    )
    world.status[blues] = np.where(full, RED_FULL, RED_PARTIAL)
    start, end = line_slices(world)
    rows = line_rows(start[blues[full]], end[blues[full]])
    red_of = np.repeat(reds[full], (end - start)[blues[full]])
    append_lines(
        world,
        red_of,
        -world.l_amt[rows],
        world.l_rate[rows],
        world.l_item[rows],
        qty=-world.l_qty[rows],
        no=world.l_no[rows],
    )
    first = start[blues[~full]]
    part = -np.round(world.l_amt[first] * rng.uniform(0.2, 0.6, size=len(first))).astype(np.int64)
    append_lines(
        world,
        reds[~full],
        part,
        world.l_rate[first],
        world.l_item[first],
        qty=-np.ones(len(first), np.int64),
        no=np.zeros(len(first), np.int16),
    )
    finish_lines(world)
    return blues, reds
