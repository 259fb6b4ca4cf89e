-- The counterparty TIN keyed in a matched ERP document (not cancelled) is not the invoice's
-- counterparty (the seller of a received invoice, the buyer of an issued one).
select
    e.entity_tin,
    e.direction,
    min(i.tax_period) as period,
    any_value(i.invoice_uid) as invoice_uid,
    e.erp_doc_id as subject,
    e.amount_incl_tax as amount,
    e.counterparty_tin as erp_counterparty_tin,
    list(distinct i.counterparty_tin) as invoice_counterparty_tins,
    e.counterparty_name as erp_counterparty_name
from staging.erp as e
inner join core.matches as m on e.erp_doc_id = m.erp_doc_id and m.match_side = 'erp'
inner join core.authoritative_invoices as i on m.invoice_uid = i.invoice_uid and m.entity_tin = i.entity_tin
where not e.is_cancelled
    and e.counterparty_tin is not null
    and i.counterparty_tin is not null
    and e.counterparty_tin <> i.counterparty_tin
group by all
