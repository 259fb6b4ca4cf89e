"""bench/partitioned.py on a tiny generated tree: the layout, the per-partition export, the global
step and the findings reconciliation (the timings themselves are the script's, not the tests')."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from invoice_pipeline.definitions import defs
from invoice_pipeline.generate import generate

BENCH = Path(__file__).resolve().parent.parent / "bench"
FINDINGS = dg.AssetKey(["audit", "findings"])

pytestmark = pytest.mark.xdist_group("bench_partitioned")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bp = _load("partitioned")


def _findings_job():
    """The nightly job up to audit.findings, without the reports, the snapshot, the backup and the
    staged tables' checks: what the global step and the reconciliation read, in seconds."""
    definitions = defs()
    graph = definitions.resolve_asset_graph()
    keys = dg.AssetSelection.assets(FINDINGS).upstream().required_multi_asset_neighbors().resolve(graph)
    checks = {k for k in graph.asset_check_keys if k.asset_key == FINDINGS}
    return definitions.resolve_job_def("nightly").get_subset(
        asset_selection=set(keys), asset_check_selection=checks
    )


def _run(job, data_dir: Path) -> None:
    os.environ["INVOICE_PIPELINE_DATA_DIR"] = str(data_dir)
    job.execute_in_process(
        run_config={
            "resources": {
                "warehouse": {"config": {"data_dir": str(data_dir)}},
                "settings": {"config": {"as_of": "2026-11-01"}},
            },
            "loggers": {"console": {"config": {"log_level": "ERROR"}}},
        },
        instance=dg.DagsterInstance.ephemeral(),
    )


@pytest.fixture(scope="module")
def partitioned(tmp_path_factory):
    """A 300-invoice tree, its partitioned layout run partition by partition, exported and put
    through the global step, and the same tree run whole."""
    root = tmp_path_factory.mktemp("partitioned")
    tree = root / "tree"
    generate(tree, invoices=300, seed=3)
    layout = bp.plan_layout(tree)
    dirs = bp.build_layout(tree, layout, root / "partitions")
    job = _findings_job()
    saved = os.environ.get("INVOICE_PIPELINE_DATA_DIR")
    try:
        exports = {}
        for entity in layout.entities:
            _run(job, dirs[entity.partition])
            exports[entity.partition] = bp.export_partition(
                dirs[entity.partition], root / "parquet", entity.tin, entity == layout.home
            )
        single = root / "single"
        shutil.copytree(tree / "landing", single / "landing")
        _run(job, single)
    finally:
        if saved is None:
            os.environ.pop("INVOICE_PIPELINE_DATA_DIR", None)
        else:
            os.environ["INVOICE_PIPELINE_DATA_DIR"] = saved
    result = bp.global_step(root / "parquet")
    return {
        "tree": tree,
        "layout": layout,
        "dirs": dirs,
        "exports": exports,
        "single": single,
        "global": result,
    }


def test_every_landed_file_is_in_its_partitions_once(partitioned):
    tree, layout, dirs = partitioned["tree"], partitioned["layout"], partitioned["dirs"]
    landing = tree / "landing"
    landed = sorted(p for p in landing.rglob("*") if p.is_file())
    assert sorted(layout.placements) == landed
    partitions = [e.partition for e in layout.entities]
    for path, placed in layout.placements.items():
        source = path.relative_to(landing).parts[0]
        assert len(placed) == len(set(placed)) >= 1, path
        if source in bp.COPIED_SOURCES:
            assert sorted(placed) == sorted(partitions), path
        elif source != "einvoice":  # an e-invoice between two of our entities goes to both
            assert len(placed) == 1, path
    linked = Counter()
    for partition, data_dir in dirs.items():
        for path in (data_dir / "landing").rglob("*"):
            if path.is_file():
                original = landing / path.relative_to(data_dir / "landing")
                assert not path.is_symlink() and path.samefile(original), path
                linked[original] += 1
                assert partition in layout.placements[original]
    assert linked == Counter({p: len(v) for p, v in layout.placements.items()})
    # Platform exports, ERP registers and claim files are each one entity's, by name.
    assert all(
        len(layout.files_of(p)) > 0 and any(f.parent.name == "tax_platform" for f in layout.files_of(p))
        for p in partitions
    )


def test_partitions_hold_only_their_entity_and_add_up_to_the_whole(partitioned):
    exports = partitioned["exports"]
    assert all(e["foreign_rows"] == {"invoice_sides": 0, "erp_documents": 0} for e in exports.values())
    whole = bp.raw_rows(partitioned["single"])
    summed = {t: sum(e["raw_rows"][t] for e in exports.values()) for t in bp.RAW_ROWS}
    assert summed == whole


def test_the_partitioned_findings_equal_the_single_runs(partitioned):
    result = partitioned["global"]
    single = bp.open_findings(partitioned["single"])
    reconciled = bp.reconcile(
        single, [tuple(f) for f in result["findings"]], result["partition_findings_by_rule"]
    )
    assert reconciled["only_in_single"] == [] and reconciled["only_in_partitioned"] == []
    assert reconciled["equal"]
    assert all(row["equal"] for row in reconciled["by_rule"].values())
    by_rule = reconciled["by_rule"]
    assert {r for r, row in by_rule.items() if row["where"] == "global step"} <= set(bp.GLOBAL_RULES)
    # The sync log is in every partition: summing the partitions' runs counts its findings once
    # per partition, the global step once.
    n = len(partitioned["layout"].entities)
    for rule in ("sync_failed", "sync_stale"):
        assert by_rule[rule]["single"] > 0
        assert by_rule[rule]["partitions_summed"] == n * by_rule[rule]["single"]
    assert reconciled["total"]["partitioned"] == reconciled["total"]["single"] == len(single)


def test_cross_partition_checks_are_counted(partitioned):
    checks = partitioned["global"]["cross_partition"]
    assert set(checks) >= {
        "invoices_owned_by_several_partitions",
        "invoices_booked_by_live_erp_documents_of_several_orgs",
        "invoices_on_effective_claims_of_several_orgs",
    }
    assert all(isinstance(v, int) and v >= 0 for v in checks.values())


def test_file_names_name_their_entity():
    entities = [
        bp.Entity("T1", "星河智能科技（北京）有限公司", "BJ01", ("北京星河智能科技有限公司",)),
        bp.Entity("T2", "上海星河供应链管理有限公司", "SH01", ()),
    ]
    assert bp.owner_by_name("BJ01_发票登记簿_2026H1.csv", entities).org == "BJ01"
    assert bp.owner_by_name("报销明细_SH01_2026.csv", entities).org == "SH01"
    assert bp.owner_by_name("北京星河_进项_2026Q1_全量发票查询导出结果 (1).xlsx", entities).org == "BJ01"
    assert bp.owner_by_name("上海星河_销项_2026Q4_全量发票查询导出结果.csv", entities).org == "SH01"
    assert bp.owner_by_name("erp_export.csv", entities) is None


def test_help_shows_usage(capsys):
    with pytest.raises(SystemExit) as exit_:
        bp.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "partitioned.py" in out and "--parallel" in out and "--single-json" in out
