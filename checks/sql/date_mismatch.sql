-- The 开票日期 keyed in a matched ERP document (not cancelled) is none of its invoices' issue dates.
select
    e.entity_tin,
    e.direction,
    min(i.tax_period) as period,
    any_value(i.invoice_uid) as invoice_uid,
    e.erp_doc_id as subject,
    e.amount_incl_tax as amount,
    e.issue_date as erp_issue_date,
    list(distinct i.issue_date) as invoice_issue_dates
from staging.erp as e
inner join core.matches as m on e.erp_doc_id = m.erp_doc_id and m.match_side = 'erp'
inner join core.authoritative_invoices as i on m.invoice_uid = i.invoice_uid and m.entity_tin = i.entity_tin
where not e.is_cancelled and e.issue_date is not null
group by all
having not list_contains(list(i.issue_date), e.issue_date)
