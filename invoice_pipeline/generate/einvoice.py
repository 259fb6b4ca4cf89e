"""einvoice: 数电 XML files (root EInvoice, no namespace) and OFD containers (SPEC §3.3)."""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import polars as pl

from invoice_pipeline.generate import model as m
from invoice_pipeline.generate.frames import InvoiceText, line_frame
from invoice_pipeline.generate.ids import amount_in_chinese
from invoice_pipeline.generate.xlsx import ZIP_TIME

MAX_XML = 2000
OFD_NS = "http://www.edrm.org.cn/schema/e-invoice/2019"
PROVINCE_NAMES = {
    "11": "北京市",
    "31": "上海市",
    "37": "山东省",
    "44": "广东省",
    "32": "江苏省",
    "33": "浙江省",
    "51": "四川省",
    "42": "湖北省",
    "12": "天津市",
    "50": "重庆市",
    "35": "福建省",
    "61": "陕西省",
    "92": "青岛市",
    "94": "厦门市",
    "95": "深圳市",
}


@dataclass
class EinvoiceResult:
    xml_files: dict[str, str] = field(default_factory=dict)  # file -> invoice_uid
    ofd_files: dict[str, str] = field(default_factory=dict)
    bomb: str = ""
    malformed: str = ""
    date_only: list[int] = field(default_factory=list)
    shuffled: list[int] = field(default_factory=list)
    invoices: list[int] = field(default_factory=list)  # every invoice with an XML or OFD file


def _money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def _el(tag: str, value: Any) -> str:
    return f"<{tag}>{escape(str(value))}</{tag}>"


def _block(tag: str, children: list[str], indent: str) -> str:
    inner = "".join(f"\n{indent}  {c}" for c in children)
    return f"<{tag}>{inner}\n{indent}</{tag}>"


def sample_xml(world: m.World, forced: list[int], excluded: np.ndarray) -> list[int]:
    """About a tenth of the 数电 invoices (at most 2 000 files), plus the planted ones."""
    rng = world.rng
    percent = np.isin(world.l_rate, sorted(m.PERCENT_RATES))
    odd_rate = np.bincount(world.l_inv[~percent], minlength=world.n) > 0
    eligible = (
        world.in_platform
        & np.isin(world.kind, [m.SD_ZP, m.SD_PP])
        & ~world.goods_list
        & ~odd_rate
        & ~excluded
        & (world.status != m.VOIDED)
    )
    eligible[forced] = False
    candidates = np.flatnonzero(eligible)
    digital = int((world.in_platform & np.isin(world.kind, [m.SD_ZP, m.SD_PP])).sum())
    size = max(0, min(MAX_XML - len(forced), round(digital * 0.1) - len(forced), len(candidates)))
    chosen = rng.choice(candidates, size=size, replace=False) if size else np.zeros(0, np.int64)
    return sorted({*map(int, chosen), *forced})


