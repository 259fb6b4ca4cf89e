-- A TIN on an invoice (seller or buyer) or keyed in the ERP that fails its format or check
-- character. One finding per distinct invalid TIN, with the invoices and documents carrying it.
with tins as (
    select seller_tin as tin, invoice_uid, entity_tin, direction, tax_period, 'seller' as role
    from core.authoritative_invoices where seller_tin is not null
    union all
    select buyer_tin, invoice_uid, entity_tin, direction, tax_period, 'buyer'
    from core.authoritative_invoices where buyer_tin is not null
    union all
    select counterparty_tin, erp_doc_id, entity_tin, direction, tax_period, 'erp_counterparty'
    from staging.erp where counterparty_tin is not null
),

checked as (
    select tin, tin_problem(tin) as problem
    from (select distinct tin from tins)
)

select
    case when count(distinct t.entity_tin) = 1 then any_value(t.entity_tin) end as entity_tin,
    case when count(distinct t.direction) = 1 then any_value(t.direction) end as direction,
    min(t.tax_period) as period,
    cast(null as varchar) as invoice_uid,
    c.tin as subject,
    cast(null as decimal(18, 2)) as amount,
    c.problem,
    list(distinct t.invoice_uid order by t.invoice_uid) filter (where t.role <> 'erp_counterparty') as invoices,
    list(distinct t.invoice_uid order by t.invoice_uid) filter (where t.role = 'erp_counterparty')
        as erp_documents
from checked as c
inner join tins as t on c.tin = t.tin
where c.problem is not null
group by c.tin, c.problem
