"""What one compliance report shows, read from the warehouse: the `report.*` tables for the
numbers, `audit.findings` (with the invoice, ERP document and claims it names) for the evidence.

Scope of a report for entity E and month M:
- the month's figures: `report.*` rows of E whose `period` is M;
- the findings counted in the month: open findings of E whose `period` is M;
- listed besides, not counted in the month: open findings of E that belong to no month (a file's
  control total), and open findings of M or of no month that belong to no entity (a failed or
  stale sync system, a claim whose invoice nobody knows) — every entity's report shows those.

"Open" counts findings in state `open` (audit.finding_status): a finding whose risk was accepted
(state `accepted`, see invoice_pipeline/remediation.py) is counted apart as accepted and still
listed, marked, with the evidence. Each listed finding carries what people did about it
(report.open_finding_actions): the open action, the latest action, who (masked), when, the note,
and the days since the latest action (since first seen when there is none).

Personal data is masked here, once, so the workbook and the HTML cannot differ on it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import duckdb
import polars as pl

from invoice_pipeline.findings import Rule, load_rules
from invoice_pipeline.normalize import mask_person_name, mask_tin
from invoice_pipeline.publish import scrub_text
from invoice_pipeline.reports import labels
from invoice_pipeline.warehouse import table_exists

SHANGHAI = ZoneInfo("Asia/Shanghai")
TAX_SOURCES = ("tax_platform", "einvoice_xml", "einvoice_ofd")
SOURCES = (*TAX_SOURCES, "erp")
# Evidence keys already shown in their own columns.
_SHOWN_ELSEWHERE = frozenset({"counterparty_name", "counterparty_tin"})
# A mainland mobile number standing alone (not inside a longer number): keep 3 + 4 digits.
_MOBILE = r"(^|\D)(1[3-9]\d)\d{4}(\d{4})(\D|$)"


@dataclass
class ReportData:
    entity_tin: str
    entity_name: str
    month: str
    aged_at: datetime
    generated_at: datetime
    rules: dict[str, Rule]
    sources: pl.DataFrame  # direction, source, invoices, amount_excl_tax, tax_amount, amount_incl_tax
    matched: pl.DataFrame  # direction ('total' last), valid/matched invoices and money, shares
    by_rule: pl.DataFrame  # every rule of rules.yaml: month's open findings, others, activity
    findings: pl.DataFrame  # one row per open finding in scope, masked, details flattened
    detail_columns: dict[str, list[str]] = field(default_factory=dict)  # family -> flattened keys
    vat: pl.DataFrame = field(default_factory=pl.DataFrame)
    ageing: pl.DataFrame = field(default_factory=pl.DataFrame)

    @property
    def month_findings(self) -> pl.DataFrame:
        """The month's findings still to be dealt with (state open): what the month counts."""
        return self.findings.filter((pl.col("scope") == "month") & (pl.col("state") == "open"))

    @property
    def month_accepted(self) -> pl.DataFrame:
        """The month's findings whose risk was accepted: counted apart, listed with the rest."""
        return self.findings.filter((pl.col("scope") == "month") & (pl.col("state") == "accepted"))

    @property
    def families(self) -> list[str]:
        """Every family of checks/rules.yaml, in the order the catalogue lists them."""
        return list(dict.fromkeys(rule.family for rule in self.rules.values()))


def _money(value) -> Decimal:
    return Decimal(0) if value is None else Decimal(value)


def _share(part, whole) -> float | None:
    return round(float(part) / float(whole), 4) if whole else None


