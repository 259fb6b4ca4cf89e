"""The one module that knows where the repository's folders and the data directory are.

Everything else asks this module for paths, so nothing depends on the working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(os.environ.get("INVOICE_PIPELINE_ROOT", Path(__file__).resolve().parent.parent))
ASSETS_DIR = PROJECT_ROOT / "assets"
CHECKS_DIR = PROJECT_ROOT / "checks"
SOURCES_DIR = ASSETS_DIR / "sources"
MODELS_DIR = ASSETS_DIR / "models"
DAGSTER_HOME_TEMPLATE = PROJECT_ROOT / "dagster_home"

DATA_DIR_ENV = "INVOICE_PIPELINE_DATA_DIR"

SOURCE_NAMES = ("entities", "tax_platform", "einvoice", "erp", "reimbursement", "sync_log")


def data_dir() -> Path:
    """The data directory: `$INVOICE_PIPELINE_DATA_DIR`, else `data/` in the repository."""
    return Path(os.environ.get(DATA_DIR_ENV) or PROJECT_ROOT / "data").resolve()


def landing_dir(root: Path | None = None) -> Path:
    return (root or data_dir()) / "landing"


def warehouse_path(root: Path | None = None) -> Path:
    return (root or data_dir()) / "warehouse" / "invoices.duckdb"


def analytics_path(root: Path | None = None) -> Path:
    return (root or data_dir()) / "warehouse" / "analytics.duckdb"


def require_project_folders() -> None:
    """Fail loudly at definition-load time when the data folders are missing."""
    for folder in (SOURCES_DIR, MODELS_DIR, CHECKS_DIR):
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{folder} is missing: invoice_pipeline runs from a checkout of its repository "
                f"(set INVOICE_PIPELINE_ROOT to the checkout)"
            )
