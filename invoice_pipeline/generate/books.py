"""Planted ERP rows, claims and documents: chosen by invoice index once numbers exist."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from invoice_pipeline.generate import model as m
from invoice_pipeline.generate.ids import legacy_code
from invoice_pipeline.generate.plants import Claim, ErpRow, Lookalike, Planter


def plant_books(planter: Planter) -> None:
    """ERP rows and claims, by invoice index (identifiers come later)."""
    w, plan = planter.w, planter.plan
    clean = planter.clean() & w.in_platform
    months = m.month_of(w.ts)
    days = w.ts // m.DAY
    day_of_month = np.array([(m.EPOCH.date() + timedelta(days=int(d))).day for d in range(m.DAYS)])[
        np.minimum(days, m.DAYS - 1)
    ]
    h1_bj = planter.ent("BJ01") & (months <= 6)

    a1 = planter.one(clean & planter.issued() & planter.kinds(m.SD_ZP, m.SD_PP), "missing_in_erp")
    a2 = planter.one(clean & planter.received() & planter.kinds(m.ZP, m.PP, m.EP), "missing_in_erp")
    a3 = planter.one(clean & planter.received() & planter.kinds(m.SD_PP), "missing_in_erp")
    february = np.flatnonzero(clean & h1_bj & (months == 2) & ~planter.used)
    if not len(february):
        raise ValueError("not enough invoices to plant a rejected ERP row: use more --invoices")
    a5 = int(february[np.argmax(w.ts[february])])  # late February: 2026-02-30 is a plausible slip
    planter.used[a5] = planter.picked[a5] = True
    a4 = planter.one(clean & h1_bj, "missing_in_erp")
    plan.erp_skip.update([a1, a2, a3, a4, a5])
    plan.no_claim.update([a1, a2, a4, a5])
    plan.claims.append(Claim(a3, "已支付", ent=int(w.ent[a3])))
    for inv, why in (
        (a1, "not booked"),
        (a2, "not booked"),
        (a3, "not booked, but claimed (已支付)"),
        (a4, "its only ERP row is rejected (价税合计 'abc')"),
        (a5, "its only ERP row is rejected (开票日期 '2026-02-30')"),
    ):
        planter.problem("missing_in_erp", inv, details={"why": why})
    planter.bad_rows = [
        ErpRow("bad_total", a4, {"价税合计": "abc"}),
        ErpRow("bad_date", a5, {"开票日期": "2026-02-30"}),
    ]

    c1, c2 = planter.pick(clean, 2, "amount_mismatch")
    plan.erp_rows.append(ErpRow("amount1", int(c1), {"amt_delta": 10_000, "tot_delta": 10_000}))
    plan.erp_rows.append(ErpRow("amount2", int(c2), {"transpose_total": True}))
    d1, d2 = planter.pick(clean & (w.cp >= 0), 2, "counterparty_mismatch")
    for tag, inv in (("party1", d1), ("party2", d2)):
        other = (int(w.cp[inv]) + 1 + int(planter.rng.integers(0, len(w.cps) - 1))) % len(w.cps)
        plan.erp_rows.append(ErpRow(tag, int(inv), {"cp_tin": w.cps.tin[other]}))
        planter.problem(
            "counterparty_mismatch",
            int(inv),
            ("erp", tag),
            details={"erp_tin": w.cps.tin[other], "invoice_tin": w.cps.tin[w.cp[inv]]},
        )
    mid = clean & (day_of_month >= 4) & (day_of_month <= 25)
    e1, e2 = planter.pick(mid, 2, "date_mismatch")
    plan.erp_rows.append(ErpRow("date1", int(e1), {"date_delta": -2}))
    plan.erp_rows.append(ErpRow("date2", int(e2), {"date_delta": 3}))
    late = clean & (months <= 9)
    month_end = np.array([(date(2026, mo + 1, 1) - timedelta(days=1)).day for mo in range(1, 12)] + [31])
    near_end = late & (day_of_month >= month_end[months - 1] - 2)
    pool = near_end if (near_end & ~planter.used).sum() >= 2 else late
    f1, f2 = planter.pick(pool, 2, "cross_period_booking")
    plan.erp_rows.append(ErpRow("period1", int(f1), {"next_period_day": 2}))
    plan.erp_rows.append(ErpRow("period2", int(f2), {"next_period_day": 5}))
    for inv, tag in zip(planter.voided_booked, ("voided1", "voided2"), strict=True):
        plan.erp_rows.append(ErpRow(tag, inv))
    plan.erp_rows.append(ErpRow("voided_cancelled", planter.voided_cancelled, {"作废标志": "是"}))
    h1, h2 = planter.pick(mid, 2, "duplicate_erp_entry")
    for tag, inv in (("dup1", h1), ("dup2", h2)):
        plan.erp_rows.append(ErpRow(tag + "a", int(inv)))
        plan.erp_rows.append(ErpRow(tag + "b", int(inv), {"post_delta": 2}))
        plan.erp_skip.add(int(inv))
    k1, k2 = planter.pick(mid, 2, "cancelled second booking")
    for tag, inv in (("cancel1", k1), ("cancel2", k2)):
        plan.erp_rows.append(ErpRow(tag + "a", int(inv)))
        plan.erp_rows.append(ErpRow(tag + "b", int(inv), {"post_delta": 1, "作废标志": "是"}))
        plan.erp_skip.add(int(inv))
    for row in plan.erp_rows:
        if row.inv is not None:
            plan.erp_skip.add(row.inv)
    plan.no_claim.update(int(x) for x in (c1, c2, d1, d2, e1, e2, f1, f2, h1, h2, k1, k2))

    for tag, inv, what in (
        ("amount1", c1, "不含税金额 and 价税合计 +100.00"),
        ("amount2", c2, "价税合计 digits transposed"),
    ):
        planter.problem("amount_mismatch", int(inv), ("erp", tag), details={"erp": what})
    for tag, inv, delta in (("date1", e1, -2), ("date2", e2, 3)):
        planter.problem("date_mismatch", int(inv), ("erp", tag), details={"erp_date_minus_issue_days": delta})
    for tag, inv in (("period1", f1), ("period2", f2)):
        planter.problem(
            "cross_period_booking", int(inv), ("erp", tag), details={"posted_in": "the next month"}
        )
    for tag, inv in (("voided1", planter.voided_booked[0]), ("voided2", planter.voided_booked[1])):
        planter.problem("voided_but_booked", inv, ("erp", tag))
    for tag, inv in (("dup1", h1), ("dup2", h2)):
        planter.problem(
            "duplicate_erp_entry",
            int(inv),
            details={"documents": [("erp", tag + "a"), ("erp", tag + "b")]},
        )
    planter.plan.lookalikes.append(
        Lookalike(
            "cancelled_second_booking",
            "An invoice booked twice, the second ERP document cancelled (作废标志=是): "
            "one live document, no duplicate_erp_entry.",
            [int(k1), int(k2)],
            ["cancel1b", "cancel2b"],
        )
    )
    planter.plan.lookalikes.append(
        Lookalike(
            "voided_with_cancelled_booking",
            "A voided invoice whose ERP document is cancelled (作废标志=是): "
            "not live, no voided_but_booked, no missing_in_erp.",
            [planter.voided_cancelled],
            ["voided_cancelled"],
        )
    )

    # ERP references no tax source knows.
    # Real sequences start 0…; a 9 there can never collide with a generated number.
    fake20 = f"26{m.invoice_province(w.cps.region[0])}29{planter.rng.integers(10**13, 10**14)}"
    fake_code = legacy_code("pp", "4200", "26", 777)
    fake_no = f"{int(planter.rng.integers(10**6, 10**7)):08d}"
    planter.fake_erp = [
        ("ghost1", "BJ01", m.RECEIVED, "", fake20, date(2026, 4, 14)),
        ("ghost2", "SH01", m.RECEIVED, fake_code, fake_no, date(2026, 8, 21)),
    ]
    for tag, org, dirn, code, number, day in planter.fake_erp:
        plan.erp_rows.append(
            ErpRow(
                tag,
                None,
                {
                    "org": org,
                    "dirn": dirn,
                    "code": code,
                    "number": number,
                    "date": day,
                    "cp": int(planter.rng.integers(len(w.cps))),
                    "tot": planter.amount(),
                },
            )
        )
        uid = number if not code else f"{code}-{number}"
        planter.problem(
            "missing_in_tax_platform",
            None,
            ("erp", tag),
            scope={
                "entity_tin": w.entities[planter.ent_by_org[org]].tin,
                "direction": m.DIRECTION[dirn],
                "period": day.strftime("%Y-%m"),
                "invoice_uid": uid,
            },
        )
    # The XML-only invoices are booked too (plain rows).
    for inv in (planter.xml_standin, planter.ofd_standin, *planter.wrong_title):
        plan.erp_rows.append(ErpRow(f"xmlonly{inv}", inv))

    # Claims.
    claimable = clean & planter.received() & planter.kinds(m.SD_PP, m.PP, m.EP)
    i1, i2 = planter.pick(claimable, 2, "duplicate_claim")
    for inv, split, statuses in ((i1, 0.5, ("已通过", "已支付")), (i2, 0.7, ("已支付", "审批中"))):
        total = int(w.tot[inv])
        first = round(total * split)
        plan.claims.append(Claim(int(inv), statuses[0], first, ent=int(w.ent[inv])))
        plan.claims.append(Claim(int(inv), statuses[1], total - first, ent=int(w.ent[inv])))
        planter.problem(
            "duplicate_claim",
            int(inv),
            details={"split": [split, round(1 - split, 2)], "statuses": list(statuses)},
        )
    j_ref = [
        ("", f"26{m.invoice_province(w.cps.region[1])}29{planter.rng.integers(10**13, 10**14)}"),
        (legacy_code("ep", "3300", "26", 555), f"{int(planter.rng.integers(10**6, 10**7)):08d}"),
    ]
    for (code, number), day in zip(j_ref, (date(2026, 5, 20), date(2026, 9, 9)), strict=True):
        plan.claims.append(
            Claim(
                None,
                "已通过",
                ref=(code, number),
                ref_date=day,
                ref_total=planter.amount(50, 900),
                ent=planter.ent_by_org["BJ01"],
            )
        )
        uid = number if not code else f"{code}-{number}"
        planter.problem(
            "claim_without_invoice",
            None,
            ("text", uid),
            scope={
                "entity_tin": None,
                "direction": None,
                "period": day.strftime("%Y-%m"),
                "invoice_uid": uid,
            },
        )
    x1, x2 = planter.pick(claimable, 2, "claim_exceeds_invoice")
    for inv, extra in ((x1, 5000), (x2, 50)):
        plan.claims.append(Claim(int(inv), "已通过", int(w.tot[inv]) + extra, ent=int(w.ent[inv])))
        planter.problem(
            "claim_exceeds_invoice", int(inv), details={"claimed_minus_total": f"{extra / 100:.2f}"}
        )
    r1, r2, dr = planter.pick(claimable, 3, "claim look-alikes")
    for inv in (r1, r2):
        plan.claims.append(Claim(int(inv), "已驳回", ent=int(w.ent[inv])))
        plan.claims.append(Claim(int(inv), "已支付", ent=int(w.ent[inv])))
    plan.claims.append(Claim(int(dr), "草稿", ent=int(w.ent[dr])))
    plan.claims.append(Claim(int(dr), "已通过", ent=int(w.ent[dr])))
    planter.plan.lookalikes.append(
        Lookalike(
            "second_claim_after_rejection",
            "An invoice claimed twice, the first claim rejected (已驳回): no duplicate_claim.",
            [int(r1), int(r2)],
        )
    )
    planter.plan.lookalikes.append(
        Lookalike(
            "draft_and_approved_claim",
            "An invoice on a draft (草稿) claim and on an approved one: no duplicate_claim.",
            [int(dr)],
        )
    )
    bad_claim = planter.one(claimable & (w.ent == planter.ent_by_org["SH01"]), "bad claim row")
    plan.claims.append(Claim(bad_claim, "已通过", raw_total="N/A", ent=int(w.ent[bad_claim])))
    plan.no_claim.update(int(x) for x in (i1, i2, x1, x2, r1, r2, dr, bad_claim, a3))

    # OFD files: a legacy e-invoice and a 数电 invoice that agree, one that disagrees (CustomData only).
    ofd_legacy = planter.one(clean & planter.kinds(m.EP), "OFD files")
    ofd_agree = planter.one(clean & planter.kinds(m.SD_ZP, m.SD_PP), "OFD files")
    ofd_disagree = planter.one(clean & planter.kinds(m.SD_ZP, m.SD_PP), "source_disagreement")
    plan.ofd += [(ofd_legacy, "attach"), (ofd_agree, "attach"), (ofd_disagree, "customdata")]
    plan.ofd_delta[ofd_disagree] = 10_000
    planter.problem(
        "source_disagreement",
        ofd_disagree,
        details={
            "sources": ["tax_platform", "einvoice_ofd"],
            "field": "价税合计",
            "ofd_minus_export": "100.00",
        },
    )
