-- A line whose tax differs from round(amount × rate, 2) by more than $tax_tolerance, or an
-- exempt / out-of-scope line (免税, 不征税) that carries tax.
with lines as (
    select l.*, i.entity_tin, i.direction, i.tax_period
    from core.invoice_lines as l
    inner join core.invoices as i on l.source = i.source and l.invoice_uid = i.invoice_uid
    where not l.is_goods_list_face and l.tax_rate is not null
),

mismatched as (
    select
        *,
        round(amount_excl_tax * tax_rate, 2) as expected_tax
    from lines
    where (tax_rate_label in ('免税', '不征税') and tax_amount <> 0)
        or abs(tax_amount - round(amount_excl_tax * tax_rate, 2)) > $tax_tolerance
)

select
    entity_tin,
    direction,
    any_value(tax_period) as period,
    invoice_uid,
    invoice_uid as subject,
    max(abs(tax_amount - expected_tax)) as amount,
    list(distinct source order by source) as sources,
    list(line_no order by source, line_no) as line_numbers,
    list(tax_rate_label order by source, line_no) as rates,
    list(tax_amount order by source, line_no) as tax_amounts,
    list(expected_tax order by source, line_no) as expected_tax_amounts
from mismatched
group by entity_tin, direction, invoice_uid
