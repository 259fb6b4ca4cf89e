-- One row per finding open in the ledger (audit.finding_status, state open or accepted), with what
-- people did about it (audit.finding_actions, recorded by `invoice-pipeline annotate` or the
-- annotate_finding job): the open action — the latest action other than a note since the finding
-- was last opened or reopened, waiting for the data to confirm it; accepted_risk makes the state
-- accepted —, the latest action of any kind with who did it and when, and two ages in whole days at
-- the evaluated_at of the latest run in audit.runs: age_days since the finding was first seen, and
-- days_since_action since its latest action (since first seen when it has none). `period` is the
-- month the finding is about, as in audit.findings. The reports list these beside the evidence.
with findings as (
    select *
    from audit.finding_status
    where state in ('open', 'accepted')
),

runs as (
    select evaluated_at, started_at
    from audit.runs
),

reference as (
    select coalesce(
        (select evaluated_at from runs order by started_at desc limit 1),
        now()
    ) as aged_at
),

final as (
    select
        f.finding_id,
        f.entity_tin,
        f.direction,
        f.period,
        f.rule_id,
        f.severity,
        f.subject,
        f.invoice_uid,
        f.amount,
        f.state,
        f.first_seen_at,
        f.action_count,
        f.open_action,
        f.open_action_by,
        f.open_action_at,
        f.open_action_note,
        f.latest_action,
        f.latest_action_by,
        f.latest_action_at,
        f.latest_action_note,
        greatest(0, cast(floor((epoch(r.aged_at) - epoch(f.first_seen_at)) / 86400) as integer)) as age_days,
        greatest(
            0,
            cast(
                floor((epoch(r.aged_at) - epoch(coalesce(f.latest_action_at, f.first_seen_at))) / 86400)
                as integer
            )
        ) as days_since_action,
        r.aged_at
    from findings as f
    cross join reference as r
)

select * from final
order by entity_tin, period, direction, rule_id, subject
