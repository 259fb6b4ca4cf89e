-- One row per entity, direction, month (`period` YYYY-MM: the month the findings are about, as in
-- audit.findings) and age bucket of the findings open in the ledger (audit.finding_status): age is
-- whole days from first_seen_at to the evaluated_at of the latest run in audit.runs (the run's as-of
-- instant, so a re-run for the same as-of date gives the same ages), bucketed 0-7, 8-30, 31-90 and
-- >90 days (age_bucket_order 1-4). Counts the findings still to be dealt with (state open), their
-- error-severity ones, money at stake and the oldest age in the bucket; accepted_findings counts
-- apart those whose risk was accepted (state accepted).
with findings as (
    select rule_id, severity, entity_tin, direction, period, amount, first_seen_at, state
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

aged as (
    select
        f.*,
        r.aged_at,
        greatest(0, cast(floor((epoch(r.aged_at) - epoch(f.first_seen_at)) / 86400) as integer)) as age_days
    from findings as f
    cross join reference as r
),

bucketed as (
    select
        *,
        case
            when age_days <= 7 then '0-7'
            when age_days <= 30 then '8-30'
            when age_days <= 90 then '31-90'
            else '>90'
        end as age_bucket,
        case
            when age_days <= 7 then 1
            when age_days <= 30 then 2
            when age_days <= 90 then 3
            else 4
        end as age_bucket_order
    from aged
),

final as (
    select
        entity_tin,
        direction,
        period,
        age_bucket,
        age_bucket_order,
        count(*) filter (where state = 'open') as open_findings,
        count(*) filter (where state = 'open' and severity = 'error') as error_findings,
        sum(amount) filter (where state = 'open') as money_at_stake,
        max(age_days) filter (where state = 'open') as oldest_age_days,
        max(aged_at) as aged_at,
        count(*) filter (where state = 'accepted') as accepted_findings
    from bucketed
    group by entity_tin, direction, period, age_bucket, age_bucket_order
)

select * from final
order by entity_tin, period, direction, age_bucket_order
