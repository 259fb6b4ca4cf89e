-- One row per entity, direction (销项 issued / 进项 received), month (`period` YYYY-MM) and VAT
-- rate label: the tax on the invoices (core.invoice_lines of each invoice's authoritative source —
-- the platform export where it has the invoice —, voided invoices and goods-list face lines left
-- out; an invoice without lines counts with its header under '无明细') next to the tax the ERP
-- booked at that rate (staging.erp, not cancelled, by posting period), and the difference
-- (invoice tax − ERP tax). The ERP keys one rate per document and cannot tell 0%, 免税 and 不征税
-- apart, so those three are one label, '0%/免税/不征税', on both sides.
with invoices as (
    select invoice_uid, source, entity_tin, direction, tax_period, amount_excl_tax, tax_amount
    from core.authoritative_invoices
    where entity_tin is not null and coalesce(status, 'normal') <> 'voided'
),

lines as (
    select invoice_uid, source, tax_rate_label, amount_excl_tax, tax_amount
    from core.invoice_lines
    where not coalesce(is_goods_list_face, false)
),

erp as (
    select entity_tin, direction, tax_period, tax_rate, amount_excl_tax, tax_amount
    from staging.erp
    where entity_tin is not null and not is_cancelled
),

rate_lines as (
    select
        i.entity_tin,
        i.direction,
        i.tax_period as period,
        i.invoice_uid,
        case
            when l.invoice_uid is null then '无明细'
            when l.tax_rate_label in ('0%', '免税', '不征税') then '0%/免税/不征税'
            else coalesce(l.tax_rate_label, '未知税率')
        end as rate_label,
        coalesce(l.amount_excl_tax, i.amount_excl_tax) as amount_excl_tax,
        coalesce(l.tax_amount, i.tax_amount) as tax_amount
    from invoices as i
    left join lines as l on i.invoice_uid = l.invoice_uid and i.source = l.source
),

invoice_tax as (
    select
        entity_tin,
        direction,
        period,
        rate_label,
        count(distinct invoice_uid) as invoices,
        sum(amount_excl_tax) as invoice_amount_excl_tax,
        sum(tax_amount) as invoice_tax_amount
    from rate_lines
    group by entity_tin, direction, period, rate_label
),

erp_tax as (
    select
        entity_tin,
        direction,
        tax_period as period,
        case
            when tax_rate is null then '未知税率'
            when tax_rate = 0 then '0%/免税/不征税'
            else rtrim(rtrim(cast(tax_rate * 100 as varchar), '0'), '.') || '%'
        end as rate_label,
        count(*) as erp_documents,
        sum(amount_excl_tax) as erp_amount_excl_tax,
        sum(tax_amount) as erp_tax_amount
    from erp
    group by all
),

final as (
    select
        coalesce(i.entity_tin, e.entity_tin) as entity_tin,
        coalesce(i.direction, e.direction) as direction,
        coalesce(i.period, e.period) as period,
        coalesce(i.rate_label, e.rate_label) as rate_label,
        coalesce(i.invoices, 0) as invoices,
        coalesce(i.invoice_amount_excl_tax, 0) as invoice_amount_excl_tax,
        coalesce(i.invoice_tax_amount, 0) as invoice_tax_amount,
        coalesce(e.erp_documents, 0) as erp_documents,
        coalesce(e.erp_amount_excl_tax, 0) as erp_amount_excl_tax,
        coalesce(e.erp_tax_amount, 0) as erp_tax_amount,
        coalesce(i.invoice_tax_amount, 0) - coalesce(e.erp_tax_amount, 0) as tax_difference
    from invoice_tax as i
    full outer join erp_tax as e
        on i.entity_tin = e.entity_tin
        and i.direction = e.direction
        and i.period = e.period
        and i.rate_label = e.rate_label
)

select * from final
order by entity_tin, period, direction, rate_label
