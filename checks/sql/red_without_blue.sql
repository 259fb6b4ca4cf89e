-- A red-letter invoice whose blue invoice (named in its 备注) is in no tax source, or that
-- names none at all.
select
    r.entity_tin,
    r.direction,
    r.tax_period as period,
    r.invoice_uid,
    r.invoice_uid as subject,
    abs(r.amount_incl_tax) as amount,
    r.original_invoice_uid as blue_invoice_uid,
    r.remark
from core.authoritative_invoices as r
where not r.is_positive
    and (
        r.original_invoice_uid is null
        or r.original_invoice_uid not in (select invoice_uid from core.invoices)
    )
