-- One row per invoice per entity side, with the authoritative values (SPEC "Which source is
-- right"): the platform export's row where the export has the invoice, else the XML's, else
-- the OFD's. `sources` lists every tax source that knows the invoice. Matching and every ERP
-- and claim rule read this table.
with invoices as (
    select * from core.invoices
),

ranked as (
    select
        *,
        list(source order by source) over (partition by invoice_uid, entity_tin) as sources,
        row_number() over (
            partition by invoice_uid, entity_tin
            order by case source when 'tax_platform' then 1 when 'einvoice_xml' then 2 else 3 end
        ) as authority_rank
    from invoices
),

final as (
    select
        * exclude (authority_rank),
        case when direction = 'issued' then buyer_tin else seller_tin end as counterparty_tin
    from ranked
    where authority_rank = 1
)

select * from final
order by invoice_uid, entity_tin
