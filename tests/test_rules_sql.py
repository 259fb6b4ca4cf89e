"""Every rule of `checks/` on tiny given/expected tables (DESIGN: "SQL: each model and rule on
tiny given/expected tables in a tmp_path DuckDB").

Harness: one warehouse with the real, empty schema is built per session by running the
pipeline on an empty landing folder. Each case copies that file into its own tmp_path,
inserts only its given rows (the row builders below fill the columns every real row has:
booleans such as `is_live`, `is_effective`, `is_positive`, `is_goods_list_face` are never
NULL in the pipeline), derives `core.authoritative_invoices` from the given `core.invoices`
with the real model, and evaluates the one rule with the thresholds of `checks/rules.yaml`.
The case asserts the exact set of findings `(subject, entity_tin, direction)`, and the
invoice, amount or period where the case names them.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest

from invoice_pipeline import project
from invoice_pipeline.findings import evaluate_rule, load_rules, prepare_rule_inputs
from invoice_pipeline.layers import Model, build_model
from invoice_pipeline.warehouse import quote

SHANGHAI = ZoneInfo("Asia/Shanghai")
AS_OF = datetime(2026, 4, 1, 2, 0, tzinfo=SHANGHAI)  # a run's as-of instant: 02:00 Shanghai

ENT = "91110105MA0000000Y"  # our Beijing entity (ERP organisation BJ01)
ENT2 = "91310115MA1H8R7C67"  # our Shanghai entity (SH01)
SUP = "91370100MA3C4XXX1L"  # a supplier
CUS = "91440300MA5F000007"  # a customer
OTHER = "91440300MA5G00001W"  # another valid company TIN, ours to nobody
NAMES = {
    ENT: "北京示例科技有限公司",
    ENT2: "上海示例贸易有限公司",
    SUP: "济南供应商有限公司",
    CUS: "深圳客户有限公司",
    OTHER: "广州其他有限公司",
}
OUR_ENTITIES = [
    {"tin": ENT, "name": NAMES[ENT], "region_code": "110105", "erp_org_code": "BJ01"},
    {"tin": ENT2, "name": NAMES[ENT2], "region_code": "310115", "erp_org_code": "SH01"},
]

# 数电 invoice numbers and a legacy code
D1, D2, D3, D4 = (f"261120000000000000{n:02d}" for n in (1, 2, 3, 4))
D9 = "26112000000000000999"  # a number no tax source knows
CODE = "1100261130"


# ---------------------------------------------------------------------------------------------
# Row builders: a realistic row of each table with the columns a test does not care about
# filled the way the pipeline fills them. Keyword arguments override any column.
# ---------------------------------------------------------------------------------------------


def _money(value) -> Decimal:
    return Decimal(str(value))


def invoice(
    uid: str,
    *,
    direction: str = "received",
    entity: str = ENT,
    amount="1000.00",
    tax="130.00",
    total=None,
    date: str = "2026-03-02",
    source: str = "tax_platform",
    **columns,
) -> dict:
    """A `core.invoices` (or `staging.tax_platform`) row; `uid` is 20 digits or `code-number`."""
    seller, buyer = (SUP, entity) if direction == "received" else (entity, CUS)
    code, number = uid.split("-") if "-" in uid else (None, None)
    row = {
        "invoice_uid": uid,
        "source": source,
        "entity_tin": entity,
        "direction": direction,
        "invoice_code": code,
        "invoice_no": number,
        "digital_invoice_no": None if code else uid,
        "issue_date": date,
        "issue_ts": f"{date} 10:00:00",
        "tax_period": date[:7],
        "seller_tin": seller,
        "seller_name": NAMES.get(seller),
        "buyer_tin": buyer,
        "buyer_name": NAMES.get(buyer),
        "amount_excl_tax": _money(amount),
        "tax_amount": _money(tax),
        "amount_incl_tax": _money(total) if total is not None else _money(amount) + _money(tax),
        "is_positive": _money(amount) >= 0,
        "status": "normal",
        "risk_level": "normal",
    }
    row.update(columns)
    return row


def red(uid: str, blue: str | None, amount, tax, **columns) -> dict:
    """A red-letter invoice reversing `blue` (as parsed from its 备注)."""
    return invoice(uid, amount=amount, tax=tax, original_invoice_uid=blue, **columns)


def legacy_issued(number: int, *, code: str = CODE, entity: str = ENT, **columns) -> dict:
    return invoice(f"{code}-{number:08d}", direction="issued", entity=entity, **columns)


def line(uid: str, amount, rate: str, tax, *, no: int = 1, source: str = "tax_platform", face=False) -> dict:
    """A `core.invoice_lines` row; `rate` is the label as exported (`13%`, `免税`, …)."""
    numeric = Decimal(0) if rate in ("免税", "不征税") else Decimal(rate.rstrip("%")) / 100
    return {
        "invoice_uid": uid,
        "source": source,
        "line_no": no,
        "item_name": "(详见销货清单)" if face else "*信息技术服务*软件开发",
        "amount_excl_tax": _money(amount),
        "tax_rate": numeric,
        "tax_rate_label": rate,
        "tax_amount": _money(tax),
        "amount_incl_tax": _money(amount) + _money(tax),
        "is_goods_list_face": face,
    }


def erp(
    doc_id: str,
    *,
    entity: str = ENT,
    direction: str = "received",
    amount="1000.00",
    tax="130.00",
    total=None,
    counterparty: str | None = None,
    date: str | None = "2026-03-02",
    period: str = "2026-03",
    approved: bool = True,
    cancelled: bool = False,
    **columns,
) -> dict:
    """A `staging.erp` document `<组织>/<单据编号>`; live = 已审核 and not 作废."""
    org, doc_no = doc_id.split("/")
    if counterparty is None:
        counterparty = SUP if direction == "received" else CUS
    row = {
        "erp_doc_id": doc_id,
        "org_code": org,
        "doc_no": doc_no,
        "entity_tin": entity,
        "direction": direction,
        "posting_date": f"{period}-15",
        "accounting_period": period,
        "tax_period": period,
        "counterparty_name": NAMES.get(counterparty),
        "counterparty_tin": counterparty,
        "issue_date": date,
        "amount_excl_tax": _money(amount),
        "tax_amount": _money(tax),
        "amount_incl_tax": _money(total) if total is not None else _money(amount) + _money(tax),
        "currency": "CNY",
        "is_approved": approved,
        "is_cancelled": cancelled,
        "is_live": approved and not cancelled,
    }
    row.update(columns)
    return row


def _classify(token: str, code: str | None) -> tuple[str, str]:
    """(ref_kind, ref_key) of a cleaned number as staging classifies it (normalize.classify_invoice_ref)."""
    if len(token) == 20 or len(token) == 18:
        return ("digits20" if len(token) == 20 else "digits18"), token  # run together: the key as keyed
    if "-" in token:
        return "code_number", token
    if code:
        return "code_number", f"{code}-{token}"
    return "number8", token


def erp_ref(doc_id: str, token: str, *, seq: int = 1, code: str | None = None) -> dict:
    """A `staging.erp_invoice_refs` row: one invoice number as keyed (with the row's 发票代码)."""
    org, doc_no = doc_id.split("/")
    kind, key = _classify(token, code)
    return {
        "erp_doc_id": doc_id,
        "org_code": org,
        "doc_no": doc_no,
        "ref_seq": seq,
        "ref_token": token,
        "ref_kind": kind,
        "ref_key": key,
    }


def erp_match(uid: str, doc_id: str, *, entity: str = ENT, direction: str = "received", live=True) -> dict:
    return {
        "invoice_uid": uid,
        "entity_tin": entity,
        "direction": direction,
        "match_side": "erp",
        "erp_doc_id": doc_id,
        "ref_token": uid,
        "match_method": "exact",
        "is_live": live,
    }


def claim(
    claim_no: str, invoice_no: str, *, code: str | None = None, status: str = "已通过", claimed="1130.00"
) -> dict:
    """A `staging.reimbursement` row; effective = 审批中, 已通过 or 已支付 (not 草稿, 已驳回)."""
    kind, key = _classify(invoice_no, code)
    return {
        "claim_no": claim_no,
        "claimant": "赵六",
        "approval_status": status,
        "is_effective": status in ("审批中", "已通过", "已支付"),
        "invoice_code": code,
        "invoice_no": invoice_no,
        "ref_kind": kind,
        "ref_key": key,
        "issue_date": "2026-03-02",
        "claimed_amount": _money(claimed),
    }


def claim_match(uid: str, claim_no: str, *, invoice_no: str | None = None, entity: str = ENT) -> dict:
    return {
        "invoice_uid": uid,
        "entity_tin": entity,
        "direction": "received",
        "match_side": "claim",
        "claim_no": claim_no,
        "ref_token": invoice_no or uid,
        "match_method": "exact",
        "is_live": True,
    }


def sync_run(
    run_id: str,
    status: str,
    started: str,
    finished: str | None = None,
    *,
    system: str = "tax_platform->erp",
    read: int = 10,
    written: int = 10,
    failed: int = 0,
) -> dict:
    """A `staging.sync_log` run; times are ISO 8601 with offset."""
    return {
        "run_id": run_id,
        "system": system,
        "entity_tin": ENT,
        "started_at": started,
        "finished_at": finished,
        "status": status,
        "records_read": read,
        "records_written": written,
        "records_failed": failed,
        "error": "timeout" if status == "failed" else None,
    }


def file_load(name: str, control_total_ok: bool | None, *, seq: int = 1, status: str = "loaded") -> dict:
    """An `audit.file_loads` row (`audit.load_log` is a view over it)."""
    return {
        "load_id": f"load-{seq}-{name}",
        "file_seq": seq,
        "source": "tax_platform",
        "file_name": name,
        "sha256": f"{seq:064d}",
        "size_bytes": 1024,
        "rows_read": 2,
        "control_total_ok": control_total_ok,
        "status": status,
        "details": '{"control_total": {"expected": 2260.00, "actual": 1130.00}}',
        "loaded_at": "2026-03-31T01:00:00+08:00",
    }


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------


class _Any:
    def __repr__(self) -> str:
        return "ANY"


ANY = _Any()  # an expected field the case does not check


@dataclass(frozen=True)
class Found:
    """One expected finding; invoice_uid, amount and period are checked only when given."""

    subject: str
    entity_tin: str | None
    direction: str | None
    invoice_uid: object = ANY
    amount: object = ANY
    period: object = ANY


@dataclass(frozen=True)
class Case:
    rule: str
    title: str
    given: dict[str, list[dict]]
    expect: list[Found]
    as_of: datetime = AS_OF
    bug: str | None = None  # a rule bug or doubtful behaviour: the case states what SPEC asks (strict xfail)


INV = "core.invoices"
LINES = "core.invoice_lines"
MATCHES = "core.matches"
ERP = "staging.erp"
REFS = "staging.erp_invoice_refs"
CLAIMS = "staging.reimbursement"
SYNC = "staging.sync_log"
ENTITIES = "staging.entities"
PLATFORM = "staging.tax_platform"
FILES = "audit.file_loads"

CASES = [
    # --- missing_in_erp -----------------------------------------------------------------------
    Case(
        "missing_in_erp",
        "received invoice with no ERP document",
        {INV: [invoice(D1)]},
        [Found(D1, ENT, "received", invoice_uid=D1, amount="1130.00", period="2026-03")],
    ),
    Case(
        "missing_in_erp",
        "booked invoice is fine",
        {INV: [invoice(D1)], ERP: [erp("BJ01/AP-1")], MATCHES: [erp_match(D1, "BJ01/AP-1")]},
        [],
    ),
    Case(
        "missing_in_erp",
        "booked by an unapproved (not cancelled) document is fine",
        {INV: [invoice(D1)], ERP: [erp("BJ01/AP-1", approved=False)], MATCHES: [erp_match(D1, "BJ01/AP-1")]},
        [],
    ),
    Case(
        "missing_in_erp",
        "voided invoice is not missing",
        {INV: [legacy_issued(12017, status="voided")]},
        [],
    ),
    Case(
        "missing_in_erp",
        "XML-only invoice (no status) with no ERP document",
        {INV: [invoice(D1, source="einvoice_xml", status=None, risk_level=None)]},
        [Found(D1, ENT, "received", invoice_uid=D1)],
    ),
    Case(
        "missing_in_erp",
        "booked only by a cancelled document is missing",
        {
            INV: [invoice(D1)],
            ERP: [erp("BJ01/AP-1", cancelled=True)],
            MATCHES: [erp_match(D1, "BJ01/AP-1", live=False)],
        },
        [Found(D1, ENT, "received", invoice_uid=D1)],
    ),
    Case(
        "missing_in_erp",
        "intercompany invoice booked by the seller only is missing for the buyer",
        {
            INV: [
                invoice(D1, direction="issued", buyer_tin=ENT2, buyer_name=NAMES[ENT2]),
                invoice(D1, direction="received", entity=ENT2),
            ],
            ERP: [erp("BJ01/AR-1", direction="issued", counterparty=ENT2)],
            MATCHES: [erp_match(D1, "BJ01/AR-1", direction="issued")],
        },
        [Found(D1, ENT2, "received", invoice_uid=D1)],
    ),
    # --- missing_in_tax_platform --------------------------------------------------------------
    Case(
        "missing_in_tax_platform",
        "document names an unknown 20-digit number",
        {ERP: [erp("BJ01/AP-9")], REFS: [erp_ref("BJ01/AP-9", D9)]},
        [Found("BJ01/AP-9", ENT, "received", invoice_uid=D9, amount="1130.00", period="2026-03")],
    ),
    Case(
        "missing_in_tax_platform",
        "unknown legacy number is reported in canonical form",
        {
            ERP: [erp("BJ01/AR-9", direction="issued")],
            REFS: [erp_ref("BJ01/AR-9", "00099999", code=CODE)],
        },
        [Found("BJ01/AR-9", ENT, "issued", invoice_uid=f"{CODE}-00099999")],
    ),
    Case(
        "missing_in_tax_platform",
        "unknown code and number run together (18 digits) is reported in canonical form",
        {
            ERP: [erp("BJ01/AR-9", direction="issued")],
            REFS: [erp_ref("BJ01/AR-9", f"{CODE}00099999")],
        },
        [Found("BJ01/AR-9", ENT, "issued", invoice_uid=f"{CODE}-00099999")],
    ),
    Case(
        "missing_in_tax_platform",
        "matched document is fine",
        {
            ERP: [erp("BJ01/AP-1")],
            REFS: [erp_ref("BJ01/AP-1", D1)],
            MATCHES: [erp_match(D1, "BJ01/AP-1")],
        },
        [],
    ),
    Case(
        "missing_in_tax_platform",
        "cancelled document is not reported",
        {ERP: [erp("BJ01/AP-9", cancelled=True)], REFS: [erp_ref("BJ01/AP-9", D9)]},
        [],
    ),
    Case(
        "missing_in_tax_platform",
        "document naming one known and one unknown invoice",
        {
            ERP: [erp("BJ01/AP-1")],
            REFS: [erp_ref("BJ01/AP-1", D1, seq=1), erp_ref("BJ01/AP-1", D9, seq=2)],
            MATCHES: [erp_match(D1, "BJ01/AP-1")],
        },
        [Found("BJ01/AP-1", ENT, "received", invoice_uid=D9)],
    ),
    Case(
        "missing_in_tax_platform",
        "document naming an invoice the platform has for our other entity",
        {
            INV: [invoice(D1, entity=ENT2)],
            ERP: [erp("BJ01/AP-1")],
            REFS: [erp_ref("BJ01/AP-1", D1)],
        },
        [],
    ),
    # --- amount_mismatch ----------------------------------------------------------------------
    Case(
        "amount_mismatch",
        "total differs by exactly 0.01: within tolerance",
        {
            INV: [invoice(D1)],
            ERP: [erp("BJ01/AP-1", amount="1000.01", total="1130.01")],
            MATCHES: [erp_match(D1, "BJ01/AP-1")],
        },
        [],
    ),
    Case(
        "amount_mismatch",
        "total differs by 0.02",
        {
            INV: [invoice(D1)],
            ERP: [erp("BJ01/AP-1", amount="1000.02", total="1130.02")],
            MATCHES: [erp_match(D1, "BJ01/AP-1")],
        },
        [Found("BJ01/AP-1", ENT, "received", invoice_uid=D1, amount="0.02", period="2026-03")],
    ),
    Case(
        "amount_mismatch",
        "tax differs although the total agrees",
        {
            INV: [invoice(D1)],
            ERP: [erp("BJ01/AP-1", amount="1010.00", tax="120.00")],
            MATCHES: [erp_match(D1, "BJ01/AP-1")],
        },
        [Found("BJ01/AP-1", ENT, "received", invoice_uid=D1, amount="10.00")],
    ),
    Case(
        "amount_mismatch",
        "document covering two invoices equals their sum",
        {
            INV: [invoice(D1), invoice(D2, amount="500.00", tax="65.00")],
            ERP: [erp("BJ01/AP-1", amount="1500.00", tax="195.00")],
            MATCHES: [erp_match(D1, "BJ01/AP-1"), erp_match(D2, "BJ01/AP-1")],
        },
        [],
    ),
    Case(
        "amount_mismatch",
        "document covering two invoices differs from their sum",
        {
            INV: [invoice(D1), invoice(D2, amount="500.00", tax="65.00")],
            ERP: [erp("BJ01/AP-1", amount="1000.00", tax="130.00")],
            MATCHES: [erp_match(D1, "BJ01/AP-1"), erp_match(D2, "BJ01/AP-1")],
        },
        [Found("BJ01/AP-1", ENT, "received", invoice_uid=None, amount="565.00")],
    ),
    Case(
        "amount_mismatch",
        "cancelled document is not compared",
        {
            INV: [invoice(D1)],
            ERP: [erp("BJ01/AP-1", amount="999.00", cancelled=True)],
            MATCHES: [erp_match(D1, "BJ01/AP-1", live=False)],
        },
        [],
    ),
    # --- counterparty_mismatch ----------------------------------------------------------------
    Case(
        "counterparty_mismatch",
        "received: ERP seller TIN is not the invoice's seller",
        {
            INV: [invoice(D1)],
            ERP: [erp("BJ01/AP-1", counterparty=OTHER)],
            MATCHES: [erp_match(D1, "BJ01/AP-1")],
        },
        [Found("BJ01/AP-1", ENT, "received", invoice_uid=D1, amount="1130.00")],
    ),
    Case(
        "counterparty_mismatch",
        "received: same seller TIN is fine",
        {
            INV: [invoice(D1)],
            ERP: [erp("BJ01/AP-1", counterparty=SUP)],
            MATCHES: [erp_match(D1, "BJ01/AP-1")],
        },
        [],
    ),
    Case(
        "counterparty_mismatch",
        "issued: the counterparty is the buyer",
        {
            INV: [invoice(D1, direction="issued"), invoice(D2, direction="issued")],
            ERP: [
                erp("BJ01/AR-1", direction="issued", counterparty=CUS),
                erp("BJ01/AR-2", direction="issued", counterparty=SUP),
            ],
            MATCHES: [
                erp_match(D1, "BJ01/AR-1", direction="issued"),
                erp_match(D2, "BJ01/AR-2", direction="issued"),
            ],
        },
        [Found("BJ01/AR-2", ENT, "issued", invoice_uid=D2)],
    ),
    Case(
        "counterparty_mismatch",
        "ERP TIN not keyed is no mismatch",
        {
            INV: [invoice(D1)],
            ERP: [erp("BJ01/AP-1", counterparty_tin=None)],
            MATCHES: [erp_match(D1, "BJ01/AP-1")],
        },
        [],
    ),
    # --- date_mismatch ------------------------------------------------------------------------
    Case(
        "date_mismatch",
        "ERP issue date one day off",
        {
            INV: [invoice(D1)],
            ERP: [erp("BJ01/AP-1", date="2026-03-03")],
            MATCHES: [erp_match(D1, "BJ01/AP-1")],
        },
        [Found("BJ01/AP-1", ENT, "received", invoice_uid=D1)],
    ),
    Case(
        "date_mismatch",
        "same date is fine; no date keyed is no mismatch",
        {
            INV: [invoice(D1), invoice(D2)],
            ERP: [erp("BJ01/AP-1", date="2026-03-02"), erp("BJ01/AP-2", date=None)],
            MATCHES: [erp_match(D1, "BJ01/AP-1"), erp_match(D2, "BJ01/AP-2")],
        },
        [],
    ),
    Case(
        "date_mismatch",
        "document covering two invoices keyed with one of their dates is fine",
        {
            INV: [invoice(D1, date="2026-03-02"), invoice(D2, date="2026-03-05")],
            ERP: [erp("BJ01/AP-1", amount="2000.00", tax="260.00", date="2026-03-05")],
            MATCHES: [erp_match(D1, "BJ01/AP-1"), erp_match(D2, "BJ01/AP-1")],
        },
        [],
    ),
    # --- cross_period_booking -----------------------------------------------------------------
    Case(
        "cross_period_booking",
        "March invoice posted in April",
        {
            INV: [invoice(D1)],
            ERP: [erp("BJ01/AP-1", period="2026-04")],
            MATCHES: [erp_match(D1, "BJ01/AP-1")],
        },
        # the finding's period is the invoice's month (the VAT period concerned)
        [Found("BJ01/AP-1", ENT, "received", invoice_uid=D1, period="2026-03")],
    ),
    Case(
        "cross_period_booking",
        "posted in the month of issue; cancelled April document ignored",
        {
            INV: [invoice(D1), invoice(D2)],
            ERP: [erp("BJ01/AP-1", period="2026-03"), erp("BJ01/AP-2", period="2026-04", cancelled=True)],
            MATCHES: [erp_match(D1, "BJ01/AP-1"), erp_match(D2, "BJ01/AP-2", live=False)],
        },
        [],
    ),
    # --- voided_but_booked --------------------------------------------------------------------
    Case(
        "voided_but_booked",
        "voided invoice still booked by a live document",
        {
            INV: [legacy_issued(12017, status="voided")],
            ERP: [erp("BJ01/AR-1", direction="issued")],
            MATCHES: [erp_match(f"{CODE}-00012017", "BJ01/AR-1", direction="issued")],
        },
        [Found("BJ01/AR-1", ENT, "issued", invoice_uid=f"{CODE}-00012017", amount="1130.00")],
    ),
    Case(
        "voided_but_booked",
        "voided invoice whose documents are cancelled or unapproved",
        {
            INV: [legacy_issued(12017, status="voided")],
            ERP: [
                erp("BJ01/AR-1", direction="issued", cancelled=True),
                erp("BJ01/AR-2", direction="issued", approved=False),
            ],
            MATCHES: [
                erp_match(f"{CODE}-00012017", "BJ01/AR-1", direction="issued", live=False),
                erp_match(f"{CODE}-00012017", "BJ01/AR-2", direction="issued", live=False),
            ],
        },
        [],
    ),
    Case(
        "voided_but_booked",
        "normal invoice booked by a live document",
        {
            INV: [legacy_issued(12017)],
            ERP: [erp("BJ01/AR-1", direction="issued")],
            MATCHES: [erp_match(f"{CODE}-00012017", "BJ01/AR-1", direction="issued")],
        },
        [],
    ),
    # --- duplicate_erp_entry ------------------------------------------------------------------
    Case(
        "duplicate_erp_entry",
        "booked by two live documents",
        {
            INV: [invoice(D1)],
            ERP: [erp("BJ01/AP-1"), erp("BJ01/AP-2")],
            MATCHES: [erp_match(D1, "BJ01/AP-1"), erp_match(D1, "BJ01/AP-2")],
        },
        [Found(D1, ENT, "received", invoice_uid=D1, amount="1130.00", period="2026-03")],
    ),
    Case(
        "duplicate_erp_entry",
        "second booking cancelled",
        {
            INV: [invoice(D1)],
            ERP: [erp("BJ01/AP-1"), erp("BJ01/AP-2", cancelled=True)],
            MATCHES: [erp_match(D1, "BJ01/AP-1"), erp_match(D1, "BJ01/AP-2", live=False)],
        },
        [],
    ),
    Case(
        "duplicate_erp_entry",
        "second booking not yet approved",
        {
            INV: [invoice(D1)],
            ERP: [erp("BJ01/AP-1"), erp("BJ01/AP-2", approved=False)],
            MATCHES: [erp_match(D1, "BJ01/AP-1"), erp_match(D1, "BJ01/AP-2", live=False)],
        },
        [],
    ),
    Case(
        "duplicate_erp_entry",
        "intercompany invoice booked once by each side",
        {
            INV: [
                invoice(D1, direction="issued", buyer_tin=ENT2, buyer_name=NAMES[ENT2]),
                invoice(D1, direction="received", entity=ENT2),
            ],
            ERP: [erp("BJ01/AR-1", direction="issued"), erp("SH01/AP-1", entity=ENT2)],
            MATCHES: [
                erp_match(D1, "BJ01/AR-1", direction="issued"),
                erp_match(D1, "SH01/AP-1", entity=ENT2),
            ],
        },
        [],
    ),
    # --- duplicate_claim ----------------------------------------------------------------------
    Case(
        "duplicate_claim",
        "one invoice on two approved claims",
        {
            INV: [invoice(D1)],
            CLAIMS: [claim("BX-1", D1), claim("BX-2", D1, status="已支付")],
            MATCHES: [claim_match(D1, "BX-1"), claim_match(D1, "BX-2")],
        },
        [Found(D1, ENT, "received", invoice_uid=D1, amount="2260.00", period="2026-03")],
    ),
    Case(
        "duplicate_claim",
        "second claim rejected",
        {
            INV: [invoice(D1)],
            CLAIMS: [claim("BX-1", D1), claim("BX-2", D1, status="已驳回")],
            MATCHES: [claim_match(D1, "BX-1"), claim_match(D1, "BX-2")],
        },
        [],
    ),
    Case(
        "duplicate_claim",
        "second claim a draft",
        {
            INV: [invoice(D1)],
            CLAIMS: [claim("BX-1", D1, status="审批中"), claim("BX-2", D1, status="草稿")],
            MATCHES: [claim_match(D1, "BX-1"), claim_match(D1, "BX-2")],
        },
        [],
    ),
    Case(
        "duplicate_claim",
        "invoice no tax source knows, claimed twice",
        {CLAIMS: [claim("BX-1", D9), claim("BX-2", D9, status="审批中")]},
        [Found(D9, None, None, invoice_uid=D9, amount="2260.00")],
    ),
    # --- claim_without_invoice ----------------------------------------------------------------
    Case(
        "claim_without_invoice",
        "claimed number unknown to every tax source",
        {CLAIMS: [claim("BX-1", D9, claimed="300.00")]},
        [Found(D9, None, None, invoice_uid=D9, amount="300.00", period="2026-03")],
    ),
    Case(
        "claim_without_invoice",
        "legacy number reported in canonical form, one finding for two claims",
        {
            CLAIMS: [
                claim("BX-1", "00290799", code="011002100511", claimed="100.00"),
                claim("BX-2", "011002100511-00290799", claimed="50.00"),
            ]
        },
        [Found("011002100511-00290799", None, None, invoice_uid="011002100511-00290799", amount="150.00")],
    ),
    Case(
        "claim_without_invoice",
        "unknown code and number run together (18 digits) is reported in canonical form",
        {CLAIMS: [claim("BX-1", f"{CODE}00099999")]},
        [Found(f"{CODE}-00099999", None, None, invoice_uid=f"{CODE}-00099999")],
    ),
    Case(
        "claim_without_invoice",
        "matched claim and a draft of an unknown number",
        {
            CLAIMS: [claim("BX-1", D1), claim("BX-2", D9, status="草稿")],
            MATCHES: [claim_match(D1, "BX-1")],
        },
        [],
    ),
    # --- claim_exceeds_invoice ----------------------------------------------------------------
    Case(
        "claim_exceeds_invoice",
        "claimed 0.02 more than the total",
        {
            INV: [invoice(D1)],
            CLAIMS: [claim("BX-1", D1, claimed="1130.02")],
            MATCHES: [claim_match(D1, "BX-1")],
        },
        [Found(D1, ENT, "received", invoice_uid=D1, amount="0.02", period="2026-03")],
    ),
    Case(
        "claim_exceeds_invoice",
        "claimed 0.01 more: within tolerance",
        {
            INV: [invoice(D1)],
            CLAIMS: [claim("BX-1", D1, claimed="1130.01")],
            MATCHES: [claim_match(D1, "BX-1")],
        },
        [],
    ),
    Case(
        "claim_exceeds_invoice",
        "two effective claims together exceed the total",
        {
            INV: [invoice(D1)],
            CLAIMS: [claim("BX-1", D1, claimed="600.00"), claim("BX-2", D1, claimed="600.00")],
            MATCHES: [claim_match(D1, "BX-1"), claim_match(D1, "BX-2")],
        },
        [Found(D1, ENT, "received", invoice_uid=D1, amount="70.00")],
    ),
    Case(
        "claim_exceeds_invoice",
        "a rejected claim does not count",
        {
            INV: [invoice(D1)],
            CLAIMS: [
                claim("BX-1", D1, claimed="600.00"),
                claim("BX-2", D1, claimed="600.00", status="已驳回"),
            ],
            MATCHES: [claim_match(D1, "BX-1"), claim_match(D1, "BX-2")],
        },
        [],
    ),
    # --- sequence_gap -------------------------------------------------------------------------
    Case(
        "sequence_gap",
        "two numbers missing",
        {INV: [legacy_issued(12016), legacy_issued(12019)]},
        [Found(f"{CODE}:00012017-00012018", ENT, "issued", invoice_uid=None, period="2026-03")],
    ),
    Case(
        "sequence_gap",
        "one number missing",
        {INV: [legacy_issued(12030), legacy_issued(12032)]},
        [Found(f"{CODE}:00012031-00012031", ENT, "issued")],
    ),
    Case(
        "sequence_gap",
        "50 numbers missing is a gap",
        {INV: [legacy_issued(100), legacy_issued(151)]},
        [Found(f"{CODE}:00000101-00000150", ENT, "issued")],
    ),
    Case(
        "sequence_gap",
        "51 numbers missing is a new allocation",
        {INV: [legacy_issued(100), legacy_issued(152)]},
        [],
    ),
    Case(
        "sequence_gap",
        "voided invoice fills its place",
        {INV: [legacy_issued(12016), legacy_issued(12017, status="voided"), legacy_issued(12018)]},
        [],
    ),
    Case(
        "sequence_gap",
        "received invoices, other codes and other entities are separate runs",
        {
            INV: [
                invoice(f"{CODE}-00000010"),
                invoice(f"{CODE}-00000013"),
                legacy_issued(20),
                legacy_issued(22, code="1100261131"),
                legacy_issued(23, entity=ENT2),
            ]
        },
        [],
    ),
    # --- invalid_tin --------------------------------------------------------------------------
    Case(
        "invalid_tin",
        "seller TIN with a wrong check character (blog example ...C6D)",
        {INV: [invoice(D1, seller_tin="91310115MA1H8R7C6D"), invoice(D2, seller_tin="91310115MA1H8R7C6D")]},
        [Found("91310115MA1H8R7C6D", ENT, "received", invoice_uid=None, amount=None, period="2026-03")],
    ),
    Case(
        "invalid_tin",
        "valid USCC and a 20-digit TIN whose first 18 are a valid resident ID",
        {INV: [invoice(D1, seller_tin="91310115MA1H8R7C67"), invoice(D2, seller_tin="11010519491231002X01")]},
        [],
    ),
    Case(
        "invalid_tin",
        "20-digit TIN whose first 18 are not a resident ID",
        {INV: [invoice(D1, seller_tin="11010519491231002301")]},
        [Found("11010519491231002301", ENT, "received")],
    ),
    Case(
        "invalid_tin",
        "TIN keyed in the ERP, used by two entities",
        {
            ERP: [
                erp("BJ01/AP-1", counterparty_tin="91370100MA3C4XXX1I"),
                erp("SH01/AP-1", entity=ENT2, counterparty_tin="91370100MA3C4XXX1I"),
            ]
        },
        [Found("91370100MA3C4XXX1I", None, "received")],
    ),
    # --- wrong_title --------------------------------------------------------------------------
    Case(
        "wrong_title",
        "our name with a TIN that is not ours",
        {ENTITIES: OUR_ENTITIES, INV: [invoice(D1, buyer_tin=OTHER)]},
        [Found(D1, ENT, "received", invoice_uid=D1, amount="1130.00", period="2026-03")],
    ),
    Case(
        "wrong_title",
        "our name with no TIN at all",
        {ENTITIES: OUR_ENTITIES, INV: [invoice(D1, buyer_tin=None)]},
        [Found(D1, ENT, "received")],
    ),
    Case(
        "wrong_title",
        "our own TIN, another entity's TIN, and an issued invoice are fine",
        {
            ENTITIES: OUR_ENTITIES,
            INV: [
                invoice(D1),
                invoice(D2, buyer_tin=ENT2),
                invoice(D3, direction="issued", buyer_tin=OTHER),
            ],
        },
        [],
    ),
    # --- arithmetic_error ---------------------------------------------------------------------
    Case(
        "arithmetic_error",
        "header 1000 + 130 = 1130.02",
        {INV: [invoice(D1, total="1130.02")]},
        [Found(D1, ENT, "received", invoice_uid=D1, amount="0.02", period="2026-03")],
    ),
    Case(
        "arithmetic_error",
        "header 1000 + 130 = 1130.01 is within tolerance; lines add up",
        {
            INV: [invoice(D1, total="1130.01")],
            LINES: [line(D1, "600.00", "13%", "78.00", no=1), line(D1, "400.00", "13%", "52.00", no=2)],
        },
        [],
    ),
    Case(
        "arithmetic_error",
        "lines short of the header by 0.02",
        {INV: [invoice(D1)], LINES: [line(D1, "999.98", "13%", "130.00")]},
        [Found(D1, ENT, "received", amount="0.02")],
    ),
    Case(
        "arithmetic_error",
        "goods-list face line is excluded from the line sums",
        {
            INV: [invoice(D1)],
            LINES: [
                line(D1, "1000.00", "13%", "130.00", no=1, face=True),
                line(D1, "600.00", "13%", "78.00", no=2),
                line(D1, "400.00", "13%", "52.00", no=3),
            ],
        },
        [],
    ),
    Case(
        "arithmetic_error",
        "the XML copy is wrong while the export is right",
        {
            INV: [invoice(D1), invoice(D1, source="einvoice_xml", total="1140.00")],
            LINES: [
                line(D1, "1000.00", "13%", "130.00"),
                line(D1, "1000.00", "13%", "130.00", source="einvoice_xml"),
            ],
        },
        [Found(D1, ENT, "received", amount="10.00")],
    ),
    Case(
        "arithmetic_error",
        "goods-list face line without its list lines",
        {INV: [invoice(D1)], LINES: [line(D1, "1000.00", "13%", "130.00", face=True)]},
        [Found(D1, ENT, "received", amount="1000.00")],
    ),
    # --- invalid_tax_rate ---------------------------------------------------------------------
    Case(
        "invalid_tax_rate",
        "17% on a 2026 invoice",
        {INV: [invoice(D1, tax="170.00")], LINES: [line(D1, "1000.00", "17%", "170.00")]},
        [Found(D1, ENT, "received", invoice_uid=D1, amount="170.00", period="2026-03")],
    ),
    Case(
        "invalid_tax_rate",
        "13%, exempt and out-of-scope on a 2026 invoice",
        {
            INV: [invoice(D1)],
            LINES: [
                line(D1, "600.00", "13%", "78.00", no=1),
                line(D1, "200.00", "免税", "0", no=2),
                line(D1, "200.00", "不征税", "0", no=3),
            ],
        },
        [],
    ),
    Case(
        "invalid_tax_rate",
        "16% is valid up to 2019-03-31 and invalid from 2019-04-01",
        {
            INV: [invoice(D1, date="2019-03-31"), invoice(D2, date="2019-04-01")],
            LINES: [line(D1, "1000.00", "16%", "160.00"), line(D2, "1000.00", "16%", "160.00")],
        },
        [Found(D2, ENT, "received", period="2019-04")],
    ),
    # --- tax_calc_mismatch --------------------------------------------------------------------
    Case(
        "tax_calc_mismatch",
        "tax 0.06 off 1000 x 13% is within tolerance",
        {INV: [invoice(D1, tax="130.06")], LINES: [line(D1, "1000.00", "13%", "130.06")]},
        [],
    ),
    Case(
        "tax_calc_mismatch",
        "tax 0.07 off 1000 x 13%",
        {INV: [invoice(D1, tax="130.07")], LINES: [line(D1, "1000.00", "13%", "130.07")]},
        [Found(D1, ENT, "received", invoice_uid=D1, amount="0.07", period="2026-03")],
    ),
    Case(
        "tax_calc_mismatch",
        "exempt and out-of-scope lines with tax 0 are fine",
        {
            INV: [invoice(D1, tax="0")],
            LINES: [line(D1, "600.00", "免税", "0", no=1), line(D1, "400.00", "不征税", "0", no=2)],
        },
        [],
    ),
    Case(
        "tax_calc_mismatch",
        "exempt line with tax",
        {INV: [invoice(D1, tax="5.00")], LINES: [line(D1, "1000.00", "免税", "5.00")]},
        [Found(D1, ENT, "received", amount="5.00")],
    ),
    Case(
        "tax_calc_mismatch",
        "out-of-scope line with 0.01 tax",
        {INV: [invoice(D1, tax="0.01")], LINES: [line(D1, "1000.00", "不征税", "0.01")]},
        [Found(D1, ENT, "received")],
    ),
    Case(
        "tax_calc_mismatch",
        "goods-list face line is not checked",
        {
            INV: [invoice(D1)],
            LINES: [
                line(D1, "1000.00", "13%", "0", no=1, face=True),
                line(D1, "1000.00", "13%", "130.00", no=2),
            ],
        },
        [],
    ),
    # --- red_without_blue ---------------------------------------------------------------------
    Case(
        "red_without_blue",
        "blue invoice in no tax source",
        {INV: [red(D2, D9, "-1000.00", "-130.00")]},
        [Found(D2, ENT, "received", invoice_uid=D2, amount="1130.00", period="2026-03")],
    ),
    Case(
        "red_without_blue",
        "red invoice naming no blue invoice",
        {INV: [red(D2, None, "-1000.00", "-130.00")]},
        [Found(D2, ENT, "received")],
    ),
    Case(
        "red_without_blue",
        "blue invoice in the export, or only in an XML file",
        {
            INV: [
                invoice(D1, status="red_full"),
                red(D2, D1, "-1000.00", "-130.00"),
                invoice(D3, source="einvoice_xml"),
                red(D4, D3, "-1000.00", "-130.00"),
            ]
        },
        [],
    ),
    # --- red_over_reversal --------------------------------------------------------------------
    Case(
        "red_over_reversal",
        "two reds reverse 1200 of a 1130 blue",
        {INV: [invoice(D1), red(D2, D1, "-530.97", "-69.03"), red(D3, D1, "-530.97", "-69.03")]},
        [Found(D1, ENT, "received", invoice_uid=D1, amount="70.00", period="2026-03")],
    ),
    Case(
        "red_over_reversal",
        "full reversal, and 0.01 over, are fine",
        {
            INV: [
                invoice(D1),
                red(D2, D1, "-1000.00", "-130.00"),
                invoice(D3),
                red(D4, D3, "-1000.01", "-130.00"),
            ]
        },
        [],
    ),
    Case(
        "red_over_reversal",
        "0.02 over",
        {INV: [invoice(D1), red(D2, D1, "-500.00", "-65.00"), red(D3, D1, "-500.02", "-65.00")]},
        [Found(D1, ENT, "received", amount="0.02")],
    ),
    # --- risky_invoice ------------------------------------------------------------------------
    Case(
        "risky_invoice",
        "risk abnormal_voucher, suspicious; status out_of_control, abnormal",
        {
            INV: [
                invoice(D1, risk_level="abnormal_voucher"),
                invoice(D2, risk_level="suspicious"),
                invoice(D3, status="out_of_control"),
                invoice(D4, direction="issued", status="abnormal"),
            ]
        },
        [
            Found(D1, ENT, "received", invoice_uid=D1, amount="1130.00", period="2026-03"),
            Found(D2, ENT, "received"),
            Found(D3, ENT, "received"),
            Found(D4, ENT, "issued"),
        ],
    ),
    Case(
        "risky_invoice",
        "normal, voided and red-lettered invoices are not risky",
        {
            INV: [
                invoice(D1),
                legacy_issued(12017, status="voided"),
                invoice(D2, status="red_full"),
                invoice(D3, status="red_partial"),
            ]
        },
        [],
    ),
    # --- source_disagreement ------------------------------------------------------------------
    Case(
        "source_disagreement",
        "XML total differs by 0.02",
        {INV: [invoice(D1), invoice(D1, source="einvoice_xml", total="1130.02", status=None)]},
        [Found(D1, ENT, "received", invoice_uid=D1, amount="0.02", period="2026-03")],
    ),
    Case(
        "source_disagreement",
        "XML total differs by 0.01 and XML has no status: agreement",
        {INV: [invoice(D1), invoice(D1, source="einvoice_xml", total="1130.01", status=None)]},
        [],
    ),
    Case(
        "source_disagreement",
        "OFD names another buyer TIN",
        {
            INV: [
                invoice(D1, direction="issued"),
                invoice(D1, direction="issued", source="einvoice_ofd", buyer_tin=OTHER, status=None),
            ]
        },
        [Found(D1, ENT, "issued", amount="0.00")],
    ),
    Case(
        "source_disagreement",
        "one source only",
        {INV: [invoice(D1, source="einvoice_xml", total="9999.00", status=None)]},
        [],
    ),
    # --- control_total_mismatch ---------------------------------------------------------------
    Case(
        "control_total_mismatch",
        "current file whose rows miss its control total",
        {
            FILES: [file_load("BJ_进项_2026Q1.xlsx", False)],
            PLATFORM: [invoice(D1, _source_file="BJ_进项_2026Q1.xlsx")],
        },
        [Found("BJ_进项_2026Q1.xlsx", ENT, "received", invoice_uid=None, amount=None)],
    ),
    Case(
        "control_total_mismatch",
        "file that adds up, file without control total, superseded version",
        {
            FILES: [
                file_load("a.xlsx", True),
                file_load("b.csv", None, seq=2),
                file_load("c.xlsx", False, seq=3),
                file_load("c.xlsx", True, seq=4),
            ],
            PLATFORM: [invoice(D1, _source_file="a.xlsx"), invoice(D2, _source_file="c.xlsx")],
        },
        [],
    ),
    # --- sync_failed --------------------------------------------------------------------------
    Case(
        "sync_failed",
        "failed run, period in Shanghai time",
        {
            SYNC: [
                sync_run("r-1", "failed", "2026-03-31T23:30:00+00:00", "2026-03-31T23:31:00+00:00", written=0)
            ]
        },
        [Found("r-1", ENT, None, invoice_uid=None, amount=None, period="2026-04")],
    ),
    Case(
        "sync_failed",
        "partial runs that lost records",
        {
            SYNC: [
                sync_run("r-2", "partial", "2026-03-30T01:00:00+08:00", read=10, written=8, failed=2),
                sync_run("r-3", "partial", "2026-03-30T02:00:00+08:00", read=10, written=9, failed=0),
            ]
        },
        [Found("r-2", ENT, None), Found("r-3", ENT, None)],
    ),
    Case(
        "sync_failed",
        "success, and a partial run that wrote everything",
        {
            SYNC: [
                sync_run("r-4", "success", "2026-03-30T01:00:00+08:00", "2026-03-30T01:05:00+08:00"),
                sync_run("r-5", "partial", "2026-03-30T02:00:00+08:00", read=10, written=10, failed=0),
            ]
        },
        [],
    ),
    # --- sync_stale (as-of 2026-04-01 02:00 Asia/Shanghai) ------------------------------------
    Case(
        "sync_stale",
        "last success 25 h before as-of is fine",
        {SYNC: [sync_run("r-1", "success", "2026-03-31T00:55:00+08:00", "2026-03-31T01:00:00+08:00")]},
        [],
    ),
    Case(
        "sync_stale",
        "last success exactly 26 h before as-of is fine",
        {SYNC: [sync_run("r-1", "success", "2026-03-30T23:55:00+08:00", "2026-03-31T00:00:00+08:00")]},
        [],
    ),
    Case(
        "sync_stale",
        "last success 27 h before as-of, later runs failed",
        {
            SYNC: [
                sync_run("r-1", "success", "2026-03-30T22:55:00+08:00", "2026-03-30T23:00:00+08:00"),
                sync_run("r-2", "failed", "2026-03-31T23:00:00+08:00", "2026-03-31T23:01:00+08:00"),
            ]
        },
        [Found("tax_platform->erp", None, None, invoice_uid=None, amount=None, period=None)],
    ),
    Case(
        "sync_stale",
        "a system that never succeeded; a success after as-of does not count",
        {
            SYNC: [
                sync_run("r-1", "failed", "2026-03-31T23:00:00+08:00", system="erp->report"),
                sync_run("r-2", "success", "2026-03-30T22:00:00+08:00", "2026-03-30T22:05:00+08:00"),
                sync_run("r-3", "success", "2026-04-01T03:00:00+08:00", "2026-04-01T03:05:00+08:00"),
            ]
        },
        [Found("erp->report", None, None), Found("tax_platform->erp", None, None)],
    ),
]


# ---------------------------------------------------------------------------------------------
# Harness
# ---------------------------------------------------------------------------------------------

# Built with the real models (at the case's as-of instant) from the given table, in this order.
DERIVED_MODELS = {
    "core.invoices": [
        Model("core", table, project.MODELS_DIR / "core" / f"{table}.sql")
        for table in ("authoritative_invoices", "invoice_aliases")
    ],
    "staging.sync_log": [Model("audit", "sync_health", project.MODELS_DIR / "audit" / "sync_health.sql")],
}
# What a rule may read instead of the given table: the models built from it, and the view over it.
DERIVED = {given: tuple(f"{m.schema}.{m.table}" for m in models) for given, models in DERIVED_MODELS.items()}
DERIVED["audit.file_loads"] = ("audit.load_log",)


@dataclass(frozen=True)
class EmptySchema:
    path: Path  # a warehouse file with every table of every layer, all empty
    columns: dict[str, dict[str, str]]  # "schema.table" -> column -> DuckDB type


@pytest.fixture(scope="session")
def empty_schema(tmp_path_factory: pytest.TempPathFactory) -> EmptySchema:
    """The real schema: the pipeline run once per session on an empty landing folder."""
    from invoice_pipeline.cli import run_pipeline

    root = tmp_path_factory.mktemp("empty_schema")
    (root / "landing").mkdir()
    with pytest.MonkeyPatch.context() as patch:  # run_pipeline sets the data-dir variable
        patch.setenv(project.DATA_DIR_ENV, str(root))
        patch.delenv("DAGSTER_HOME", raising=False)  # an ephemeral Dagster instance
        run_pipeline(root, "")
    path = project.warehouse_path(root)
    con = duckdb.connect(str(path), read_only=True)
    try:
        columns: dict[str, dict[str, str]] = {}
        for schema, table, column, data_type in con.execute(
            "select schema_name, table_name, column_name, data_type from duckdb_columns() "
            "where database_name = current_database() order by column_index"
        ).fetchall():
            columns.setdefault(f"{schema}.{table}", {})[column] = data_type
    finally:
        con.close()
    return EmptySchema(path, columns)


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, types: dict[str, str], rows: list[dict]) -> None:
    """Insert rows by column name, each value cast to the column's real type; others stay NULL."""
    for row in rows:
        unknown = sorted(set(row) - set(types))
        assert not unknown, f"{table} has no column {unknown}"
        columns = ", ".join(quote(c) for c in row)
        values = ", ".join(f"cast(? as {types[c]})" for c in row)
        con.execute(f"insert into {table} ({columns}) values ({values})", list(row.values()))


