"""Invoice history: every change the pipeline has observed for an invoice, load by load (issue 7).

`core.invoice_history` answers "where is invoice X, and since when?": first seen where and when,
status changes (正常 → 已红冲-全额), amount or party corrections between loads, ERP booking and
cancellation, claims — each with the load that showed it.

Decisions, taken once here:

- **Observed run by run.** Each run computes every invoice's current state per aspect in SQL —
  `platform` (staging.tax_platform: status, amounts, parties), `einvoice` (staging.einvoice, one
  item per file format: amounts, parties), `erp` (core.matches × staging.erp, one item per ERP
  document booking the invoice: posting, period, cancelled / not approved) and `claim`
  (core.matches × staging.reimbursement, one item per claim: approval status, amount claimed) —
  compares it with the last value recorded here, and appends one event per change.
- **Net changes per run.** Raw keeps every load, but staging holds only the current rows: two
  loads that land before the same run show as one net change, attributed to the newest load (the
  one staging reads). A version of a file that came and went between two runs leaves no trace.
- **Idempotent.** A run with no new data appends nothing: the state it computes equals the state
  the history already ends in.
- **Append-only, survives rebuilds.** Events are never updated or deleted. The table is not a
  `create or replace` SQL model: every other table can be rebuilt from raw, this one cannot —
  it is the only record of what earlier loads said. A warehouse restored from a backup keeps
  the history of the backup.
- **Self-contained.** The state a run compares with is read back from the events themselves
  (no hidden state table, nothing extra to publish): each value is written in a fixed readable
  form that names its item, and the last value per invoice, aspect, item and field is the
  latest event that carries it. The forms (`_NOW_SQL` writes them, `_RECORDED_SQL` reads them):

  - platform `first_seen`: `正常; 1130.00/130.00; <seller_tin> <seller_name> → <buyer_tin> <buyer_name>`
    (发票状态 as exported; 价税合计/税额; the parties); `status_changed`: `正常` → `已红冲-全额`;
    `amount_changed`: `1130.00/130.00`; `party_changed`: `<seller…> → <buyer…>`.
  - einvoice: the same forms prefixed by the file format, `XML; …` or `OFD; …` (no status: the
    files carry none).
  - erp `erp_booked` / `erp_cancelled` / `erp_unbooked`: `<erp_doc_id> posted <posting_date>
    period <tax_period>`, ending ` (cancelled)` or ` (not approved)` when the document is not live.
    Any change of a matched document is written as what it now is: erp_cancelled once cancelled
    (also when first seen so), else erp_booked (approved, re-posted, un-cancelled).
  - claim `claim_attached` / `status_changed` / `amount_changed` / `claim_removed`:
    `<claim_no> <审批状态> <报销金额>`.

  An ERP document or claim that stops matching the invoice gives `erp_unbooked` /
  `claim_removed` (value_after NULL); one that comes back is booked / attached again. An invoice
  that drops out of the platform export or its XML/OFD file records no event (there is none in
  the vocabulary): if it comes back changed, the change is recorded then.
- **When.** `observed_at` is the run's as-of instant, as the rules use it (02:00 Asia/Shanghai on
  the as-of date, or now); `loaded_at` is when the load that showed the change arrived
  (audit.file_loads). `event_seq` numbers an invoice's events 1, 2, 3… in the order recorded;
  within one run: platform, einvoice, erp, claim; then by item; first_seen first.

Grain: one row per observed change of one aspect (one item of it) of one invoice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from invoice_pipeline.warehouse import scalar, transaction

ASPECTS = ("platform", "einvoice", "erp", "claim")
EVENTS = (
    "first_seen",
    "status_changed",
    "amount_changed",
    "party_changed",
    "erp_booked",
    "erp_cancelled",
    "erp_unbooked",
    "claim_attached",
    "claim_removed",
)
# The event that starts an item's history in each aspect (any other first event means events
# were lost).
_OPENING_EVENTS = {
    "platform": ("first_seen",),
    "einvoice": ("first_seen",),
    "erp": ("erp_booked", "erp_cancelled"),
    "claim": ("claim_attached",),
}
_OPENINGS = sorted({event for events in _OPENING_EVENTS.values() for event in events})

# No primary key: at a million invoices an index on (invoice_uid, event_seq) doubles the table's
# size and adds seconds to every large append; the asset check verifies the numbering instead.
HISTORY_DDL = """
create table if not exists core.invoice_history (
    invoice_uid varchar not null,
    event_seq integer not null,
    aspect varchar not null,
    event varchar not null,
    value_before varchar,
    value_after varchar,
    source varchar not null,
    load_id varchar,
    file_name varchar,
    loaded_at timestamptz,
    observed_at timestamptz not null,
    run_id varchar not null
)
"""

# The readable forms of the table in the module docstring. Amounts are 价税合计/税额.
_AMOUNTS = (
    "coalesce(cast(amount_incl_tax as varchar), '-') || '/' || coalesce(cast(tax_amount as varchar), '-')"
)
_PARTIES = "concat_ws(' ', seller_tin, seller_name) || ' → ' || concat_ws(' ', buyer_tin, buyer_name)"
# The fixed tails of the ERP and claim forms: the document and the claim are what precedes them.
ERP_TAIL = r" posted \S+ period \S+( \((cancelled|not approved)\))?$"
CLAIM_TAIL = r" \S+ \S+$"
CLAIM_STATUS = r" (\S+) \S+$"

# The current state, one row per invoice, aspect and item. A status never contains ';' or spaces
# (they would break the first_seen form), nor a claim's approval status spaces.
_NOW_SQL = f"""
with platform as (
    select
        invoice_uid,
        'platform' as aspect,
        cast(null as varchar) as item,
        'tax_platform' as source,
        _load_id as load_id,
        _source_file as file_name,
        regexp_replace(coalesce(status_raw, status, '-'), '[;\\s]+', '', 'g') as status_text,
        {_AMOUNTS} as amounts_text,
        {_PARTIES} as parties_text,
        cast(null as varchar) as value_text,
        false as is_cancelled
    from staging.tax_platform
),

