-- A matched ERP document (not cancelled) posted in an accounting period other than the month
-- its invoice was issued in.
select
    e.entity_tin,
    e.direction,
    min(i.tax_period) as period,
    any_value(i.invoice_uid) as invoice_uid,
    e.erp_doc_id as subject,
    e.amount_incl_tax as amount,
    e.tax_period as erp_period,
    list(distinct i.tax_period) as invoice_periods,
    e.posting_date
from staging.erp as e
inner join core.matches as m on e.erp_doc_id = m.erp_doc_id and m.match_side = 'erp'
inner join core.authoritative_invoices as i on m.invoice_uid = i.invoice_uid and m.entity_tin = i.entity_tin
where not e.is_cancelled and e.tax_period is not null
group by all
having bool_or(i.tax_period <> e.tax_period)
