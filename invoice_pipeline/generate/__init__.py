"""Synthetic landing files for every source, with known planted problems and a truth file.

`generate(out, invoices, seed)` writes `out/landing/<source>/…` in the real formats of SPEC §3
and returns the truth (also written to `out/truth.json`): every planted problem with the exact
finding SPEC §4.2 should raise for it, the look-alikes that must raise nothing, the files and
rows the pipeline must quarantine or reject, and the counts of what is on disk. The same
arguments always give the same bytes.

The truth's `conventions` say how it fills `subject`, `period` and scope where SPEC §4.1
leaves a choice.
"""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from invoice_pipeline.generate import model as m
from invoice_pipeline.generate.books import plant_books
from invoice_pipeline.generate.claims import write_claims
from invoice_pipeline.generate.einvoice import sample_xml, write_einvoice
from invoice_pipeline.generate.erp import write_erp
from invoice_pipeline.generate.frames import InvoiceText, csv_bytes, uid_text
from invoice_pipeline.generate.numbering import apply_numbers, prepare_numbers
from invoice_pipeline.generate.plants import SEVERITY, Planter
from invoice_pipeline.generate.platform import CSV_ONLY_FROM, write_platform
from invoice_pipeline.generate.synclog import write_sync

__all__ = ["MIN_INVOICES", "SEVERITY", "generate"]

CONVENTIONS = {
    "subject": "invoice_uid for findings about one invoice; <组织>/<单据编号> for the rules that compare one "
    "ERP document with the tax invoice (missing_in_tax_platform, amount_mismatch, counterparty_mismatch, "
    "date_mismatch, cross_period_booking, voided_but_booked); the blue invoice for red_over_reversal; "
    "<发票代码>:<first>-<last> for sequence_gap; run_id for sync_failed; the system for sync_stale; the TIN "
    "for invalid_tin; the file name for control_total_mismatch",
    "period": "the invoice's issue month (Asia/Shanghai); for sequence_gap the month of the invoice before "
    "the gap; for missing_in_tax_platform and claim_without_invoice the month of the date keyed with the "
    "reference; for sync_failed the month the run started; null for control_total_mismatch and sync_stale",
    "invoice_uid": "null for invalid_tin (its invoices are in details), sequence_gap, control_total_mismatch "
    "and the sync rules; the referenced number in canonical form for missing_in_tax_platform and "
    "claim_without_invoice",
    "entity_tin": "our entity (for wrong_title: the entity whose name or alias is the buyer name); null for "
    "claims of unknown invoices and for group-wide sync jobs; direction likewise null where there is none",
    "rows": "ERP and claim rows are 'line <n>' with the header as line 1; sync-log lines are 'line <n>' "
    "from 1; bad_files reason_contains is a case-insensitive substring",
    "counts": "rows on disk in the files that are not bad_files, rejected rows (bad_rows) included",
}
MIN_INVOICES = 300
PLANTED_REDS = 5  # red_over_reversal (3) and red_without_blue (2)
SOURCES = ("entities", "tax_platform", "einvoice", "erp", "reimbursement", "sync_log")