einvoice as (
    select
        invoice_uid,
        'einvoice' as aspect,
        upper(replace(source, 'einvoice_', '')) as item,
        'einvoice' as source,
        _load_id as load_id,
        _source_file as file_name,
        cast(null as varchar) as status_text,
        {_AMOUNTS} as amounts_text,
        {_PARTIES} as parties_text,
        cast(null as varchar) as value_text,
        false as is_cancelled
    from staging.einvoice
),

erp_links as (
    select distinct invoice_uid, erp_doc_id from core.matches where match_side = 'erp'
),

erp as (
    select
        l.invoice_uid,
        'erp' as aspect,
        e.erp_doc_id as item,
        'erp' as source,
        e._load_id as load_id,
        e._source_file as file_name,
        cast(null as varchar) as status_text,
        cast(null as varchar) as amounts_text,
        cast(null as varchar) as parties_text,
        e.erp_doc_id
        || ' posted ' || coalesce(strftime(e.posting_date, '%Y-%m-%d'), '-')
        || ' period ' || coalesce(nullif(trim(e.tax_period), ''), '-')
        || case
            when e.is_cancelled then ' (cancelled)'
            when not coalesce(e.is_live, false) then ' (not approved)'
            else ''
        end as value_text,
        coalesce(e.is_cancelled, false) as is_cancelled
    from erp_links as l
    inner join staging.erp as e on l.erp_doc_id = e.erp_doc_id
),

