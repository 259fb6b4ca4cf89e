-- One invoice booked by two or more live ERP documents (审核 and not 作废).
select
    i.entity_tin,
    i.direction,
    i.tax_period as period,
    i.invoice_uid,
    i.invoice_uid as subject,
    i.amount_incl_tax as amount,
    list(distinct m.erp_doc_id order by m.erp_doc_id) as live_erp_documents
from core.authoritative_invoices as i
inner join core.matches as m on i.invoice_uid = m.invoice_uid and i.entity_tin = m.entity_tin
inner join staging.erp as e on m.erp_doc_id = e.erp_doc_id
where m.match_side = 'erp' and e.is_live
group by all
having count(distinct m.erp_doc_id) >= 2
