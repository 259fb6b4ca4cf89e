-- A matched ERP document (not cancelled) whose 不含税金额, 税额 or 价税合计 differs from the
-- invoice's by more than $amount_tolerance; a document covering several invoices is compared
-- with their sum. amount = the difference in 价税合计 (or the largest difference).
with links as (
    select m.erp_doc_id, i.*
    from core.matches as m
    inner join core.authoritative_invoices as i on m.invoice_uid = i.invoice_uid and m.entity_tin = i.entity_tin
    where m.match_side = 'erp'
),

invoice_totals as (
    select
        erp_doc_id,
        sum(amount_excl_tax) as invoice_excl_tax,
        sum(tax_amount) as invoice_tax,
        sum(amount_incl_tax) as invoice_incl_tax,
        list(invoice_uid order by invoice_uid) as invoice_uids,
        min(tax_period) as invoice_period
    from links
    group by erp_doc_id
),

compared as (
    select
        e.entity_tin,
        e.direction,
        t.invoice_period as period,
        e.erp_doc_id,
        t.invoice_uids,
        e.amount_excl_tax as erp_excl_tax,
        t.invoice_excl_tax,
        e.tax_amount as erp_tax,
        t.invoice_tax,
        e.amount_incl_tax as erp_incl_tax,
        t.invoice_incl_tax,
        abs(e.amount_incl_tax - t.invoice_incl_tax) as diff_incl,
        abs(e.amount_excl_tax - t.invoice_excl_tax) as diff_excl,
        abs(e.tax_amount - t.invoice_tax) as diff_tax
    from staging.erp as e
    inner join invoice_totals as t on e.erp_doc_id = t.erp_doc_id
    where not e.is_cancelled
)

select
    entity_tin,
    direction,
    period,
    case when len(invoice_uids) = 1 then invoice_uids[1] end as invoice_uid,
    erp_doc_id as subject,
    greatest(coalesce(diff_incl, 0), coalesce(diff_excl, 0), coalesce(diff_tax, 0)) as amount,
    invoice_uids,
    erp_excl_tax,
    invoice_excl_tax,
    erp_tax,
    invoice_tax,
    erp_incl_tax,
    invoice_incl_tax
from compared
where coalesce(diff_incl, 0) > $amount_tolerance
    or coalesce(diff_excl, 0) > $amount_tolerance
    or coalesce(diff_tax, 0) > $amount_tolerance
