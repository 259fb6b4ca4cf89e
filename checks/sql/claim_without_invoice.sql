-- A claim (not a draft, not rejected) whose invoice no tax source knows. invoice_uid is the
-- claimed number in canonical form; one finding per claimed invoice.
with unknown as (
    select c.*
    from staging.reimbursement as c
    anti join core.matches as m
        on m.match_side = 'claim' and c.claim_no = m.claim_no and c.invoice_no = m.ref_token
    where c.is_effective
)

select
    cast(null as varchar) as entity_tin,
    cast(null as varchar) as direction,
    strftime(min(issue_date), '%Y-%m') as period,
    coalesce(ref_key, invoice_no) as invoice_uid,
    coalesce(ref_key, invoice_no) as subject,
    sum(claimed_amount) as amount,
    list(distinct claim_no order by claim_no) as claims,
    any_value(invoice_code) as invoice_code_as_claimed,
    any_value(invoice_no) as invoice_no_as_claimed
from unknown
group by coalesce(ref_key, invoice_no)
