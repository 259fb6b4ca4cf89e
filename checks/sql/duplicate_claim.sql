-- One invoice attached to two or more claims that are neither drafts nor rejected. The
-- invoice is identified as the tax sources know it, or by the number as claimed.
with claim_invoices as (
    select
        c.claim_no,
        c.claimed_amount,
        coalesce(m.invoice_uid, c.ref_key, c.invoice_no) as invoice_uid,
        m.entity_tin,
        m.direction
    from staging.reimbursement as c
    left join core.matches as m
        on m.match_side = 'claim' and c.claim_no = m.claim_no and c.invoice_no = m.ref_token
    where c.is_effective
)

select
    any_value(c.entity_tin) as entity_tin,
    any_value(c.direction) as direction,
    any_value(i.tax_period) as period,
    c.invoice_uid,
    c.invoice_uid as subject,
    sum(c.claimed_amount) as amount,
    list(distinct c.claim_no order by c.claim_no) as claims,
    any_value(i.amount_incl_tax) as invoice_amount_incl_tax
from claim_invoices as c
left join core.authoritative_invoices as i on c.invoice_uid = i.invoice_uid and c.entity_tin = i.entity_tin
group by c.invoice_uid
having count(distinct c.claim_no) >= 2
