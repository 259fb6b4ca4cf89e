"""The findings ledger: run every rule of `checks/`, merge the results into `audit.findings`.

A rule is `checks/sql/<rule_id>.sql`, one SELECT returning one row per problem with the
columns `entity_tin, direction, period, invoice_uid, subject, amount` and any further
columns as evidence (packed into `details` as JSON, and typed again in the view
`audit.<rule_id>`). Thresholds from `checks/rules.yaml` are bound as named parameters.

A finding's id is a hash of what identifies the problem (rule, entity, direction, subject),
so the same problem keeps its id across runs. A finding that is no longer found is
resolved, not deleted; if it comes back it is reopened and keeps its history, which is
also written as events to `audit.finding_events`.

People's remediation (`audit.finding_actions`, invoice_pipeline/remediation.py) never changes
the ledger: the view `audit.finding_status` combines the two into one `state` per finding —
`open`, `accepted` (open, but an accepted_risk is in force) or `resolved` — and every count of
open findings (audit.runs, the report tables, the reports, the analysts' snapshot) reads it.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import duckdb
import yaml
from duckdb.sqltypes import VARCHAR

from invoice_pipeline.project import CHECKS_DIR
from invoice_pipeline.tin import tin_problem
from invoice_pipeline.warehouse import quote, scalar, transaction

SEVERITIES = ("error", "warning", "info")
KEY_COLUMNS = ("entity_tin", "direction", "period", "invoice_uid", "subject", "amount")
# What makes two rows the same problem, so that it keeps its finding_id from run to run. A rule
# whose scope can change while the problem stays the same (a TIN first seen on one entity's
# invoices, later also on another's) names a narrower identity in rules.yaml.
DEFAULT_IDENTITY = ("entity_tin", "direction", "subject")

_FINDINGS_DDL = """
create table if not exists audit.findings (
    finding_id varchar primary key,
    rule_id varchar not null,
    severity varchar not null,
    entity_tin varchar,
    direction varchar,
    period varchar,
    invoice_uid varchar,
    subject varchar not null,
    amount decimal(18, 2),
    details json,
    first_seen_at timestamptz not null,
    last_seen_at timestamptz not null,
    resolved_at timestamptz,
    status varchar not null
)
"""
_EVENTS_DDL = """
create table if not exists audit.finding_events (
    finding_id varchar not null,
    run_id varchar not null,
    event varchar not null,
    event_at timestamptz not null,
    recorded_at timestamptz
)
"""
# Actions are timed by the wall clock of whoever records them, and a run's event_at is its as-of
# instant (a re-run for an old date is "in the past"): recorded_at is the wall-clock time the run
# wrote the event, so that "did this action come before or after the reopening?" compares like
# with like. NULL on events written before the column existed (event_at stands in).
_EVENTS_MIGRATION = "alter table audit.finding_events add column if not exists recorded_at timestamptz"
_RUNS_DDL = """
create table if not exists audit.runs (
    run_id varchar primary key,
    started_at timestamptz not null,
    evaluated_at timestamptz not null,
    as_of date,
    layer_rows json,
    findings_open bigint,
    findings_opened bigint,
    findings_reopened bigint,
    findings_resolved bigint,
    findings_accepted bigint
)
"""
_RUNS_MIGRATION = "alter table audit.runs add column if not exists findings_accepted bigint"

# Append-only: invoice_pipeline/remediation.py only ever inserts. The columns are a contract
# (the CLI's `find` reads them).
_ACTIONS_DDL = """
create table if not exists audit.finding_actions (
    action_id varchar primary key,
    finding_id varchar not null,
    action varchar not null,
    acted_by varchar not null,
    note varchar,
    acted_at timestamptz not null,
    via varchar not null
)
"""

# The one place that decides whether a finding counts as open. See remediation.py for the policy:
# the open action is the latest action other than `note` recorded since the finding was last
# opened or reopened, while it is open; an open accepted_risk makes the finding `accepted`.
# Consumers read the view audit.finding_status; the query lives in a table macro because the typed
# views audit.<rule_id> need it too, and EXPORT DATABASE (backups) writes views in alphabetical
# order but macros before every view — a view over another view would not import.
_STATUS_MACRO = """audit.finding_states() as table
with findings as (
    select
        finding_id, rule_id, severity, entity_tin, direction, period, invoice_uid, subject, amount,
        first_seen_at, last_seen_at, resolved_at, status
    from audit.findings
),