claim as (
    select
        m.invoice_uid,
        'claim' as aspect,
        c.claim_no as item,
        'reimbursement' as source,
        c._load_id as load_id,
        c._source_file as file_name,
        cast(null as varchar) as status_text,
        cast(null as varchar) as amounts_text,
        cast(null as varchar) as parties_text,
        c.claim_no
        || ' ' || coalesce(nullif(regexp_replace(c.approval_status, '\\s+', '', 'g'), ''), '-')
        || ' ' || coalesce(cast(c.claimed_amount as varchar), '-') as value_text,
        false as is_cancelled
    from core.matches as m
    inner join staging.reimbursement as c on m.claim_no = c.claim_no and m.ref_token = c.invoice_no
    where m.match_side = 'claim' and c.claim_no is not null
    -- one claim naming the same invoice twice (typed two ways) is one item
    qualify row_number() over (
        partition by m.invoice_uid, c.claim_no order by c.invoice_no, c._source_row
    ) = 1
),

items as (
    select * from platform
    union all
    select * from einvoice
    union all
    select * from erp
    union all
    select * from claim
)

-- the item's whole state in one text: what its opening event (first_seen, erp_booked,
-- erp_cancelled, claim_attached) writes as value_after
select
    *,
    case aspect
        when 'platform' then status_text || '; ' || amounts_text || '; ' || parties_text
        when 'einvoice' then item || '; ' || amounts_text || '; ' || parties_text
        else value_text
    end as full_text
from items
"""

# Every recorded event with the item it concerns and the field values it carries. Read with
# string functions where the form allows (regular expressions with a leading `(.+)` cost seconds
# per million events): the ERP document and the claim are what precedes their fixed tail.
_RECORDED_SQL = f"""
select
    invoice_uid,
    event_seq,
    aspect,
    event,
    value_after,
    source,
    file_name,
    case aspect
        when 'einvoice' then split_part(value_text, '; ', 1)
        when 'erp'
            then left(value_text, length(value_text) - length(regexp_extract(value_text, '{ERP_TAIL}')))
        when 'claim'
            then left(value_text, length(value_text) - length(regexp_extract(value_text, '{CLAIM_TAIL}')))
    end as item,
    case
        when aspect = 'platform' and event = 'first_seen' then split_part(value_after, '; ', 1)
        when aspect = 'platform' and event = 'status_changed' then value_after
    end as status_text,
    case
        when aspect in ('platform', 'einvoice') and event = 'first_seen' then split_part(value_after, '; ', 2)
        when aspect = 'platform' and event = 'amount_changed' then value_after
        when aspect = 'einvoice' and event = 'amount_changed'
            then substr(value_after, strpos(value_after, '; ') + 2)
    end as amounts_text,
    case
        when aspect in ('platform', 'einvoice') and event = 'first_seen'
            then substr(
                value_after,
                length(split_part(value_after, '; ', 1)) + length(split_part(value_after, '; ', 2)) + 5
            )
        when aspect = 'platform' and event = 'party_changed' then value_after
        when aspect = 'einvoice' and event = 'party_changed'
            then substr(value_after, strpos(value_after, '; ') + 2)
    end as parties_text
from (select *, coalesce(value_after, value_before) as value_text from core.invoice_history)
"""

# The last recorded state per invoice, aspect and item. For ERP documents and claims value_text
# is NULL once the item is gone (erp_unbooked, claim_removed).
_LAST_SQL = f"""
select
    invoice_uid,
    aspect,
    item,
    arg_max(status_text, event_seq) as status_text,
    arg_max(amounts_text, event_seq) as amounts_text,
    arg_max(parties_text, event_seq) as parties_text,
    case when aspect in ('erp', 'claim') then arg_max_null(value_after, event_seq) end as value_text,
    arg_max(source, event_seq) as source,
    arg_max_null(file_name, event_seq) as file_name
