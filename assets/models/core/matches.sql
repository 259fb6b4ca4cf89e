-- One row per link between a tax invoice (entity side) and an ERP document or a claim line.
-- match_method: `exact` (the number as typed is the invoice's own number), `normalised`
-- (found only after cleaning: code and number run together or joined by '-', spaces,
-- full-width digits, a leading ', the last 8 digits), `multi_invoice_document` (one ERP
-- document naming several invoices), `fuzzy` (no typed number matched: the only invoice with
-- the document's counterparty TIN and 价税合计, issued within 3 days, and not matched otherwise).
with invoices as (
    select invoice_uid, entity_tin, direction, counterparty_tin, amount_incl_tax, issue_date
    from core.authoritative_invoices
    where entity_tin is not null
),

aliases as (
    select invoice_uid, alias, alias_kind from core.invoice_aliases
),

erp as (
    select * from staging.erp
),

erp_refs as (
    select * from staging.erp_invoice_refs
),

claims as (
    select * from staging.reimbursement
),

-- Which identifier form a typed reference may match: 20 digits are a 数电 number or a 12-digit
-- code and number run together; 8 digits are a legacy number or the end of a 数电 number.
matchable_forms (ref_kind, alias_kind) as (
    values
        ('digits20', 'digital_no'),
        ('digits20', 'code_number_joined'),
        ('code_number', 'code_number'),
        ('digits18', 'code_number_joined'),
        ('number8', 'number8'),
        ('number8', 'suffix8')
),

erp_candidates as (
    select
        r.erp_doc_id,
        r.ref_seq,
        r.ref_token,
        r.ref_kind,
        a.alias_kind,
        i.invoice_uid,
        i.entity_tin,
        i.direction,
        coalesce(i.counterparty_tin = e.counterparty_tin, false) as is_same_counterparty
    from erp_refs as r
    inner join erp as e on r.erp_doc_id = e.erp_doc_id
    inner join aliases as a
        on r.ref_key = a.alias
    inner join matchable_forms as f on r.ref_kind = f.ref_kind and a.alias_kind = f.alias_kind
    inner join invoices as i on a.invoice_uid = i.invoice_uid and e.entity_tin = i.entity_tin
),

-- An 8-digit number can fit several invoices: prefer the counterparty's, and keep a
-- reference only when exactly one invoice is left.
erp_ref_matches as (
    select distinct erp_doc_id, ref_seq, ref_token, ref_kind, alias_kind, invoice_uid, entity_tin, direction
    from (
        select
            *,
            max(is_same_counterparty) over (partition by erp_doc_id, ref_seq) as has_counterparty_match
        from erp_candidates
    )
    where is_same_counterparty or not has_counterparty_match
    qualify count(*) over (partition by erp_doc_id, ref_seq) = 1
),

erp_by_number as (
    select
        m.invoice_uid,
        m.entity_tin,
        m.direction,
        m.erp_doc_id,
        m.ref_token,
        case
            when count(*) over (partition by m.erp_doc_id) > 1 then 'multi_invoice_document'
            when m.ref_kind = 'digits20' and m.alias_kind = 'digital_no' and e.invoice_no_raw = m.ref_token
                then 'exact'
            when m.ref_kind = 'code_number' and e.invoice_code is not null and e.invoice_no_raw = right(m.ref_token, 8)
                then 'exact'
            else 'normalised'
        end as match_method,
        e.is_live
    from erp_ref_matches as m
    inner join erp as e on m.erp_doc_id = e.erp_doc_id
),

unmatched_docs as (
    select e.*
    from erp as e
    where e.erp_doc_id not in (select erp_doc_id from erp_by_number)
        and e.counterparty_tin is not null
        and e.issue_date is not null
),

fuzzy_candidates as (
    select d.erp_doc_id, i.invoice_uid, i.entity_tin, i.direction, d.is_live
    from unmatched_docs as d
    inner join invoices as i
        on d.entity_tin = i.entity_tin
        and d.direction = i.direction
        and d.counterparty_tin = i.counterparty_tin
        and abs(d.amount_incl_tax - i.amount_incl_tax) <= 0.01
        and abs(date_diff('day', d.issue_date, i.issue_date)) <= 3
    where i.invoice_uid not in (select invoice_uid from erp_by_number)
),

erp_fuzzy as (
    select
        invoice_uid,
        entity_tin,
        direction,
        erp_doc_id,
        cast(null as varchar) as ref_token,
        'fuzzy' as match_method,
        is_live
    from fuzzy_candidates
    qualify count(*) over (partition by erp_doc_id) = 1
        and count(*) over (partition by invoice_uid, entity_tin) = 1
),

claim_candidates as (
    select
        c.claim_no,
        c.invoice_no as ref_token,
        c.ref_kind,
        a.alias_kind,
        i.invoice_uid,
        i.entity_tin,
        i.direction,
        c.is_effective,
        case
            when c.ref_kind = 'digits20' and a.alias_kind = 'digital_no' then 'exact'
            when c.ref_kind = 'code_number' and c.invoice_code is not null and len(c.invoice_no) = 8 then 'exact'
            else 'normalised'
        end as match_method
    from claims as c
    inner join aliases as a
        on c.ref_key = a.alias
    inner join matchable_forms as f on c.ref_kind = f.ref_kind and a.alias_kind = f.alias_kind
    inner join invoices as i on a.invoice_uid = i.invoice_uid and i.direction = 'received'
    qualify count(*) over (partition by c.claim_no, c.invoice_no) = 1
),

final as (
    select
        invoice_uid, entity_tin, direction, 'erp' as match_side, erp_doc_id, cast(null as varchar) as claim_no,
        ref_token, match_method, is_live
    from erp_by_number
    union all
    select
        invoice_uid, entity_tin, direction, 'erp', erp_doc_id, null, ref_token, match_method, is_live
    from erp_fuzzy
    union all
    select
        invoice_uid, entity_tin, direction, 'claim', null, claim_no, ref_token, match_method, is_effective
    from claim_candidates
)

select * from final
order by invoice_uid, entity_tin, match_side, erp_doc_id, claim_no
