-- One row per entity, direction (issued 销项 / received 进项) and month (`period` YYYY-MM, the
-- invoice's issue month; for ERP documents the accounting period they were posted in): how many
-- invoices each tax source holds and their money (tax_platform, einvoice_xml, einvoice_ofd from
-- core.invoices), the ERP documents booked (staging.erp, not cancelled), and the matched share:
-- invoices of ours (core.authoritative_invoices, not voided) with at least one non-cancelled ERP
-- booking (core.matches) over all non-voided invoices, by count and by 价税合计 (signed: red-letter
-- invoices count negative). What is not matched here is what missing_in_erp reports.
with entities as (
    select
        tin as entity_tin,
        name as entity_name
    from staging.entities
),

invoices as (
    select entity_tin, direction, tax_period, source, amount_excl_tax, tax_amount, amount_incl_tax
    from core.invoices
    where entity_tin is not null
),

authoritative as (
    select invoice_uid, entity_tin, direction, tax_period, status, amount_incl_tax
    from core.authoritative_invoices
    where entity_tin is not null
),

erp_matches as (
    select invoice_uid, entity_tin, erp_doc_id
    from core.matches
    where match_side = 'erp'
),

erp as (
    select
        erp_doc_id,
        entity_tin,
        direction,
        tax_period,
        amount_excl_tax,
        tax_amount,
        amount_incl_tax,
        is_cancelled
    from staging.erp
    where entity_tin is not null
),

by_tax_source as (
    select
        entity_tin,
        direction,
        tax_period as period,
        count(*) filter (where source = 'tax_platform') as tax_platform_invoices,
        sum(amount_excl_tax) filter (where source = 'tax_platform') as tax_platform_amount_excl_tax,
        sum(tax_amount) filter (where source = 'tax_platform') as tax_platform_tax_amount,
        sum(amount_incl_tax) filter (where source = 'tax_platform') as tax_platform_amount_incl_tax,
        count(*) filter (where source = 'einvoice_xml') as einvoice_xml_invoices,
        sum(amount_excl_tax) filter (where source = 'einvoice_xml') as einvoice_xml_amount_excl_tax,
        sum(tax_amount) filter (where source = 'einvoice_xml') as einvoice_xml_tax_amount,
        sum(amount_incl_tax) filter (where source = 'einvoice_xml') as einvoice_xml_amount_incl_tax,
        count(*) filter (where source = 'einvoice_ofd') as einvoice_ofd_invoices,
        sum(amount_excl_tax) filter (where source = 'einvoice_ofd') as einvoice_ofd_amount_excl_tax,
        sum(tax_amount) filter (where source = 'einvoice_ofd') as einvoice_ofd_tax_amount,
        sum(amount_incl_tax) filter (where source = 'einvoice_ofd') as einvoice_ofd_amount_incl_tax
    from invoices
    group by entity_tin, direction, tax_period
),

by_erp as (
    select
        entity_tin,
        direction,
        tax_period as period,
        count(*) filter (where not is_cancelled) as erp_documents,
        sum(amount_excl_tax) filter (where not is_cancelled) as erp_amount_excl_tax,
        sum(tax_amount) filter (where not is_cancelled) as erp_tax_amount,
        sum(amount_incl_tax) filter (where not is_cancelled) as erp_amount_incl_tax,
        count(*) filter (where is_cancelled) as erp_cancelled_documents
    from erp
    group by entity_tin, direction, tax_period
),

booked as (
    select distinct
        m.invoice_uid,
        m.entity_tin
    from erp_matches as m
    inner join erp as e on m.erp_doc_id = e.erp_doc_id
    where not e.is_cancelled
),

invoice_booking as (
    select
        a.entity_tin,
        a.direction,
        a.tax_period,
        a.amount_incl_tax,
        coalesce(a.status, 'normal') = 'voided' as is_voided,
        b.invoice_uid is not null as is_booked
    from authoritative as a
    left join booked as b on a.invoice_uid = b.invoice_uid and a.entity_tin = b.entity_tin
),

by_booking as (
    select
        entity_tin,
        direction,
        tax_period as period,
        count(*) as invoices,
        count(*) filter (where is_voided) as voided_invoices,
        count(*) filter (where not is_voided) as valid_invoices,
        coalesce(sum(amount_incl_tax) filter (where not is_voided), 0) as valid_amount_incl_tax,
        count(*) filter (where not is_voided and is_booked) as matched_invoices,
        coalesce(sum(amount_incl_tax) filter (where not is_voided and is_booked), 0) as matched_amount_incl_tax
    from invoice_booking
    group by entity_tin, direction, tax_period
),

spine as (
    select entity_tin, direction, period from by_tax_source
    union
    select entity_tin, direction, period from by_erp
    union
    select entity_tin, direction, period from by_booking
),

final as (
    select
        s.entity_tin,
        en.entity_name,
        s.direction,
        s.period,
        coalesce(t.tax_platform_invoices, 0) as tax_platform_invoices,
        coalesce(t.tax_platform_amount_excl_tax, 0) as tax_platform_amount_excl_tax,
        coalesce(t.tax_platform_tax_amount, 0) as tax_platform_tax_amount,
        coalesce(t.tax_platform_amount_incl_tax, 0) as tax_platform_amount_incl_tax,
        coalesce(t.einvoice_xml_invoices, 0) as einvoice_xml_invoices,
        coalesce(t.einvoice_xml_amount_excl_tax, 0) as einvoice_xml_amount_excl_tax,
        coalesce(t.einvoice_xml_tax_amount, 0) as einvoice_xml_tax_amount,
        coalesce(t.einvoice_xml_amount_incl_tax, 0) as einvoice_xml_amount_incl_tax,
        coalesce(t.einvoice_ofd_invoices, 0) as einvoice_ofd_invoices,
        coalesce(t.einvoice_ofd_amount_excl_tax, 0) as einvoice_ofd_amount_excl_tax,
        coalesce(t.einvoice_ofd_tax_amount, 0) as einvoice_ofd_tax_amount,
        coalesce(t.einvoice_ofd_amount_incl_tax, 0) as einvoice_ofd_amount_incl_tax,
        coalesce(e.erp_documents, 0) as erp_documents,
        coalesce(e.erp_amount_excl_tax, 0) as erp_amount_excl_tax,
        coalesce(e.erp_tax_amount, 0) as erp_tax_amount,
        coalesce(e.erp_amount_incl_tax, 0) as erp_amount_incl_tax,
        coalesce(e.erp_cancelled_documents, 0) as erp_cancelled_documents,
        coalesce(b.invoices, 0) as invoices,
        coalesce(b.voided_invoices, 0) as voided_invoices,
        coalesce(b.valid_invoices, 0) as valid_invoices,
        coalesce(b.valid_amount_incl_tax, 0) as valid_amount_incl_tax,
        coalesce(b.matched_invoices, 0) as matched_invoices,
        coalesce(b.matched_amount_incl_tax, 0) as matched_amount_incl_tax,
        case
            when b.valid_invoices > 0
                then round(b.matched_invoices / b.valid_invoices, 4)
        end as matched_share,
        case
            when b.valid_amount_incl_tax <> 0
                then round(cast(b.matched_amount_incl_tax as double) / cast(b.valid_amount_incl_tax as double), 4)
        end as matched_amount_share
    from spine as s
    left join entities as en on s.entity_tin = en.entity_tin
    left join by_tax_source as t
        on s.entity_tin = t.entity_tin and s.direction = t.direction and s.period = t.period
    left join by_erp as e
        on s.entity_tin = e.entity_tin and s.direction = e.direction and s.period = e.period
    left join by_booking as b
        on s.entity_tin = b.entity_tin and s.direction = b.direction and s.period = b.period
)

select * from final
order by entity_tin, period, direction
