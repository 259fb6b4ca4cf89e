-- One row per entity, direction, month (`period` YYYY-MM: the month the finding is about, as in
-- audit.findings — the invoice's issue month, or an ERP document's posting period) and rule: the
-- findings open in the ledger (audit.finding_status). open_findings and money_at_stake (sum of
-- `amount`, NULL for rules without one, e.g. sequence_gap) count those still to be dealt with (state
-- open); accepted_findings and accepted_money_at_stake those whose risk was accepted (state
-- accepted: still open in the ledger, counted apart, never dropped). entity_tin, direction or period
-- is NULL where the findings have none (sync_stale belongs to no entity, a file-level
-- control_total_mismatch to no month); those rows are kept so the table adds up to the ledger.
with findings as (
    select rule_id, severity, entity_tin, direction, period, amount, first_seen_at, state
    from audit.finding_status
    where state in ('open', 'accepted')
),

final as (
    select
        entity_tin,
        direction,
        period,
        rule_id,
        severity,
        count(*) filter (where state = 'open') as open_findings,
        count(amount) filter (where state = 'open') as findings_with_amount,
        sum(amount) filter (where state = 'open') as money_at_stake,
        min(first_seen_at) filter (where state = 'open') as earliest_first_seen_at,
        count(*) filter (where state = 'accepted') as accepted_findings,
        sum(amount) filter (where state = 'accepted') as accepted_money_at_stake
    from findings
    group by entity_tin, direction, period, rule_id, severity
)

select * from final
order by entity_tin, period, direction, rule_id
