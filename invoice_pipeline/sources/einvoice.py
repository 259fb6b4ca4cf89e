"""Reader `einvoice`: 数电票 XML (`*.xml`) and OFD (`*.ofd`), one invoice per file.

XML is untrusted input: it is parsed with defusedxml and any DTD or entity declaration refuses
the file (billion laughs, external entities). Elements are found by their exact path from the
root, child by child and by local name, so sibling order never matters and a `PlateNumber` or an
`InvoiceNumber` elsewhere in the tree is never picked up by mistake.

OFD is a ZIP container, read in memory (never extracted): `Doc_0/Attachs/original_invoice.xml`
first, else the `CustomData` entries of `OFD.xml`. Member names that are absolute or climb with
`..` refuse the file; a member may not expand beyond `MAX_MEMBER_BYTES`.

Leaves the spec does not map are kept in `_extra` under their path (signature blobs excepted).
"""

from __future__ import annotations

import codecs
import json
import re
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

import polars as pl
from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import fromstring

from invoice_pipeline.sources.base import FileRead, RowError, UnreadableFile
from invoice_pipeline.sources.text import empty_table, normalize_label
from invoice_pipeline.specs import SourceSpec, TableSpec

MAX_XML_BYTES = 50 << 20
MAX_MEMBER_BYTES = 50 << 20
MAX_ZIP_MEMBERS = 10_000

INVOICE_TABLE = "einvoice"
LINES_TABLE = "einvoice_lines"
CARRIED = ("digital_invoice_no", "invoice_code", "invoice_no")  # copied from the invoice onto its lines

# ---- 数电票 XML: spec column -> paths from the root, first present wins (spec labels document these)
XML_FIELDS: dict[str, tuple[str, ...]] = {
    "digital_invoice_no": ("Header/EIid", "TaxSupervisionInfo/InvoiceNumber"),
    "vat_label_code": ("Header/InherentLabel/GeneralOrSpecialVAT/LabelCode",),
    "seller_tin": ("EInvoiceData/SellerInformation/SellerIdNum",),
    "seller_name": ("EInvoiceData/SellerInformation/SellerName",),
    "buyer_tin": ("EInvoiceData/BuyerInformation/BuyerIdNum",),
    "buyer_name": ("EInvoiceData/BuyerInformation/BuyerName",),
    "amount_excl_tax": ("EInvoiceData/BasicInformation/TotalAmWithoutTax",),
    "tax_amount": ("EInvoiceData/BasicInformation/TotalTaxAm",),
    "amount_incl_tax": ("EInvoiceData/BasicInformation/TotalTax-includedAmount",),
    "drawer": ("EInvoiceData/BasicInformation/Drawer",),
    "request_time": ("EInvoiceData/BasicInformation/RequestTime",),
    "issue_time": ("TaxSupervisionInfo/IssueTime",),
    "tax_bureau_code": ("TaxSupervisionInfo/TaxBureauCode",),
    "remark": ("EInvoiceData/AdditionalInformation/Remark",),
}
XML_LINES = "EInvoiceData/IssuItemInformation"
XML_LINE_FIELDS: dict[str, str] = {
    "item_name": "ItemName",
    "spec_model": "SpecMod",
    "unit": "MeaUnits",
    "quantity": "Quantity",
    "unit_price": "UnPrice",
    "amount_excl_tax": "Amount",
    "tax_rate": "TaxRate",
    "tax_amount": "ComTaxAm",
    "amount_incl_tax": "TotaltaxIncludedAmount",  # sic: not the header's TotalTax-includedAmount
    "tax_class_code": "TaxClassificationCode",
}
XML_SKIP = ("TaxBureauSignature",)  # signature blob: not data

