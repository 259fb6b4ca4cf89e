"""Reports: the monthly compliance workbook and HTML per entity (compliance.py)."""
