-- An invoice whose risk level (异常凭证, 疑点发票) or status (失控, 异常) says it cannot be relied on.
select
    entity_tin,
    direction,
    tax_period as period,
    invoice_uid,
    invoice_uid as subject,
    amount_incl_tax as amount,
    risk_level,
    status,
    tax_amount
from core.authoritative_invoices
where risk_level in ('abnormal_voucher', 'suspicious') or status in ('out_of_control', 'abnormal')
