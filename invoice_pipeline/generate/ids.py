"""Identifiers with real check characters: USCC (GB 32100), resident ID (GB 11643), and
the invoice-number shapes of DOMAIN §1.2–1.4. Pure functions, used by the generator and
its tests (never by the pipeline, which validates with its own code)."""

from __future__ import annotations

USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(USCC_CHARS)}
_USCC_WEIGHTS = [pow(3, i, 31) for i in range(17)]
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_RIC_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]
_RIC_CHECK = "10X98765432"

# Valid first two characters of a USCC (登记管理部门 + 机构类别), DOMAIN §1.9.
USCC_PREFIXES = frozenset(
    [
        "11",
        "12",
        "13",
        "19",
        "21",
        "29",
        "31",
        "32",
        "33",
        "34",
        "35",
        "39",
        "41",
        "49",
        "51",
        "52",
        "53",
        "59",
        "61",
        "62",
        "69",
        "71",
        "72",
        "79",
        "81",
        "89",
        "91",
        "92",
        "93",
        "A1",
        "A9",
        "N1",
        "N2",
        "N3",
        "N9",
        "Y1",
    ]
)


def org_code_check(body8: str) -> str:
    """GB 11714 check character of an 8-character 组织机构代码 body."""
    total = sum(
        (int(c) if c.isdigit() else ord(c) - 55) * w for c, w in zip(body8, _ORG_WEIGHTS, strict=True)
    )
    value = 11 - total % 11
    return {10: "X", 11: "0"}.get(value, str(value))


def uscc_check(first17: str) -> str:
    total = sum(_USCC_VALUE[c] * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_CHARS[(31 - total % 31) % 31]


def make_uscc(prefix: str, region: str, body8: str) -> str:
    """`prefix` (2) + 行政区划 (6) + 主体标识码 (8 + GB 11714 check) + check character."""
    first17 = prefix + region + body8 + org_code_check(body8)
    return first17 + uscc_check(first17)


def is_valid_uscc(value: str) -> bool:
    if len(value) != 18 or any(c not in _USCC_VALUE for c in value):
        return False
    if value[:2] not in USCC_PREFIXES or not value[2:8].isdigit():
        return False
    return uscc_check(value[:17]) == value[17]


def ric_check(first17: str) -> str:
    return _RIC_CHECK[sum(int(c) * w for c, w in zip(first17, _RIC_WEIGHTS, strict=True)) % 11]


def make_ric(region: str, birth: str, seq: int) -> str:
    """An 18-character 居民身份证号: region (6) + birth date yyyymmdd + 3-digit sequence + check."""
    first17 = f"{region}{birth}{seq:03d}"
    return first17 + ric_check(first17)


def is_valid_ric(value: str) -> bool:
    return len(value) == 18 and value[:17].isdigit() and ric_check(value[:17]) == value[17]


def is_valid_tin(value: str) -> bool:
    """The pipeline's invalid_tin rule as SPEC §4.2 states it (18-char USCC or 20-char 个体户)."""
    if len(value) == 20:
        return value[18:].isdigit() and is_valid_ric(value[:18])
    return is_valid_uscc(value)


def legacy_code(kind: str, region: str, year: str, batch: int) -> str:
    """A 发票代码 (DOMAIN §1.2) for a 4-digit region (`1100` Beijing): 10 digits for paper 专票,
    12 for the 普票 family. `kind` is `zp` (专票), `pp` (二联普票, suffix 04), `ep` (电子普票,
    suffix 11) or `sdp` (数电纸质发票, suffix 04 — its 20-digit number is its identity).
    """
    if kind == "zp":
        return f"{region}{year}{batch % 10}130"
    suffix = {"pp": "04", "ep": "11", "sdp": "04"}[kind]
    return f"0{region}{year}{batch:03d}{suffix}"


_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_UNITS = ("", "拾", "佰", "仟")
_SECTIONS = ("", "万", "亿", "万")


def amount_in_chinese(cents: int) -> str:
    """价税合计（大写）: 1234.50 -> 壹仟贰佰叁拾肆圆伍角; 1005.06 -> 壹仟零伍圆零陆分."""
    if cents < 0:
        return "（负数）" + amount_in_chinese(-cents)
    yuan, rest = divmod(cents, 100)
    jiao, fen = divmod(rest, 10)
    digits = str(yuan)
    out: list[str] = []
    zero_pending = False
    for i, ch in enumerate(digits):
        power = len(digits) - 1 - i
        if ch == "0":
            zero_pending = bool(out)
        else:
            if zero_pending:
                out.append("零")
            zero_pending = False
            out.append(_DIGITS[int(ch)] + _UNITS[power % 4])
        if power % 4 == 0 and power and int(digits[max(0, i - 3) : i + 1]):
            out.append(_SECTIONS[power // 4])
    text = "".join(out) + "圆" if yuan else ""
    if not jiao and not fen:
        return (text or "零圆") + "整"
    if jiao:
        text += _DIGITS[jiao] + "角"
    elif yuan:
        text += "零"
    return text + (_DIGITS[fen] + "分" if fen else "整")
