-- An ERP document (not cancelled) naming an invoice number that no tax source knows under
-- any of its forms (core.invoice_aliases). A number known to the tax sources but for another
-- of our entities is not "unknown" (that invoice shows as missing_in_erp for its own entity).
-- Documents matched by amount (fuzzy) found their invoice and are not reported. One finding
-- per document; invoice_uid is the first unknown number in canonical form.
with erp as (
    select * from staging.erp where not is_cancelled
),

fuzzy_matched as (
    select distinct erp_doc_id from core.matches where match_side = 'erp' and match_method = 'fuzzy'
),

matched_refs as (
    select distinct erp_doc_id, ref_token from core.matches where match_side = 'erp' and ref_token is not null
),

unknown_refs as (
    select
        r.erp_doc_id,
        r.ref_seq,
        r.ref_token,
        case
            when r.ref_kind = 'digits18' then left(r.ref_key, 10) || '-' || right(r.ref_key, 8)
            else coalesce(r.ref_key, r.ref_token)
        end as referenced
    from staging.erp_invoice_refs as r
    anti join matched_refs as m on r.erp_doc_id = m.erp_doc_id and r.ref_token = m.ref_token
    where r.erp_doc_id not in (select erp_doc_id from fuzzy_matched)
        and coalesce(r.ref_key, r.ref_token) not in (select alias from core.invoice_aliases)
)

select
    e.entity_tin,
    e.direction,
    e.tax_period as period,
    min_by(u.referenced, u.ref_seq) as invoice_uid,
    e.erp_doc_id as subject,
    e.amount_incl_tax as amount,
    list(u.ref_token order by u.ref_seq) as referenced_numbers,
    e.invoice_no_raw as invoice_no_as_keyed,
    e.counterparty_tin,
    e.issue_date,
    e.is_live
from erp as e
inner join unknown_refs as u on e.erp_doc_id = u.erp_doc_id
group by e.entity_tin, e.direction, e.tax_period, e.erp_doc_id, e.amount_incl_tax, e.invoice_no_raw,
    e.counterparty_tin, e.issue_date, e.is_live
