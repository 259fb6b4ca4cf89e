"""The Dagster code location: every definition under `defs/`, plus cross-cutting policy.

Policy applied here once rather than in each factory: every asset is owned by the finance
data team and tagged as part of the compliance domain.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import dagster as dg

from invoice_pipeline.project import require_project_folders

OWNERS = ["team:finance-data"]


@dg.definitions
def defs() -> dg.Definitions:
    require_project_folders()
    loaded = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    # map_resolved_asset_specs is marked preview in 1.13; its behaviour is pinned by
    # tests/test_definitions.py, so the warning only adds noise to every run's log.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return loaded.map_resolved_asset_specs(
            func=lambda spec: spec.replace_attributes(owners=OWNERS).merge_attributes(tags={"domain": "vat"}),
        )