spells as (
    select
        e.finding_id,
        max(coalesce(e.recorded_at, r.started_at, e.event_at)) as spell_started_at
    from audit.finding_events as e
    left join audit.runs as r on e.run_id = r.run_id
    where e.event in ('opened', 'reopened')
    group by e.finding_id
),

actions as (
    select
        finding_id,
        action,
        acted_by,
        acted_at,
        note,
        count(*) over (partition by finding_id) as action_count,
        row_number() over (partition by finding_id order by acted_at desc, action_id desc) as recency
    from audit.finding_actions
),

latest as (
    select finding_id, action, acted_by, acted_at, note, action_count
    from actions
    where recency = 1
),

open_actions as (
    select
        a.finding_id,
        a.action,
        a.acted_by,
        a.acted_at,
        a.note,
        row_number() over (partition by a.finding_id order by a.acted_at desc, a.action_id desc) as recency
    from audit.finding_actions as a
    inner join findings as f on a.finding_id = f.finding_id
    left join spells as s on a.finding_id = s.finding_id
    where
        f.status = 'open'
        and a.action <> 'note'
        and a.acted_at >= coalesce(s.spell_started_at, '-infinity'::timestamptz)
),

final as (
    select
        f.finding_id,
        f.rule_id,
        f.severity,
        f.entity_tin,
        f.direction,
        f.period,
        f.invoice_uid,
        f.subject,
        f.amount,
        f.first_seen_at,
        f.last_seen_at,
        f.resolved_at,
        f.status,
        case
            when f.status <> 'open' then 'resolved'
            when o.action = 'accepted_risk' then 'accepted'
            else 'open'
        end as state,
        s.spell_started_at,
        coalesce(l.action_count, 0) as action_count,
        o.action as open_action,
        o.acted_by as open_action_by,
        o.acted_at as open_action_at,
        o.note as open_action_note,
        l.action as latest_action,
        l.acted_by as latest_action_by,
        l.acted_at as latest_action_at,
        l.note as latest_action_note
    from findings as f
    left join spells as s on f.finding_id = s.finding_id
    left join open_actions as o on f.finding_id = o.finding_id and o.recency = 1
    left join latest as l on f.finding_id = l.finding_id
)

select * from final
"""
_STATUS_VIEW = "audit.finding_status as select * from audit.finding_states()"
STATES = ("open", "accepted", "resolved")


@dataclass(frozen=True)
class Rule:
    rule_id: str
    severity: str
    family: str
    description: str
    thresholds: dict = field(default_factory=dict)
    sql_path: Path | None = None
    identity: tuple[str, ...] = DEFAULT_IDENTITY

    @property
    def sql(self) -> str:
        assert self.sql_path is not None
        return self.sql_path.read_text(encoding="utf-8")


@cache
def load_rules(checks_dir: Path = CHECKS_DIR) -> dict[str, Rule]:
    """Every rule of checks/rules.yaml with its SQL file; a rule without one is an error."""
    data = yaml.safe_load((checks_dir / "rules.yaml").read_text(encoding="utf-8"))
    rules = {}
    for rule_id, spec in data["rules"].items():
        if not re.fullmatch(r"[a-z][a-z0-9_]*", rule_id):
            raise ValueError(f"rules.yaml: {rule_id!r} is not a lower-case identifier")
        if spec["severity"] not in SEVERITIES:
            raise ValueError(f"rules.yaml: {rule_id}: severity must be one of {SEVERITIES}")
        sql_path = checks_dir / "sql" / f"{rule_id}.sql"
        if not sql_path.is_file():
            raise FileNotFoundError(f"rules.yaml names {rule_id} but {sql_path} does not exist")
        identity = tuple(spec.get("identity", DEFAULT_IDENTITY))
        if not set(identity) <= set(DEFAULT_IDENTITY) or "subject" not in identity:
            raise ValueError(
                f"rules.yaml: {rule_id}: identity must include subject, within {DEFAULT_IDENTITY}"
            )
        rules[rule_id] = Rule(
            rule_id,
            spec["severity"],
            spec["family"],
            " ".join(spec["description"].split()),
            dict(spec.get("thresholds") or {}),
            sql_path,
            identity,
        )
    return rules


def ensure_findings_tables(con: duckdb.DuckDBPyConnection, replace_views: bool = False) -> None:
    """The ledger, its events, the run log, the remediation actions and `audit.finding_status`
    (with the macro `audit.finding_states()` behind it).

    Cheap and idempotent: the warehouse runs it on every read-write connection
    (`warehouse.ensure_audit_tables`), so these always exist. The view is created when missing,
    and replaced by each findings merge (`replace_views`), so a changed definition reaches old
    warehouses at their next run.
    """
    con.execute("create schema if not exists audit")
    con.execute(_FINDINGS_DDL)
    con.execute(_EVENTS_DDL)
    con.execute(_EVENTS_MIGRATION)
    con.execute(_RUNS_DDL)
    con.execute(_RUNS_MIGRATION)
    con.execute(_ACTIONS_DDL)
    if replace_views:
        con.execute(f"create or replace macro {_STATUS_MACRO}")
        con.execute(f"create or replace view {_STATUS_VIEW}")
    else:
        con.execute(f"create macro if not exists {_STATUS_MACRO}")
        con.execute(f"create view if not exists {_STATUS_VIEW}")


def prepare_rule_inputs(con: duckdb.DuckDBPyConnection, checks_dir: Path = CHECKS_DIR) -> None:
    """What the rules read besides the warehouse: the rate table (a temp table) and the
    `tin_problem(tin)` function (GB 32100 and resident-ID checks live in Python, tin.py)."""
    with contextlib.suppress(duckdb.CatalogException):  # already registered on this connection
        con.create_function(
            "tin_problem", tin_problem, [VARCHAR], VARCHAR, null_handling="special", side_effects=False
        )
    path = checks_dir / "rate_table.csv"
    con.execute(
        "create or replace temp table rate_table as "
        "select rate_label, cast(valid_from as date) as valid_from, cast(valid_to as date) as valid_to "
        "from read_csv(?, header = true, all_varchar = true)",
        [str(path)],
    )


def rule_parameters(rule: Rule, as_of: datetime) -> dict:
    """Named parameters a rule's SQL may use: its thresholds, and the as-of instant."""
    params = {"as_of": as_of}
    params.update(rule.thresholds)
    used = set(re.findall(r"\$([a-z_][a-z0-9_]*)", rule.sql))
    missing = used - set(params)
    if missing:
        raise ValueError(
            f"{rule.rule_id}.sql uses ${', $'.join(sorted(missing))} but rules.yaml gives no value"
        )
    return {name: value for name, value in params.items() if name in used}


