-- The amount claimed on an invoice (all effective claims together) exceeds its 价税合计.
with claimed as (
    select
        m.invoice_uid,
        m.entity_tin,
        sum(c.claimed_amount) as claimed_amount,
        list(distinct c.claim_no order by c.claim_no) as claims
    from staging.reimbursement as c
    inner join core.matches as m
        on m.match_side = 'claim' and c.claim_no = m.claim_no and c.invoice_no = m.ref_token
    where c.is_effective
    group by m.invoice_uid, m.entity_tin
)

select
    i.entity_tin,
    i.direction,
    i.tax_period as period,
    i.invoice_uid,
    i.invoice_uid as subject,
    c.claimed_amount - i.amount_incl_tax as amount,
    c.claimed_amount,
    i.amount_incl_tax as invoice_amount_incl_tax,
    c.claims
from claimed as c
inner join core.authoritative_invoices as i on c.invoice_uid = i.invoice_uid and c.entity_tin = i.entity_tin
where c.claimed_amount > i.amount_incl_tax + $amount_tolerance