# ---- OFD Doc_0/Attachs/original_invoice.xml (namespace http://www.edrm.org.cn/schema/e-invoice/2019)
OFD_ATTACHMENT = "Doc_0/Attachs/original_invoice.xml"
OFD_MAIN = "OFD.xml"
OFD_NUMBER = "InvoiceNo"
OFD_FIELDS: dict[str, str] = {
    "invoice_code": "InvoiceCode",
    "issue_time": "IssueDate",
    "buyer_name": "Buyer/BuyerName",
    "buyer_tin": "Buyer/BuyerTaxID",
    "seller_name": "Seller/SellerName",
    "seller_tin": "Seller/SellerTaxID",
    "amount_excl_tax": "TaxExclusiveTotalAmount",
    "tax_amount": "TaxTotalAmount",
    "amount_incl_tax": "TaxInclusiveTotalAmount",
    "drawer": "InvoiceClerk",
    "remark": "Note",
}
OFD_LINES = "GoodsInfos/GoodsInfo"
OFD_LINE_FIELDS: dict[str, str] = {
    "item_name": "Item",
    "spec_model": "Specification",
    "unit": "MeasurementDimension",
    "unit_price": "Price",
    "quantity": "Quantity",
    "amount_excl_tax": "Amount",
    "tax_rate": "TaxScheme",
    "tax_amount": "TaxAmount",
}
OFD_SKIP = ("GraphCode", "Signature")  # QR image and signature blobs
# ---- OFD.xml ofd:DocInfo/ofd:CustomDatas/ofd:CustomData[@Name]
CUSTOM_NUMBER = "发票号码"
CUSTOM_FIELDS: dict[str, str] = {
    "invoice_code": "发票代码",
    "issue_time": "开票日期",
    "amount_excl_tax": "合计金额",
    "tax_amount": "合计税额",
    "amount_incl_tax": "价税合计",
    "buyer_name": "购买方名称",
    "buyer_tin": "购买方纳税人识别号",
    "seller_name": "销售方名称",
    "seller_tin": "销售方纳税人识别号",
}

_DIGITAL_NUMBER = re.compile(r"\d{20}")
_DECLARED_ENCODING = re.compile(
    rb"""^(?:\xef\xbb\xbf)?\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']"""
)
_GB_FAMILY = {"gb2312", "gbk", "cp936", "gb18030", "gb_2312-80"}
_EXPAT_ENCODINGS = {
    "utf-8",
    "utf8",
    "utf-16",
    "utf16",
    "us-ascii",
    "ascii",
    "iso-8859-1",
    "latin-1",
    "latin1",
}


class Refused(UnreadableFile):
    """Hostile content (DTD/entities, zip bomb): the whole file is refused, no fallback is tried."""


def read(path: Path, spec: SourceSpec) -> FileRead:
    suffix = path.suffix.lower()
    if suffix == ".xml":
        if path.stat().st_size > MAX_XML_BYTES:
            raise UnreadableFile(f"XML larger than {MAX_XML_BYTES >> 20} MB: not a single invoice")
        return _read_xml(path.read_bytes(), spec)
    if suffix == ".ofd":
        return _read_ofd(path, spec)
    raise UnreadableFile(
        f"unsupported file type {path.suffix or '(none)'!r}: reader einvoice reads .xml, .ofd"
    )


# =========================================================================== XML helpers


def parse_xml(data: bytes, where: str = "") -> Element:
    """Parse untrusted XML: DTDs, entity declarations and external references are refused."""
    match = _DECLARED_ENCODING.match(data)
    source: bytes | str = data
    if match and match.group(1).decode("ascii").lower() not in _EXPAT_ENCODINGS:
        # expat decodes only UTF-8/16 and Latin-1 itself; decode e.g. GBK here, then drop the declaration.
        encoding = match.group(1).decode("ascii")
        if encoding.lower() in _GB_FAMILY:
            encoding = "gb18030"  # the superset: GB2312/GBK declarations often carry GBK-only characters
        try:
            codecs.lookup(encoding)
            text = data.decode(encoding)
        except LookupError as e:
            raise UnreadableFile(f"{where}XML declares unknown encoding {encoding!r}") from e
        except UnicodeDecodeError as e:
            raise UnreadableFile(
                f"{where}XML is not valid {encoding}: byte 0x{e.object[e.start]:02x} at offset {e.start}"
            ) from e
        source = re.sub(r"^\ufeff?\s*<\?xml[^>]*\?>", "", text, count=1)
    try:
        return fromstring(source, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden) as e:
        raise Refused(f"{where}XML with DTD/entity declarations is refused") from e
    except ParseError as e:
        raise UnreadableFile(f"{where}XML is not well-formed: {e}") from e


