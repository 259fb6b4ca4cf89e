"""invoice_pipeline — find the invoices the tax authority knows and the books do not."""

__version__ = "0.1.0"
