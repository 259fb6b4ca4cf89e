-- Numbers missing inside a run of legacy invoices we issued under one 发票代码: a jump of at
-- most $max_gap missing numbers between two numbers we hold. Voided invoices stay in the
-- export and fill their place; larger jumps are new allocations, not gaps.
with issued as (
    select distinct entity_tin, invoice_code, cast(invoice_no as bigint) as number, issue_date
    from core.invoices
    where direction = 'issued' and invoice_code is not null and invoice_no is not null
),

steps as (
    select
        entity_tin,
        invoice_code,
        number,
        issue_date,
        lead(number) over (partition by entity_tin, invoice_code order by number) as next_number,
        lead(issue_date) over (partition by entity_tin, invoice_code order by number) as next_issue_date
    from issued
),

gaps as (
    select
        entity_tin,
        invoice_code,
        number + 1 as first_missing,
        next_number - 1 as last_missing,
        issue_date,
        next_issue_date
    from steps
    where next_number - number between 2 and $max_gap + 1
)

select
    entity_tin,
    'issued' as direction,
    strftime(issue_date, '%Y-%m') as period,
    cast(null as varchar) as invoice_uid,
    invoice_code || ':' || lpad(cast(first_missing as varchar), 8, '0') || '-'
        || lpad(cast(last_missing as varchar), 8, '0') as subject,
    cast(null as decimal(18, 2)) as amount,
    last_missing - first_missing + 1 as missing_count,
    issue_date as issued_before,
    next_issue_date as issued_after
from gaps