def evaluate_rule(con: duckdb.DuckDBPyConnection, rule: Rule, as_of: datetime) -> str:
    """Materialise one rule's offending rows into temp table `rule_<id>`; returns its name."""
    table = f"rule_{rule.rule_id}"
    con.execute(f"create or replace temp table {quote(table)} as {rule.sql}", rule_parameters(rule, as_of))
    columns = [
        c
        for (c,) in con.execute(
            "select column_name from duckdb_columns() "
            "where table_name = ? and database_name = 'temp' order by column_index",
            [table],
        ).fetchall()
    ]
    missing = [c for c in KEY_COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"{rule.rule_id}.sql must return columns {', '.join(missing)}")
    return table


def evidence_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    """(name, type) of the evidence columns of an evaluated rule."""
    return [
        (c, t)
        for c, t in con.execute(
            "select column_name, data_type from duckdb_columns() "
            "where table_name = ? and database_name = 'temp' order by column_index",
            [table],
        ).fetchall()
        if c not in KEY_COLUMNS
    ]


def _current_findings_sql(rules: dict[str, Rule], tables: dict[str, str], con) -> str:
    selects = []
    for rule_id, table in tables.items():
        rule = rules[rule_id]
        evidence = evidence_columns(con, table)
        details = (
            "to_json(struct_pack(" + ", ".join(f"{quote(c)} := {quote(c)}" for c, _ in evidence) + "))"
            if evidence
            else "cast(null as json)"
        )
        identity = ", ".join(f"coalesce(cast({quote(c)} as varchar), '')" for c in rule.identity)
        selects.append(
            f"select left(sha256(concat_ws('|', '{rule_id}', {identity})), 16) as finding_id, "
            f"'{rule_id}' as rule_id, '{rule.severity}' as severity, "
            f"cast(entity_tin as varchar) as entity_tin, cast(direction as varchar) as direction, "
            f"cast(period as varchar) as period, cast(invoice_uid as varchar) as invoice_uid, "
            f"cast(subject as varchar) as subject, cast(amount as decimal(18, 2)) as amount, "
            f"{details} as details from {quote(table)}"
        )
    return "\nunion all\n".join(selects)


@dataclass
class MergeResult:
    opened: int
    reopened: int
    resolved: int
    open: int  # state open: open in the ledger and no accepted_risk in force
    by_rule: dict[str, int]  # the same per rule
    accepted: int = 0  # open in the ledger, accepted as a risk: counted apart, never dropped