def local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def find(element: Element | None, path: str) -> Element | None:
    """The element at `path` (slash-separated local names) below `element`; first of each name."""
    for step in path.split("/"):
        if element is None:
            return None
        element = next((child for child in element if local(child.tag) == step), None)
    return element


def find_all(element: Element | None, path: str) -> list[Element]:
    """All elements at `path`: the first match of each step, every match of the last."""
    *parents, last = path.split("/")
    parent = find(element, "/".join(parents)) if parents else element
    return [] if parent is None else [child for child in parent if local(child.tag) == last]


def text_of(element: Element | None) -> str | None:
    if element is None:
        return None
    text = "".join(element.itertext())
    return text if text != "" else None


def leaves(element: Element, skip: set[str]) -> Iterator[tuple[str, str]]:
    """(path, text) of every non-empty leaf below `element`, except below paths in `skip` (unindexed).

    Repeated siblings are indexed from 1: `Header/UndefinedLabel/Label[2]/LabelName`.
    """
    counts = Counter(local(child.tag) for child in element)
    seen: Counter[str] = Counter()
    for child in element:
        name = local(child.tag)
        if not name or name in skip:
            continue
        seen[name] += 1
        step = f"{name}[{seen[name]}]" if counts[name] > 1 else name
        if len(child):
            below = {s[len(name) + 1 :] for s in skip if s.startswith(name + "/")}
            for path, value in leaves(child, below):
                yield f"{step}/{path}", value
        else:
            value = text_of(child)
            if value is not None and value.strip():
                yield step, value


def _extra(pairs: Iterator[tuple[str, str]]) -> str | None:
    values = dict(pairs)
    return json.dumps(values, ensure_ascii=False, separators=(",", ":")) if values else None


def _missing(present: set[str], table: TableSpec, labels: dict[str, str]) -> None:
    """`missing columns: …` naming the format's own element/entry names, in spec order."""
    lacking = [
        labels.get(c, table.columns[c]) for c in table.columns if c in table.required and c not in present
    ]
    if lacking:
        raise UnreadableFile(f"missing columns: {', '.join(lacking)}")


def _frame(table: TableSpec, records: list[dict[str, str | None]], rows: list[str]) -> pl.DataFrame:
    """Records keyed by spec column (plus `_extra`) -> the raw table."""
    if not records:
        return empty_table(table)
    data = {c: [r.get(c) for r in records] for c in table.columns}
    data["_source_row"] = rows
    data["_extra"] = [r.get("_extra") for r in records]
    return pl.DataFrame(data, schema=dict.fromkeys(data, pl.String))


# =========================================================================== 数电票 XML


def _read_xml(data: bytes, spec: SourceSpec) -> FileRead:
    root = parse_xml(data)
    if local(root.tag) != "EInvoice":
        raise UnreadableFile(f"XML root is <{local(root.tag) or root.tag}>, not <EInvoice>: not a 数电票 XML")
    invoice_table, lines_table = spec.tables[INVOICE_TABLE], spec.tables[LINES_TABLE]

    invoice: dict[str, str | None] = dict.fromkeys(invoice_table.columns)
    present: set[str] = set()
    labels: dict[str, str] = {}
    for column, paths in XML_FIELDS.items():
        labels[column] = paths[0]
        values = [text_of(e) for e in (find(root, p) for p in paths) if e is not None]
        if values:
            present.add(column)
            invoice[column] = next((v for v in values if v is not None and v.strip()), values[0])
    number = invoice["digital_invoice_no"]
    if number is None or not number.strip():
        raise UnreadableFile(
            "invoice XML has no invoice number (neither Header/EIid nor TaxSupervisionInfo/InvoiceNumber)"
        )
    _missing(present, invoice_table, labels)
    invoice["file_format"] = "xml"
    mapped = {p for paths in XML_FIELDS.values() for p in paths}
    invoice["_extra"] = _extra(leaves(root, mapped | {XML_LINES, *XML_SKIP}))

    errors: list = []
    lines, rows = _lines(root, XML_LINES, XML_LINES, XML_LINE_FIELDS, lines_table, invoice, errors)
    return FileRead(
        tables={
            INVOICE_TABLE: _frame(invoice_table, [invoice], ["EInvoice"]),
            LINES_TABLE: _frame(lines_table, lines, rows),
        },
        notes={"file_format": "xml"},
        row_errors=errors,
    )


