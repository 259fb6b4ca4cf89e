-- 金额 + 税额 ≠ 价税合计 on an invoice header, or its lines (goods-list face lines excluded)
-- do not add up to the header, in any tax source, beyond $amount_tolerance.
with headers as (
    select * from core.invoices
),

line_totals as (
    select
        source,
        invoice_uid,
        -- an invoice whose only line is a goods-list face line adds up to nothing, not to null
        coalesce(sum(amount_excl_tax) filter (where not is_goods_list_face), 0) as lines_excl_tax,
        coalesce(sum(tax_amount) filter (where not is_goods_list_face), 0) as lines_tax,
        count(*) as line_count
    from core.invoice_lines
    group by source, invoice_uid
),

problems as (
    select
        h.entity_tin,
        h.direction,
        h.tax_period,
        h.invoice_uid,
        h.source,
        h.amount_excl_tax,
        h.tax_amount,
        h.amount_incl_tax,
        l.lines_excl_tax,
        l.lines_tax,
        abs(h.amount_excl_tax + h.tax_amount - h.amount_incl_tax) as header_diff,
        greatest(abs(h.amount_excl_tax - l.lines_excl_tax), abs(h.tax_amount - l.lines_tax)) as lines_diff
    from headers as h
    left join line_totals as l on h.source = l.source and h.invoice_uid = l.invoice_uid
)

select
    entity_tin,
    direction,
    any_value(tax_period) as period,
    invoice_uid,
    invoice_uid as subject,
    max(greatest(header_diff, coalesce(lines_diff, 0))) as amount,
    list(distinct source order by source) as sources,
    any_value(amount_excl_tax) as amount_excl_tax,
    any_value(tax_amount) as tax_amount,
    any_value(amount_incl_tax) as amount_incl_tax,
    any_value(lines_excl_tax) as lines_excl_tax,
    any_value(lines_tax) as lines_tax
from problems
where header_diff > $amount_tolerance or coalesce(lines_diff, 0) > $amount_tolerance
group by entity_tin, direction, invoice_uid
