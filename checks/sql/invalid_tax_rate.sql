-- A line whose tax rate is not in checks/rate_table.csv for the invoice's issue date.
with lines as (
    select l.*, i.entity_tin, i.direction, i.tax_period, i.issue_date
    from core.invoice_lines as l
    inner join core.invoices as i on l.source = i.source and l.invoice_uid = i.invoice_uid
),

invalid as (
    select *
    from lines as l
    where not exists (
        select 1 from rate_table as r
        where r.rate_label = l.tax_rate_label
            and l.issue_date >= r.valid_from
            and (r.valid_to is null or l.issue_date <= r.valid_to)
    )
)

select
    entity_tin,
    direction,
    any_value(tax_period) as period,
    invoice_uid,
    invoice_uid as subject,
    sum(tax_amount) as amount,
    list(distinct coalesce(tax_rate_label, 'unreadable') order by coalesce(tax_rate_label, 'unreadable'))
        as invalid_rates,
    list(distinct source order by source) as sources,
    any_value(issue_date) as issue_date
from invalid
group by entity_tin, direction, invoice_uid