def entities(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(tin, name) of our entities, from staging.entities."""
    if not table_exists(con, "staging", "entities"):
        return []
    return con.execute("select tin, name from staging.entities where tin is not null order by tin").fetchall()


def months_with_data(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every month that report.period_summary has a row for (invoices or ERP documents)."""
    if not table_exists(con, "report", "period_summary"):
        return []
    return [
        m
        for (m,) in con.execute(
            "select distinct period from report.period_summary where period is not null order by period"
        ).fetchall()
    ]


def aged_at(con: duckdb.DuckDBPyConnection) -> datetime:
    """The instant ages are measured at: the latest run's evaluated_at (its as-of), else now."""
    row = None
    if table_exists(con, "audit", "runs"):
        row = con.execute("select evaluated_at from audit.runs order by started_at desc limit 1").fetchone()
    return (row[0] if row else datetime.now(SHANGHAI)).astimezone(SHANGHAI)


def _sources(con, tin: str, month: str) -> pl.DataFrame:
    selects = []
    for source in TAX_SOURCES:
        selects.append(
            f"select direction, '{source}' as source, {source}_invoices as invoices, "
            f"{source}_amount_excl_tax as amount_excl_tax, {source}_tax_amount as tax_amount, "
            f"{source}_amount_incl_tax as amount_incl_tax from report.period_summary "
            "where entity_tin = $tin and period = $month"
        )
    selects.append(
        "select direction, 'erp' as source, erp_documents as invoices, erp_amount_excl_tax, "
        "erp_tax_amount, erp_amount_incl_tax from report.period_summary "
        "where entity_tin = $tin and period = $month"
    )
    found = con.sql(" union all ".join(selects), params={"tin": tin, "month": month}).fetchall()
    values = {(d, s): (n, a, t, i) for d, s, n, a, t, i in found}
    rows = []
    for direction in labels.DIRECTIONS:
        for source in SOURCES:
            n, a, t, i = values.get((direction, source), (0, 0, 0, 0))
            rows.append((direction, source, int(n), _money(a), _money(t), _money(i)))
    return pl.DataFrame(
        rows,
        schema={
            "direction": pl.String,
            "source": pl.String,
            "invoices": pl.Int64,
            "amount_excl_tax": pl.Decimal(18, 2),
            "tax_amount": pl.Decimal(18, 2),
            "amount_incl_tax": pl.Decimal(18, 2),
        },
        orient="row",
    )


def _matched(con, tin: str, month: str) -> pl.DataFrame:
    found = {
        d: (v, va, m, ma)
        for d, v, va, m, ma in con.execute(
            "select direction, valid_invoices, valid_amount_incl_tax, matched_invoices, "
            "matched_amount_incl_tax from report.period_summary where entity_tin = ? and period = ?",
            [tin, month],
        ).fetchall()
    }
    rows = []
    for direction in (*labels.DIRECTIONS, "total"):
        if direction == "total":
            parts = list(found.values())
            v, va, m, ma = (sum((p[i] for p in parts), start=0) for i in range(4))
        else:
            v, va, m, ma = found.get(direction, (0, 0, 0, 0))
        rows.append((direction, int(v), int(m), _share(m, v), _money(va), _money(ma), _share(ma, va)))
    return pl.DataFrame(
        rows,
        schema={
            "direction": pl.String,
            "valid_invoices": pl.Int64,
            "matched_invoices": pl.Int64,
            "matched_share": pl.Float64,
            "valid_amount_incl_tax": pl.Decimal(18, 2),
            "matched_amount_incl_tax": pl.Decimal(18, 2),
            "matched_amount_share": pl.Float64,
        },
        orient="row",
    )


def _by_rule(con, tin: str, month: str, rules: dict[str, Rule]) -> pl.DataFrame:
    params = {"tin": tin, "month": month}
    counts = {
        r: (s, n, m, on, om, an, am)
        for r, s, n, m, on, om, an, am in con.sql(
            """
            select
                rule_id,
                any_value(severity),
                coalesce(sum(open_findings) filter (where entity_tin = $tin and period = $month), 0),
                sum(money_at_stake) filter (where entity_tin = $tin and period = $month),
                coalesce(sum(open_findings) filter (where entity_tin is null or period is null), 0),
                sum(money_at_stake) filter (where entity_tin is null or period is null),
                coalesce(sum(accepted_findings) filter (where entity_tin = $tin and period = $month), 0),
                sum(accepted_money_at_stake) filter (where entity_tin = $tin and period = $month)
            from report.findings_by_rule
            where (entity_tin = $tin or entity_tin is null) and (period = $month or period is null)
            group by rule_id
            """,
            params=params,
        ).fetchall()
    }
    activity = {
        r: (o, ro, rs)
        for r, o, ro, rs in con.sql(
            "select rule_id, sum(opened), sum(reopened), sum(resolved) from report.finding_activity "
            "where entity_tin = $tin and period = $month group by rule_id",
            params=params,
        ).fetchall()
    }
    rows = []
    for rule_id in sorted({*rules, *counts, *activity}):
        rule = rules.get(rule_id)
        severity, n, money, other_n, other_money, accepted_n, accepted_money = counts.get(
            rule_id, (None, 0, None, 0, None, 0, None)
        )
        opened, reopened, resolved = activity.get(rule_id, (0, 0, 0))
        rows.append(
            (
                rule.family if rule else "other",
                rule_id,
                labels.rule_title(rule_id),
                rule.severity if rule else severity,
                int(n),
                None if money is None else Decimal(money),
                int(other_n),
                None if other_money is None else Decimal(other_money),
                int(opened or 0),
                int(reopened or 0),
                int(resolved or 0),
                rule.description if rule else "",
                int(accepted_n),
                None if accepted_money is None else Decimal(accepted_money),
            )
        )
    frame = pl.DataFrame(
        rows,
        schema={
            "family": pl.String,
            "rule_id": pl.String,
            "title": pl.String,
            "severity": pl.String,
            "open_findings": pl.Int64,
            "money_at_stake": pl.Decimal(18, 2),
            "other_open_findings": pl.Int64,
            "other_money_at_stake": pl.Decimal(18, 2),
            "opened": pl.Int64,
            "reopened": pl.Int64,
            "resolved": pl.Int64,
            "description": pl.String,
            "accepted_findings": pl.Int64,
            "accepted_money_at_stake": pl.Decimal(18, 2),
        },
        orient="row",
    )
    order = {s: i for i, s in enumerate(labels.SEVERITY_ORDER)}
    return frame.sort(
        pl.col("severity").replace_strict(order, default=9, return_dtype=pl.Int64),
        pl.col("money_at_stake").fill_null(0),
        pl.col("open_findings"),
        "rule_id",
        descending=[False, True, True, False],
    )


def _optional(con, schema: str, table: str, sql: str, empty: str) -> str:
    return sql if table_exists(con, schema, table) else empty


def _evidence(con, tin: str, month: str, at: datetime) -> pl.DataFrame:
    invoices = _optional(
        con,
        "core",
        "authoritative_invoices",
        "select invoice_uid, entity_tin, counterparty_tin, "
        "case when direction = 'issued' then buyer_name else seller_name end as counterparty_name "
        "from core.authoritative_invoices",
        "select null::varchar as invoice_uid, null::varchar as entity_tin, "
        "null::varchar as counterparty_tin, null::varchar as counterparty_name where false",
    )
    erp = _optional(
        con,
        "staging",
        "erp",
        "select erp_doc_id, counterparty_tin, counterparty_name, clerk from staging.erp",
        "select null::varchar as erp_doc_id, null::varchar as counterparty_tin, "
        "null::varchar as counterparty_name, null::varchar as clerk where false",
    )
    drawers = _optional(
        con,
        "staging",
        "tax_platform",
        "select invoice_uid, any_value(drawer) as drawer from staging.tax_platform group by invoice_uid",
        "select null::varchar as invoice_uid, null::varchar as drawer where false",
    )
    actions = _optional(
        con,
        "report",
        "open_finding_actions",
        "select finding_id, state, open_action, latest_action, latest_action_by, latest_action_at, "
        "latest_action_note, days_since_action from report.open_finding_actions",
        "select null::varchar as finding_id, null::varchar as state, null::varchar as open_action, "
        "null::varchar as latest_action, null::varchar as latest_action_by, "
        "null::timestamptz as latest_action_at, null::varchar as latest_action_note, "
        "null::integer as days_since_action where false",
    )
    claims = _optional(
        con,
        "staging",
        "reimbursement",
        "select claim_no, any_value(claimant) as claimant from staging.reimbursement group by claim_no",
        "select null::varchar as claim_no, null::varchar as claimant where false",
    )
    sql = f"""
        with scoped as (
            select
                *,
                case
                    when entity_tin is null then 'unassigned'
                    when period is null then 'undated'
                    else 'month'
                end as scope
            from audit.findings
            where status = 'open'
                and (entity_tin = $tin or entity_tin is null) and (period = $month or period is null)
        ),
        invoices as ({invoices}),
        erp as ({erp}),
        drawers as ({drawers}),
        claims as ({claims}),
        actions as ({actions}),
        claim_refs as (
            select finding_id, unnest(json_extract_string(details, '$.claims[*]')) as claim_no
            from scoped
            where json_type(details, '$.claims') = 'ARRAY'
        ),
        claimants as (
            select r.finding_id, list(distinct c.claimant order by c.claimant) as claimants
            from claim_refs as r
            inner join claims as c on r.claim_no = c.claim_no
            where c.claimant is not null
            group by r.finding_id
        )
        select
            s.finding_id,
            s.scope,
            s.rule_id,
            s.severity,
            s.entity_tin,
            s.direction,
            s.period,
            s.subject,
            s.invoice_uid,
            coalesce(i.counterparty_name, e.counterparty_name) as counterparty_name,
            coalesce(i.counterparty_tin, e.counterparty_tin) as counterparty_tin,
            s.amount,
            timezone('Asia/Shanghai', s.first_seen_at) as first_seen_at,
            greatest(0, cast(floor((epoch($at) - epoch(s.first_seen_at)) / 86400) as integer)) as age_days,
            d.drawer,
            e.clerk,
            coalesce(c.claimants, []::varchar[]) as claimants,
            coalesce(a.state, 'open') as state,
            a.open_action,
            a.latest_action,
            a.latest_action_by,
            timezone('Asia/Shanghai', a.latest_action_at) as latest_action_at,
            a.latest_action_note,
            coalesce(
                a.days_since_action,
                greatest(0, cast(floor((epoch($at) - epoch(s.first_seen_at)) / 86400) as integer))
            ) as days_since_action,
            cast(s.details as varchar) as details
        from scoped as s
        left join invoices as i on s.invoice_uid = i.invoice_uid and s.entity_tin = i.entity_tin
        left join erp as e on s.subject = e.erp_doc_id
        left join drawers as d on s.invoice_uid = d.invoice_uid
        left join claimants as c on s.finding_id = c.finding_id
        left join actions as a on s.finding_id = a.finding_id
        order by s.amount desc nulls last, s.rule_id, s.subject
    """
    return con.sql(sql, params={"tin": tin, "month": month, "at": at}).pl()


def _flatten(value, key: str, out: dict[str, object]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{key}.{k}", out)
    elif isinstance(value, list):
        out[key] = [None if v is None else str(v) for v in value]
    else:
        out[key] = value


def _details_long(findings: pl.DataFrame) -> pl.DataFrame:
    """One row per (finding, evidence key, list position), values as text."""
    rows = []
    for finding_id, details in findings.select("finding_id", "details").iter_rows():
        if not details:
            continue
        flat: dict[str, object] = {}
        for key, value in json.loads(details, parse_float=Decimal).items():
            if key not in _SHOWN_ELSEWHERE:
                _flatten(value, key, flat)
        for key, value in flat.items():
            is_list = isinstance(value, list)
            for pos, item in enumerate(value if is_list else [value]):
                rows.append((finding_id, key, pos, is_list, None if item is None else str(item)))
    return pl.DataFrame(
        rows,
        schema={
            "finding_id": pl.String,
            "key": pl.String,
            "pos": pl.Int64,
            "is_list": pl.Boolean,
            "value": pl.String,
        },
        orient="row",
    )


def mask_details(long: pl.DataFrame) -> pl.DataFrame:
    """TINs that carry a resident ID (evidence keys naming a TIN) and mobile numbers in free text."""
    is_tin = pl.col("key").str.split(".").list.last().str.contains(r"(^|_)tins?$")
    return long.with_columns(
        pl.when(is_tin)
        .then(mask_tin(pl.col("value")))
        .otherwise(pl.col("value").str.replace_all(_MOBILE, "${1}${2}****${3}${4}"))
        .alias("value")
    )


def mask_note(e: pl.Expr) -> pl.Expr:
    """Free text typed by staff: embedded resident IDs and mobile numbers masked."""
    return e.map_elements(scrub_text, return_dtype=pl.String).str.replace_all(_MOBILE, "${1}${2}****${3}${4}")


def mask_evidence(findings: pl.DataFrame) -> pl.DataFrame:
    """Clerks', drawers', claimants' and staff's (who acted on a finding) names, and resident-ID
    TINs, masked (PIPL; SPEC §DQ19); action notes scrubbed like free text."""
    return findings.with_columns(
        mask_person_name(pl.col("drawer")).alias("drawer"),
        mask_person_name(pl.col("clerk")).alias("clerk"),
        mask_person_name(pl.col("latest_action_by")).alias("latest_action_by"),
        mask_note(pl.col("latest_action_note")).alias("latest_action_note"),
        pl.col("claimants").list.eval(mask_person_name(pl.element())).list.join("、").alias("claimants"),
        mask_tin(pl.col("counterparty_tin")).alias("counterparty_tin"),
        pl.when(pl.col("rule_id") == "invalid_tin")
        .then(mask_tin(pl.col("subject")))
        .otherwise(pl.col("subject"))
        .alias("subject"),
    )


def _with_details(
    findings: pl.DataFrame, rules: dict[str, Rule]
) -> tuple[pl.DataFrame, dict[str, list[str]]]:
    """The evidence with its details flattened into `d:<key>` text columns, and the keys per family."""
    long = mask_details(_details_long(findings))
    family_of = {rule_id: rule.family for rule_id, rule in rules.items()}
    keys_by_family: dict[str, list[str]] = {}
    if long.height:
        key_order = (
            long.join(findings.select("finding_id", "rule_id"), on="finding_id")
            .with_columns(pl.col("rule_id").replace_strict(family_of, default="other").alias("family"))
            .select("family", "key")
            .unique(maintain_order=True)
        )
        for family, key in key_order.iter_rows():
            keys_by_family.setdefault(family, []).append(key)
        wide = (
            long.sort("finding_id", "key", "pos")
            .group_by("finding_id", "key", maintain_order=True)
            .agg(
                pl.when(pl.col("is_list").first())
                .then(pl.col("value").fill_null("").str.join("、"))
                .otherwise(pl.col("value").first())
                .alias("value")
            )
            .with_columns(("d:" + pl.col("key")).alias("key"))
            .pivot(on="key", index="finding_id", values="value")
        )
        findings = findings.join(wide, on="finding_id", how="left")
    return findings.drop("details"), keys_by_family


def _vat(con, tin: str, month: str) -> pl.DataFrame:
    return con.sql(
        "select direction, rate_label, invoices, invoice_amount_excl_tax, invoice_tax_amount, "
        "erp_documents, erp_amount_excl_tax, erp_tax_amount, tax_difference "
        "from report.vat_by_rate where entity_tin = $tin and period = $month",
        params={"tin": tin, "month": month},
    ).pl()


def _ageing(con, tin: str, month: str) -> pl.DataFrame:
    found = {
        b: (n, e, m, o)
        for b, n, e, m, o in con.execute(
            "select age_bucket, sum(open_findings), sum(error_findings), sum(money_at_stake), "
            "max(oldest_age_days) from report.open_finding_age where entity_tin = ? and period = ? "
            "group by age_bucket",
            [tin, month],
        ).fetchall()
    }
    rows = []
    for bucket in labels.AGE_BUCKETS:
        n, e, m, o = found.get(bucket, (0, 0, None, None))
        rows.append((bucket, int(n), int(e), None if m is None else Decimal(m), o))
    return pl.DataFrame(
        rows,
        schema={
            "age_bucket": pl.String,
            "open_findings": pl.Int64,
            "error_findings": pl.Int64,
            "money_at_stake": pl.Decimal(18, 2),
            "oldest_age_days": pl.Int64,
        },
        orient="row",
    )


def load_report_data(con: duckdb.DuckDBPyConnection, entity_tin: str, month: str) -> ReportData:
    """Everything the workbook and the HTML show for one entity and month (YYYY-MM)."""
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise ValueError(f"month must be YYYY-MM, got {month!r}")
    rules = load_rules()
    at = aged_at(con)
    names = dict(entities(con))
    findings = mask_evidence(_evidence(con, entity_tin, month, at))
    findings = findings.with_columns(
        pl.col("rule_id")
        .replace_strict(
            {r: rule.family for r, rule in rules.items()}, default="other", return_dtype=pl.String
        )
        .alias("family")
    )
    findings, detail_columns = _with_details(findings, rules)
    vat = _vat(con, entity_tin, month)
    rate = pl.col("rate_label").str.extract(r"^(\d+(?:\.\d+)?)%$").cast(pl.Float64)
    vat = vat.sort(
        pl.col("direction"), rate, pl.col("rate_label"), descending=[False, True, False], nulls_last=True
    )
    return ReportData(
        entity_tin=entity_tin,
        entity_name=names.get(entity_tin, entity_tin),
        month=month,
        aged_at=at,
        generated_at=datetime.now(SHANGHAI).replace(microsecond=0),
        rules=rules,
        sources=_sources(con, entity_tin, month),
        matched=_matched(con, entity_tin, month),
        by_rule=_by_rule(con, entity_tin, month, rules),
        findings=findings,
        detail_columns=detail_columns,
        vat=vat,
        ageing=_ageing(con, entity_tin, month),
    )
