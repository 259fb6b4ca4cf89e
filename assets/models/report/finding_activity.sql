-- One row per entity, direction, month and rule: how many findings were opened, reopened and
-- resolved in that month (audit.finding_events joined to audit.findings for the rule and scope).
-- Here `period` (YYYY-MM) is the month the event happened, in Asia/Shanghai time — not the month
-- the finding is about. Money is the findings' current `amount` (NULL for rules without one).
with events as (
    select finding_id, event, event_at
    from audit.finding_events
),

findings as (
    select finding_id, rule_id, severity, entity_tin, direction, amount
    from audit.findings
),

dated as (
    select
        f.entity_tin,
        f.direction,
        strftime(timezone('Asia/Shanghai', e.event_at), '%Y-%m') as period,
        f.rule_id,
        f.severity,
        e.event,
        f.amount
    from events as e
    inner join findings as f on e.finding_id = f.finding_id
),

final as (
    select
        entity_tin,
        direction,
        period,
        rule_id,
        severity,
        count(*) filter (where event = 'opened') as opened,
        count(*) filter (where event = 'reopened') as reopened,
        count(*) filter (where event = 'resolved') as resolved,
        sum(amount) filter (where event in ('opened', 'reopened')) as amount_opened,
        sum(amount) filter (where event = 'resolved') as amount_resolved
    from dated
    group by entity_tin, direction, period, rule_id, severity
)

select * from final
order by entity_tin, period, direction, rule_id
