-- One row per sync system (`system`, e.g. tax_platform->erp), evaluated at the run's as-of
-- instant: how many entities it serves, its last run (start and status), its last success (its
-- finish, or its start when the finish is unknown) and the hours since, and over the 7 days
-- before the as-of instant the runs, the failed runs (status failed, or partial with failed
-- records or fewer written than read, as rule sync_failed), the failure rate (0-1) and the
-- records those runs lost. Runs starting after the as-of instant are not counted yet.
with runs as (
    select
        system,
        entity_tin,
        started_at,
        finished_at,
        status,
        started_at > cast($as_of as timestamptz) - interval 7 day as in_last_7_days,
        status = 'failed'
        or (status = 'partial' and (coalesce(records_failed, 0) > 0 or records_written < records_read))
            as is_failure,
        greatest(coalesce(records_read, 0) - coalesce(records_written, 0), coalesce(records_failed, 0))
            as records_lost
    from staging.sync_log
    where started_at <= cast($as_of as timestamptz)
),

per_system as (
    select
        system,
        count(distinct entity_tin) as entities,
        max(started_at) as last_run_at,
        arg_max(status, started_at) as last_run_status,
        max(coalesce(finished_at, started_at)) filter (where status = 'success') as last_success_at,
        count(*) filter (where in_last_7_days) as runs_7d,
        count(*) filter (where in_last_7_days and is_failure) as failed_runs_7d,
        cast(coalesce(sum(records_lost) filter (where in_last_7_days and is_failure), 0) as bigint)
            as records_lost_7d
    from runs
    group by system
)

select
    system,
    entities,
    last_run_at,
    last_run_status,
    last_success_at,
    date_diff('hour', last_success_at, cast($as_of as timestamptz)) as hours_since_success,
    runs_7d,
    failed_runs_7d,
    round(failed_runs_7d / nullif(runs_7d, 0), 4) as failure_rate_7d,
    records_lost_7d,
    cast($as_of as timestamptz) as evaluated_at
from per_system
order by system
