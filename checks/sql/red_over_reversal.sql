-- The red-letter invoices naming a blue invoice reverse more than the blue invoice's 价税合计.
with reds as (
    select
        original_invoice_uid as blue_invoice_uid,
        entity_tin,
        -sum(amount_incl_tax) as reversed,
        list(invoice_uid order by invoice_uid) as red_invoices
    from core.authoritative_invoices
    where not is_positive and original_invoice_uid is not null
    group by original_invoice_uid, entity_tin
)

select
    b.entity_tin,
    b.direction,
    b.tax_period as period,
    b.invoice_uid,
    b.invoice_uid as subject,
    r.reversed - b.amount_incl_tax as amount,
    b.amount_incl_tax as blue_amount_incl_tax,
    r.reversed,
    r.red_invoices
from reds as r
inner join core.authoritative_invoices as b on r.blue_invoice_uid = b.invoice_uid and r.entity_tin = b.entity_tin
where r.reversed > b.amount_incl_tax + $amount_tolerance
