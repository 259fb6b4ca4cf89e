-- One row per entity, direction, month (`period` YYYY-MM: the month the finding is about, as in
-- audit.findings — the invoice's issue month, or an ERP document's posting period) and rule: the
-- open findings of the ledger (audit.findings, status open) and the money at stake (sum of
-- `amount`, NULL for rules without one, e.g. sequence_gap). entity_tin, direction or period is
-- NULL where the findings have none (sync_stale belongs to no entity, a file-level
-- control_total_mismatch to no month); those rows are kept so the table adds up to the ledger.
with findings as (
    select rule_id, severity, entity_tin, direction, period, amount, first_seen_at
    from audit.findings
    where status = 'open'
),

final as (
    select
        entity_tin,
        direction,
        period,
        rule_id,
        severity,
        count(*) as open_findings,
        count(amount) as findings_with_amount,
        sum(amount) as money_at_stake,
        min(first_seen_at) as earliest_first_seen_at
    from findings
    group by entity_tin, direction, period, rule_id, severity
)

select * from final
order by entity_tin, period, direction, rule_id
