-- A sync run that failed, or a partial run that lost records (failed records, or fewer
-- written than read).
select
    entity_tin,
    cast(null as varchar) as direction,
    strftime(started_at at time zone 'Asia/Shanghai', '%Y-%m') as period,
    cast(null as varchar) as invoice_uid,
    run_id as subject,
    cast(null as decimal(18, 2)) as amount,
    system,
    status,
    started_at,
    finished_at,
    records_read,
    records_written,
    records_failed,
    error
from staging.sync_log
where status = 'failed'
    or (status = 'partial' and (coalesce(records_failed, 0) > 0 or records_written < records_read))
