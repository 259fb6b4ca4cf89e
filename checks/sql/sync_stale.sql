-- A sync system whose last successful run finished more than $stale_hours hours before the
-- run's as-of instant (or that never succeeded), as audit.sync_health sees it at that instant.
select
    cast(null as varchar) as entity_tin,
    cast(null as varchar) as direction,
    cast(null as varchar) as period,
    cast(null as varchar) as invoice_uid,
    system as subject,
    cast(null as decimal(18, 2)) as amount,
    system,
    last_success_at,
    last_run_at,
    hours_since_success
from audit.sync_health
where last_success_at is null
    or last_success_at < cast($as_of as timestamptz) - to_hours(cast($stale_hours as bigint))