def _lines(root, path, row_prefix, fields, lines_table, invoice, errors) -> tuple[list[dict], list[str]]:
    """Every line element under `path`, with the invoice's identity carried onto each line."""
    lines, rows = [], []
    for n, item in enumerate(find_all(root, path), start=1):
        source_row = f"{row_prefix}[{n}]"
        line = _line(item, fields, lines_table, source_row, errors)
        if line is None:
            continue
        line.update({c: invoice[c] for c in CARRIED})
        lines.append(line)
        rows.append(source_row)
    return lines, rows


def _line(
    item: Element, fields: dict[str, str], table: TableSpec, source_row: str, errors: list[RowError]
) -> dict[str, str | None] | None:
    """One line element -> record; a line lacking a required element is a RowError."""
    line: dict[str, str | None] = dict.fromkeys(table.columns)
    absent = []
    for column, name in fields.items():
        element = find(item, name)
        if element is None:
            if column in table.required:
                absent.append(name)
            continue
        line[column] = text_of(element)
    if absent:
        errors.append(
            RowError(
                table.name, source_row, None, None, f"line lacks required element(s): {', '.join(absent)}"
            )
        )
        return None
    line["_extra"] = _extra(leaves(item, set(fields.values())))
    return line


# =========================================================================== OFD


def _unsafe_name(name: str) -> bool:
    parts = re.split(r"[\\/]", name)
    return name.startswith(("/", "\\")) or bool(re.match(r"^[A-Za-z]:", name)) or ".." in parts


def _member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """A member's bytes, in memory, refusing anything that expands beyond the cap."""
    if info.file_size > MAX_MEMBER_BYTES:
        raise Refused(f"OFD member {info.filename} expands to {info.file_size} bytes (zip bomb?)")
    try:
        with archive.open(info) as f:
            data = f.read(MAX_MEMBER_BYTES + 1)
    except (zipfile.BadZipFile, RuntimeError, OSError, EOFError, ValueError) as e:
        raise UnreadableFile(f"OFD member {info.filename} is corrupt: {e}") from e
    except Exception as e:  # zlib.error and friends
        raise UnreadableFile(f"OFD member {info.filename} is corrupt: {e}") from e
    if len(data) > MAX_MEMBER_BYTES:
        raise Refused(f"OFD member {info.filename} expands beyond {MAX_MEMBER_BYTES >> 20} MB (zip bomb?)")
    return data


def _read_ofd(path: Path, spec: SourceSpec) -> FileRead:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise UnreadableFile(f"OFD is not a readable ZIP container: {e}") from e
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            raise UnreadableFile(f"OFD has {len(infos)} members (more than {MAX_ZIP_MEMBERS}): refused")
        for info in infos:
            if _unsafe_name(info.filename):
                raise UnreadableFile(f"OFD member with unsafe path {info.filename!r} is refused")
        by_name = {info.filename.replace("\\", "/").lower(): info for info in infos}
        attachment = by_name.get(OFD_ATTACHMENT.lower())
        main = by_name.get(OFD_MAIN.lower())
        problem = None
        if attachment is not None:
            try:
                return _ofd_attachment(
                    parse_xml(_member(archive, attachment), f"{attachment.filename}: "), spec
                )
            except Refused:
                raise
            except UnreadableFile as e:
                if main is None:
                    raise
                problem = str(e)
        if main is None:
            raise UnreadableFile(f"OFD has neither {OFD_ATTACHMENT} nor {OFD_MAIN}")
        try:
            return _ofd_custom_data(parse_xml(_member(archive, main), f"{OFD_MAIN}: "), spec, problem)
        except Refused:
            raise
        except UnreadableFile as e:
            if problem is None or problem in str(e):
                raise
            raise UnreadableFile(f"{e}; and {OFD_ATTACHMENT}: {problem}") from e


