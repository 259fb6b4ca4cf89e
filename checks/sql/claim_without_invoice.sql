-- A claim (not a draft, not rejected) whose invoice no tax source knows under any form. invoice_uid is the
-- claimed number in canonical form; one finding per claimed invoice.
with unknown as (
    select
        c.*,
        case
            when c.ref_kind = 'digits18' then left(c.ref_key, 10) || '-' || right(c.ref_key, 8)
            else coalesce(c.ref_key, c.invoice_no)
        end as referenced
    from staging.reimbursement as c
    anti join core.matches as m
        on m.match_side = 'claim' and c.claim_no = m.claim_no and c.invoice_no = m.ref_token
    where c.is_effective
        and coalesce(c.ref_key, c.invoice_no) not in (select alias from core.invoice_aliases)
)

select
    cast(null as varchar) as entity_tin,
    cast(null as varchar) as direction,
    strftime(min(issue_date), '%Y-%m') as period,
    referenced as invoice_uid,
    referenced as subject,
    sum(claimed_amount) as amount,
    list(distinct claim_no order by claim_no) as claims,
    any_value(invoice_code) as invoice_code_as_claimed,
    any_value(invoice_no) as invoice_no_as_claimed
from unknown
group by referenced
