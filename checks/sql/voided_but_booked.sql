-- The platform says the invoice is voided (已作废) while a live ERP document (审核, not 作废)
-- still books it. One finding per live document.
select
    e.entity_tin,
    e.direction,
    i.tax_period as period,
    i.invoice_uid,
    e.erp_doc_id as subject,
    i.amount_incl_tax as amount,
    i.status as invoice_status,
    e.amount_incl_tax as erp_amount_incl_tax,
    e.posting_date
from core.authoritative_invoices as i
inner join core.matches as m on i.invoice_uid = m.invoice_uid and i.entity_tin = m.entity_tin
inner join staging.erp as e on m.erp_doc_id = e.erp_doc_id
where m.match_side = 'erp' and i.status = 'voided' and e.is_live