from ({_RECORDED_SQL}) as r
where invoice_uid in (select invoice_uid from candidates)
group by invoice_uid, aspect, item
"""

# The invoices whose state may have changed. The rest is settled, cheaply: an invoice whose
# events are all openings, one per current item, each equal to that item's whole state now, is
# unchanged (every item's state is still the one it was first recorded with). Only the others
# need their last state read back field by field — on a quiet night a few hundred, not millions.
_CANDIDATES_SQL = f"""
now_invoices as (
    select invoice_uid, count(*) as items from history_now group by invoice_uid
),

recorded_invoices as (
    select
        invoice_uid,
        count(*) as events,
        bool_and(event in ({", ".join(f"'{e}'" for e in _OPENINGS)})) as only_openings
    from core.invoice_history
    group by invoice_uid
),

unmatched as (
    select n.invoice_uid
    from history_now as n
    anti join core.invoice_history as h
        on n.invoice_uid = h.invoice_uid and n.aspect = h.aspect and n.full_text = h.value_after
),

candidates as (
    select coalesce(n.invoice_uid, r.invoice_uid) as invoice_uid
    from now_invoices as n
    full outer join recorded_invoices as r on n.invoice_uid = r.invoice_uid
    where n.invoice_uid is null or r.invoice_uid is null or not r.only_openings or n.items <> r.events
    union
    select invoice_uid from unmatched
)
"""

_EVENTS_SQL = f"""
with history_now as materialized ({_NOW_SQL}),

{_CANDIDATES_SQL},

history_last as ({_LAST_SQL}),

compared as (
    select
        coalesce(n.invoice_uid, l.invoice_uid) as invoice_uid,
        coalesce(n.aspect, l.aspect) as aspect,
        coalesce(n.item, l.item) as item,
        n.invoice_uid is not null as is_seen,
        l.invoice_uid is not null as was_seen,
        n.source,
        n.load_id,
        n.file_name,
        n.status_text,
        n.amounts_text,
        n.parties_text,
        n.value_text,
        n.full_text,
        n.is_cancelled,
        l.status_text as last_status_text,
        l.amounts_text as last_amounts_text,
        l.parties_text as last_parties_text,
        l.value_text as last_value_text,
        l.source as last_source,
        l.file_name as last_file_name
    from (select * from history_now where invoice_uid in (select invoice_uid from candidates)) as n
    full outer join history_last as l
        on n.invoice_uid = l.invoice_uid
        and n.aspect = l.aspect
        and coalesce(n.item, '') = coalesce(l.item, '')
),

-- Where an ERP document or claim that no longer matches is now: still staged (the invoice side
-- changed), else the newest version of the file it came from (the version without it).
still_staged as (
    select 'erp' as aspect, erp_doc_id as item, _load_id as load_id, _source_file as file_name
    from staging.erp
    union all
    select 'claim', claim_no, _load_id, _source_file
    from staging.reimbursement
    where claim_no is not null
    qualify row_number() over (partition by claim_no order by _load_id, _source_row) = 1
),

gone as (
    select
        c.invoice_uid,
        c.aspect,
        c.item,
        case c.aspect when 'erp' then 'erp_unbooked' else 'claim_removed' end as event,
        c.last_value_text as value_before,
        cast(null as varchar) as value_after,
        c.last_source as source,
        coalesce(s.load_id, cl.load_id) as load_id,
        coalesce(s.file_name, cl.file_name, c.last_file_name) as file_name
    from compared as c
    left join still_staged as s on c.aspect = s.aspect and c.item = s.item
    left join audit.current_loads as cl on c.last_source = cl.source and c.last_file_name = cl.file_name
    where c.aspect in ('erp', 'claim') and not c.is_seen and c.last_value_text is not null
),

