"""The planted problems and look-alikes: a few dozen explicit edits on the generated world.

Every edit picks its invoices from those no other edit touched, so each planted case raises
exactly the findings listed for it. Problems and look-alikes are recorded by invoice index
and resolved to identifiers (invoice_uid, ERP document, file name) once the files exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

from invoice_pipeline.generate import model as m
from invoice_pipeline.generate.ids import legacy_code, make_uscc
from invoice_pipeline.generate.numbering import Sequences

SEVERITY = {
    "missing_in_erp": "error",
    "missing_in_tax_platform": "error",
    "amount_mismatch": "error",
    "counterparty_mismatch": "warning",
    "date_mismatch": "warning",
    "cross_period_booking": "info",
    "voided_but_booked": "error",
    "duplicate_erp_entry": "error",
    "duplicate_claim": "error",
    "claim_without_invoice": "error",
    "claim_exceeds_invoice": "error",
    "sequence_gap": "warning",
    "invalid_tin": "warning",
    "wrong_title": "error",
    "arithmetic_error": "error",
    "invalid_tax_rate": "error",
    "tax_calc_mismatch": "warning",
    "red_without_blue": "warning",
    "red_over_reversal": "error",
    "risky_invoice": "error",
    "source_disagreement": "warning",
    "control_total_mismatch": "error",
    "sync_failed": "error",
    "sync_stale": "warning",
}


@dataclass
class Problem:
    """A planted finding. `subject` is ('uid', inv) | ('erp', tag) | ('text', value)."""

    rule_id: str
    inv: int | None
    subject: tuple[str, Any]
    with_uid: bool = True
    scope: dict[str, Any] = field(default_factory=dict)  # explicit entity_tin/direction/period/uid
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Lookalike:
    kind: str
    note: str
    invs: list[int] = field(default_factory=list)
    erp_tags: list[str] = field(default_factory=list)
    subject: str | None = None


@dataclass
class ErpRow:
    """An ERP row written exactly as planned (clean formats unless overridden)."""

    tag: str
    inv: int | None
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class Claim:
    """A planted claim row: an invoice index or an explicit reference, a status, an amount."""

    inv: int | None
    status: str
    claimed: int | None = None  # cents; None = the invoice's 价税合计
    ref: tuple[str, str] | None = None  # (发票代码, 发票号码) when no invoice exists
    ref_date: date | None = None
    ref_total: int | None = None
    raw_total: str | None = None  # a raw 价税合计 (a bad row)
    ent: int = 0


@dataclass
class Plan:
    problems: list[Problem] = field(default_factory=list)
    lookalikes: list[Lookalike] = field(default_factory=list)
    erp_skip: set[int] = field(default_factory=set)  # booked only by the rows below, or never
    erp_rows: list[ErpRow] = field(default_factory=list)
    multi_docs: list[tuple[list[int], str, str]] = field(default_factory=list)  # (invoices, sep, tag)
    claims: list[Claim] = field(default_factory=list)
    no_claim: set[int] = field(default_factory=set)
    xml_force: list[int] = field(default_factory=list)
    xml_delta: dict[int, int] = field(default_factory=dict)  # line-0 amount added in the XML only
    ofd: list[tuple[int, str]] = field(default_factory=list)  # (invoice, 'attach' | 'customdata')
    ofd_delta: dict[int, int] = field(default_factory=dict)  # 价税合计 added in the OFD only
    travel: list[int] = field(default_factory=list)


class Planter:
    def __init__(self, world: m.World, write_lines: bool) -> None:
        self.w = world
        self.rng = world.rng
        self.write_lines = write_lines
        self.plan = Plan()
        self.used = np.zeros(world.n, bool)  # not to be picked again
        self.picked = np.zeros(world.n, bool)  # chosen by a plant (kept out of random samples)
        self.ent_by_org = {e.org: i for i, e in enumerate(world.entities)}

    def _grow(self) -> None:
        if len(self.used) < self.w.n:
            grow = np.ones(self.w.n - len(self.used), bool)
            self.used = np.concatenate([self.used, grow])
            self.picked = np.concatenate([self.picked, grow])

    def clean(self) -> np.ndarray:
        w = self.w
        self._grow()
        return (
            (w.status == m.NORMAL)
            & w.positive
            & (w.blue < 0)
            & ~w.goods_list
            & w.in_platform
            & (w.risk == 0)
            & ~self.used
        )

    def pick(self, mask: np.ndarray, k: int, what: str) -> np.ndarray:
        self._grow()
        candidates = np.flatnonzero(mask & ~self.used)
        if len(candidates) < k:
            raise ValueError(f"not enough invoices to plant {what}: use more --invoices")
        chosen = np.sort(self.rng.choice(candidates, size=k, replace=False))
        self.used[chosen] = True
        self.picked[chosen] = True
        return chosen

    def one(self, mask: np.ndarray, what: str) -> int:
        return int(self.pick(mask, 1, what)[0])

    def ent(self, org: str) -> np.ndarray:
        return self.w.ent == self.ent_by_org[org]

    def kinds(self, *kinds: int) -> np.ndarray:
        return np.isin(self.w.kind, kinds)

    def received(self) -> np.ndarray:
        return self.w.dirn == m.RECEIVED

    def issued(self) -> np.ndarray:
        return self.w.dirn == m.ISSUED

    def problem(
        self, rule_id: str, inv: int | None, subject: tuple[str, Any] | None = None, **kwargs: Any
    ) -> None:
        self.plan.problems.append(Problem(rule_id, inv, subject or ("uid", inv), **kwargs))

    def set_lines(self, inv: int, lines: list[tuple[int, int, int]], travel: bool = False) -> None:
        """Replace an invoice's lines by (amount cents, rate, item) triples."""
        amt = np.array([a for a, _, _ in lines], np.int64)
        rate = np.array([r for _, r, _ in lines], np.int64)
        item = np.array([i for _, _, i in lines], np.int64)
        m.replace_lines(self.w, inv, amt, rate, item, travel)

    def shift_line_tax(self, inv: int, delta: int) -> None:
        first = int(np.searchsorted(self.w.l_inv, inv))
        self.w.l_tax[first] += delta

    def amount(self, low: float = 800, high: float = 60_000) -> int:
        return int(round(self.rng.uniform(low, high), 2) * 100)

    def item(self, rate: int) -> int:
        return int(m.ITEM_OFFSET[rate])

    def run_before_headers(self) -> None:
        w = self.w
        self._grow()
        self.used |= w.goods_list | (w.blue >= 0) | (w.status != m.NORMAL)
        self._unusual_tins()
        self._travel()
        self._multi_docs()
        self._line_rules()
        self._reds()
        self._risk_and_tins()
        self._voided()
        self._extras()

    def _unusual_tins(self) -> None:
        """Valid TINs a naive check rejects (12…, Y1…, N2…, 52…, 20-digit 个体户): no finding."""
        w, cps = self.w, self.w.cps
        specials = [i for i, label in enumerate(cps.label) if label]
        for cp in specials:
            sole = cps.label[cp] == "sole"
            mask = self.clean() & self.received() & self.kinds(m.SD_PP, m.EP) if sole else self.clean()
            inv = self.one(mask, "unusual TINs")
            w.cp[inv] = cp
            w.cp_name_var[inv] = 0
            why = "a sole proprietor: resident ID + 2 digits" if sole else f"prefix {cps.label[cp]}"
            note = f"Counterparty TIN {cps.tin[cp]} ({why}) is valid: no invalid_tin."
            self.plan.lookalikes.append(Lookalike("valid_unusual_tin", note, [inv]))

    def _travel(self) -> None:
        w = self.w
        mask = self.clean() & self.ent("BJ01") & self.received() & self.kinds(m.SD_PP)
        first = self.one(mask, "travel invoices")
        quarter = (m.month_of(w.ts[first : first + 1])[0] - 1) // 3
        same_q = (m.month_of(w.ts) - 1) // 3 == quarter
        second = self.one(mask & same_q, "travel invoices")
        for inv in (first, second):
            self.set_lines(inv, [(self.amount(300, 2500), m.R9, m.TRAVEL_ITEM_ID)], travel=True)
            self.plan.travel.append(inv)
            self.plan.no_claim.add(inv)
        self.plan.lookalikes.append(
            Lookalike(
                "travel_sheet",
                "Passenger-transport invoices listed on the extra sheet 旅客运输服务 (ID numbers are "
                "personal data): recorded in the load log, no finding.",
                [first, second],
            )
        )

    def _multi_docs(self) -> None:
        """ERP documents covering 2–3 invoices of one counterparty and day: no finding."""
        w = self.w
        for sep, size, org in (
            (",", 2, "BJ01"),
            (",", 2, "SH01"),
            ("，", 2, "BJ01"),
            ("，", 2, "SD01"),
            (";", 2, "SH01"),
            (";", 2, "BJ01"),
            ("、", 3, "BJ01"),
            ("、", 2, "GD01"),
        ):
            base = self.clean() & self.ent(org) & self.kinds(m.SD_ZP, m.SD_PP)
            first = self.one(base, "multi-invoice ERP documents")
            mask = base & (w.dirn == w.dirn[first])
            others = self.pick(mask, size - 1, "multi-invoice ERP documents")
            day = w.ts[first] // m.DAY * m.DAY
            for k, inv in enumerate(others):
                w.cp[inv] = w.cp[first]
                w.ts[inv] = day + 9 * 3600 + (k + 1) * 1800 + int(self.rng.integers(0, 1700))
            invs = [first, *map(int, others)]
            tag = f"multi{len(self.plan.multi_docs) + 1}"
            self.plan.multi_docs.append((invs, sep, tag))
            self.plan.erp_skip.update(invs)
            self.plan.no_claim.update(invs)
            self.plan.lookalikes.append(
                Lookalike(
                    "erp_document_covering_several_invoices",
                    f"One ERP document keys {len(invs)} invoices separated by '{sep}'; its amounts are "
                    "their sum: no amount_mismatch, no missing_in_erp.",
                    invs,
                    [tag],
                )
            )

    def _line_rules(self) -> None:
        xml_ok = self.clean() & self.kinds(m.SD_ZP)
        p1, p2 = self.pick(xml_ok, 2, "invalid_tax_rate")
        self.set_lines(int(p1), [(self.amount(), m.R16, self.item(m.R16))])
        self.set_lines(
            int(p2), [(self.amount(), m.R13, self.item(m.R13)), (self.amount(), m.R10, self.item(m.R10))]
        )
        for inv, rate in ((p1, "16%"), (p2, "10%")):
            self.problem("invalid_tax_rate", int(inv), details={"rate": rate, "also_in": "xml"})
        q1, q2 = self.pick(self.clean() & self.kinds(m.SD_ZP), 2, "tax_calc_mismatch")
        self.set_lines(int(q1), [(self.amount(), m.R13, self.item(m.R13))])
        self.shift_line_tax(int(q1), 50)
        self.set_lines(
            int(q2), [(self.amount(), m.R6, self.item(m.R6)), (self.amount(), m.R13, self.item(m.R13))]
        )
        self.shift_line_tax(int(q2), -120)
        self.problem("tax_calc_mismatch", int(q1), details={"line": 1, "tax_off_by": "0.50"})
        self.problem("tax_calc_mismatch", int(q2), details={"line": 1, "tax_off_by": "-1.20"})
        if self.write_lines:
            q3 = self.one(self.clean() & self.kinds(m.SD_PP, m.PP, m.EP), "tax_calc_mismatch")
            amount = self.amount()
            self.set_lines(q3, [(amount, m.EXEMPT, self.item(m.EXEMPT))])
            self.shift_line_tax(q3, (amount * 3 + 50) // 100)
            self.problem("tax_calc_mismatch", q3, details={"line": 1, "rate": "免税", "tax": "non-zero"})
        discount = self.one(self.clean() & self.kinds(m.SD_ZP), "discount line")
        gross = self.amount(2000, 50_000)
        self.set_lines(
            discount, [(gross, m.R13, self.item(m.R13)), (-round(gross * 0.1), m.R13, self.item(m.R13))]
        )
        self.plan.lookalikes.append(
            Lookalike(
                "discount_line",
                "A blue invoice with a negative discount line (in the export and the XML); "
                "its lines still add up: no arithmetic_error.",
                [discount],
            )
        )
        self.arith_lines = self.one(self.clean() & self.kinds(m.SD_ZP), "arithmetic_error")
        self.set_lines(
            self.arith_lines,
            [(self.amount(), m.R13, self.item(m.R13)), (self.amount(), m.R6, self.item(m.R6))],
        )
        self.arith_header = self.one(self.clean(), "arithmetic_error")
        self.disagree_xml = self.one(self.clean() & self.kinds(m.SD_ZP, m.SD_PP), "source_disagreement")
        self.set_lines(self.disagree_xml, [(self.amount(), m.R6, self.item(m.R6))])
        self.plan.xml_delta[self.disagree_xml] = 10_000
        self.problem(
            "source_disagreement",
            self.disagree_xml,
            details={
                "sources": ["tax_platform", "einvoice_xml"],
                "field": "amounts",
                "xml_minus_export_amount_excl_tax": "100.00",
            },
        )
        self.plan.xml_force += [
            int(p1),
            int(p2),
            int(q1),
            int(q2),
            discount,
            self.arith_lines,
            self.disagree_xml,
        ]

    def _reds(self) -> None:
        """Over-reversals and reds whose blue invoice is in no source (issued in 2025)."""
        w = self.w
        early = w.ts < 250 * m.DAY
        blue1 = self.one(self.clean() & self.kinds(m.SD_ZP) & self.issued() & early, "red_over_reversal")
        blue2 = self.one(self.clean() & self.kinds(m.SD_PP) & self.received() & early, "red_over_reversal")
        self.set_lines(blue2, [(self.amount(), m.R6, self.item(m.R6))])
        w.status[[blue1, blue2]] = m.RED_FULL
        red1 = self._append_red(blue1, 5 * m.DAY)
        start, end = m.line_slices(w)
        rows = np.arange(start[blue1], end[blue1])
        m.append_lines(
            w, np.full(len(rows), red1), -w.l_amt[rows], w.l_rate[rows], w.l_item[rows], no=w.l_no[rows]
        )
        m.append_lines(
            w,
            np.array([red1]),
            np.array([-10_000]),
            w.l_rate[rows[:1]],
            w.l_item[rows[:1]],
            no=np.array([len(rows)]),
        )
        reds2 = [self._append_red(blue2, d * m.DAY) for d in (3, 9)]
        first = int(np.searchsorted(w.l_inv, blue2))
        part = -round(w.l_amt[first] * 0.6)
        for red in reds2:
            m.append_lines(
                w, np.array([red]), np.array([part]), w.l_rate[[first]], w.l_item[[first]], no=np.array([0])
            )
        m.finish_lines(w)
        self.problem(
            "red_over_reversal",
            blue1,
            details={"reds": [("uid", red1)], "over_by": "red lines exceed blue by 100.00 + tax"},
        )
        self.problem(
            "red_over_reversal",
            blue2,
            details={"reds": [("uid", r) for r in reds2], "over_by": "two reds of 60% each"},
        )

        ent_bj = self.ent_by_org["BJ01"]
        cp = int(self.rng.integers(len(w.cps)))
        ts = m.ts_of(date(2026, 3, 16), 14 * 3600 + 305)
        (red_a,) = m.append_invoices(
            w, ent=[ent_bj], dirn=[m.ISSUED], kind=[m.SD_ZP], cp=[cp], ts=[ts], positive=[False]
        )
        m.append_lines(
            w,
            np.array([red_a]),
            np.array([-self.amount()]),
            np.array([m.R13]),
            np.array([self.item(m.R13)]),
            no=np.array([0]),
        )
        blue_a = f"25{m.invoice_province(w.entities[ent_bj].region)}2{self.rng.integers(10**14, 10**15)}"
        conf = f"11{self.rng.integers(10**17, 10**18)}"
        w.remark[red_a] = f"被红冲蓝字数电发票号码：{blue_a} 红字发票信息确认单编号：{conf}"
        ent_sh = self.ent_by_org["SH01"]
        cp_b = int(self.rng.integers(len(w.cps)))
        ts_b = m.ts_of(date(2026, 7, 8), 10 * 3600 + 1811)
        (red_b,) = m.append_invoices(
            w, ent=[ent_sh], dirn=[m.RECEIVED], kind=[m.ZP], cp=[cp_b], ts=[ts_b], positive=[False]
        )
        m.append_lines(
            w,
            np.array([red_b]),
            np.array([-self.amount()]),
            np.array([m.R13]),
            np.array([self.item(m.R13)]),
            no=np.array([0]),
        )
        code = legacy_code("zp", m.code_region(w.cps.region[cp_b]), "25", 9)
        w.remark[red_b] = f"对应正数发票代码:{code}号码:{int(self.rng.integers(10**6, 10**7)):08d}"
        m.finish_lines(w)
        self.problem("red_without_blue", int(red_a), details={"blue_referenced": blue_a})
        self.problem("red_without_blue", int(red_b), details={"blue_referenced": w.remark[red_b]})
        self._grow()

    def _append_red(self, blue: int, delay: int) -> int:
        w = self.w
        (red,) = m.append_invoices(
            w,
            ent=[w.ent[blue]],
            dirn=[w.dirn[blue]],
            kind=[w.kind[blue]],
            cp=[w.cp[blue]],
            ts=[min(int(w.ts[blue]) + delay, m.LAST_TS - 7200)],
            positive=[False],
            blue=[blue],
            red_style=[len(self.plan.problems) % 2],
            drawer=[w.drawer[blue]],
        )
        self._grow()
        return int(red)

    def _risk_and_tins(self) -> None:
        w = self.w
        t1, t2, t3 = self.pick(self.clean() & self.received(), 3, "risky_invoice")
        w.risk[t1] = 1
        w.risk[t2] = 2
        w.status[t3] = m.OUT_OF_CONTROL
        for inv, why in ((t1, "发票风险等级 异常凭证"), (t2, "发票风险等级 疑点发票"), (t3, "发票状态 失控")):
            self.problem("risky_invoice", int(inv), details={"reason": why})
        ordinary = np.isin(w.cp, [i for i, label in enumerate(w.cps.label) if not label])
        m1, m2 = self.pick(
            self.clean() & ordinary & self.received() & self.kinds(m.SD_ZP, m.SD_PP, m.EP), 2, "invalid_tin"
        )
        m3 = self.one(self.clean() & ordinary & self.issued(), "invalid_tin")
        tin1 = w.cps.tin[w.cp[m1]]
        bad1 = tin1[:17] + next(c for c in "0123456789ABCDEFGHJKLMNPQRTUWXY" if c != tin1[17])
        tin2 = w.cps.tin[w.cp[m2]]
        bad2 = tin2[:5] + "O" + tin2[6:]  # a letter O typed for the zero of the region code
        bad3 = w.cps.tin[w.cp[m3]] + "01"
        w.seller_tin[int(m1)] = bad1
        w.seller_tin[int(m2)] = bad2
        w.buyer_tin[m3] = bad3
        for inv, tin, why in (
            (m1, bad1, "wrong check character"),
            (m2, bad2, "letter O in the code"),
            (m3, bad3, "20 characters but the first 18 are a USCC, not a resident ID"),
        ):
            self.problem(
                "invalid_tin",
                int(inv),
                ("text", tin),
                with_uid=False,
                details={"tin": tin, "why": why, "invoice_uids": [("uid", int(inv))]},
            )

    def _voided(self) -> None:
        w = self.w
        g = self.pick(self.clean() & self.kinds(m.ZP, m.PP, m.SDP), 2, "voided_but_booked")
        w.status[g] = m.VOIDED
        self.voided_booked = [int(x) for x in g]
        # A voided invoice inside one of our runs of numbers: it fills the run (no gap).
        groups = (w.ent.astype(np.int64) * 8 + w.kind) * (self.issued() & self.kinds(m.ZP, m.PP))
        mask = self.clean() & self.issued() & self.kinds(m.ZP, m.PP)
        inside = np.zeros(w.n, bool)
        for g_id in np.unique(groups[mask]):
            members = np.flatnonzero(groups == g_id)
            lo, hi = w.ts[members].min(), w.ts[members].max()
            inside[members[(w.ts[members] > lo) & (w.ts[members] < hi)]] = True
        if (mask & inside).any():
            self.voided_in_run = self.one(mask & inside, "voided invoice inside a run")
        else:  # few paper invoices (small N): three of BJ01's 专票 become paper, the middle one voided
            trio = self.pick(
                self.clean() & self.ent("BJ01") & self.issued() & self.kinds(m.SD_ZP),
                3,
                "voided invoice inside a run",
            )
            w.ts[trio] = np.sort(w.ts[trio]) + np.array([0, 1, 2])  # distinct, in this order
            w.kind[trio] = m.ZP
            self.voided_in_run = int(trio[1])
        w.status[self.voided_in_run] = m.VOIDED
        self.voided_cancelled = self.one(
            self.clean() & self.kinds(m.ZP, m.PP, m.SDP), "voided with cancelled booking"
        )
        w.status[self.voided_cancelled] = m.VOIDED

    def _extras(self) -> None:
        """Invoices only an XML/OFD file knows: two stand-ins and two with a wrong buyer TIN."""
        w = self.w
        bj, sh, sd = (self.ent_by_org[o] for o in ("BJ01", "SH01", "SD01"))
        cps = [int(c) for c in self.rng.integers(0, len(w.cps), size=4)]
        specs = [
            (bj, cps[0], m.SD_PP, m.ts_of(date(2026, 10, 31), 21 * 3600 + 37 * 60 + 12)),  # XML stand-in
            (sh, cps[1], m.SD_ZP, m.ts_of(date(2026, 10, 31), 18 * 3600 + 5 * 60 + 44)),  # OFD stand-in
            (bj, cps[2], m.SD_ZP, m.ts_of(date(2026, 6, 12), 15 * 3600 + 22 * 60 + 9)),  # wrong title
            (sd, cps[3], m.SD_PP, m.ts_of(date(2026, 9, 3), 11 * 3600 + 48 * 60 + 30)),  # wrong title
        ]
        extras = m.append_invoices(
            w,
            ent=[s[0] for s in specs],
            dirn=[m.RECEIVED] * 4,
            kind=[s[2] for s in specs],
            cp=[s[1] for s in specs],
            ts=[s[3] for s in specs],
            in_platform=[False] * 4,
        )
        for inv in extras:
            m.append_lines(
                w,
                np.array([inv]),
                np.array([self.amount()]),
                np.array([m.R6]),
                np.array([self.item(m.R6)]),
                no=np.array([0]),
            )
        m.finish_lines(w)
        self._grow()
        self.xml_standin, self.ofd_standin, wrong1, wrong2 = (int(x) for x in extras)
        self.plan.xml_force.append(self.xml_standin)
        self.plan.ofd.append((self.ofd_standin, "attach"))
        for inv, alias in ((wrong1, 0), (wrong2, 1)):
            entity = w.entities[w.ent[inv]]
            w.buyer_name[inv] = entity.name if alias == 0 else entity.aliases[0]
            w.buyer_tin[inv] = make_uscc("91", entity.region, f"MA0{self.rng.integers(10**4, 10**5)}")
            self.plan.xml_force.append(inv)
            self.problem(
                "wrong_title",
                inv,
                details={
                    "buyer_name": w.buyer_name[inv],
                    "buyer_tin": w.buyer_tin[inv],
                    "source": "einvoice_xml only",
                },
            )
        self.wrong_title = [wrong1, wrong2]
        self.plan.lookalikes.append(
            Lookalike(
                "einvoice_stands_in",
                "Invoices only an XML file and an OFD file know (issued 2026-10-31, after the "
                "export): they stand in for the export, are booked in the ERP, raise nothing.",
                [self.xml_standin, self.ofd_standin],
            )
        )

    def run_after_headers(self) -> None:
        """Edits that must not be reflected in the header sums."""
        w = self.w
        first = int(np.searchsorted(w.l_inv, self.arith_lines))
        w.l_amt[first] += 50_000
        w.l_tax[first] = m.line_tax(w.l_amt[first : first + 1], w.l_rate[first : first + 1])[0]
        self.problem(
            "arithmetic_error",
            self.arith_lines,
            details={
                "check": "lines do not add up to the header",
                "lines_minus_header_amount": "500.00",
                "also_in": "xml",
            },
        )
        w.tot[self.arith_header] += 1000
        self.problem(
            "arithmetic_error",
            self.arith_header,
            details={"check": "金额 + 税额 ≠ 价税合计", "total_minus_sum": "10.00"},
        )

    def plant_sequences(self, seqs: Sequences) -> None:
        w = self.w
        months = m.month_of(w.ts)
        sizes = seqs.ends - seqs.starts
        kinds = w.kind[seqs.order[seqs.starts]] if len(seqs.starts) else np.zeros(0, np.int64)
        runs = [
            i for i in np.argsort(-sizes, kind="stable") if kinds[i] in (m.ZP, m.PP, m.EP) and sizes[i] >= 3
        ]
        if not runs:
            raise ValueError("not enough legacy invoices to plant sequence gaps: use more --invoices")
        taken: set[int] = set()

        def position(run: int) -> int:
            start, end = int(seqs.starts[run]), int(seqs.ends[run])
            spots = [
                p
                for p in range(start + 1, end)
                if p not in taken
                and p - 1 not in taken
                and p + 1 not in taken
                and months[seqs.order[p]] == months[seqs.order[p - 1]]
            ]
            if not spots:
                spots = [p for p in range(start + 1, end) if p not in taken]
            if not spots:
                raise ValueError("not enough legacy invoices to plant sequence gaps: use more --invoices")
            p = spots[len(spots) // 2]
            taken.add(p)
            return p

        run_for = [runs[0], runs[1] if len(runs) > 1 else runs[0], runs[2] if len(runs) > 2 else runs[-1]]
        self.gaps = []
        for run, size in zip(run_for[:2], (2, 1), strict=True):
            p = position(run)
            seqs.offsets[p] = size
            self.gaps.append((p, size))
        p = position(run_for[2])
        seqs.offsets[p] = int(self.rng.integers(500, 3000))
        self.jump = p
        self.seqs = seqs

    def resolve_sequences(self) -> None:
        w, seqs = self.w, self.seqs
        for p, size in self.gaps:
            before, after = int(seqs.order[p - 1]), int(seqs.order[p])
            code = w.codes[w.code_id[before]]
            first, last = int(w.no8[before]) + 1, int(w.no8[after]) - 1
            assert last - first + 1 == size
            self.problem(
                "sequence_gap",
                before,
                ("text", f"{code}:{first:08d}-{last:08d}"),
                with_uid=False,
                details={
                    "missing": size,
                    "between": [("uid", before), ("uid", after)],
                    "period_of": "the invoice before the gap",
                },
            )
        before, after = int(seqs.order[self.jump - 1]), int(seqs.order[self.jump])
        self.plan.lookalikes.append(
            Lookalike(
                "new_allocation_jump",
                f"Under {w.codes[w.code_id[before]]} the numbers jump from {int(w.no8[before]):08d} to "
                f"{int(w.no8[after]):08d} (more than 50): a new allocation, not a sequence_gap.",
                [before, after],
            )
        )
        self.plan.lookalikes.append(
            Lookalike(
                "voided_inside_run",
                "A voided (已作废) paper invoice inside one of our runs of numbers: it fills "
                "the run (no sequence_gap) and is not expected in the ERP (no missing_in_erp).",
                [self.voided_in_run],
            )
        )
