"""The benchmark's own arithmetic and bookkeeping (the measurements themselves are `make bench`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from invoice_pipeline.definitions import defs

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_step_of_the_nightly_job_has_a_stage() -> None:
    """A new asset or check must land in a named stage of BENCHMARKS.md, not in 'other'."""
    stage_of = _load("nightly_job").stage_of
    steps = [node.name for node in defs().resolve_job_def("nightly").graph.node_defs]
    assert {step: stage_of(step) for step in steps if stage_of(step) == "other"} == {}
    assert stage_of("ingest_tax_platform") == "ingest"
    assert stage_of("staging__erp_erp_expectations") == "checks"
    assert stage_of("ops__warehouse_backup") == "backup"


def test_growth_exponent() -> None:
    exponent = _load("benchmarks_md").exponent
    assert exponent([(1_000_000, 10.0), (10_000_000, 100.0)]) == pytest.approx(1.0)
    assert exponent([(1_000_000, 10.0), (4_000_000, 160.0)]) == pytest.approx(2.0)
    assert exponent([(1_000_000, 10.0)]) is None
