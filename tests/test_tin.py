"""Tests for invoice_pipeline.tin: GB 32100 USCC, resident IDs, old 15-character TINs."""

from __future__ import annotations

import random

import polars as pl
import pytest
from stdnum.cn import uscc as stdnum_uscc

from invoice_pipeline.tin import (
    USCC_ALPHABET,
    is_valid_resident_id,
    is_valid_uscc,
    org_code_check_char,
    tin_problem,
    tin_problem_expr,
    uscc_check_char,
)

# Real-looking valid codes: the first from python-stdnum's docs, the second from real exports.
VALID_USCC = ["91110000600037341L", "91371400MA949RUW2H", "91310115MA1H8R7C67"]


@pytest.mark.parametrize(
    ("first17", "expected"),
    [
        ("91110000600037341", "L"),
        ("91371400MA949RUW2", "H"),
        ("91310115MA1H8R7C6", "7"),  # the widely copied blog example ends in 'D': wrong
        ("Y1110000MA1234567", "K"),  # DOMAIN §1.9 stdnum-computed vectors
        ("N2110000MA1234567", "Q"),
    ],
)
def test_uscc_check_char(first17, expected):
    assert uscc_check_char(first17) == expected


def test_uscc_check_char_matches_stdnum_on_random_codes():
    rng = random.Random(32100)
    for _ in range(500):
        first17 = "".join(rng.choice(USCC_ALPHABET) for _ in range(17))
        assert uscc_check_char(first17) == stdnum_uscc.calc_check_digit(first17)


@pytest.mark.parametrize("bad", ["9137140OMA949RUW2", "91371400MA949RUW", ""])
def test_uscc_check_char_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        uscc_check_char(bad)


@pytest.mark.parametrize("code", VALID_USCC)
def test_is_valid_uscc_accepts_real_codes(code):
    assert is_valid_uscc(code)
    assert stdnum_uscc.is_valid(code)


@pytest.mark.parametrize("first17", ["Y1110000MA1234567", "N2110000MA1234567", "A1110000MA1234567"])
def test_is_valid_uscc_accepts_a_n_y_codes_stdnum_rejects(first17):
    code = first17 + uscc_check_char(first17)
    assert is_valid_uscc(code)
    assert not stdnum_uscc.is_valid(code)  # why the wrapper exists


@pytest.mark.parametrize(
    "code",
    [
        "91310115MA1H8R7C6D",  # check character wrong
        "91371400MA949RUWOH",  # letter O
        "91871400MA949RUW2H",  # region 871400 typed for 371400
        "94371400MA949RUW2H",  # registration type 94 does not exist
        "913714A0MA949RUW2H",  # region not digits
        "91371400MA949RUW2",  # 17 characters
        "91371400ma949ruw2h",  # not cleaned
        "",
        None,
    ],
)
def test_is_valid_uscc_rejects(code):
    assert not is_valid_uscc(code)


def test_is_valid_uscc_prefix_and_region_checked_even_when_check_char_fits():
    for first17 in ["94371400MA949RUW2", "913714A0MA949RUW2"]:
        assert not is_valid_uscc(first17 + uscc_check_char(first17))


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("11010519491231002X", True),
        ("360426199101010071", True),
        ("410921198001010010", True),
        ("110105194912310021", False),  # check digit
        ("110105194913310021", False),  # month 13
        ("000105194912310020", False),  # region 00
        ("11010519491231002x", False),  # not cleaned
        ("11010519491231002", False),
        (None, False),
    ],
)
def test_is_valid_resident_id(value, valid):
    assert is_valid_resident_id(value) is valid


@pytest.mark.parametrize(
    ("first8", "expected"),
    [
        ("60003734", "1"),  # inside 91110000600037341L
        ("MA949RUW", "2"),  # inside 91371400MA949RUW2H
        ("00000000", "0"),  # check 11 → '0'
    ],
)
def test_org_code_check_char(first8, expected):
    assert org_code_check_char(first8) == expected