def run_case(schema: EmptySchema, tmp_path: Path, case: Case) -> list[dict]:
    """Copy the empty warehouse, insert the given rows, evaluate the rule; its rows as dicts."""
    path = tmp_path / "invoices.duckdb"
    shutil.copyfile(schema.path, path)
    con = duckdb.connect(str(path))
    try:
        con.execute("pragma disable_checkpoint_on_shutdown")  # the file is thrown away
        con.begin()
        for table, rows in case.given.items():
            assert table in schema.columns, f"no table {table} in the warehouse"
            insert_rows(con, table, schema.columns[table], rows)
        con.commit()
        for given, models in DERIVED_MODELS.items():
            for model in models if given in case.given else []:
                if f"{model.schema}.{model.table}" not in case.given:
                    build_model(con, model, case.as_of)
        prepare_rule_inputs(con)
        result = evaluate_rule(con, load_rules()[case.rule], case.as_of)
        cursor = con.execute(f"select * from {quote(result)}")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
    finally:
        con.close()


def _param(case: Case):
    marks = [pytest.mark.xfail(strict=True, reason=case.bug)] if case.bug else []
    return pytest.param(case, id=f"{case.rule}: {case.title}", marks=marks)


def _same(expected, actual) -> bool:
    if expected is None or actual is None:
        return expected is actual
    if isinstance(actual, Decimal):
        return Decimal(str(expected)) == actual
    return expected == actual


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_rule(case: Case, empty_schema: EmptySchema, tmp_path: Path) -> None:
    rule_sql = load_rules()[case.rule].sql
    for table in case.given if not case.bug else ():
        reads = (table, *DERIVED.get(table, ()))
        assert any(name in rule_sql for name in reads), f"{case.rule} reads none of {reads}"

    rows = run_case(empty_schema, tmp_path, case)

    keys = [(r["subject"], r["entity_tin"], r["direction"]) for r in rows]
    assert len(keys) == len(set(keys)), f"the same finding twice (its finding_id would collide): {keys}"
    found = {key: row for key, row in zip(keys, rows, strict=True)}
    expected = {(f.subject, f.entity_tin, f.direction): f for f in case.expect}
    missing = sorted(set(expected) - set(found), key=str)
    unexpected = sorted(set(found) - set(expected), key=str)
    assert not missing and not unexpected, f"not found: {missing}; found but not expected: {unexpected}"
    for key, want in expected.items():
        got = found[key]
        for column in ("invoice_uid", "amount", "period"):
            value = getattr(want, column)
            if value is not ANY:
                assert _same(value, got[column]), f"{key}: {column} is {got[column]!r}, expected {value!r}"


def test_every_rule_has_a_firing_case_and_a_near_miss() -> None:
    rules = set(load_rules())
    known = {c.rule for c in CASES}
    assert known <= rules, f"cases for unknown rules: {sorted(known - rules)}"
    firing = {c.rule for c in CASES if c.expect and not c.bug}
    quiet = {c.rule for c in CASES if not c.expect and not c.bug}
    assert sorted(rules - firing) == [], "rules without a case that fires"
    assert sorted(rules - quiet) == [], "rules without a near-miss that must not fire"
