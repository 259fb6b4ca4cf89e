-- One row per invoice line per tax source (the platform's 信息汇总表 and the lines of XML and
-- OFD files). Goods-list invoices carry a face line `(详见销货清单)` besides the list lines;
-- `is_goods_list_face` marks it, so header reconciliation can leave it out.
with platform_lines as (
    select * from staging.tax_platform_lines
),

einvoice_lines as (
    select * from staging.einvoice_lines
),

final as (
    select * from platform_lines
    union all by name
    select * from einvoice_lines
)

select * from final
order by source, invoice_uid, line_no
