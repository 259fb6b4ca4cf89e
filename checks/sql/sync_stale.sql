-- A sync system whose last successful run finished more than $stale_hours hours before the
-- run's as-of instant (or that never succeeded).
with runs as (
    select * from staging.sync_log where started_at <= $as_of
),

per_system as (
    select
        system,
        max(coalesce(finished_at, started_at)) filter (where status = 'success') as last_success_at,
        max(started_at) as last_run_at
    from runs
    group by system
)

select
    cast(null as varchar) as entity_tin,
    cast(null as varchar) as direction,
    cast(null as varchar) as period,
    cast(null as varchar) as invoice_uid,
    system as subject,
    cast(null as decimal(18, 2)) as amount,
    last_success_at,
    last_run_at,
    date_diff('hour', last_success_at, cast($as_of as timestamptz)) as hours_since_success
from per_system
where last_success_at is null or last_success_at < cast($as_of as timestamptz) - to_hours(cast($stale_hours as bigint))
