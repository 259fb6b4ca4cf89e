"""sync_log: a night of sync-job runs for every night of the ten months (SPEC §3.6)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from invoice_pipeline.generate import model as m

TAX_TO_ERP, EINVOICE_TO_ERP, ERP_TO_CLAIMS = "tax_platform->erp", "einvoice->erp", "erp->reimbursement"
SHORT = {TAX_TO_ERP: "tp2erp", EINVOICE_TO_ERP: "ei2erp", ERP_TO_CLAIMS: "erp2bx"}
FIRST_NIGHT = date(2026, 1, 2)
LAST_NIGHT = date(2026, 11, 1)
ERP_TO_CLAIMS_STOPS = date(2026, 10, 28)  # the job was switched off by mistake after this night
EINVOICE_FAILS_FROM = date(2026, 10, 31)


@dataclass
class SyncResult:
    files: dict[str, int] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)
    lookalikes: list[dict[str, Any]] = field(default_factory=list)
    bad_rows: list[dict[str, Any]] = field(default_factory=list)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S+08:00")


def _run(
    system: str,
    night: date,
    start: datetime,
    seconds: int,
    read: int,
    entity: m.Entity | None,
    status: str = "success",
    written: int | None = None,
    failed: int = 0,
    error: str | None = None,
    suffix: str = "",
) -> dict[str, Any]:
    run_id = f"{SHORT[system]}-{night:%Y%m%d}" + (f"-{entity.org}" if entity else "") + suffix
    return {
        "run_id": run_id,
        "system": system,
        "entity_tin": entity.tin if entity else None,
        "started_at": _iso(start),
        "finished_at": _iso(start + timedelta(seconds=seconds)),
        "status": status,
        "records_read": read,
        "records_written": read if written is None else written,
        "records_failed": failed,
        "error": error,
    }


def write_sync(out: Path, world: m.World) -> SyncResult:
    rng = world.rng
    result = SyncResult()
    per_day = np.bincount(
        world.ent.astype(np.int64) * m.DAYS + np.minimum(world.ts // m.DAY, m.DAYS - 1),
        minlength=len(world.entities) * m.DAYS,
    ).reshape(len(world.entities), m.DAYS)
    runs: list[dict[str, Any]] = []
    night = FIRST_NIGHT
    while night <= LAST_NIGHT:
        day = (night - date(2026, 1, 2)).days  # the invoices of the day before
        base = datetime.combine(night, datetime.min.time())
        for e, entity in enumerate(world.entities):
            start = base + timedelta(hours=1, minutes=6 * e, seconds=int(rng.integers(0, 90)))
            read = int(per_day[e, min(day, m.DAYS - 1)])
            seconds = 30 + read // 5 + int(rng.integers(0, 60))
            if entity.org == "BJ01" and night == date(2026, 5, 14):
                runs.append(
                    _run(
                        TAX_TO_ERP,
                        night,
                        start,
                        12,
                        0,
                        entity,
                        "failed",
                        0,
                        0,
                        "ConnectionResetError: [Errno 104] Connection reset by peer (电子税务局接口)",
                    )
                )
                retry = base + timedelta(hours=1, minutes=52)
                runs.append(_run(TAX_TO_ERP, night, retry, seconds, read, entity, suffix="-retry"))
                result.problems.append({"rule_id": "sync_failed", "run": runs[-2], "why": "status failed"})
                continue
            if entity.org == "SH01" and night == date(2026, 8, 20):
                lost = min(5, max(read, 1))
                runs.append(
                    _run(
                        TAX_TO_ERP,
                        night,
                        start,
                        seconds,
                        max(read, lost),
                        entity,
                        "partial",
                        max(read, lost) - lost,
                        lost,
                        f"{lost} records rejected by ERP: 购方识别号为空",
                    )
                )
                result.problems.append(
                    {"rule_id": "sync_failed", "run": runs[-1], "why": "partial run lost records"}
                )
                continue
            runs.append(_run(TAX_TO_ERP, night, start, seconds, read, entity))
        if night <= ERP_TO_CLAIMS_STOPS:
            start = base + timedelta(hours=1, minutes=25, seconds=int(rng.integers(0, 60)))
            runs.append(
                _run(ERP_TO_CLAIMS, night, start, int(rng.integers(20, 200)), int(rng.integers(5, 80)), None)
            )
        start = base + timedelta(hours=1, minutes=35, seconds=int(rng.integers(0, 60)))
        read = int(rng.integers(0, 40))
        if night >= EINVOICE_FAILS_FROM:
            runs.append(
                _run(
                    EINVOICE_TO_ERP,
                    night,
                    start,
                    300,
                    0,
                    None,
                    "failed",
                    0,
                    0,
                    "TimeoutError: OFD parser timed out after 300 s",
                )
            )
            result.problems.append({"rule_id": "sync_failed", "run": runs[-1], "why": "status failed"})
        elif night == date(2026, 3, 9):
            runs.append(
                _run(
                    EINVOICE_TO_ERP,
                    night,
                    start,
                    95,
                    57,
                    None,
                    "partial",
                    57,
                    0,
                    "2 files already imported, skipped",
                )
            )
            result.lookalikes.append(
                {
                    "kind": "partial_sync_without_loss",
                    "subject": runs[-1]["run_id"],
                    "note": "A partial run that read 57 and wrote 57 with 0 failed: it lost nothing, "
                    "no sync_failed.",
                }
            )
        else:
            runs.append(_run(EINVOICE_TO_ERP, night, start, int(rng.integers(20, 200)), read, None))
        night += timedelta(days=1)

    last_success: dict[str, str] = {}
    for run in runs:
        if run["status"] == "success":
            last_success[run["system"]] = max(last_success.get(run["system"], ""), run["finished_at"])
    for system in (EINVOICE_TO_ERP, ERP_TO_CLAIMS):
        result.problems.append(
            {"rule_id": "sync_stale", "system": system, "last_success": last_success[system]}
        )
    result.lookalikes.append(
        {
            "kind": "healthy_sync",
            "subject": TAX_TO_ERP,
            "note": f"Last successful run finished {last_success[TAX_TO_ERP]}, under 26 hours before "
            "the as-of instant 2026-11-01T02:00:00+08:00: no sync_stale.",
        }
    )

    by_month: dict[str, list[str]] = {}
    for run in runs:
        by_month.setdefault(run["started_at"][:7], []).append(json.dumps(run, ensure_ascii=False))
    # A line cut short when the job was killed mid-write (a June run of GD01).
    june = by_month["2026-06"]
    victim = next(k for k, line in enumerate(june) if '"tp2erp-20260618-GD01"' in line)
    june[victim] = june[victim][: june[victim].index('"started_at"') + 24]
    for month, lines in sorted(by_month.items()):
        name = f"sync_{month}.jsonl"
        (out / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        result.files[name] = len(lines)
        if month == "2026-06":
            result.bad_rows.append(
                {
                    "source": "sync_log",
                    "file": name,
                    "row": f"line {victim + 1}",
                    "column": None,
                    "raw_value": june[victim],
                }
            )
    return result
