-- One row per invoice per tax source per entity side (source: tax_platform, einvoice_xml,
-- einvoice_ofd). An invoice between two of our own entities appears once as issued by the
-- seller and once as received by the buyer. The platform export is the authority; XML and
-- OFD rows confirm it or stand in for invoices the export lacks.
with tax_platform as (
    select * exclude (status_raw, issue_channel, drawer) from staging.tax_platform
),

einvoice as (
    select * exclude (drawer) from staging.einvoice
),

entities as (
    select tin from staging.entities
),

invoices as (
    select * from tax_platform
    union all by name
    select * from einvoice
),

intercompany_received as (
    select
        * replace (buyer_tin as entity_tin, 'received' as direction)
    from invoices
    where direction = 'issued'
        and buyer_tin in (select tin from entities)
),

final as (
    select * from invoices
    union all by name
    select * from intercompany_received
)

select * from final
order by source, invoice_uid, entity_tin