def merge_findings(
    con: duckdb.DuckDBPyConnection, run_id: str, at: datetime, rules: dict[str, Rule] | None = None
) -> MergeResult:
    """Evaluate every rule and merge into audit.findings, in one transaction."""
    rules = rules or load_rules()
    ensure_findings_tables(con, replace_views=True)
    prepare_rule_inputs(con)
    tables = {rule_id: evaluate_rule(con, rule, at) for rule_id, rule in rules.items()}
    current_sql = _current_findings_sql(rules, tables, con)
    with transaction(con):
        con.execute(f"create or replace temp table current_findings as {current_sql}")
        duplicates = scalar(con, "select count(*) - count(distinct finding_id) from current_findings")
        if duplicates:
            example = con.execute(
                "select rule_id, subject from current_findings group by all having count(*) > 1 limit 1"
            ).fetchall()
            raise ValueError(f"a rule returned the same problem twice: {example[0]}")
        reopened = con.execute(
            "select f.finding_id from audit.findings f join current_findings c using (finding_id) "
            "where f.status = 'resolved'"
        ).fetchall()
        opened = con.execute(
            "select c.finding_id from current_findings c anti join audit.findings f using (finding_id)"
        ).fetchall()
        resolved = con.execute(
            "select f.finding_id from audit.findings f anti join current_findings c using (finding_id) "
            "where f.status = 'open'"
        ).fetchall()
        con.execute(
            """
            update audit.findings as f set
                severity = c.severity, entity_tin = c.entity_tin, direction = c.direction, period = c.period,
                invoice_uid = c.invoice_uid, amount = c.amount, details = c.details,
                last_seen_at = $at, resolved_at = null, status = 'open'
            from current_findings as c
            where f.finding_id = c.finding_id
            """,
            {"at": at},
        )
        con.execute(
            """
            insert into audit.findings
            select c.finding_id, c.rule_id, c.severity, c.entity_tin, c.direction, c.period, c.invoice_uid,
                c.subject, c.amount, c.details, $at, $at, null, 'open'
            from current_findings as c anti join audit.findings as f using (finding_id)
            """,
            {"at": at},
        )
        con.execute(
            """
            update audit.findings set resolved_at = $at, status = 'resolved'
            where status = 'open' and finding_id not in (select finding_id from current_findings)
            """,
            {"at": at},
        )
        recorded_at = datetime.now(UTC)
        events = [(fid, run_id, "opened", at, recorded_at) for (fid,) in opened]
        events += [(fid, run_id, "reopened", at, recorded_at) for (fid,) in reopened]
        events += [(fid, run_id, "resolved", at, recorded_at) for (fid,) in resolved]
        if events:
            con.executemany(
                "insert into audit.finding_events (finding_id, run_id, event, event_at, recorded_at) "
                "values (?, ?, ?, ?, ?)",
                events,
            )
        _create_rule_views(con, rules, tables)
        open_count, accepted_count = con.execute(
            "select count(*) filter (where state = 'open'), count(*) filter (where state = 'accepted') "
            "from audit.finding_status"
        ).fetchone()
        by_rule = dict(
            con.execute(
                "select rule_id, count(*) from audit.finding_status where state = 'open' group by rule_id"
            ).fetchall()
        )
    return MergeResult(
        len(opened), len(reopened), len(resolved), int(open_count), by_rule, int(accepted_count)
    )


def _create_rule_views(
    con: duckdb.DuckDBPyConnection, rules: dict[str, Rule], tables: dict[str, str]
) -> None:
    """audit.<rule_id>: the rule's open findings with its evidence as typed columns, and `state`
    (open, or accepted: an accepted risk is listed, marked, never left out)."""
    for rule_id, table in tables.items():
        typed = "".join(
            f", try_cast(f.details ->> '{name}' as {data_type}) as {quote(name)}"
            for name, data_type in evidence_columns(con, table)
            if "[]" not in data_type and "STRUCT" not in data_type and "MAP" not in data_type
        )
        con.execute(
            f"create or replace view audit.{quote(rule_id)} as "
            f"select f.finding_id, f.severity, f.entity_tin, f.direction, f.period, f.invoice_uid, "
            f"f.subject, f.amount{typed}, f.details, f.first_seen_at, f.last_seen_at, s.state "
            f"from audit.findings as f inner join audit.finding_states() as s on f.finding_id = s.finding_id "
            f"where f.rule_id = '{rule_id}' and f.status = 'open'"
        )
        # COMMENT takes no parameters; the text comes from rules.yaml in the repository.
        comment = rules[rule_id].description.replace("'", "''")
        con.execute(f"comment on view audit.{quote(rule_id)} is '{comment}'")