def invoice_xml(
    row: dict[str, Any],
    items: list[dict[str, Any]],
    *,
    date_only: bool,
    shuffle: bool,
    short_rate: bool,
    delta: int,
    rng: np.random.Generator,
) -> str:
    """The XML of one 数电 invoice; `delta` adds to line 1 (a planted disagreement)."""
    special = row["kind"] == m.SD_ZP
    province = row["seller_tin"][2:4]
    region4 = row["seller_tin"][2:6]
    amounts = []
    for k, item in enumerate(items):
        amt = item["l_amt"] + (delta if k == 0 else 0)
        tax = (
            item["l_tax"]
            if not (delta and k == 0)
            else int(m.line_tax(np.array([amt]), np.array([item["rate"]]))[0])
        )
        amounts.append((amt, tax))
    total_amt = row["amt"] + (sum(a for a, _ in amounts) - sum(i["l_amt"] for i in items) if delta else 0)
    total_tax = row["tax"] + (sum(t for _, t in amounts) - sum(i["l_tax"] for i in items) if delta else 0)
    total = row["tot"] + (total_amt - row["amt"]) + (total_tax - row["tax"])
    item_xml = []
    for item, (amt, tax) in zip(items, amounts, strict=True):
        rate = m.RATES[item["rate"]]
        rate_text = rate.xml.rstrip("0").rstrip(".") if short_rate and rate.bp else rate.xml
        children = [
            _el("ItemName", item["item"]),
            _el("SpecMod", item["spec"]),
            _el("MeaUnits", item["unit"]),
            _el("Quantity", item["quantity"]),
            _el("UnPrice", item["unit_price"]),
            _el("Amount", _money(amt)),
            _el("TaxRate", rate_text),
            _el("ComTaxAm", _money(tax)),
            _el("TotaltaxIncludedAmount", _money(amt + tax)),
            _el("TaxClassificationCode", item["tax_class"]),
        ]
        item_xml.append(_block("IssuItemInformation", children, "    "))
    label = ("01", "增值税专用发票") if special else ("02", "普通发票")
    issue = row["issue_time"][:10] if date_only else row["issue_time"]
    seller = [
        _el("SellerIdNum", row["seller_tin"]),
        _el("SellerName", row["seller_name"]),
        _el("SellerAddr", "见备注"),
        _el("SellerTelNum", f"0{rng.integers(10**9, 10**10)}"),
        _el("SellerBankName", "中国建设银行股份有限公司"),
        _el("SellerBankAccNum", f"1100{rng.integers(10**15, 10**16)}"),
    ]
    buyer = [
        _el("BuyerIdNum", row["buyer_tin"]),
        _el("BuyerName", row["buyer_name"]),
        _el("BuyerAddr", ""),
        _el("BuyerTelNum", ""),
        _el("BuyerBankName", ""),
        _el("BuyerBankAccNum", ""),
        _el("BuyerHandlingName", ""),
    ]
    basic = [
        _el("TotalAmWithoutTax", _money(total_amt)),
        _el("TotalTaxAm", _money(total_tax)),
        _el("TotalTax-includedAmount", _money(total)),
        _el("TotalTax-includedAmountInChinese", amount_in_chinese(total)),
        _el("Drawer", row["drawer"]),
        _el("RequestTime", row["issue_time"]),
    ]
    header = [
        _el("EIid", row["no20"]),
        _el("EInvoiceTag", f"SWEI{region4[:2]}00"),
        _el("Version", "0.33"),
        _block(
            "InherentLabel",
            [
                "<InIssuType><LabelCode>{}</LabelCode><LabelName>{}</LabelName></InIssuType>".format(
                    *(("Y", "蓝字发票") if row["positive"] else ("N", "红字发票"))
                ),
                "<EInvoiceType><LabelCode>01</LabelCode><LabelName>电子发票</LabelName></EInvoiceType>",
                f"<GeneralOrSpecialVAT><LabelCode>{label[0]}</LabelCode><LabelName>{label[1]}</LabelName></GeneralOrSpecialVAT>",
                "<TaxpayerType><LabelCode>1</LabelCode><LabelName>一般纳税人</LabelName></TaxpayerType>",
            ],
            "    ",
        ),
        "<UndefinedLabel><Label><LabelType>1</LabelType><LabelCode>01</LabelCode>"
        "<LabelName>网页开票</LabelName></Label></UndefinedLabel>",
    ]
    supervision = [
        _el("InvoiceNumber", row["no20"]),
        _el("IssueTime", issue),
        _el("TaxBureauCode", f"1{province}00000000"),
        _el("TaxBureauName", f"国家税务总局{PROVINCE_NAMES.get(province, '')}税务局"),
    ]
    if shuffle:  # element order is not fixed in real files
        for part in (seller, buyer, basic, supervision):
            rng.shuffle(part)
    data = [
        _block("SellerInformation", seller, "    "),
        _block("BuyerInformation", buyer, "    "),
        _block("BasicInformation", basic, "    "),
        *item_xml,
        _block("AdditionalInformation", [_el("Remark", row["remark"])], "    "),
    ]
    if shuffle:
        data = [data[k] for k in rng.permutation(len(data))]
    digest = hashlib.sha256(row["no20"].encode()).hexdigest()
    signature = [
        '<Reference URI="#EInvoiceData"/>',
        _el("SignatureAlgorithm", "1.2.156.10197.1.501"),
        _el("SignatureFormat", "GB/T 38540"),
        _el("SignatureTime", row["issue_time"]),
        _el("SignatureValue", digest),
        _el("KeyInfo", digest[:32]),
    ]
    top = [
        _block("Header", header, "  "),
        _block("EInvoiceData", data, "  "),
        _block("SellerAuthentication", [_el("AuthenticationMethods", "2")], "  "),
        _block("TaxSupervisionInfo", supervision, "  "),
        _block("TaxBureauSignature", signature, "  "),
    ]
    if shuffle:
        top = [top[k] for k in rng.permutation(len(top))]
    body = "".join(f"\n  {t}" for t in top)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<EInvoice>{body}\n</EInvoice>\n'


def xml_name(row: dict[str, Any]) -> str:
    stamp = row["issue_time"].replace("-", "").replace(":", "").replace(" ", "")
    return f"dzfp_{row['no20']}_{row['buyer_name']}_{stamp}.xml"


def _items(world: m.World, invoices: list[int]) -> dict[int, list[dict[str, Any]]]:
    start, end = m.line_slices(world, np.array(sorted(set(invoices)), np.int64))
    lines = line_frame(world, m.line_rows(start, end))
    rows = lines.filter(~pl.col("face")).sort(["inv", "line_no"])
    grouped: dict[int, list[dict[str, Any]]] = {}
    for r in rows.iter_rows(named=True):
        grouped.setdefault(r["inv"], []).append(r)
    return grouped


