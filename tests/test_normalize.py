"""Tests for invoice_pipeline.normalize: every quirk of the real exports, one case each."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from decimal import Decimal

import polars as pl
import pytest

from invoice_pipeline import normalize as nz
from invoice_pipeline.tin import is_valid_resident_id, is_valid_uscc, uscc_check_char


def run(fn, values, dtype=pl.String):
    """Apply a one-column expression builder to `values`; return (results, result dtype)."""
    df = pl.DataFrame({"v": values}, schema={"v": dtype})
    out = df.select(fn(pl.col("v")).alias("r"))
    return out["r"].to_list(), out.schema["r"]


def one(fn, value):
    return run(fn, [value])[0][0]


# ----------------------------------------------------------------------------- contract

ONE_COLUMN_BUILDERS = [
    (nz.clean_text, pl.String),
    (nz.clean_identifier, pl.String),
    (nz.normalize_name, pl.String),
    (nz.parse_amount, pl.Decimal(18, 2)),
    (nz.parse_int, pl.Int64),
    (nz.parse_date, pl.Date),
    (nz.parse_timestamp, pl.Datetime("us")),
    (nz.parse_instant, pl.Datetime("us", "UTC")),
    (nz.parse_period, pl.String),
    (nz.parse_rate, pl.Decimal(6, 4)),
    (nz.rate_label, pl.String),
    (nz.parse_bool_cn, pl.Boolean),
    (nz.map_status, pl.String),
    (nz.map_risk, pl.String),
    (nz.map_direction, pl.String),
    (nz.red_reference, pl.String),
    (nz.mask_tin, pl.String),
    (nz.mask_person_name, pl.String),
]


@pytest.mark.parametrize(("fn", "dtype"), ONE_COLUMN_BUILDERS, ids=lambda x: getattr(x, "__name__", ""))
def test_null_in_null_out_and_dtype(fn, dtype):
    values, out_dtype = run(fn, [None, None])
    assert values == [None, None]
    assert out_dtype == dtype


@pytest.mark.parametrize(("fn", "dtype"), ONE_COLUMN_BUILDERS, ids=lambda x: getattr(x, "__name__", ""))
def test_garbage_never_raises(fn, dtype):
    garbage = [
        "",
        " ",
        "\x00",
        "💥",
        "(",
        ")",
        "-",
        "--",
        "%",
        ".",
        "E",
        "年月日",
        "9" * 60,
        "９" * 30,
        "a,b;c",
    ]
    values, out_dtype = run(fn, garbage)
    assert len(values) == len(garbage)
    assert out_dtype == dtype


def test_builders_give_the_same_answer_in_the_streaming_engine():
    raw = ["1,234.50", "2025/1/11 9:05", "13%", "00290716、25112000000012345678", None, "45667.4375"]
    lf = pl.LazyFrame({"v": raw})
    exprs = [fn(pl.col("v")).alias(fn.__name__) for fn, _ in ONE_COLUMN_BUILDERS]
    exprs.append(nz.split_invoice_refs(pl.col("v")).alias("refs"))
    in_memory = lf.select(exprs).collect()
    streaming = lf.select(exprs).collect(engine="streaming")
    assert in_memory.equals(streaming)


# ----------------------------------------------------------------------------- clean_text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("天诚（山东）健康科技有限公司", "天诚(山东)健康科技有限公司"),  # NFKC brackets
        ("  北京 朝阳  ", "北京 朝阳"),  # inner space kept
        ("\u3000正常\u3000", "正常"),  # ideographic space
        ("\ufeff备注\u200b", "备注"),  # BOM and zero-width space from copy-paste
        ("\t\n已审核\r\n", "已审核"),
        ("ＡＢＣ１２３", "ABC123"),
        ("", None),
        ("\u3000 \u00a0", None),
        (None, None),
    ],
)
def test_clean_text(raw, expected):
    assert one(nz.clean_text, raw) == expected


def test_clean_text_dtype():
    assert run(nz.clean_text, ["a"])[1] == pl.String


# ----------------------------------------------------------------------------- clean_identifier


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("00290716", "00290716"),
        ("'00290716", "00290716"),  # Excel text marker
        ('"011002100511"', "011002100511"),
        ("“25112000000012345678”", "25112000000012345678"),  # curly quotes from Word
        ("2511 2000 0000 1234 5678", "25112000000012345678"),  # spaces inside
        ("2511\u30002000\u00a00000\t12345678", "25112000000012345678"),  # U+3000, NBSP, tab
        ("２５１１２０００００００１２３４５６７８", "25112000000012345678"),  # full-width digits
        ("91371400ma949ruw2h", "91371400MA949RUW2H"),  # upper-cased
        ("011002100511－61515362", "011002100511-61515362"),  # full-width hyphen
        ("011002100511—61515362", "011002100511-61515362"),  # em dash typed as hyphen
        ("--", None),  # legacy rows' 数电发票号码 placeholder
        ("-", None),
        ("—", None),
        ("——", None),
        ("无", None),
        ("N/A", None),
        ("n/a", None),
        ("", None),
        ("   ", None),
        ("'", None),
        (None, None),
    ],
)
def test_clean_identifier(raw, expected):
    assert one(nz.clean_identifier, raw) == expected


# ----------------------------------------------------------------------------- parse_amount


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1234.5", "1234.50"),
        ("1,234.50", "1234.50"),
        ("￥1,234.50", "1234.50"),  # full-width yen sign
        ("¥1,234.50", "1234.50"),
        ("¥ 1,234.50", "1234.50"),
        ("RMB1,234.50", "1234.50"),
        ("1,234.50元", "1234.50"),
        ("1,234.50 CNY", "1234.50"),
        ("(1,234.50)", "-1234.50"),  # accounting negative
        ("（1,234.50）", "-1234.50"),  # full-width parentheses
        ("(¥1,234.50)", "-1234.50"),
        ("-178.55", "-178.55"),  # red-letter invoice
        ("－178.55", "-178.55"),  # full-width minus
        ("\u2212178.55", "-178.55"),  # U+2212 minus sign
        ("178.55-", "-178.55"),  # SAP trailing minus
        ("+178.55", "178.55"),
        ("１，２３４．５０", "1234.50"),  # full-width digits, comma, period
        ("1.00000000", "1.00"),  # 8 decimals as the export writes them
        (" 12 ", "12.00"),
        ("\u300012\u3000", "12.00"),
        ("1234.505", "1234.51"),  # half-up, not banker's
        ("1234.515", "1234.52"),
        ("1234.525", "1234.53"),  # half-to-even would give 1234.52
        ("-1234.505", "-1234.51"),  # half away from zero
        ("1234.50499", "1234.50"),
        ("0.00499999999995", "0.00"),  # no double rounding via the wide decimal
        ("1.2345E+3", "1234.50"),  # Excel scientific
        ("1.2345e3", "1234.50"),
        ("1.2345E-2", "0.01"),
        ("12E2", "1200.00"),
        (".5", "0.50"),
        ("5.", "5.00"),
        ("0", "0.00"),
        ("-0.00", "0.00"),
        ("1,234,567.891", "1234567.89"),
        ("9999999999999999.99", "9999999999999999.99"),  # 18 significant digits, exact
        ("1234567890123456.78", "1234567890123456.78"),
    ],
)
def test_parse_amount(raw, expected):
    assert one(nz.parse_amount, raw) == Decimal(expected)


@pytest.mark.parametrize(
    "raw",
    [
        "abc",
        "1,2,3.4.5",
        "12,34",  # commas must group by three
        "1,2345.00",
        "--",
        "-",
        ".",
        "",
        "(1,234.50",  # unbalanced
        "(-5)",  # two negatives
        "--5",
        "$12.00",  # another currency is not silently CNY
        "1.2.3",
        "12 abc",
        "10000000000000000.00",  # 17 integer digits overflow Decimal(18,2)
        "1E+40",
        None,
    ],
)
def test_parse_amount_garbage_is_null(raw):
    assert one(nz.parse_amount, raw) is None


def test_parse_amount_dtype():
    assert run(nz.parse_amount, ["1"])[1] == pl.Decimal(18, 2)


def test_polars_default_rounding_is_half_even_so_parse_amount_must_not_rely_on_it():
    # Guard for the reason parse_amount rounds explicitly: if this ever changes, fine, but know it.
    plain = pl.Series(["1234.505"]).cast(pl.Decimal(38, 10)).cast(pl.Decimal(18, 2))
    assert plain.to_list() == [Decimal("1234.50")]
    assert one(nz.parse_amount, "1234.505") == Decimal("1234.51")


def test_parse_amount_is_exact_decimal_arithmetic():
    df = pl.DataFrame({"a": ["0.1", "0.2", "9999999999999999.99", "-9999999999999999.98"]})
    parsed = df.select(nz.parse_amount(pl.col("a")).alias("a"))
    first_two = parsed.head(2)["a"].sum()
    assert first_two == Decimal("0.30")  # float would give 0.30000000000000004
    assert parsed["a"][2] == Decimal("9999999999999999.99")  # float64 gives 1e16
    assert parsed.tail(2)["a"].sum() == Decimal("0.01")


def test_parse_amount_accepts_numeric_input():
    values, dtype = run(nz.parse_amount, [12, -3, None], pl.Int64)
    assert values == [Decimal("12.00"), Decimal("-3.00"), None]
    assert dtype == pl.Decimal(18, 2)


# ----------------------------------------------------------------------------- parse_int


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12", 12),
        ("12.0", 12),
        ("12.000", 12),
        ("1,200", 1200),
        ("１２", 12),
        (" 7 ", 7),
        ("-3", -3),
        ("0", 0),
        ("12.5", None),
        ("1,20", None),
        ("abc", None),
        ("", None),
        ("99999999999999999999", None),  # overflows Int64
        (None, None),
    ],
)
def test_parse_int(raw, expected):
    assert one(nz.parse_int, raw) == expected


def test_parse_int_dtype():
    assert run(nz.parse_int, ["1"])[1] == pl.Int64


# ----------------------------------------------------------------------------- parse_date


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2025-01-11", date(2025, 1, 11)),
        ("2025/1/11", date(2025, 1, 11)),
        ("2025.1.11", date(2025, 1, 11)),
        ("2025年1月11日", date(2025, 1, 11)),
        ("2025年01月11日", date(2025, 1, 11)),
        ("２０２５年０１月１１日", date(2025, 1, 11)),
        ("20250111", date(2025, 1, 11)),  # QR code / verification APIs
        ("20250111101112", date(2025, 1, 11)),  # yyyyMMddHHmmss APIs
        ("2025-01-11 10:11:12", date(2025, 1, 11)),  # platform export
        ("2025/1/11 9:05", date(2025, 1, 11)),
        ("2020/10/10 15:11:19", date(2020, 10, 10)),  # OFD attachment
        ("2025-01-11T10:11:12+08:00", date(2025, 1, 11)),
        ("2025-01-11T20:11:12Z", date(2025, 1, 11)),  # the date as written, not converted
        ("2025年1月11日 10:11", date(2025, 1, 11)),
        (" 2025-01-11 ", date(2025, 1, 11)),
        ("45667", date(2025, 1, 10)),  # Excel serial
        ("45667.0", date(2025, 1, 10)),
        ("45667.4375", date(2025, 1, 10)),
        ("20000", date(1954, 10, 3)),
        ("2026年06\u2f4914\u2f47", date(2026, 6, 14)),  # Kangxi radical look-alikes ⽉ ⽇
        ("2024-02-29", date(2024, 2, 29)),
    ],
)
def test_parse_date(raw, expected):
    assert one(nz.parse_date, raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "2025-02-30",
        "2023-02-29",
        "2025-13-01",
        "2025-00-10",
        "20251301",
        "2025-01-11 25:00:00",  # impossible time
        "19999",  # below the serial window
        "80001",  # above the serial window
        "12345",
        "2025",
        "11/01/2025",  # day-first is ambiguous: refuse
        "abc",
        "--",
        "",
        None,
    ],
)
def test_parse_date_invalid_is_null(raw):
    assert one(nz.parse_date, raw) is None


def test_parse_date_dtype():
    assert run(nz.parse_date, ["2025-01-11"])[1] == pl.Date


def test_parse_date_from_date_column():
    assert run(nz.parse_date, [date(2025, 1, 11)], pl.Date)[0] == [date(2025, 1, 11)]


# ----------------------------------------------------------------------------- parse_timestamp


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2025-01-11 10:11:12", datetime(2025, 1, 11, 10, 11, 12)),
        ("2025/1/11 9:05", datetime(2025, 1, 11, 9, 5)),
        ("2025-01-11T02:11:12Z", datetime(2025, 1, 11, 10, 11, 12)),  # UTC → Shanghai
        ("2025-01-10T20:11:12Z", datetime(2025, 1, 11, 4, 11, 12)),  # crosses midnight
        ("2025-01-11T10:11:12+08:00", datetime(2025, 1, 11, 10, 11, 12)),
        ("2025-01-11T10:11:12+0800", datetime(2025, 1, 11, 10, 11, 12)),
        ("2025-01-11T04:41:12+02:30", datetime(2025, 1, 11, 10, 11, 12)),
        ("2025-01-11 10:11:12.5", datetime(2025, 1, 11, 10, 11, 12, 500000)),
        ("20250111101112", datetime(2025, 1, 11, 10, 11, 12)),
        ("2020/10/10 15:11:19", datetime(2020, 10, 10, 15, 11, 19)),
        ("2025年1月11日 10时11分12秒", datetime(2025, 1, 11, 10, 11, 12)),
        ("45667.4375", datetime(2025, 1, 10, 10, 30)),  # Excel serial with time
    ],
)
def test_parse_timestamp(raw, expected):
    assert one(nz.parse_timestamp, raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["2025-01-11", "20250111", "45667", "45667.0", "2025-01-11 24:00:00", "2025-02-30 10:00:00", "x", None],
)
def test_parse_timestamp_without_time_is_null(raw):
    assert one(nz.parse_timestamp, raw) is None


def test_parse_timestamp_dtype():
    assert run(nz.parse_timestamp, ["2025-01-11 10:11:12"])[1] == pl.Datetime("us")


# ----------------------------------------------------------------------------- parse_instant


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-01T01:30:00+08:00", datetime(2026, 10, 31, 17, 30, tzinfo=UTC)),
        ("2026-11-01T01:30:00Z", datetime(2026, 11, 1, 1, 30, tzinfo=UTC)),
        ("2026-11-01T01:30:00.250Z", datetime(2026, 11, 1, 1, 30, 0, 250000, tzinfo=UTC)),
        ("2026-11-01T01:30:00-05:00", datetime(2026, 11, 1, 6, 30, tzinfo=UTC)),
        ("2026-11-01 01:30:00", datetime(2026, 10, 31, 17, 30, tzinfo=UTC)),  # naive = Shanghai
        ("2026-11-01T01:30:00", datetime(2026, 10, 31, 17, 30, tzinfo=UTC)),
    ],
)
def test_parse_instant(raw, expected):
    assert one(nz.parse_instant, raw) == expected


@pytest.mark.parametrize("raw", ["2026-11-01", "not a time", "", None])
def test_parse_instant_invalid_is_null(raw):
    assert one(nz.parse_instant, raw) is None


def test_parse_instant_dtype():
    assert run(nz.parse_instant, ["2026-11-01T01:30:00Z"])[1] == pl.Datetime("us", "UTC")


# ----------------------------------------------------------------------------- parse_period


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2025-01", "2025-01"),
        ("2025-1", "2025-01"),
        ("2025年1月", "2025-01"),
        ("2025年01月", "2025-01"),
        ("2025年12月份", "2025-12"),
        ("202501", "2025-01"),
        ("2025/01", "2025-01"),
        ("2025.11", "2025-11"),
        (" 2025-01 ", "2025-01"),
        ("２０２５年１月", "2025-01"),
        ("2025-13", None),
        ("2025-00", None),
        ("202513", None),
        ("20251", None),  # one-digit month needs a separator
        ("2025", None),
        ("abc", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_period(raw, expected):
    assert one(nz.parse_period, raw) == expected


# ----------------------------------------------------------------------------- rates


@pytest.mark.parametrize(
    ("raw", "expected", "label"),
    [
        ("13%", "0.13", "13%"),
        ("9%", "0.09", "9%"),
        ("6%", "0.06", "6%"),
        ("0%", "0", "0%"),
        ("0.130000", "0.13", "13%"),  # XML TaxRate
        ("0.13", "0.13", "13%"),
        ("0.06", "0.06", "6%"),
        ("0.03", "0.03", "3%"),
        ("1.5%", "0.015", "1.5%"),
        ("0.015", "0.015", "1.5%"),
        ("0.5%", "0.005", "0.5%"),
        ("10%", "0.10", "10%"),
        ("13", "0.13", "13%"),  # ERP keeps percent without the sign
        ("13.00", "0.13", "13%"),
        ("１３％", "0.13", "13%"),
        (" 13 % ", "0.13", "13%"),
        ("0", "0", "0%"),
        ("零税率", "0", "0%"),
        ("免税", "0", "免税"),
        ("不征税", "0", "不征税"),
        ("-1", "0", "不征税"),  # API code
        ("-2", "0", "免税"),  # API code
        ("-1.00", "0", "不征税"),
    ],
)
def test_parse_rate_and_label(raw, expected, label):
    assert one(nz.parse_rate, raw) == Decimal(expected)
    assert one(nz.rate_label, raw) == label


@pytest.mark.parametrize("raw", ["abc", "150%", "100", "-5", "-3", "13%%", "", "--", None])
def test_parse_rate_garbage_is_null(raw):
    assert one(nz.parse_rate, raw) is None
    assert one(nz.rate_label, raw) is None


def test_rate_dtypes():
    assert run(nz.parse_rate, ["13%"])[1] == pl.Decimal(6, 4)
    assert run(nz.rate_label, ["13%"])[1] == pl.String


# ----------------------------------------------------------------------------- booleans and codes


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("是", True),
        ("否", False),
        ("Y", True),
        ("n", False),
        ("yes", True),
        ("No", False),
        ("TRUE", True),
        ("false", False),
        ("1", True),
        ("0", False),
        (" 是 ", True),
        ("maybe", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_bool_cn(raw, expected):
    assert one(nz.parse_bool_cn, raw) is expected


def test_parse_bool_cn_dtype():
    assert run(nz.parse_bool_cn, ["是"])[1] == pl.Boolean


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("正常", "normal"),
        ("已作废", "voided"),
        ("作废", "voided"),
        ("已红冲-全额", "red_full"),
        ("已红冲－全额", "red_full"),
        ("全额红冲", "red_full"),
        ("已全额红冲", "red_full"),
        ("已红冲-部分", "red_partial"),
        ("部分红冲", "red_partial"),
        ("已部分红冲", "red_partial"),
        ("失控", "out_of_control"),
        ("异常", "abnormal"),
        (" 正常\u3000", "normal"),
        ("red_full", "red_full"),  # already canonical
        ("已红冲", None),  # full or partial is unknown
        ("未知", None),
        ("", None),
        (None, None),
    ],
)
def test_map_status(raw, expected):
    assert one(nz.map_status, raw) == expected


def test_status_values_cover_map_status():
    mapped = set(run(nz.map_status, ["正常", "已作废", "已红冲-全额", "已红冲-部分", "失控", "异常"])[0])
    assert mapped == set(nz.STATUS_VALUES)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("正常", "normal"),
        ("异常凭证", "abnormal_voucher"),
        ("疑点发票", "suspicious"),
        ("", None),
        ("高", None),
        (None, None),
    ],
)
def test_map_risk(raw, expected):
    assert one(nz.map_risk, raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("进项", "received"),
        ("取得", "received"),
        ("received", "received"),
        ("Received", "received"),
        ("销项", "issued"),
        ("开具", "issued"),
        ("issued", "issued"),
        ("其他", None),
        (None, None),
    ],
)
def test_map_direction(raw, expected):
    assert one(nz.map_direction, raw) == expected


# ----------------------------------------------------------------------------- normalize_name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("天诚（山东）健康科技有限公司", "天诚(山东)健康科技有限公司"),
        ("天诚(山东)健康科技有限公司", "天诚(山东)健康科技有限公司"),
        ("天诚（山东)健康科技有限公司", "天诚(山东)健康科技有限公司"),  # mixed widths
        ("天诚【山东】健康科技有限公司", "天诚(山东)健康科技有限公司"),
        ("天诚［山东］健康科技有限公司", "天诚(山东)健康科技有限公司"),
        ("天诚 (山东) 健康科技\u3000有限公司", "天诚(山东)健康科技有限公司"),
        ("湖南⾦拱⻔⻝品有限公司", "湖南金拱门食品有限公司"),  # PDF radicals (DOMAIN §2.8)
        ("⻓沙⻢王堆", "长沙马王堆"),
        ("abc Technology (Beijing) Co., Ltd.", "ABCTECHNOLOGY(BEIJING)CO.,LTD."),
        ("ＩＢＭ中国", "IBM中国"),
        ("   ", None),
        (None, None),
    ],
)
def test_normalize_name(raw, expected):
    assert one(nz.normalize_name, raw) == expected


# ----------------------------------------------------------------------------- invoice_uid


@pytest.mark.parametrize(
    ("code", "number", "digital", "expected"),
    [
        (None, None, "25112000000012345678", "25112000000012345678"),  # 数电
        ("011002100511", "00290716", None, "011002100511-00290716"),  # legacy 12-digit code
        ("3700213130", "00290716", None, "3700213130-00290716"),  # legacy 10-digit code
        ("011002100511", "00290716", "25112000000012345678", "25112000000012345678"),  # 数电纸质
        ("011002100511", "290716", None, None),  # number must be 8 digits
        ("11002100511", "00290716", None, None),  # 11-digit code
        (None, "00290716", None, None),
        (None, None, "2511200000001234567", None),  # 19 digits
        ("011002100511", "00290716", "2.51120000000123E+19", "011002100511-00290716"),
        (None, None, None, None),
    ],
)
def test_invoice_uid(code, number, digital, expected):
    df = pl.DataFrame({"c": [code], "n": [number], "d": [digital]}, schema=dict.fromkeys("cnd", pl.String))
    out = df.select(nz.invoice_uid(pl.col("c"), pl.col("n"), pl.col("d")).alias("uid"))
    assert out["uid"].to_list() == [expected]
    assert out.schema["uid"] == pl.String


# ----------------------------------------------------------------------------- ERP references


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("25112000000012345678", ["25112000000012345678"]),
        ("25112000000012345678,25112000000012345679", ["25112000000012345678", "25112000000012345679"]),
        ("25112000000012345678，25112000000012345679", ["25112000000012345678", "25112000000012345679"]),
        ("00290716;00290717", ["00290716", "00290717"]),
        ("00290716；00290717", ["00290716", "00290717"]),
        ("00290716、00290717", ["00290716", "00290717"]),
        ("00290716/00290717", ["00290716", "00290717"]),
        ("00290716\n00290717", ["00290716", "00290717"]),
        ("00290716\r\n00290717", ["00290716", "00290717"]),
        ("00290716/n00290717", ["00290716", "00290717"]),  # literal '/n'
        ("2511 2000 0000 1234 5678", ["25112000000012345678"]),  # spaces inside one number
        ("'00290716", ["00290716"]),
        ("２５１１２０００００００１２３４５６７８", ["25112000000012345678"]),
        ("011002100511-61515362", ["011002100511-61515362"]),
        ("00290716, ,00290717,", ["00290716", "00290717"]),  # empty tokens dropped
        ("00290716, --", ["00290716"]),
        ("N/A", []),
        ("", []),
        ("\u3000", []),
        (None, []),
    ],
)
def test_split_invoice_refs(raw, expected):
    values, dtype = run(nz.split_invoice_refs, [raw])
    assert values == [expected]
    assert dtype == pl.List(pl.String)


@pytest.mark.parametrize(
    ("token", "code", "kind", "key"),
    [
        ("25112000000012345678", None, "digits20", "25112000000012345678"),
        ("01100210051161515362", None, "digits20", "01100210051161515362"),  # 12+8 run together
        ("25112000000012345678", "011002100511", "digits20", "25112000000012345678"),
        ("011002100511-61515362", None, "code_number", "011002100511-61515362"),
        ("3700213130-290716", None, "code_number", "3700213130-00290716"),  # zero-padded
        ("370021313000290716", None, "digits18", "370021313000290716"),  # 10+8 run together
        ("00290716", "011002100511", "code_number", "011002100511-00290716"),
        ("290716", "3700213130", "code_number", "3700213130-00290716"),
        ("00290716", None, "number8", "00290716"),
        ("12345678", "0110021005", "code_number", "0110021005-12345678"),
        ("12345678", "123", "number8", "12345678"),  # an unusable code counts as none
        ("290716", None, "invalid", None),  # short number without a code
        ("INV-2025-001", None, "invalid", None),
        ("2511200000001234567", None, "invalid", None),  # 19 digits
        ("011002100511-123456789", None, "invalid", None),
    ],
)
def test_classify_invoice_ref(token, code, kind, key):
    df = pl.DataFrame({"t": [token], "c": [code]}, schema={"t": pl.String, "c": pl.String})
    out = df.select(nz.classify_invoice_ref(pl.col("t"), pl.col("c")).alias("r"))
    assert out.schema["r"] == pl.Struct({"ref_kind": pl.String, "ref_key": pl.String})
    assert out["r"].to_list() == [{"ref_kind": kind, "ref_key": key}]


def test_classify_invoice_ref_null_token():
    df = pl.DataFrame({"t": [None], "c": ["011002100511"]}, schema={"t": pl.String, "c": pl.String})
    out = df.select(nz.classify_invoice_ref(pl.col("t"), pl.col("c")).alias("r")).unnest("r")
    assert out.row(0) == (None, None)


def test_split_then_classify_an_erp_cell():
    df = pl.DataFrame({"no": ["00290716、25112000000012345678"], "code": ["011002100511"]})
    refs = df.with_columns(nz.split_invoice_refs(pl.col("no")).alias("t")).explode("t")
    out = refs.select(nz.classify_invoice_ref(pl.col("t"), pl.col("code")).alias("r")).unnest("r")
    assert out.rows() == [
        ("code_number", "011002100511-00290716"),
        ("digits20", "25112000000012345678"),
    ]


# ----------------------------------------------------------------------------- red_reference


@pytest.mark.parametrize(
    ("remark", "expected"),
    [
        (
            "被红冲蓝字数电发票号码：25372000000012345678 红字发票信息确认单编号：37149124121007301152",
            "25372000000012345678",
        ),
        (
            "被红冲蓝字数电票号码：25372000000012345678 红字发票信息确认单编号：37149124121007301152",
            "25372000000012345678",
        ),
        (
            "被红冲蓝字数电发票号码:25372000000012345678红字发票信息确认单编号:37149124121007301152",
            "25372000000012345678",
        ),
        (
            # the confirmation number first must not fool the parser
            "红字发票信息确认单编号：37149124121007301152 被红冲蓝字数电发票号码： 25372000000012345678",
            "25372000000012345678",
        ),
        (
            "项目款\n被红冲蓝字数电票号码：25372000000012345678\n红字发票信息确认单编号：37149124121007301152",
            "25372000000012345678",
        ),
        (
            "被红冲蓝字数电票号码：25372000000012345678/n红字发票信息确认单编号：37149124121007301152",
            "25372000000012345678",
        ),
        ("对应正数发票代码:037002100511号码:00290716", "037002100511-00290716"),
        ("对应正数发票代码:037002100511 号码:00290716", "037002100511-00290716"),
        ("对应正数发票代码：3700213130 号码：00290716", "3700213130-00290716"),
        ("退货 对应正数发票代码:3700213130号码:00290716/n原因:质量问题", "3700213130-00290716"),
        ("红字发票信息确认单编号：37149124121007301152", None),  # never the 确认单编号
        ("被红冲蓝字数电发票号码：253720000000123456789", None),  # 21 digits is not a number
        ("货款", None),
        ("", None),
        (None, None),
    ],
)
def test_red_reference(remark, expected):
    assert one(nz.red_reference, remark) == expected


# ----------------------------------------------------------------------------- personal data


def _all_digit_uscc() -> str:
    """A valid USCC whose 18 characters are all digits (they exist: old organisation codes)."""
    for n in range(1000):
        first17 = f"91110108{n:08d}1"
        check = uscc_check_char(first17)
        if check.isdigit():
            return first17 + check
    raise AssertionError("no all-digit USCC found")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("91371400MA949RUW2H", "91371400MA949RUW2H"),  # company USCC unchanged
        (_all_digit_uscc(), _all_digit_uscc()),  # all-digit company USCC unchanged
        ("360426199101010071", "360426********0071"),  # resident ID used as TIN
        ("11010519491231002X", "110105********002X"),
        ("36042619910101007102", "360426**********7102"),  # sole proprietor
        ("41092119800101001X02", "410921**********1X02"),
        ("123456789012345670", "123456********5670"),  # ID-shaped, not a USCC
        ("123456789012345678", "123456789012345678"),  # by chance a valid USCC: unchanged
        ("91371400MA949RUW2H01", "91371400MA949RUW2H01"),  # not ID-shaped
        ("1234567890", "1234567890"),
        (None, None),
    ],
)
def test_mask_tin(raw, expected):
    assert one(nz.mask_tin, raw) == expected


def test_mask_tin_agrees_with_scalar_checks():
    rng = random.Random(20250111)
    values = []
    for _ in range(1500):
        first17 = "".join(rng.choice("0123456789") for _ in range(17))
        values.append(first17 + rng.choice("0123456789X"))
        check = uscc_check_char(first17)
        values.append(first17 + check)  # valid USCC when its prefix is a real one
    values += ["110105194912310021", "11010519491231002X"]
    masked, _ = run(nz.mask_tin, values)
    for value, out in zip(values, masked, strict=True):
        id_shaped = value[:17].isdigit() and value[17] in "0123456789X"
        personal = id_shaped and (not is_valid_uscc(value) or is_valid_resident_id(value))
        assert (out != value) is personal, value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("张三", "张*"),
        ("欧阳娜娜", "欧***"),
        ("李小龙", "李**"),
        ("王", "*"),
        (" 张三 ", "张*"),
        ("John Smith", "J***"),
        ("ｊｏｈｎ", "j***"),
        ("", None),
        (None, None),
    ],
)
def test_mask_person_name(raw, expected):
    assert one(nz.mask_person_name, raw) == expected
