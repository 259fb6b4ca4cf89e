"""Taxpayer identification numbers (纳税人识别号): validation with reasons a finance user reads.

Scalar functions (one value at a time) plus `tin_problem_expr`, which runs them once per
distinct value of a column. Forms accepted (DOMAIN §1.9–1.10):

- 18 characters: 统一社会信用代码 (USCC, GB 32100-2015);
- 20 characters: a sole proprietor's 18-character resident ID number + 2 digits;
- 15 characters: old 税务登记证号 = 6-digit region + 9-character organisation code (GB 11714).
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache

import polars as pl
from stdnum.cn import ric as _stdnum_ric

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
# 登记管理部门 + 机构类别 pairs that GB 32100 assigns (DOMAIN §1.9).
USCC_PREFIXES = frozenset(
    {
        "11", "12", "13", "19", "21", "29", "31", "32", "33", "34", "35", "39",
        "41", "49", "51", "52", "53", "59", "61", "62", "69", "71", "72", "79",
        "81", "89", "91", "92", "93", "A1", "A9", "N1", "N2", "N3", "N9", "Y1",
    }
)  # fmt: skip
# GB 11714 organisation codes use digits and all 26 Latin letters (A=10 … Z=35).
_ORG_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
# First two digits of a GB/T 2260 region code: provinces, plus 71/81/82/83 (Taiwan, Hong
# Kong, Macao; 83 appears on Taiwan residents' residence permits).
PROVINCES = frozenset(
    {
        "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
        "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65",
        "71", "81", "82", "83",
    }
)  # fmt: skip
# GB 11643 resident ID: ISO 7064 MOD 11-2 weights 2^(17-i) mod 11.
RIC_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_RESIDENT_ID_PLUS_2 = re.compile(r"^[0-9]{17}[0-9X][0-9]{2}$")


def uscc_check_char(first17: str) -> str:
    """GB 32100 check character for the first 17 characters of a USCC.

    Raises ValueError when a character is outside the USCC alphabet or the length is not 17.
    """
    if len(first17) != 17:
        raise ValueError(f"expected 17 characters, got {len(first17)}")
    total = 0
    for char, weight in zip(first17, USCC_WEIGHTS, strict=True):
        value = USCC_ALPHABET.find(char)
        if value < 0:
            raise ValueError(f"character {char!r} is not allowed")
        total += value * weight
    return USCC_ALPHABET[(31 - total % 31) % 31]


def org_code_check_char(first8: str) -> str:
    """GB 11714 check character for the first 8 characters of an organisation code."""
    if len(first8) != 8:
        raise ValueError(f"expected 8 characters, got {len(first8)}")
    total = 0
    for char, weight in zip(first8, _ORG_WEIGHTS, strict=True):
        value = _ORG_ALPHABET.find(char)
        if value < 0:
            raise ValueError(f"character {char!r} is not allowed")
        total += value * weight
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def _uscc_problem(s: str) -> str | None:
    # python-stdnum would reject valid codes starting with A, N or Y, so the rule is here.
    bad = next((c for c in s if c not in USCC_ALPHABET), None)
    if bad is not None:
        return f"character '{bad}' is not allowed"
    if s[:2] not in USCC_PREFIXES:
        return f"registration type '{s[:2]}' does not exist"
    if not s[2:8].isascii() or not s[2:8].isdigit():
        return f"region code '{s[2:8]}' must be 6 digits"
    expected = uscc_check_char(s[:17])
    if s[17] != expected:
        return f"check character is '{s[17]}', expected '{expected}'"
    return None


def _resident_id_problem(s: str) -> str | None:
    if len(s) != 18:
        return f"length {len(s)}, expected 18"
    if not (s[:17].isascii() and s[:17].isdigit() and s[17] in "0123456789X"):
        return "must be 17 digits followed by a digit or 'X'"
    if s[:2] not in PROVINCES:
        return f"region code '{s[:6]}' does not exist"
    try:
        birth = dt.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return f"birth date '{s[6:14]}' is not a date"
    if not dt.date(1900, 1, 1) <= birth <= dt.date.today():
        return f"birth date '{s[6:14]}' is not plausible"
    expected = _stdnum_ric.calc_check_digit(s)
    if s[17] != expected:
        return f"check character is '{s[17]}', expected '{expected}'"
    return None


def is_valid_uscc(s: str | None) -> bool:
    """True for an 18-character USCC with a real registration type, a 6-digit region and
    the right check character — including codes starting with A, N or Y."""
    return isinstance(s, str) and len(s) == 18 and _uscc_problem(s) is None


def is_valid_resident_id(s: str | None) -> bool:
    """True for an 18-character 居民身份证号: province, real birth date, MOD 11-2 check.

    The birthplace is not looked up in a county table (stdnum does): county codes change
    every year and a stale table would flag real sole proprietors.
    """
    return isinstance(s, str) and _resident_id_problem(s) is None


def _old_tax_number_problem(s: str) -> str | None:
    region, org = s[:6], s[6:]
    if not (region.isascii() and region.isdigit()):
        return f"region code '{region}' must be 6 digits"
    if region[:2] not in PROVINCES:
        return f"region code '{region}' does not exist"
    bad = next((c for c in org[:8] if c not in _ORG_ALPHABET), None)
    if bad is None and org[8] not in "0123456789X":
        bad = org[8]
    if bad is not None:
        return f"character '{bad}' is not allowed"
    expected = org_code_check_char(org[:8])
    if org[8] != expected:
        return f"organisation code check character is '{org[8]}', expected '{expected}'"
    return None


@lru_cache(maxsize=65536)
def tin_problem(s: str | None) -> str | None:
    """None when the TIN is acceptable, else a short English reason.

    Input is already cleaned (upper-case, no spaces); None or '' → None.
    """
    if not s:
        return None
    n = len(s)
    if n == 18:
        problem = _uscc_problem(s)
        if problem is not None and is_valid_resident_id(s):
            return "a personal resident ID number, not a company USCC"
        return problem
    if n == 20:
        if is_valid_uscc(s[:18]):
            return "a company USCC followed by 2 extra characters"
        if not _RESIDENT_ID_PLUS_2.match(s):
            return "20-character TIN must be a resident ID number followed by 2 digits"
        problem = _resident_id_problem(s[:18])
        return None if problem is None else f"first 18 characters are not a resident ID: {problem}"
    if n == 15:
        return _old_tax_number_problem(s)
    return f"length {n}, expected 15, 18 or 20"


def _problems_of_distinct(values: pl.Series) -> pl.Series:
    distinct = values.unique().drop_nulls().to_list()
    mapping = {value: tin_problem(value) for value in distinct}
    return values.replace_strict(mapping, default=None, return_dtype=pl.String)


def tin_problem_expr(e: pl.Expr) -> pl.Expr:
    """`tin_problem` over a column, computed once per distinct value (50 k distinct TINs
    on 10 M rows cost 50 k Python calls, not 10 M)."""
    return e.cast(pl.String).map_batches(_problems_of_distinct, return_dtype=pl.String, is_elementwise=True)
