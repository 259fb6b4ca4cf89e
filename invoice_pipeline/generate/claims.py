"""reimbursement: expense claims for a share of our received 普票 (SPEC §3.5)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from invoice_pipeline.generate import model as m
from invoice_pipeline.generate.frames import InvoiceText, csv_bytes, gather, money
from invoice_pipeline.generate.plants import Plan
from invoice_pipeline.specs import load_specs

# The exact headers of the real export, in order: the source spec is their one home.
COLUMNS = tuple(load_specs()["reimbursement"].tables["reimbursement"].columns.values())
ENCODINGS = {"BJ01": "utf-8-sig", "SH01": "utf-8", "SD01": "utf-8-sig", "GD01": "gbk"}
DEPARTMENTS = ("销售部", "市场部", "研发中心", "行政部", "财务部", "采购部", "人力资源部")
STATUSES = ("已支付",) * 9 + ("已通过",) * 7 + ("审批中",) * 2 + ("草稿", "已驳回")
LAST_DAY = date(2026, 10, 31)


@dataclass
class ClaimsResult:
    files: dict[str, int] = field(default_factory=dict)
    bad_rows: list[dict[str, Any]] = field(default_factory=list)


def write_claims(
    out: Path, world: m.World, texts: InvoiceText, plan: Plan, picked: np.ndarray
) -> ClaimsResult:
    rng = world.rng
    ents = world.entities
    employees = [m.person_names(rng, 12) for _ in ents]
    eligible = (
        world.in_platform
        & (world.status == m.NORMAL)
        & world.positive
        & (world.blue < 0)
        & ~world.goods_list
        & (world.risk == 0)
        & (world.dirn == m.RECEIVED)
        & np.isin(world.kind, [m.SD_PP, m.PP, m.EP, m.SDP])
        & ~picked
    )
    eligible[sorted(plan.no_claim)] = False
    candidates = np.flatnonzero(eligible)
    target = max(0, min(len(candidates), round(world.n_platform * 0.1) - len(plan.claims)))
    chosen = np.sort(rng.choice(candidates, size=target, replace=False)) if target else np.zeros(0, np.int64)
    chosen = chosen[np.lexsort((world.ts[chosen], world.ent[chosen]))]
    starts = (rng.random(len(chosen)) < 0.6) | np.concatenate([[True], np.diff(world.ent[chosen]) != 0])
    if len(starts):
        starts[0] = True
    claim_of = np.cumsum(starts) - 1
    n_claims = int(claim_of[-1]) + 1 if len(claim_of) else 0
    status = gather(STATUSES, rng.integers(0, len(STATUSES), size=n_claims))
    partial = rng.random(len(chosen)) < 0.15
    claimed = np.where(
        partial, np.round(world.tot[chosen] * rng.uniform(0.5, 0.99, size=len(chosen))), world.tot[chosen]
    ).astype(np.int64)
    base = pl.DataFrame(
        {
            "inv": chosen,
            "claim": claim_of,
            "claimed": claimed,
            "status": status.gather(claim_of) if n_claims else [],
            "raw_total": [None] * len(chosen),
        },
        schema={
            "inv": pl.Int64,
            "claim": pl.Int64,
            "claimed": pl.Int64,
            "status": pl.String,
            "raw_total": pl.String,
        },
    )
    planted = []
    for k, c in enumerate(plan.claims):
        planted.append(
            {
                "inv": c.inv if c.inv is not None else -1 - k,
                "claim": n_claims + k,
                "claimed": c.claimed,
                "status": c.status,
                "raw_total": c.raw_total,
            }
        )
    rows = pl.concat([base, pl.DataFrame(planted, schema=base.schema)])
    claimed_invoices = np.unique(rows.filter(pl.col("inv") >= 0)["inv"].to_numpy())
    info = texts.frame(claimed_invoices, ("i", "ent", "kind", "code", "no8", "no20", "issue_date", "tot"))
    rows = rows.join(info, left_on="inv", right_on="i", how="left", maintain_order="left")
    ghosts = {-1 - k: c for k, c in enumerate(plan.claims) if c.inv is None}
    if ghosts:
        fix = pl.DataFrame(
            [
                {
                    "inv": key,
                    "ent": c.ent,
                    "kind": m.SD_PP if not c.ref[0] else m.EP,
                    "code": c.ref[0] or None,
                    "no8": c.ref[1] if c.ref[0] else None,
                    "no20": None if c.ref[0] else c.ref[1],
                    "issue_date": c.ref_date,
                    "tot": c.ref_total,
                }
                for key, c in sorted(ghosts.items())
            ],
            schema={
                "inv": pl.Int64,
                "ent": pl.Int8,
                "kind": pl.Int8,
                "code": pl.String,
                "no8": pl.String,
                "no20": pl.String,
                "issue_date": pl.Date,
                "tot": pl.Int64,
            },
        )
        rows = rows.update(fix, on="inv", how="left")
    # Planted claims of one invoice: the first (e.g. rejected) is submitted before the second.
    order_in_plan = pl.int_range(pl.len()).over("inv")
    rows = rows.with_columns(claimed=pl.coalesce(pl.col("claimed"), pl.col("tot")))
    rows = rows.with_columns(
        submit_gap=pl.when(pl.col("claim") >= n_claims).then(3 + 7 * order_in_plan).otherwise(pl.lit(0)),
    )
    per_claim = rows.group_by("claim", maintain_order=True).agg(
        last_issue=pl.col("issue_date").max(), ent=pl.col("ent").first(), gap=pl.col("submit_gap").max()
    )
    delays = rng.integers(1, 21, size=per_claim.height)
    per_claim = per_claim.with_columns(
        submitted=pl.min_horizontal(
            pl.col("last_issue")
            + pl.duration(days=pl.when(pl.col("gap") > 0).then(pl.col("gap")).otherwise(pl.Series(delays))),
            pl.lit(LAST_DAY),
        ),
        claimant=pl.Series(rng.integers(0, 12, size=per_claim.height)),
        department=pl.Series(rng.integers(0, len(DEPARTMENTS), size=per_claim.height)),
    ).sort(["ent", "submitted", "claim"])
    orgs = pl.Series([e.org for e in ents], dtype=pl.String)
    per_claim = per_claim.with_columns(
        org=orgs.gather(per_claim["ent"].cast(pl.Int64)),
        seq=pl.int_range(1, pl.len() + 1).over(["ent", pl.col("submitted").dt.strftime("%Y%m")]),
    ).with_columns(
        claim_no=pl.concat_str(
            [
                pl.lit("BX"),
                pl.col("org"),
                pl.col("submitted").dt.strftime("%Y%m"),
                pl.col("seq").cast(pl.String).str.zfill(4),
            ]
        ),
        claimant_name=gather(
            [name for names in employees for name in names],
            per_claim["ent"].cast(pl.Int64).to_numpy() * 12 + per_claim["claimant"].to_numpy(),
        ),
        department_name=pl.Series(DEPARTMENTS, dtype=pl.String).gather(per_claim["department"]),
    )
    rows = rows.join(
        per_claim.select("claim", "org", "claim_no", "claimant_name", "department_name", "submitted"),
        on="claim",
        how="left",
        maintain_order="left",
    )
    digital = pl.col("no20").is_not_null() & (pl.col("kind") != m.SDP)
    text = rows.with_columns(
        报销单号=pl.col("claim_no"),
        报销人=pl.col("claimant_name"),
        部门=pl.col("department_name"),
        提交日期=pl.col("submitted").dt.strftime("%Y-%m-%d"),
        审批状态=pl.col("status"),
        发票代码=pl.when(digital).then(pl.lit("")).otherwise(pl.col("code")),
        发票号码=pl.when(digital).then(pl.col("no20")).otherwise(pl.col("no8")),
        开票日期=pl.col("issue_date").dt.strftime("%Y-%m-%d"),
        价税合计=pl.coalesce(pl.col("raw_total"), money(pl.col("tot"))),
        报销金额=money(pl.col("claimed")),
    ).sort(["org", "报销单号", "inv"])
    result = ClaimsResult()
    for org, encoding in ENCODINGS.items():
        part = text.filter(pl.col("org") == org)
        name = f"报销明细_{org}_2026.csv"
        (out / name).write_bytes(csv_bytes(part.select(COLUMNS), encoding))
        result.files[name] = part.height
        for k, raw in enumerate(part["raw_total"].to_list()):
            if raw is not None:
                result.bad_rows.append(
                    {
                        "source": "reimbursement",
                        "file": name,
                        "row": f"line {k + 2}",
                        "column": "价税合计",
                        "raw_value": raw,
                    }
                )
    return result
