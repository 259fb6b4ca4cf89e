-- A current platform file whose rows do not add up to its own 合计行 (control total). The
-- file's entity and direction are those of the invoices it carries.
with files as (
    select * from audit.load_log where is_current and control_total_ok = false
),

file_scope as (
    select _source_file as file_name, mode(entity_tin) as entity_tin, mode(direction) as direction
    from staging.tax_platform
    group by _source_file
)

select
    s.entity_tin,
    s.direction,
    cast(null as varchar) as period,
    cast(null as varchar) as invoice_uid,
    f.file_name as subject,
    cast(null as decimal(18, 2)) as amount,
    f.source,
    json_extract(f.details, '$.control_total.expected') as expected,
    json_extract(f.details, '$.control_total.actual') as actual
from files as f
left join file_scope as s on f.file_name = s.file_name
