-- One row per identifier form of an invoice known to a tax source, so that matching what a
-- clerk typed is a join on `alias`. Forms: the canonical uid; the 20-digit 数电 number; the
-- legacy code and number run together (20 digits for 12-digit codes, 18 for 10-digit ones —
-- a joined legacy number can look exactly like a 数电 number); the paper code-number of a
-- 数电纸质发票; the bare 8-digit number; the last 8 digits of a 数电 number.
with invoices as (
    select distinct invoice_uid, invoice_code, invoice_no, digital_invoice_no, seller_tin
    from core.invoices
),

forms as (
    select invoice_uid, invoice_uid as alias, 'uid' as alias_kind, seller_tin from invoices
    union all
    select invoice_uid, digital_invoice_no, 'digital_no', seller_tin
    from invoices where digital_invoice_no is not null
    union all
    select invoice_uid, invoice_code || invoice_no, 'code_number_joined', seller_tin
    from invoices where invoice_code is not null and invoice_no is not null
    union all
    select invoice_uid, invoice_code || '-' || invoice_no, 'code_number', seller_tin
    from invoices where invoice_code is not null and invoice_no is not null
    union all
    select invoice_uid, invoice_no, 'number8', seller_tin
    from invoices where invoice_no is not null
    union all
    select invoice_uid, right(digital_invoice_no, 8), 'suffix8', seller_tin
    from invoices where digital_invoice_no is not null
),

final as (
    select distinct invoice_uid, alias, alias_kind, seller_tin from forms
)

select * from final
order by alias, alias_kind, invoice_uid