changes as (
    -- first sight of the platform record or of an XML/OFD file
    select
        invoice_uid, aspect, item, 'first_seen' as event,
        cast(null as varchar) as value_before,
        full_text as value_after,
        source, load_id, file_name
    from compared
    where aspect in ('platform', 'einvoice') and is_seen and not was_seen

    union all
    select
        invoice_uid, aspect, item, 'status_changed', last_status_text, status_text, source, load_id, file_name
    from compared
    where aspect = 'platform' and is_seen and was_seen and status_text is distinct from last_status_text

    union all
    select
        invoice_uid, aspect, item, 'amount_changed',
        case when aspect = 'einvoice' then item || '; ' else '' end || last_amounts_text,
        case when aspect = 'einvoice' then item || '; ' else '' end || amounts_text,
        source, load_id, file_name
    from compared
    where aspect in ('platform', 'einvoice') and is_seen and was_seen
        and amounts_text is distinct from last_amounts_text

    union all
    select
        invoice_uid, aspect, item, 'party_changed',
        case when aspect = 'einvoice' then item || '; ' else '' end || last_parties_text,
        case when aspect = 'einvoice' then item || '; ' else '' end || parties_text,
        source, load_id, file_name
    from compared
    where aspect in ('platform', 'einvoice') and is_seen and was_seen
        and parties_text is distinct from last_parties_text

    union all
    select
        invoice_uid, aspect, item,
        case
            when aspect = 'erp' and is_cancelled then 'erp_cancelled'
            when aspect = 'erp' then 'erp_booked'
            when last_value_text is null then 'claim_attached'
            when regexp_extract(value_text, '{CLAIM_STATUS}', 1)
                is distinct from regexp_extract(last_value_text, '{CLAIM_STATUS}', 1) then 'status_changed'
            else 'amount_changed'
        end,
        last_value_text, value_text, source, load_id, file_name
    from compared
    where aspect in ('erp', 'claim') and is_seen and value_text is distinct from last_value_text

    union all
    select * from gone
)

select
    *,
    list_position(['platform', 'einvoice', 'erp', 'claim'], aspect) as aspect_rank,
    list_position(['first_seen', 'status_changed', 'amount_changed', 'party_changed'], event) as event_rank
from changes
"""

_APPEND_SQL = """
insert into core.invoice_history
select
    e.invoice_uid,
    cast(
        coalesce(s.last_seq, 0)
        + row_number() over (
            partition by e.invoice_uid
            order by e.aspect_rank, e.item nulls first, e.event_rank nulls last, e.event
        )
        as integer
    ) as event_seq,
    e.aspect,
    e.event,
    e.value_before,
    e.value_after,
    e.source,
    e.load_id,
    e.file_name,
    f.loaded_at,
    $observed_at as observed_at,
    $run_id as run_id
