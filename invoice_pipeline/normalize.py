"""Polars expression builders that turn raw invoice text into typed, canonical values.

Every builder takes a `pl.Expr` and returns a `pl.Expr`; they are vectorised (no per-row
Python) because they run on tens of millions of rows. The contract shared by all of them:
null in → null out, and a value that cannot be parsed becomes null instead of raising, so
callers can reject "non-empty raw but null parsed" rows with a reason.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from invoice_pipeline.tin import PROVINCES, RIC_WEIGHTS, USCC_ALPHABET, USCC_PREFIXES, USCC_WEIGHTS

STATUS_VALUES = ("normal", "voided", "red_full", "red_partial", "out_of_control", "abnormal")
RISK_VALUES = ("normal", "abnormal_voucher", "suspicious")
DIRECTION_VALUES = ("issued", "received")

MONEY = pl.Decimal(18, 2)
RATE = pl.Decimal(6, 4)
# Wide enough for any amount we accept; the scale leaves room to round once, at the end.
_WIDE = pl.Decimal(38, 10)

# Unicode White_Space (which includes U+3000 and NBSP) plus the zero-width characters that
# copy-paste from web pages and PDFs leaves behind and NFKC does not remove.
_WS = "[\\s\u200b\u200c\u200d\u2060\ufeff]"
# Dash look-alikes people and word processors type for '-'.
_DASHES = "[\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63]"
_QUOTES = "['\"\u2018\u2019\u201c\u201d`]"

# Placeholders meaning "no value" in identifier cells (compared after upper-casing).
_IDENTIFIER_NULLS = ["无", "N/A", "NA", "NULL", "NONE", "NAN", "/"]

# CJK Radicals Supplement characters that PDF text extraction emits for whole characters and
# that NFKC leaves alone (Unicode's EquivalentUnifiedIdeograph.txt gives the targets).
# DOMAIN §2.8's example: 湖南⾦拱⻔⻝品有限公司 (⾦ is a Kangxi radical, NFKC maps it).
_RADICAL_FOLD = {
    "\u2ea0": "\u6c11",  # ⺠ → 民
    "\u2ec4": "\u897f",  # ⻄ → 西
    "\u2ec5": "\u89c1",  # ⻅ → 见
    "\u2ec6": "\u89d2",  # ⻆ → 角
    "\u2ec9": "\u8d1d",  # ⻉ → 贝
    "\u2ecb": "\u8f66",  # ⻋ → 车
    "\u2ed3": "\u957f",  # ⻓ → 长
    "\u2ed4": "\u95e8",  # ⻔ → 门
    "\u2ed8": "\u9752",  # ⻘ → 青
    "\u2ed9": "\u97e6",  # ⻙ → 韦
    "\u2eda": "\u9875",  # ⻚ → 页
    "\u2edb": "\u98ce",  # ⻛ → 风
    "\u2edc": "\u98de",  # ⻜ → 飞
    "\u2edd": "\u98df",  # ⻝ → 食
    "\u2ee2": "\u9a6c",  # ⻢ → 马
    "\u2ee3": "\u9aa8",  # ⻣ → 骨
    "\u2ee4": "\u9b3c",  # ⻤ → 鬼
    "\u2ee5": "\u9c7c",  # ⻥ → 鱼
    "\u2ee6": "\u9e1f",  # ⻦ → 鸟
    "\u2ee7": "\u5364",  # ⻧ → 卤
    "\u2ee8": "\u9ea6",  # ⻨ → 麦
    "\u2ee9": "\u9ec4",  # ⻩ → 黄
    "\u2eea": "\u9efe",  # ⻪ → 黾
    "\u2eec": "\u9f50",  # ⻬ → 齐
    "\u2eee": "\u9f7f",  # ⻮ → 齿
    "\u2ef0": "\u9f99",  # ⻰ → 龙
}

_STATUS_MAP = {
    "正常": "normal",
    "已作废": "voided",
    "作废": "voided",
    "已红冲-全额": "red_full",
    "全额红冲": "red_full",
    "已全额红冲": "red_full",
    "已红冲-部分": "red_partial",
    "部分红冲": "red_partial",
    "已部分红冲": "red_partial",
    "失控": "out_of_control",
    "异常": "abnormal",
    **{value: value for value in STATUS_VALUES},
}
_RISK_MAP = {
    "正常": "normal",
    "异常凭证": "abnormal_voucher",
    "疑点发票": "suspicious",
    **{value: value for value in RISK_VALUES},
}
_DIRECTION_MAP = {
    "进项": "received",
    "取得": "received",
    "received": "received",
    "销项": "issued",
    "开具": "issued",
    "issued": "issued",
}
_BOOL_MAP = {
    "是": True,
    "y": True,
    "yes": True,
    "true": True,
    "1": True,
    "否": False,
    "n": False,
    "no": False,
    "false": False,
    "0": False,
}

# Rate words and the API codes (-1 不征税, -2 免税) that all mean "rate 0 with a label".
_RATE_WORDS = {
    "免税": "免税",
    "免征": "免税",
    "-2": "免税",
    "不征税": "不征税",
    "不征收": "不征税",
    "-1": "不征税",
    "零税率": "0%",
}

_SHANGHAI = "Asia/Shanghai"


# ----------------------------------------------------------------------------- text


def _text(e: pl.Expr) -> pl.Expr:
    # Readers hand over text, but a numeric or date cell that slipped through still parses.
    return e.cast(pl.String)


def _nfkc(e: pl.Expr) -> pl.Expr:
    return _text(e).str.normalize("NFKC")


def _squeeze(e: pl.Expr) -> pl.Expr:
    """NFKC and every kind of whitespace removed, also inside the value."""
    return _nfkc(e).str.replace_all(_WS + "+", "")


def _fields(groups: pl.Expr, *steps: dict[str, pl.Expr], out: str) -> pl.Expr:
    """Derive fields of a struct step by step (`pl.field` refers to earlier ones), return one.

    Polars does not share `extract_groups(...).struct.field(x)` across fields, so reading
    ten fields would run the regex ten times; inside `with_fields` it runs once.
    """
    for step in steps:
        groups = groups.struct.with_fields(**step)
    return groups.struct.field(out)


def clean_text(e: pl.Expr) -> pl.Expr:
    """NFKC-normalise and trim (incl. U+3000 and zero-width characters); empty → null."""
    return _nfkc(e).str.replace_all(f"^{_WS}+|{_WS}+$", "").replace("", None)


_IDENTIFIER_PLACEHOLDER = "^(?:-*|" + "|".join(_IDENTIFIER_NULLS) + ")$"


def clean_identifier(e: pl.Expr) -> pl.Expr:
    """Canonical form of a hand-typed code, number or TIN.

    NFKC, all whitespace removed (also inside), dash look-alikes → '-', the Excel text
    marker `'` and surrounding quotes stripped, upper-cased; placeholders such as `--`,
    `—`, `无`, `N/A` and the empty string → null.
    """
    return _identifier_tail(_nfkc(e).str.replace_all(_DASHES, "-").str.to_uppercase())


def _identifier_tail(e: pl.Expr) -> pl.Expr:
    # The part of clean_identifier that must run per token after a cell is split.
    return (
        e.str.replace_all(_WS + "+", "")
        .str.replace_all(f"^{_QUOTES}+|{_QUOTES}+$", "")
        .str.replace(_IDENTIFIER_PLACEHOLDER, "")
        .replace("", None)
    )


def normalize_name(e: pl.Expr) -> pl.Expr:
    """Comparison form of a company name: NFKC, radical look-alikes folded, no whitespace,
    brackets unified to `()`, Latin letters upper-cased; Chinese kept as is."""
    return (
        _squeeze(e)
        .str.replace_many(_RADICAL_FOLD)
        .str.replace_all(r"[\[【〔〖]", "(")
        .str.replace_all(r"[\]】〕〗]", ")")
        .str.to_uppercase()
        .replace("", None)
    )


# ----------------------------------------------------------------------------- numbers

# Thousands separators must group by three: '1,234.50' is an amount, '1,2,3' is not.
_AMOUNT_RE = (
    r"^(?P<open>\()?(?P<s1>[+-])?(?:¥|RMB|CNY)?(?P<s2>[+-])?"
    r"(?P<int>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]*)(?:\.(?P<frac>[0-9]*))?"
    r"(?:E(?P<exp>[+-]?[0-9]{1,3}))?(?:元|RMB|CNY)?(?P<s3>-)?(?P<close>\))?$"
)


def _parse_wide_decimal(e: pl.Expr) -> pl.Expr:
    """Amount text → Decimal(38,10), not yet rounded to cents."""
    f = pl.field
    groups = _squeeze(e).str.replace_all(_DASHES, "-").str.to_uppercase().str.extract_groups(_AMOUNT_RE)
    signs = pl.sum_horizontal(f("s1").is_not_null(), f("s2").is_not_null(), f("s3").is_not_null())
    parens = f("open").is_not_null() & f("close").is_not_null()
    return _fields(
        groups,
        {
            "int": f("int").str.replace_all(",", ""),
            # Cutting (not rounding) digits past the 10th keeps the later half-up rounding
            # exact: the Decimal cast rounds half-to-even, and rounding twice could move a
            # value across .005. With an exponent the digits shift, so leave them.
            "frac": pl.when(f("exp").is_null())
            .then(f("frac").str.slice(0, 10))
            .otherwise(f("frac"))
            .fill_null(""),
            # '(1,234.50)' is negative; '(-5)' and an unbalanced '(5' are not amounts.
            "negative": parens | (pl.coalesce(f("s1"), f("s2"), f("s3")) == "-"),
            "shape_ok": (f("open").is_null() == f("close").is_null()) & (signs <= 1 - parens.cast(pl.Int32)),
        },
        {
            "body": pl.when(f("shape_ok") & (f("int").str.len_bytes() + f("frac").str.len_bytes() > 0)).then(
                pl.concat_str(
                    [
                        pl.when(f("negative")).then(pl.lit("-")).otherwise(pl.lit("")),
                        pl.when(f("int") != "").then(f("int")).otherwise(pl.lit("0")),
                        pl.lit("."),
                        pl.when(f("frac") != "").then(f("frac")).otherwise(pl.lit("0")),
                        pl.when(f("exp").is_not_null()).then("E" + f("exp")).otherwise(pl.lit("")),
                    ]
                )
            )
        },
        out="body",
    ).cast(_WIDE, strict=False)


def parse_amount(e: pl.Expr) -> pl.Expr:
    """Money text → Decimal(18,2), rounded half away from zero (1234.505 → 1234.51).

    Accepts thousands separators, ¥/￥/RMB/CNY/元, `(1,234.50)` and trailing-minus (SAP)
    negatives, full-width characters and scientific notation; never goes through float.
    """
    # Polars' own Decimal cast and round default to half-to-even (banker's rounding).
    return _parse_wide_decimal(e).round(2, mode="half_away_from_zero").cast(MONEY, strict=False)


_INT_RE = r"^[+-]?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.0*)?$"


def parse_int(e: pl.Expr) -> pl.Expr:
    """Integer text (`12`, `12.0`, `1,200`, full-width) → Int64; fractions → null."""
    f = pl.field
    digits = f("s").str.replace_all(r"\.0*$|,", "")
    return _fields(
        pl.struct(_squeeze(e).alias("s")),
        {"digits": pl.when(f("s").str.contains(_INT_RE)).then(digits)},
        out="digits",
    ).cast(pl.Int64, strict=False)


_RATE_RE = (
    r"^(?:(?P<word>免税|免征|不征税|不征收|零税率|-[12])(?:\.0*)?"
    r"|(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<pct>%)?)$"
)


def _rate_parts(e: pl.Expr, out: str) -> pl.Expr:
    f = pl.field
    groups = _squeeze(e).str.replace_all(_DASHES, "-").str.extract_groups(_RATE_RE)
    return _fields(
        groups,
        {
            "label": f("word").replace_strict(_RATE_WORDS, default=None, return_dtype=pl.String),
            "num": f("num").cast(_WIDE, strict=False),
        },
        {"value": pl.when(f("pct").is_not_null() | (f("num") >= 1)).then(f("num") / 100).otherwise(f("num"))},
        {
            "rate": pl.when(f("label").is_not_null())
            .then(pl.lit(0, dtype=_WIDE))
            .when(f("value") < 1)
            .then(f("value"))
            .round(4, mode="half_away_from_zero")
        },
        {
            # '13.00' → '13%', '1.50' → '1.5%', '0.00' → '0%'
            "percent": (f("rate") * 100)
            .cast(pl.Decimal(38, 2))
            .cast(pl.String)
            .str.replace(r"\.?0+$", "")
            .str.replace("^$", "0")
            + "%"
        },
        {"text": pl.coalesce(f("label"), f("percent"))},
        out=out,
    )


def parse_rate(e: pl.Expr) -> pl.Expr:
    """Tax rate → Decimal(6,4): `13%`, `0.130000`, `1.5%`; 免税/不征税/-1/-2 → 0.

    A bare number of 1 or more is read as a percentage (ERP columns hold `13` for 13%):
    no VAT rate is 100% or more.
    """
    return _rate_parts(e, "rate").cast(RATE, strict=False)


def rate_label(e: pl.Expr) -> pl.Expr:
    """Canonical rate label: `13%`, `1.5%`, `0%`, `免税`, `不征税` from any rate form."""
    return _rate_parts(e, "text")


def parse_bool_cn(e: pl.Expr) -> pl.Expr:
    """是/否, Y/N, yes/no, true/false, 1/0 → Boolean; anything else → null."""
    return _squeeze(e).str.to_lowercase().replace_strict(_BOOL_MAP, default=None, return_dtype=pl.Boolean)


# ----------------------------------------------------------------------------- dates

_DATETIME_RE = (
    r"^(?:(?P<y>[0-9]{4})[-/.年](?P<m>[0-9]{1,2})[-/.月](?P<d>[0-9]{1,2})日?"
    r"(?:[T\s]*(?P<H>[0-9]{1,2})[:时](?P<M>[0-9]{1,2})"
    r"(?:[:分](?P<S>[0-9]{1,2})(?:[.,](?P<f>[0-9]+))?秒?)?分?"
    r"\s*(?:(?P<z>Z)|(?P<sign>[+-])(?P<oh>[0-9]{2}):?(?P<om>[0-9]{2})?)?)?"
    r"|(?P<days>[0-9]{5})(?:\.(?P<dayfrac>[0-9]+))?)$"
)
# Excel's 1900 date system counts from 1899-12-30 (it treats 1900 as a leap year).
_SERIAL_MIN, _SERIAL_MAX = 20000, 80000


def _datetime_parts(e: pl.Expr, out: str) -> pl.Expr:
    """One parse of every date/time spelling; `out` picks `date`, `local` (naive
    Shanghai wall clock) or `instant` (UTC)."""
    f = pl.field
    groups = (
        _nfkc(e)
        .str.replace_all(f"^{_WS}+|{_WS}+$", "")
        .str.to_uppercase()
        # compact forms of QR codes and APIs: yyyyMMdd and yyyyMMddHHmmss
        .str.replace(r"^([0-9]{4})([0-9]{2})([0-9]{2})$", "${1}-${2}-${3}")
        .str.replace(
            r"^([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})$",
            "${1}-${2}-${3} ${4}:${5}:${6}",
        )
        .str.extract_groups(_DATETIME_RE)
    )
    days = f("days").cast(pl.Int64)
    # Float is fine here: a fraction of a day is a time of day, not money.
    day_seconds = (("0." + f("dayfrac")).cast(pl.Float64) * 86400).round(0).cast(pl.Int64)
    offset_minutes = f("oh").cast(pl.Int64) * 60 + f("om").fill_null("0").cast(pl.Int64)
    steps: list[dict[str, pl.Expr]] = [
        {
            "date_text": pl.concat_str([f("y"), f("m").str.zfill(2), f("d").str.zfill(2)], separator="-"),
            "serial_date": pl.when(days.is_between(_SERIAL_MIN, _SERIAL_MAX)).then(
                pl.date(1899, 12, 30) + pl.duration(days=days)
            ),
            "offset": pl.when(f("z").is_not_null())
            .then(pl.lit(0, dtype=pl.Int64))
            .when(f("sign") == "-")
            .then(-offset_minutes)
            .otherwise(offset_minutes),
        },
        {
            "written_date": f("date_text").str.to_date("%Y-%m-%d", strict=False),
            "written_ts": pl.concat_str(
                [
                    f("date_text"),
                    pl.lit(" "),
                    f("H").str.zfill(2),
                    pl.lit(":"),
                    f("M").str.zfill(2),
                    pl.lit(":"),
                    f("S").fill_null("00").str.zfill(2),
                    pl.lit("."),
                    f("f").fill_null("").str.slice(0, 6).str.pad_end(6, "0"),
                ]
            ).str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us", strict=False),
            "serial_ts": pl.when(f("dayfrac").str.contains("[1-9]")).then(
                f("serial_date").cast(pl.Datetime("us")) + pl.duration(seconds=day_seconds)
            ),
        },
    ]
    if out == "date":
        # a time part that does not parse ('25:00') spoils the whole value
        date_ok = f("H").is_null() | f("written_ts").is_not_null()
        steps.append({"date": pl.coalesce(pl.when(date_ok).then(f("written_date")), f("serial_date"))})
    else:
        steps.append(
            {
                "utc": pl.when(f("offset").is_not_null()).then(
                    (f("written_ts") - pl.duration(minutes=f("offset"))).dt.replace_time_zone("UTC")
                ),
                "naive": pl.coalesce(f("written_ts"), f("serial_ts")),
            }
        )
        if out == "local":
            shanghai = f("utc").dt.convert_time_zone(_SHANGHAI).dt.replace_time_zone(None)
            steps.append({"local": pl.coalesce(shanghai, f("naive"))})
        else:
            local = f("naive").dt.replace_time_zone(_SHANGHAI, ambiguous="earliest", non_existent="null")
            steps.append({"instant": pl.coalesce(f("utc"), local.dt.convert_time_zone("UTC"))})
    return _fields(groups, *steps, out=out)


def parse_date(e: pl.Expr) -> pl.Expr:
    """Date as written: ISO, `/` and `.` separators, 年月日 (also Kangxi look-alikes),
    `20250111`, optional time part and offset (ignored), Excel serials 20000–80000.
    Impossible dates → null."""
    return _datetime_parts(e, "date")


def parse_timestamp(e: pl.Expr) -> pl.Expr:
    """Date-time → naive Datetime("us") wall-clock time in Asia/Shanghai.

    Values with an offset (`Z`, `+08:00`) are converted to Shanghai time; values without
    one are taken as Shanghai time; date-only values → null.
    """
    return _datetime_parts(e, "local")


def parse_instant(e: pl.Expr) -> pl.Expr:
    """ISO 8601 instant → Datetime("us", "UTC"); values without offset are Asia/Shanghai."""
    return _datetime_parts(e, "instant")


_PERIOD_RE = r"^(?P<y>[0-9]{4})(?:[-/.年](?P<m>[0-9]{1,2})(?:月份?)?|(?P<m2>[0-9]{2}))$"


def parse_period(e: pl.Expr) -> pl.Expr:
    """Accounting period → 'YYYY-MM': `2025-01`, `2025-1`, `2025年1月`, `202501`, `2025/01`."""
    f = pl.field
    month = pl.coalesce(f("m"), f("m2"))
    period = pl.concat_str([f("y"), month.str.zfill(2)], separator="-")
    return _fields(
        _squeeze(e).str.extract_groups(_PERIOD_RE),
        {"period": pl.when(month.cast(pl.Int32).is_between(1, 12)).then(period)},
        out="period",
    )


# ----------------------------------------------------------------------------- codes


def _map_clean(e: pl.Expr, mapping: dict[str, str]) -> pl.Expr:
    key = _squeeze(e).str.replace_all(_DASHES, "-").str.to_lowercase()
    return key.replace_strict(mapping, default=None, return_dtype=pl.String)


def map_status(e: pl.Expr) -> pl.Expr:
    """发票状态 → one of STATUS_VALUES; unknown → null."""
    return _map_clean(e, _STATUS_MAP)


def map_risk(e: pl.Expr) -> pl.Expr:
    """发票风险等级 → normal / abnormal_voucher / suspicious; empty or unknown → null."""
    return _map_clean(e, _RISK_MAP)


def map_direction(e: pl.Expr) -> pl.Expr:
    """进项/取得/received → received, 销项/开具/issued → issued; unknown → null."""
    return _map_clean(e, _DIRECTION_MAP)


# ----------------------------------------------------------------------------- invoice ids

_D20 = r"^[0-9]{20}$"
_CODE = r"^(?:[0-9]{10}|[0-9]{12})$"


def invoice_uid(code: pl.Expr, number: pl.Expr, digital: pl.Expr) -> pl.Expr:
    """SPEC §4 invoice id: the 20-digit 数电 number, else `<code>-<number>`, else null.

    Inputs must already be cleaned (clean_identifier).
    """
    legacy = code.str.contains(_CODE) & number.str.contains(r"^[0-9]{8}$")
    return (
        pl.when(digital.str.contains(_D20).fill_null(False))
        .then(digital)
        .when(legacy.fill_null(False))
        .then(pl.concat_str([code, number], separator="-"))
    )


# Literal two-character newlines ('/n', '\n') that some exports write; the cell is upper-cased first.
_REF_SEPARATORS = r"/N|\\N|[,;、/|\r\n]"


def split_invoice_refs(e: pl.Expr) -> pl.Expr:
    """ERP 发票号码 cell → List(String) of cleaned tokens.

    Splits on `,` `，` `;` `；` `、` `/` `|` and newlines, never on spaces (people type
    one number with spaces inside); empty tokens dropped; null/empty cell → [].
    """
    cell = _nfkc(e).fill_null("").str.replace_all(_DASHES, "-").str.to_uppercase()
    # 'N/A' would otherwise split into the tokens 'N' and 'A'.
    cell = cell.str.replace_all(r"\bN/A\b", "")
    return (
        cell.str.split(_REF_SEPARATORS, literal=False)
        .list.eval(_identifier_tail(pl.element()))
        .list.drop_nulls()
    )


def classify_invoice_ref(token: pl.Expr, code: pl.Expr) -> pl.Expr:
    """Classify one cleaned ERP token → Struct{ref_kind, ref_key}.

    digits20 (数电 number, or a 12-digit code + number run together), code_number
    (`<code>-<8 digits>`), digits18 (10-digit code + number run together), number8 (a
    number without a code, or the tail of a 20-digit number), invalid. `code` is the
    row's cleaned 发票代码 (may be null); a value that is not 10/12 digits counts as none.
    """
    has_code = code.str.contains(_CODE).fill_null(False)
    joined = token.str.extract_groups(r"^(?P<code>[0-9]{10}|[0-9]{12})-(?P<no>[0-9]{1,8})$")
    joined_key = pl.concat_str(
        [joined.struct.field("code"), joined.struct.field("no").str.zfill(8)], separator="-"
    )
    short = token.str.contains(r"^[0-9]{1,8}$")
    with_code_key = pl.concat_str([code, token.str.zfill(8)], separator="-")
    is20 = token.str.contains(_D20)
    is18 = token.str.contains(r"^[0-9]{18}$")
    is8 = token.str.contains(r"^[0-9]{8}$")

    kind = (
        pl.when(is20)
        .then(pl.lit("digits20"))
        .when(joined_key.is_not_null())
        .then(pl.lit("code_number"))
        .when(is18)
        .then(pl.lit("digits18"))
        .when(short & has_code)
        .then(pl.lit("code_number"))
        .when(is8 & ~has_code)
        .then(pl.lit("number8"))
        .otherwise(pl.lit("invalid"))
    )
    key = (
        pl.when(is20 | is18 | (is8 & ~has_code))
        .then(token)
        .when(joined_key.is_not_null())
        .then(joined_key)
        .when(short & has_code)
        .then(with_code_key)
    )
    return pl.when(token.is_not_null()).then(pl.struct(kind.alias("ref_kind"), key.alias("ref_key")))


_GAP = r"(?:\s|/n|\\n)*"
_RED_DIGITAL_RE = rf"被红冲蓝字(?:数电|全电|电子)?(?:发票|票)?号码{_GAP}:?{_GAP}([0-9]{{20}})(?:[^0-9]|$)"
_RED_LEGACY_RE = (
    rf"对应(?:正数|蓝字)发票代码{_GAP}:?{_GAP}(?P<code>[0-9]{{12}}|[0-9]{{10}}){_GAP}"
    rf"号码{_GAP}:?{_GAP}(?P<no>[0-9]{{8}})(?:[^0-9]|$)"
)


def red_reference(remark: pl.Expr) -> pl.Expr:
    """The blue invoice's uid named in a red-letter invoice's 备注, or null.

    Anchored on the label, so the 红字发票信息确认单编号 (also 20 digits) is never returned.
    """
    s = _nfkc(remark)
    digital = s.str.extract(_RED_DIGITAL_RE, 1)
    legacy = s.str.extract_groups(_RED_LEGACY_RE)
    legacy_uid = pl.concat_str([legacy.struct.field("code"), legacy.struct.field("no")], separator="-")
    return pl.coalesce(digital, legacy_uid)


# ----------------------------------------------------------------------------- personal data


def _weighted_digit_sum(e: pl.Expr, weights: tuple[int, ...]) -> pl.Expr:
    return pl.sum_horizontal(
        e.str.slice(i, 1).cast(pl.Int64, strict=False) * w for i, w in enumerate(weights)
    )


def _all_digit_uscc_valid(e: pl.Expr) -> pl.Expr:
    """USCC validity for values shaped `^\\d{17}[\\dX]$` (digits make the check vectorisable)."""
    check = (31 - _weighted_digit_sum(e, USCC_WEIGHTS) % 31) % 31
    expected = check.replace_strict(dict(enumerate(USCC_ALPHABET)), return_dtype=pl.String)
    return e.str.slice(0, 2).is_in(list(USCC_PREFIXES)) & (e.str.slice(17, 1) == expected)


def _resident_id_valid(e: pl.Expr) -> pl.Expr:
    """`tin.is_valid_resident_id` vectorised, for values shaped `^\\d{17}[\\dX]`."""
    check = (12 - _weighted_digit_sum(e, RIC_WEIGHTS) % 11) % 11
    expected = pl.when(check == 10).then(pl.lit("X")).otherwise(check.cast(pl.String))
    birth = e.str.slice(6, 8).str.to_date("%Y%m%d", strict=False)
    return (
        e.str.slice(0, 2).is_in(list(PROVINCES))
        & birth.is_between(dt.date(1900, 1, 1), dt.date.today())
        & (e.str.slice(17, 1) == expected)
    )


def mask_tin(e: pl.Expr) -> pl.Expr:
    """Mask TINs that carry a resident ID: first 6 and last 4 kept, `*` between.

    Masked: 20-character sole-proprietor TINs (18-char ID + 2 digits) and 18-character
    ID-shaped values that are not a valid USCC or that are a valid resident ID (privacy
    wins when a value passes both checks). Company USCCs pass through unchanged.
    """
    s = _text(e)
    id18 = s.str.contains(r"^[0-9]{17}[0-9X]$")
    id20 = s.str.contains(r"^[0-9]{17}[0-9X][0-9]{2}$")
    personal18 = id18 & (~_all_digit_uscc_valid(s) | _resident_id_valid(s))
    stars = pl.when(id20).then(pl.lit("*" * 10)).otherwise(pl.lit("*" * 8))
    masked = pl.concat_str([s.str.slice(0, 6), stars, s.str.slice(-4, 4)])
    return pl.when((personal18 | id20).fill_null(False)).then(masked).otherwise(s)


def mask_person_name(e: pl.Expr) -> pl.Expr:
    """`张三` → `张*`, `欧阳娜娜` → `欧***`, Latin names → first letter + `***`."""
    f = pl.field
    first = f("s").str.slice(0, 1)
    return _fields(
        pl.struct(clean_text(e).alias("s")),
        {
            "masked": pl.when(f("s").str.contains(r"^[A-Za-z]"))
            .then(first + "***")
            .when(f("s").str.len_chars() == 1)
            .then(pl.lit("*"))
            .otherwise(first + f("s").str.slice(1).str.replace_all(".", "*"))
        },
        out="masked",
    )