def write_einvoice(
    out: Path,
    world: m.World,
    texts: InvoiceText,
    sample: list[int],
    xml_delta: dict[int, int],
    ofd: list[tuple[int, str]],
    ofd_delta: dict[int, int],
) -> EinvoiceResult:
    rng = world.rng
    result = EinvoiceResult()
    result.invoices = sorted({*sample, *(i for i, _ in ofd)})
    rows = {r["i"]: r for r in texts.frame(np.array(result.invoices, np.int64)).iter_rows(named=True)}
    items = _items(world, sample + [i for i, _ in ofd])
    plain = [i for i in sample if i not in xml_delta]
    date_only = (
        set(rng.choice(plain, size=max(1, len(plain) * 3 // 20), replace=False).tolist()) if plain else set()
    )
    shuffled = (
        set(rng.choice(plain, size=max(1, len(plain) * 3 // 20), replace=False).tolist()) if plain else set()
    )
    for i in sample:
        row = rows[i]
        text = invoice_xml(
            row,
            items[i],
            date_only=i in date_only,
            shuffle=i in shuffled,
            short_rate=i % 4 == 1,
            delta=xml_delta.get(i, 0),
            rng=rng,
        )
        name = xml_name(row)
        (out / name).write_text(text, encoding="utf-8")
        result.xml_files[name] = row["uid"]
    result.date_only = sorted(date_only)
    result.shuffled = sorted(shuffled)
    for i, mode in ofd:
        name, data = ofd_file(rows[i], items[i], mode, ofd_delta.get(i, 0))
        (out / name).write_bytes(data)
        result.ofd_files[name] = rows[i]["uid"]
    result.bomb = "dzfp_26119000000000000001_未知单位_20261030120000.xml"
    (out / result.bomb).write_text(BILLION_LAUGHS, encoding="utf-8")
    broken = next(iter(result.xml_files))
    result.malformed = broken.replace(".xml", " (2).xml")
    text = (out / broken).read_text(encoding="utf-8")
    text = text.replace("<Remark>", "<Remark>货款&运费 ", 1)
    (out / result.malformed).write_text(text, encoding="utf-8")
    return result


BILLION_LAUGHS = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE EInvoice [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<EInvoice>
  <Header><EIid>26119000000000000001</EIid></Header>
  <EInvoiceData><AdditionalInformation><Remark>&lol9;</Remark></AdditionalInformation></EInvoiceData>
</EInvoice>
"""


def _zip(entries: list[tuple[str, str]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, text in entries:
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, text.encode("utf-8"))
    return buffer.getvalue()


def ofd_file(row: dict[str, Any], items: list[dict[str, Any]], mode: str, delta: int) -> tuple[str, bytes]:
    """An OFD container: OFD.xml with CustomDatas, and (mode `attach`) original_invoice.xml."""
    digital = row["no20"] is not None
    code = "" if digital else row["code"]
    number = row["no20"] if digital else row["no8"]
    day = row["issue_date"]
    cn_date = f"{day.year}年{day.month:02d}月{day.day:02d}日"
    check = "" if digital else hashlib.sha256(row["uid"].encode()).hexdigest()[:20]
    check = "".join(str(int(c, 16) % 10) for c in check)
    custom = [
        ("发票代码", code),
        ("发票号码", number),
        ("开票日期", cn_date),
        ("校验码", check),
        ("合计金额", _money(row["amt"] + delta)),
        ("价税合计", _money(row["tot"] + delta)),
        ("购买方名称", row["buyer_name"]),
        ("购买方纳税人识别号", row["buyer_tin"]),
        ("销售方名称", row["seller_name"]),
        ("销售方纳税人识别号", row["seller_tin"]),
    ]
    custom_xml = "".join(
        f"\n        <ofd:CustomData Name={quoteattr(k)}>{escape(v)}</ofd:CustomData>" for k, v in custom
    )
    doc_id = hashlib.sha256(("ofd" + row["uid"]).encode()).hexdigest()[:32]
    ofd_xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ofd:OFD xmlns:ofd="http://www.ofdspec.org/2016" Version="1.1" DocType="OFD">\n'
        "  <ofd:DocBody>\n    <ofd:DocInfo>\n"
        f"      <ofd:DocID>{doc_id}</ofd:DocID>\n      <ofd:Creator>电子发票服务平台</ofd:Creator>\n"
        f"      <ofd:CreationDate>{day.isoformat()}</ofd:CreationDate>\n"
        f"      <ofd:CustomDatas>{custom_xml}\n      </ofd:CustomDatas>\n"
        "    </ofd:DocInfo>\n    <ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot>\n"
        "  </ofd:DocBody>\n</ofd:OFD>\n"
    )
    document = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<ofd:Document xmlns:ofd="http://www.ofdspec.org/2016">'
        "<ofd:CommonData><ofd:MaxUnitID>10</ofd:MaxUnitID><ofd:PageArea><ofd:PhysicalBox>0 0 210 140"
        '</ofd:PhysicalBox></ofd:PageArea></ofd:CommonData><ofd:Pages><ofd:Page ID="1" '
        'BaseLoc="Pages/Page_0/Content.xml"/></ofd:Pages>'
        + ("<ofd:Attachments>Attachs/Attachments.xml</ofd:Attachments>" if mode == "attach" else "")
        + "</ofd:Document>\n"
    )
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<ofd:Page xmlns:ofd="http://www.ofdspec.org/2016"><ofd:Content>'
        f'<ofd:Layer ID="2"><ofd:TextObject ID="3" Boundary="10 10 80 6" Font="4" Size="3">'
        f'<ofd:TextCode X="0" Y="3">{escape(row["seller_name"])}</ofd:TextCode></ofd:TextObject>'
        "</ofd:Layer></ofd:Content></ofd:Page>\n"
    )
    entries = [
        ("OFD.xml", ofd_xml),
        ("Doc_0/Document.xml", document),
        ("Doc_0/Pages/Page_0/Content.xml", content),
    ]
    if mode == "attach":
        goods = "".join(
            "\n    <fp:GoodsInfo>"
            f"<fp:Item>{escape(i['item'])}</fp:Item><fp:Specification>{escape(i['spec'])}</fp:Specification>"
            f"<fp:MeasurementDimension>{escape(i['unit'])}</fp:MeasurementDimension>"
            f"<fp:Price>{i['unit_price']}</fp:Price><fp:Quantity>{i['quantity']}</fp:Quantity>"
            f"<fp:Amount>{_money(i['l_amt'])}</fp:Amount><fp:TaxScheme>{i['rate_text']}</fp:TaxScheme>"
            f"<fp:TaxAmount>{_money(i['l_tax'])}</fp:TaxAmount></fp:GoodsInfo>"
            for i in items
        )
        type_code = "10" if not digital else ("31" if row["kind"] == m.SD_ZP else "32")
        invoice = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<fp:eInvoice xmlns:fp="{OFD_NS}">\n'
            f"  <fp:InvoiceCode>{code}</fp:InvoiceCode>\n  <fp:InvoiceNo>{number}</fp:InvoiceNo>\n"
            f"  <fp:TypeCode>{type_code}</fp:TypeCode>\n  <fp:IssueDate>{cn_date}</fp:IssueDate>\n"
            f"  <fp:InvoiceCheckCode>{check}</fp:InvoiceCheckCode>\n"
            f"  <fp:MachineNo>661{doc_id[:9].upper()}</fp:MachineNo>\n"
            f"  <fp:Buyer>\n    <fp:BuyerName>{escape(row['buyer_name'])}</fp:BuyerName>\n"
            f"    <fp:BuyerTaxID>{row['buyer_tin']}</fp:BuyerTaxID>\n  </fp:Buyer>\n"
            f"  <fp:Seller>\n    <fp:SellerName>{escape(row['seller_name'])}</fp:SellerName>\n"
            f"    <fp:SellerTaxID>{row['seller_tin']}</fp:SellerTaxID>\n  </fp:Seller>\n"
            f"  <fp:GoodsInfos>{goods}\n  </fp:GoodsInfos>\n"
            f"  <fp:TaxExclusiveTotalAmount>{_money(row['amt'] + delta)}</fp:TaxExclusiveTotalAmount>\n"
            f"  <fp:TaxTotalAmount>{_money(row['tax'])}</fp:TaxTotalAmount>\n"
            f"  <fp:TaxInclusiveTotalAmount>{_money(row['tot'] + delta)}</fp:TaxInclusiveTotalAmount>\n"
            f"  <fp:Note>{escape(row['remark'])}</fp:Note>\n"
            f"  <fp:InvoiceClerk>{escape(row['drawer'])}</fp:InvoiceClerk>\n"
            "</fp:eInvoice>\n"
        )
        attachments = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<ofd:Attachments xmlns:ofd="http://www.ofdspec.org/2016">'
            '<ofd:Attachment ID="20" Name="original_invoice" Format="xml" Visible="false">'
            "<ofd:FileLoc>original_invoice.xml</ofd:FileLoc></ofd:Attachment></ofd:Attachments>\n"
        )
        entries += [
            ("Doc_0/Attachs/Attachments.xml", attachments),
            ("Doc_0/Attachs/original_invoice.xml", invoice),
        ]
    stamp = row["issue_time"].replace("-", "").replace(":", "").replace(" ", "")
    name = f"dzfp_{number}_{row['buyer_name']}_{stamp}.ofd" if digital else f"{code}_{number}.ofd"
    return name, _zip(entries)