def test_org_code_check_char_ten_is_x():
    found = next(f"{n:08d}" for n in range(10000) if org_code_check_char(f"{n:08d}") == "X")
    assert org_code_check_char(found) == "X"


@pytest.mark.parametrize(
    ("tin", "problem"),
    [
        ("91110000600037341L", None),
        ("91371400MA949RUW2H", None),
        ("91310115MA1H8R7C67", None),
        ("Y1110000MA1234567K", None),
        ("N2110000MA1234567Q", None),
        ("91310115MA1H8R7C6D", "check character is 'D', expected '7'"),
        ("91371400MA949RUWOH", "character 'O' is not allowed"),
        ("91371400MA949RUW2", "length 17, expected 15, 18 or 20"),
        ("91871400MA949RUW2H", "check character is 'H', expected '3'"),
        ("94371400MA949RUW2H", "registration type '94' does not exist"),
        ("360426199101010071", "a personal resident ID number, not a company USCC"),
        ("36042619910101007102", None),  # sole proprietor: resident ID + 2 digits
        ("11010519491231002X01", None),
        (
            "36042619910101007202",
            "first 18 characters are not a resident ID: check character is '2', expected '1'",
        ),
        (
            "36042619911301007102",
            "first 18 characters are not a resident ID: birth date '19911301' is not a date",
        ),
        ("91371400MA949RUW2H01", "a company USCC followed by 2 extra characters"),
        ("9137140OMA949RUW2H01", "20-character TIN must be a resident ID number followed by 2 digits"),
        ("110108600037341", None),  # old 税务登记证号: region + organisation code
        ("371400MA949RUW2", None),
        ("110108600037342", "organisation code check character is '2', expected '1'"),
        ("000000000000000", "region code '000000' does not exist"),
        ("11010A600037341", "region code '11010A' must be 6 digits"),
        ("110108600#37341", "character '#' is not allowed"),
        ("11010860003734A", "character 'A' is not allowed"),  # check character is a digit or X
        ("1234567890", "length 10, expected 15, 18 or 20"),
        ("", None),
        (None, None),
    ],
)
def test_tin_problem(tin, problem):
    assert tin_problem(tin) == problem


def test_tin_problem_expr_maps_every_row_and_keeps_nulls():
    values = ["91310115MA1H8R7C6D", None, "91371400MA949RUW2H", "91310115MA1H8R7C6D", "123"] * 3
    df = pl.DataFrame({"tin": values})
    out = df.select(tin_problem_expr(pl.col("tin")).alias("problem"))
    assert out.schema["problem"] == pl.String
    assert out["problem"].to_list() == [tin_problem(v) for v in values]


def test_tin_problem_expr_calls_python_once_per_distinct_value():
    tin_problem.cache_clear()
    df = pl.DataFrame({"tin": ["91310115MA1H8R7C6D", "91371400MA949RUW2H"] * 5000})
    df.select(tin_problem_expr(pl.col("tin")))
    info = tin_problem.cache_info()
    assert info.misses == 2
    assert info.hits < 100  # at most a couple per batch, never one per row


def test_tin_problem_expr_all_null_and_empty():
    df = pl.DataFrame({"tin": [None, None]}, schema={"tin": pl.String})
    assert df.select(tin_problem_expr(pl.col("tin")))["tin"].to_list() == [None, None]
    empty = pl.DataFrame({"tin": []}, schema={"tin": pl.String})
    assert empty.select(tin_problem_expr(pl.col("tin"))).height == 0


def test_tin_problem_expr_in_lazy_group_context():
    lf = pl.LazyFrame({"entity": ["a", "a", "b"], "tin": ["91310115MA1H8R7C6D", "91371400MA949RUW2H", None]})
    out = (
        lf.with_columns(tin_problem_expr(pl.col("tin")).alias("p"))
        .group_by("entity")
        .agg(pl.col("p").drop_nulls().len().alias("bad"))
    )
    assert dict(out.sort("entity").collect().iter_rows()) == {"a": 1, "b": 0}
