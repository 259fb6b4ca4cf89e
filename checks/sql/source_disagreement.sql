-- Two tax sources (platform export, XML, OFD) disagree on the same invoice's amounts, parties
-- or status (a source without the field, like XML's status, does not disagree).
with sides as (
    select * from core.invoices where entity_tin is not null
),

pairs as (
    select
        a.entity_tin,
        a.direction,
        a.tax_period,
        a.invoice_uid,
        a.source as source_a,
        b.source as source_b,
        list_filter([
            case when abs(a.amount_excl_tax - b.amount_excl_tax) > $amount_tolerance then 'amount_excl_tax' end,
            case when abs(a.tax_amount - b.tax_amount) > $amount_tolerance then 'tax_amount' end,
            case when abs(a.amount_incl_tax - b.amount_incl_tax) > $amount_tolerance then 'amount_incl_tax' end,
            case when a.seller_tin <> b.seller_tin then 'seller_tin' end,
            case when a.buyer_tin <> b.buyer_tin then 'buyer_tin' end,
            case when a.status <> b.status then 'status' end
        ], lambda x: x is not null) as fields,
        greatest(abs(a.amount_incl_tax - b.amount_incl_tax), abs(a.amount_excl_tax - b.amount_excl_tax)) as diff
    from sides as a
    inner join sides as b
        on a.invoice_uid = b.invoice_uid and a.entity_tin = b.entity_tin and a.source < b.source
)

select
    entity_tin,
    direction,
    any_value(tax_period) as period,
    invoice_uid,
    invoice_uid as subject,
    max(diff) as amount,
    list(source_a || ' vs ' || source_b order by source_a, source_b) as source_pairs,
    flatten(list(fields)) as fields
from pairs
where len(fields) > 0
group by entity_tin, direction, invoice_uid
