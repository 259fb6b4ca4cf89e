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


def test_rss_sampler_attributes_a_steps_peak_to_that_step() -> None:
    import time

    sampler_cls = _load("nightly_job").RssSampler
    with sampler_cls(every_s=0.01) as sampler:
        before = time.time()
        time.sleep(0.05)
        ballast = bytearray(300 * 2**20)  # touched pages count in RSS
        ballast[::4096] = b"x" * len(ballast[::4096])
        time.sleep(0.05)
        during = time.time()
        del ballast
        time.sleep(0.05)
    assert sampler.peak_between(before, during) - sampler.peak_between(before, before + 0.04) > 250 * 2**20
    assert sampler.peak_between(during + 10, during + 20) == 0


def test_explain_model_lists_the_operators_of_a_model(tmp_path) -> None:
    import duckdb

    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create schema core")
    con.execute(
        "create table core.invoices as select range::varchar as invoice_uid, 'e' as entity_tin, "
        "'tax_platform' as source, 'issued' as direction, 'b' as buyer_tin, 's' as seller_tin "
        "from range(1000)"
    )
    con.close()
    result = _load("explain_model").profile(db, "core/authoritative_invoices")
    names = [op[2] for op in result["operators"]]
    assert "SEQ_SCAN" in names and result["cpu_s"] >= 0
    assert any(rows == 1000 for _, _, _, rows, _ in result["operators"])
