-- A live-or-pending ERP document (not cancelled) that names invoice numbers no tax source
-- knows, and that no invoice could be matched to by amount either. One finding per document;
-- invoice_uid is the first unknown number in canonical form.
with erp as (
    select * from staging.erp where not is_cancelled
),

matched_docs as (
    select distinct erp_doc_id from core.matches where match_side = 'erp'
),

unknown_refs as (
    select
        r.erp_doc_id,
        r.ref_seq,
        r.ref_token,
        coalesce(r.ref_key, r.ref_token) as referenced
    from staging.erp_invoice_refs as r
    where r.erp_doc_id not in (select erp_doc_id from matched_docs)
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
    any_value(e.is_live) as is_live
from erp as e
inner join unknown_refs as u on e.erp_doc_id = u.erp_doc_id
group by e.entity_tin, e.direction, e.tax_period, e.erp_doc_id, e.amount_incl_tax, e.invoice_no_raw,
    e.counterparty_tin, e.issue_date