from history_events as e
left join (
    select invoice_uid, max(event_seq) as last_seq from core.invoice_history group by invoice_uid
) as s on e.invoice_uid = s.invoice_uid
left join audit.file_loads as f on e.load_id = f.load_id
"""


@dataclass(frozen=True)
class HistoryUpdate:
    """What one run appended to core.invoice_history."""

    events_before: int  # events recorded by earlier runs
    events_added: int
    invoices_changed: int
    by_event: dict[str, int] = field(default_factory=dict)  # "<aspect>/<event>": events added


def ensure_history_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists core")
    con.execute(HISTORY_DDL)


def update_history(con: duckdb.DuckDBPyConnection, run_id: str, observed_at: datetime) -> HistoryUpdate:
    """Compare every invoice's current state with its history and append one event per change.

    Reads staging.tax_platform, staging.einvoice, staging.erp, staging.reimbursement, core.matches
    and audit.file_loads; everything happens in one transaction.
    """
    ensure_history_table(con)
    with transaction(con):
        before = int(scalar(con, "select count(*) from core.invoice_history") or 0)
        con.execute(f"create or replace temp table history_events as {_EVENTS_SQL}")
        con.execute(_APPEND_SQL, {"observed_at": observed_at, "run_id": run_id})
        by_event = dict(
            con.execute(
                "select aspect || '/' || event, count(*) from history_events group by all order by all"
            ).fetchall()
        )
        changed = int(scalar(con, "select count(distinct invoice_uid) from history_events") or 0)
        con.execute("drop table if exists temp.history_events")
    return HistoryUpdate(before, sum(by_event.values()), changed, by_event)


PROBLEMS = ("seq_gaps", "out_of_order", "unopened_items", "missing_values", "unknown_vocabulary")


@dataclass(frozen=True)
class HistoryProblem:
    """One kind of damage to the history: how many rows show it, and the first few."""

    count: int
    columns: list[str]
    examples: list[tuple]


def history_problems(con: duckdb.DuckDBPyConnection, examples: int = 10) -> dict[str, HistoryProblem]:
    """What would show that events were lost, rewritten or recorded out of order.

    - `seq_gaps`: events whose event_seq is not their place in the invoice's 1..n (a gap or a repeat);
    - `out_of_order`: events observed before an earlier-numbered event of the same invoice
      (a run for an older as-of date after a newer one, or a rewritten event);
    - `unopened_items`: items whose first event is a change (a status change with no first
      sight, an ERP document unbooked before it was ever booked): their opening was lost;
    - `missing_values`: a change without the value it changed from, or an event without the value it
      shows (only erp_unbooked and claim_removed have none after);
    - `unknown_vocabulary`: aspects or events outside the documented vocabulary.

    Returns each problem found with its count and up to `examples` offending rows (an empty dict
    when the history is sound).
    """
    ensure_history_table(con)
    opening = [f"{aspect}/{event}" for aspect, events in _OPENING_EVENTS.items() for event in events]
    queries = {
        "seq_gaps": """
            select invoice_uid, event_seq, expected_seq
            from (
                select
                    invoice_uid,
                    event_seq,
                    row_number() over (partition by invoice_uid order by event_seq) as expected_seq
                from core.invoice_history
            )
            where event_seq <> expected_seq
            order by invoice_uid, event_seq
        """,
        "out_of_order": """
            select invoice_uid, event_seq, event, observed_at
            from (
                select
                    *,
                    max(observed_at) over (
                        partition by invoice_uid order by event_seq
                        rows between unbounded preceding and 1 preceding
                    ) as earlier_max
                from core.invoice_history
            )
            where observed_at < earlier_max
            order by invoice_uid, event_seq
        """,
        # only an invoice with a change event can have an item whose first event is one
        "unopened_items": f"""
            select invoice_uid, aspect, item, event_seq, event
            from ({_RECORDED_SQL})
            where invoice_uid in (
                select invoice_uid from core.invoice_history where not list_contains($openings, event)
            )
            qualify row_number() over (partition by invoice_uid, aspect, item order by event_seq) = 1
                and not list_contains($opening, aspect || '/' || event)
            order by invoice_uid, aspect, item
        """,
        "missing_values": """
            select invoice_uid, event_seq, aspect, event
            from core.invoice_history
            where (value_after is null and event not in ('erp_unbooked', 'claim_removed'))
                or (value_before is null and list_contains($changes, event))
            order by invoice_uid, event_seq
        """,
        "unknown_vocabulary": """
            select invoice_uid, event_seq, aspect, event
            from core.invoice_history
            where not list_contains($aspects, aspect) or not list_contains($events, event)
            order by invoice_uid, event_seq
        """,
    }
    params = {
        "unopened_items": {"opening": opening, "openings": _OPENINGS},
        "missing_values": {
            "changes": ["status_changed", "amount_changed", "party_changed", "erp_unbooked", "claim_removed"]
        },
        "unknown_vocabulary": {"aspects": list(ASPECTS), "events": list(EVENTS)},
    }
    problems = {}
    for name, sql in queries.items():
        result = con.execute(
            f"select *, count(*) over () as _rows from ({sql}) limit {int(examples)}", params.get(name, {})
        )
        columns = [d[0] for d in result.description][:-1]
        rows = result.fetchall()
        if rows:
            problems[name] = HistoryProblem(rows[0][-1], columns, [row[:-1] for row in rows])
    return problems
