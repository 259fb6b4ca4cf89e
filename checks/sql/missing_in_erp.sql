-- An invoice of ours that a tax source knows (not voided) and no ERP document books:
-- no document names it, or every document that did was cancelled (作废).
with invoices as (
    select * from core.authoritative_invoices
    where entity_tin is not null and coalesce(status, 'normal') <> 'voided'
),

booked as (
    select distinct m.invoice_uid, m.entity_tin
    from core.matches as m
    inner join staging.erp as e on m.erp_doc_id = e.erp_doc_id
    where m.match_side = 'erp' and not e.is_cancelled
)

select
    i.entity_tin,
    i.direction,
    i.tax_period as period,
    i.invoice_uid,
    i.invoice_uid as subject,
    i.amount_incl_tax as amount,
    i.source,
    i.issue_date,
    i.counterparty_tin,
    case when i.direction = 'issued' then i.buyer_name else i.seller_name end as counterparty_name
from invoices as i
anti join booked as b on i.invoice_uid = b.invoice_uid and i.entity_tin = b.entity_tin