def _number_columns(number: str, code: str | None) -> dict[str, str | None]:
    """A 20-digit number is a 数电 number (code/number stay null); else legacy code + 8-digit number."""
    if _DIGITAL_NUMBER.fullmatch(number.strip()):
        return {"digital_invoice_no": number, "invoice_code": None, "invoice_no": None}
    return {"digital_invoice_no": None, "invoice_code": code, "invoice_no": number}


def _ofd_attachment(root: Element, spec: SourceSpec) -> FileRead:
    where = OFD_ATTACHMENT
    if local(root.tag) != "eInvoice":
        raise UnreadableFile(f"{where}: root is <{local(root.tag)}>, not <eInvoice>")
    invoice_table, lines_table = spec.tables[INVOICE_TABLE], spec.tables[LINES_TABLE]
    number = text_of(find(root, OFD_NUMBER))
    if number is None or not number.strip():
        raise UnreadableFile(f"{where}: invoice has no invoice number ({OFD_NUMBER})")
    invoice: dict[str, str | None] = dict.fromkeys(invoice_table.columns)
    present = {"digital_invoice_no", "invoice_no"}
    for column, name in OFD_FIELDS.items():
        element = find(root, name)
        if element is not None:
            present.add(column)
            invoice[column] = text_of(element)
    _missing(present, invoice_table, OFD_FIELDS)
    invoice.update(_number_columns(number, invoice["invoice_code"]))
    invoice["file_format"] = "ofd"
    invoice["_extra"] = _extra(leaves(root, {OFD_NUMBER, *OFD_FIELDS.values(), "GoodsInfos", *OFD_SKIP}))

    errors: list = []
    lines, rows = _lines(
        root, OFD_LINES, f"{where}#{OFD_LINES}", OFD_LINE_FIELDS, lines_table, invoice, errors
    )
    return FileRead(
        tables={
            INVOICE_TABLE: _frame(invoice_table, [invoice], [where]),
            LINES_TABLE: _frame(lines_table, lines, rows),
        },
        notes={"file_format": "ofd", "ofd_source": where},
        row_errors=errors,
    )


def _ofd_custom_data(root: Element, spec: SourceSpec, problem: str | None) -> FileRead:
    entries: dict[str, str | None] = {}
    names: dict[str, str] = {}
    for element in root.iter():
        if local(element.tag) != "CustomDatas":
            continue
        for child in element:
            name = child.get("Name")
            if local(child.tag) == "CustomData" and name is not None and normalize_label(name) not in entries:
                entries[normalize_label(name)] = text_of(child)
                names[normalize_label(name)] = name.strip()
    number = entries.get(normalize_label(CUSTOM_NUMBER))
    if number is None or not number.strip():
        reason = f"OFD has neither {OFD_ATTACHMENT} nor usable {OFD_MAIN} CustomData (no {CUSTOM_NUMBER})"
        raise UnreadableFile(reason)
    invoice_table = spec.tables[INVOICE_TABLE]
    invoice: dict[str, str | None] = dict.fromkeys(invoice_table.columns)
    present = {"digital_invoice_no", "invoice_no"}
    for column, name in CUSTOM_FIELDS.items():
        key = normalize_label(name)
        if key in entries:
            present.add(column)
            invoice[column] = entries[key]
    _missing(present, invoice_table, CUSTOM_FIELDS)
    invoice.update(_number_columns(number, invoice["invoice_code"]))
    invoice["file_format"] = "ofd"
    known = {normalize_label(n) for n in (CUSTOM_NUMBER, *CUSTOM_FIELDS.values())}
    invoice["_extra"] = _extra(
        (names[k], v) for k, v in entries.items() if k not in known and v and v.strip()
    )
    notes = {"file_format": "ofd", "ofd_source": f"{OFD_MAIN}#CustomDatas"}
    if problem:
        notes["ofd_attachment_problem"] = problem
    return FileRead(
        tables={
            INVOICE_TABLE: _frame(invoice_table, [invoice], [f"{OFD_MAIN}#CustomDatas"]),
            LINES_TABLE: empty_table(spec.tables[LINES_TABLE]),
        },
        notes=notes,
    )