def generate(out: Path, invoices: int, seed: int) -> dict[str, Any]:
    """Write `out/landing/…` and `out/truth.json` for `invoices` platform invoices; return the truth."""
    if invoices < MIN_INVOICES:
        raise ValueError(f"--invoices must be at least {MIN_INVOICES} to plant every problem")
    out = Path(out)
    landing = out / "landing"
    _clear_landing(out, landing)

    rng = np.random.default_rng(seed)
    entities = m.make_entities()
    cps = m.make_counterparties(rng, int(np.clip(invoices // 8, 40, 4000)))
    n_red = max(6, round(invoices * 0.02))
    world = m.base_world(rng, invoices - n_red - PLANTED_REDS, entities, cps)
    world.n_platform = invoices
    eligible = np.flatnonzero(
        (world.status == m.NORMAL)
        & ~world.goods_list
        & (world.ts < (m.DAYS - 20) * m.DAY)
        & (world.kind != m.SDP)
    )
    blues, reds = m.add_reds(world, n_red, eligible)
    planter = Planter(world, write_lines=invoices < CSV_ONLY_FROM)
    planter.run_before_headers()
    m.compute_headers(world)
    planter.run_after_headers()
    seqs = prepare_numbers(world)
    planter.plant_sequences(seqs)
    apply_numbers(world, seqs)
    planter.resolve_sequences()
    plant_books(planter)
    plan = planter.plan

    texts = InvoiceText(world)  # the world is final: text is made from it per file from here on
    _write_entities(landing / "entities", entities)
    platform = write_platform(landing / "tax_platform", world, texts, plan.travel, m.person_names(rng, 3))
    sample = sample_xml(world, plan.xml_force, planter.picked)
    einvoice = write_einvoice(
        landing / "einvoice", world, texts, sample, plan.xml_delta, plan.ofd, plan.ofd_delta
    )
    erp = write_erp(landing / "erp", world, texts, plan, planter.bad_rows)
    claims = write_claims(landing / "reimbursement", world, texts, plan, planter.picked)
    sync = write_sync(landing / "sync_log", world)

    truth = _Truth(world, erp.subjects).build(
        invoices=invoices,
        seed=seed,
        planter=planter,
        blues=blues,
        reds=reds,
        platform=platform,
        einvoice=einvoice,
        erp=erp,
        claims=claims,
        sync=sync,
    )
    (out / "truth.json").write_text(json.dumps(truth, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return truth


def _clear_landing(out: Path, landing: Path) -> None:
    """Replace a tree this function wrote before; never delete files somebody else dropped."""
    existing = [p for source in SOURCES if (landing / source).is_dir() for p in (landing / source).iterdir()]
    if existing and not (out / "truth.json").is_file():
        raise FileExistsError(
            f"{landing} already holds files that generate did not write: use an empty --out"
        )
    for source in SOURCES:
        shutil.rmtree(landing / source, ignore_errors=True)
        (landing / source).mkdir(parents=True)


def _write_entities(folder: Path, entities: list[m.Entity]) -> None:
    (folder / "entities.csv").write_bytes(
        csv_bytes(
            pl.DataFrame(
                {
                    "tin": [e.tin for e in entities],
                    "name": [e.name for e in entities],
                    "region_code": [e.region for e in entities],
                    "erp_org_code": [e.org for e in entities],
                    "aliases": ["|".join(e.aliases) for e in entities],
                }
            )
        )
    )


class _Truth:
    def __init__(self, world: m.World, erp_subjects: dict[str, str]) -> None:
        self.world = world
        self.erp_subjects = erp_subjects

    def uid(self, i: int) -> str:
        return uid_text(self.world, i)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, tuple) and len(value) == 2 and value[0] in ("uid", "erp", "text"):
            kind, ref = value
            return {
                "uid": lambda: self.uid(int(ref)),
                "erp": lambda: self.erp_subjects[ref],
                "text": lambda: ref,
            }[kind]()
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def scope(self, i: int | None) -> dict[str, Any]:
        if i is None:
            return {"entity_tin": None, "direction": None, "period": None, "invoice_uid": None}
        w = self.world
        return {
            "entity_tin": w.entities[w.ent[i]].tin,
            "direction": m.DIRECTION[w.dirn[i]],
            "period": (m.EPOCH + timedelta(seconds=int(w.ts[i]))).strftime("%Y-%m"),
            "invoice_uid": self.uid(i),
        }

    def problem(
        self, rule_id: str, scope: dict[str, Any], subject: str, details: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "rule_id": rule_id,
            "severity": SEVERITY[rule_id],
            "entity_tin": scope["entity_tin"],
            "direction": scope["direction"],
            "period": scope["period"],
            "invoice_uid": scope["invoice_uid"],
            "subject": subject,
            "details": details,
        }

    def build(
        self,
        *,
        invoices: int,
        seed: int,
        planter: Planter,
        blues: np.ndarray,
        reds: np.ndarray,
        platform: Any,
        einvoice: Any,
        erp: Any,
        claims: Any,
        sync: Any,
    ) -> dict[str, Any]:
        world = self.world
        problems = []
        for p in planter.plan.problems:
            scope = self.scope(p.inv)
            if not p.with_uid:
                scope["invoice_uid"] = None
            scope.update(p.scope)
            problems.append(self.problem(p.rule_id, scope, self.resolve(p.subject), self.resolve(p.details)))
        for name, ent, dirn, what in platform.control_mismatch:
            scope = {
                "entity_tin": world.entities[ent].tin,
                "direction": m.DIRECTION[dirn],
                "period": None,
                "invoice_uid": None,
            }
            problems.append(self.problem("control_total_mismatch", scope, name, {"合计行": what}))
        for p in sync.problems:
            if p["rule_id"] == "sync_failed":
                run = p["run"]
                scope = {
                    "entity_tin": run["entity_tin"],
                    "direction": None,
                    "period": run["started_at"][:7],
                    "invoice_uid": None,
                }
                problems.append(
                    self.problem(
                        "sync_failed",
                        scope,
                        run["run_id"],
                        {"system": run["system"], "status": run["status"], "why": p["why"]},
                    )
                )
            else:
                scope = self.scope(None)
                problems.append(
                    self.problem(
                        "sync_stale",
                        scope,
                        p["system"],
                        {"last_success_finished_at": p["last_success"], "threshold_hours": 26},
                    )
                )
        problems.sort(key=lambda p: (p["rule_id"], p["subject"]))
        return {
            "generator": "invoice_pipeline.generate",
            "seed": seed,
            "invoices": invoices,
            "as_of": m.AS_OF.isoformat(),
            "as_of_instant": "2026-11-01T02:00:00+08:00",
            "conventions": CONVENTIONS,
            "calendar": {
                "first_issue_date": "2026-01-01",
                "last_issue_date": "2026-10-31",
                "timezone": "Asia/Shanghai",
            },
            "entities": [
                {
                    "tin": e.tin,
                    "name": e.name,
                    "region_code": e.region,
                    "erp_org_code": e.org,
                    "short_name": e.short,
                }
                for e in world.entities
            ],
            "counts": self.counts(platform, einvoice, erp, claims, sync),
            "problems": problems,
            "lookalikes": self.lookalikes(planter, blues, reds, einvoice, erp, sync),
            "bad_files": sorted(
                [
                    {"source": "tax_platform", "file": platform.truncated, "reason_contains": "zip"},
                    {"source": "einvoice", "file": einvoice.bomb, "reason_contains": "entit"},
                    {"source": "einvoice", "file": einvoice.malformed, "reason_contains": "not well-formed"},
                    *erp.bad_files,
                ],
                key=lambda b: (b["source"], b["file"]),
            ),
            "bad_rows": sorted(
                [*erp.bad_rows, *claims.bad_rows, *sync.bad_rows],
                key=lambda b: (b["source"], b["file"], b["row"]),
            ),
            "erp_keying_variants": erp.variants,
        }

    def counts(self, platform: Any, einvoice: Any, erp: Any, claims: Any, sync: Any) -> dict[str, Any]:
        world = self.world
        xml_uids = set(einvoice.xml_files.values())
        ofd_uids = set(einvoice.ofd_files.values())
        # Invoices only XML or OFD files know (uids are unique, so no platform invoice has theirs).
        extra = {uid_text(world, i) for i in einvoice.invoices if not world.in_platform[i]}
        platform_total = _distinct_platform_invoices(world)
        return {
            "entities": len(world.entities),
            "tax_platform_files": dict(sorted(platform.files.items())),
            "tax_platform_rows": sum(platform.files.values()),
            "tax_platform_line_rows": platform.line_rows,
            "einvoice_xml_files": len(einvoice.xml_files),
            "einvoice_ofd_files": len(einvoice.ofd_files),
            "erp_files": dict(sorted(erp.files.items())),
            "erp_rows": sum(erp.files.values()),
            "reimbursement_files": dict(sorted(claims.files.items())),
            "reimbursement_rows": sum(claims.files.values()),
            "sync_log_files": dict(sorted(sync.files.items())),
            "sync_log_lines": sum(sync.files.values()),
            "core_invoices": {
                "tax_platform": platform_total,
                "einvoice_xml": len(xml_uids),
                "einvoice_ofd": len(ofd_uids),
                "total": platform_total + len(extra),
            },
        }

    def lookalikes(
        self, planter: Planter, blues: np.ndarray, reds: np.ndarray, einvoice: Any, erp: Any, sync: Any
    ) -> list[dict[str, Any]]:
        world = self.world
        out = []
        for look in planter.plan.lookalikes:
            out.append(
                {
                    "kind": look.kind,
                    "note": look.note,
                    "invoice_uids": [self.uid(i) for i in look.invs],
                    "erp_documents": [self.erp_subjects[t] for t in look.erp_tags],
                    "subject": look.subject,
                }
            )

        def add(kind: str, note: str, invs: list[int], docs: list[str] | None = None) -> None:
            out.append(
                {
                    "kind": kind,
                    "note": note,
                    "invoice_uids": [self.uid(int(i)) for i in invs],
                    "erp_documents": docs or [],
                    "subject": None,
                }
            )

        full = world.status[blues] == m.RED_FULL
        add(
            "complete_red_blue_pair",
            "A blue invoice 已红冲-全额 and the red invoice reversing it exactly: "
            "no red_over_reversal, no red_without_blue; both booked (the red with negative amounts).",
            [blues[full][0], reds[full][0]],
        )
        add(
            "partial_red",
            "A blue invoice 已红冲-部分 and a red reversing part of one line: no finding.",
            [blues[~full][0], reds[~full][0]],
        )
        months = m.month_of(world.ts)
        later = np.flatnonzero(months[reds] > months[blues])
        if len(later):
            add(
                "red_in_later_month",
                "A red invoice issued in a later month than its blue, booked in its own "
                "month: no cross_period_booking.",
                [blues[later[0]], reds[later[0]]],
            )
        goods = np.flatnonzero(world.goods_list & world.in_platform)
        if len(goods):
            add(
                "goods_list_invoice",
                "A goods-list invoice: a (详见销货清单) face line plus the list lines, so "
                "the line sheet adds up to twice the header: no arithmetic_error.",
                goods[:2].tolist(),
            )
        voided = np.flatnonzero((world.status == m.VOIDED) & ~planter.picked)
        if len(voided):
            add(
                "voided_not_booked",
                "A voided (已作废) invoice with no ERP record: no missing_in_erp.",
                voided[:2].tolist(),
            )
        paper = np.flatnonzero((world.kind == m.SDP) & world.in_platform & (world.status != m.VOIDED))
        if len(paper):
            add(
                "paper_digital_invoice",
                "数电纸质发票 carry a 发票代码, a 发票号码 and a 20-digit number; the ERP "
                "keys some by the paper code and number: they still match (no missing_in_erp, no "
                "missing_in_tax_platform).",
                paper[:3].tolist(),
            )
        for doc, kind, note in (
            (
                erp.empty_tin_example,
                "erp_empty_counterparty_tin",
                "An ERP document with an empty 往来单位税号: not a counterparty_mismatch.",
            ),
            (
                erp.unaudited_example,
                "erp_unaudited_booking",
                "An invoice booked only by an unaudited (未审核) document: it has an ERP record, "
                "no missing_in_erp.",
            ),
        ):
            if doc:
                out.append(
                    {"kind": kind, "note": note, "invoice_uids": [], "erp_documents": [doc], "subject": None}
                )
        by_uid = {v: k for k, v in einvoice.xml_files.items()}
        for kind, invs, note in (
            (
                "xml_issue_time_date_only",
                einvoice.date_only[:2],
                "XML files whose IssueTime is a date without time: "
                "the same issue date, no source_disagreement, no date_mismatch.",
            ),
            (
                "xml_shuffled_elements",
                einvoice.shuffled[:2],
                "XML files with their elements in another order: read the same, no finding.",
            ),
        ):
            out.append(
                {
                    "kind": kind,
                    "note": note,
                    "invoice_uids": [self.uid(i) for i in invs],
                    "erp_documents": [],
                    "subject": None,
                    "files": [by_uid[self.uid(i)] for i in invs],
                }
            )
        out.append(
            {
                "kind": "quarantined_copies",
                "note": "The quarantined ERP files (invalid bytes, missing "
                "columns) repeat documents already booked: loading them would raise duplicate_erp_entry.",
                "invoice_uids": [],
                "erp_documents": [],
                "subject": None,
            }
        )
        for look in sync.lookalikes:
            out.append(
                {
                    "kind": look["kind"],
                    "note": look["note"],
                    "invoice_uids": [],
                    "erp_documents": [],
                    "subject": look["subject"],
                }
            )
        return out


def _distinct_platform_invoices(world: m.World) -> int:
    """How many invoice_uids the platform exports hold: 20-digit numbers, else 发票代码 + 号码."""
    platform = world.in_platform
    digital = platform & (world.no20 >= 0)
    legacy = platform & ~digital
    pairs = world.code_id[legacy] * (int(world.no8.max()) + 1) + world.no8[legacy]  # (code, number)
    return pl.Series(world.no20[digital]).n_unique() + pl.Series(pairs).n_unique()
