-- A received invoice whose buyer name is one of ours but whose buyer TIN is not ours: the
-- invoice was attributed to the entity by name (抬头/税号 error) and cannot be deducted as is.
select
    i.entity_tin,
    i.direction,
    i.tax_period as period,
    i.invoice_uid,
    i.invoice_uid as subject,
    i.amount_incl_tax as amount,
    i.buyer_name,
    i.buyer_tin,
    i.tax_amount
from core.authoritative_invoices as i
where i.direction = 'received'
    and i.buyer_tin is distinct from i.entity_tin
    and coalesce(i.buyer_tin, '') not in (select tin from staging.entities)
