"""Unattended operation: alerts (audit.alerts + a webhook on 127.0.0.1), audit.sync_health, the
landing sensor, the run-failure sensor and the schedules — with Dagster's own test contexts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import pytest

from invoice_pipeline import project
from invoice_pipeline.alerts import (
    WEBHOOK_ENV,
    WEBHOOK_FORMAT_ENV,
    Alert,
    deliver,
    pending_path,
    raise_outside_run,
    record_pending,
    webhook_body,
    webhook_settings,
)
from invoice_pipeline.cli import PipelineError, run_pipeline
from invoice_pipeline.definitions import defs
from invoice_pipeline.defs.ops.sensors import (
    LandingSnapshot,
    evaluate_landing,
    landing_sensor,
    landing_snapshot,
    run_failure_alert,
)
from invoice_pipeline.defs.resources import Warehouse
from invoice_pipeline.generate import generate
from invoice_pipeline.normalize import mask_tin

SHANGHAI = ZoneInfo("Asia/Shanghai")
AS_OF = "2026-11-01"


# ---------------------------------------------------------------------------------------------
# A webhook receiver on 127.0.0.1
# ---------------------------------------------------------------------------------------------


class Webhook:
    """Records every POST; answers with the queued status codes, then 200."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.statuses: list[int] = []
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.bodies.append(json.loads(body.decode("utf-8")))
                status = received.statuses.pop(0) if received.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Webhook]:
    hook = Webhook()
    monkeypatch.setenv(WEBHOOK_ENV, hook.url)
    monkeypatch.delenv(WEBHOOK_FORMAT_ENV, raising=False)
    yield hook
    hook.stop()


def _rows(data_dir: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(project.warehouse_path(data_dir)), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


# ---------------------------------------------------------------------------------------------
# Alerts from a real run
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alerted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[dict], list[dict]]]:
    """A generated tree run twice with the same as-of, a webhook receiving: (data dir, bodies of
    the first run, bodies of the second)."""
    root = tmp_path_factory.mktemp("alerted")
    generate(root, invoices=300, seed=11)
    hook = Webhook()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(WEBHOOK_ENV, hook.url)
            patch.delenv(WEBHOOK_FORMAT_ENV, raising=False)
            patch.delenv("DAGSTER_HOME", raising=False)
            run_pipeline(root, AS_OF)
            first = list(hook.bodies)
            run_pipeline(root, AS_OF)
            second = hook.bodies[len(first) :]
    finally:
        hook.stop()
    yield root, first, second


def test_a_run_alerts_its_new_error_findings_with_count_money_and_where(alerted) -> None:
    root, bodies, _ = alerted
    by_kind = {b["kind"]: b for b in bodies}
    assert set(by_kind) == {"new_error_findings", "sync_problems"}
    body = by_kind["new_error_findings"]
    run_id = body["run_id"]
    count, amount = _rows(
        root,
        "select count(*), sum(f.amount) from audit.finding_events e join audit.findings f using (finding_id) "
        "where e.run_id = ? and e.event in ('opened', 'reopened') and f.severity = 'error' "
        "and f.rule_id not like 'sync%'",
        [run_id],
    )[0]
    assert count > 0
    assert body["finding_count"] == count
    assert Decimal(body["amount"]) == amount
    text = body["text"]
    assert f"{count} new error findings" in text and f"{amount:,.2f} 元" in text
    per_rule = _rows(
        root,
        "select f.rule_id, count(*) from audit.finding_events e join audit.findings f using (finding_id) "
        "where e.run_id = ? and f.severity = 'error' and f.rule_id not like 'sync%' group by 1",
        [run_id],
    )
    for rule_id, n in per_rule:
        assert f"- {rule_id}: {n}" in text
    assert "Where to look" in text and run_id in text and str(project.warehouse_path(root)) in text


def test_sync_problems_alert_carries_sync_health(alerted) -> None:
    root, bodies, _ = alerted
    body = next(b for b in bodies if b["kind"] == "sync_problems")
    opened = _rows(
        root,
        "select count(*) from audit.finding_events e join audit.findings f using (finding_id) "
        "where e.run_id = ? and f.rule_id in ('sync_failed', 'sync_stale')",
        [body["run_id"]],
    )[0][0]
    assert body["finding_count"] == opened > 0
    for (system,) in _rows(
        root, "select distinct details ->> 'system' from audit.findings where rule_id like 'sync%'"
    ):
        assert f"- {system}: " in body["text"]
    assert "audit.sync_health" in body["text"]


def test_alerts_are_recorded_and_not_repeated_for_problems_that_stay_open(alerted) -> None:
    root, first, second = alerted
    assert second == []  # same data, same as-of: nothing new, nothing sent
    rows = _rows(
        root, "select kind, delivery, delivery_attempts, finding_count from audit.alerts order by kind"
    )
    assert [(k, d, a) for k, d, a, _ in rows] == [
        ("new_error_findings", "sent", 1),
        ("sync_problems", "sent", 1),
    ]
    assert sorted(b["finding_count"] for b in first) == sorted(n for *_, n in rows)


def test_alert_text_masks_resident_ids(alerted) -> None:
    root, bodies, _ = alerted
    tins = [
        t
        for (t,) in _rows(
            root,
            "select seller_tin from core.invoices union select buyer_tin from core.invoices",
        )
        if t
    ]
    import polars as pl

    masked = pl.DataFrame({"t": tins}).select(mask_tin(pl.col("t")))["t"].to_list()
    personal = [t for t, m in zip(tins, masked, strict=True) if t != m]
    text = "\n".join(b["text"] for b in bodies)
    assert not [t for t in personal if t in text]


def test_sync_health_matches_the_sync_log(alerted) -> None:
    """Recomputed here in Python from staging.sync_log, at the run's as-of instant."""
    root, _, _ = alerted
    as_of = datetime(2026, 11, 1, 2, 0, tzinfo=SHANGHAI)
    runs = _rows(
        root,
        "select system, started_at, finished_at, status, records_read, records_written, records_failed "
        "from staging.sync_log",
    )
    expected = {}
    for system in {r[0] for r in runs}:
        mine = [r for r in runs if r[0] == system and r[1] <= as_of]
        if not mine:
            continue
        week = [r for r in mine if r[1] > as_of - timedelta(days=7)]
        failed = [
            r for r in week if r[3] == "failed" or (r[3] == "partial" and ((r[6] or 0) > 0 or r[5] < r[4]))
        ]
        successes = [r[2] or r[1] for r in mine if r[3] == "success"]
        expected[system] = (
            max(r[1] for r in mine),
            max(successes) if successes else None,
            len(week),
            len(failed),
        )
    actual = {
        s: (last_run, last_success, runs_7d, failed_7d)
        for s, last_run, last_success, runs_7d, failed_7d in _rows(
            root,
            "select system, last_run_at, last_success_at, runs_7d, failed_runs_7d from audit.sync_health",
        )
    }
    assert actual == expected
    assert any(failed for *_, failed in expected.values())  # the generated log has failures to count


# ---------------------------------------------------------------------------------------------
# Delivery
# ---------------------------------------------------------------------------------------------


def _alert(kind: str = "new_error_findings") -> Alert:
    return Alert(
        "run-1", kind, "error", "[invoice_pipeline] 2 new error findings", "body", 2, Decimal("12.50")
    )


def test_webhook_shapes_for_chat_robots() -> None:
    alert = _alert()
    assert webhook_body(alert, "wecom") == {"msgtype": "text", "text": {"content": alert.text}}
    assert webhook_body(alert, "dingtalk")["text"]["content"] == alert.text
    assert webhook_body(alert, "feishu") == {"msg_type": "text", "content": {"text": alert.text}}
    generic = webhook_body(alert, "generic")
    assert generic["text"] == alert.text and generic["amount"] == "12.50" and generic["finding_count"] == 2


def test_webhook_must_be_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WEBHOOK_ENV, "file:///etc/passwd")
    with pytest.raises(ValueError, match="http"):
        webhook_settings()
    monkeypatch.setenv(WEBHOOK_ENV, "http://127.0.0.1:1/")
    monkeypatch.setenv(WEBHOOK_FORMAT_ENV, "pager")
    with pytest.raises(ValueError, match="wecom"):
        webhook_settings()


def test_delivery_retries_then_reports_the_error(webhook: Webhook) -> None:
    webhook.statuses = [503, 200]
    sent = deliver(_alert(), webhook.url)
    assert (sent.status, sent.attempts) == ("sent", 2)
    webhook.statuses = [500, 500, 500]
    failed = deliver(_alert(), webhook.url)
    assert failed.status == "failed" and failed.attempts == 3 and "HTTP 500" in failed.error
    assert len(webhook.bodies) == 5


def _nightly(data_dir: Path, as_of: str = AS_OF) -> dg.ExecuteInProcessResult:
    job = defs().resolve_job_def("nightly")
    return job.execute_in_process(
        run_config={
            "resources": {
                "warehouse": {"config": {"data_dir": str(data_dir)}},
                "settings": {"config": {"as_of": as_of}},
            }
        },
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def _check(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == name)


def test_undelivered_alert_fails_its_check_and_is_retried_next_run(
    tiny_data_dir: Path, webhook: Webhook
) -> None:
    webhook.statuses = [500] * 6  # both alerts of the first run fail all three attempts
    first = _nightly(tiny_data_dir)
    assert first.success
    check = _check(first, "alerts_delivered")
    assert not check.passed
    failed = _rows(tiny_data_dir, "select kind from audit.alerts where delivery = 'failed'")
    assert failed and len(webhook.bodies) == 3 * len(failed)

    second = _nightly(tiny_data_dir)
    assert _check(second, "alerts_delivered").passed
    rows = _rows(tiny_data_dir, "select delivery, delivery_attempts from audit.alerts")
    assert rows and all(d == "sent" and a == 4 for d, a in rows)


# ---------------------------------------------------------------------------------------------
# The run-failure sensor and failure alerts outside a run
# ---------------------------------------------------------------------------------------------


def test_failure_sensor_alerts_the_failed_step(tiny_data_dir: Path, webhook: Webhook) -> None:
    instance = dg.DagsterInstance.ephemeral()
    job = defs().resolve_job_def("nightly")
    result = job.execute_in_process(
        run_config={"resources": {"settings": {"config": {"as_of": "2026-13-01"}}}},  # no 13th month
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
        resources={"warehouse": Warehouse(data_dir=str(tiny_data_dir))},
    ).for_run_failure()
    run_failure_alert(context)

    [body] = webhook.bodies
    assert body["kind"] == "run_failed" and body["run_id"] == result.run_id
    assert "month must be in 1..12" in body["text"] and result.run_id in body["text"]
    failed_steps = {e.step_key for e in result.all_events if e.is_step_failure}
    assert set(body["details"]["failed_steps"]) == failed_steps
    assert _rows(tiny_data_dir, "select kind, delivery from audit.alerts") == [("run_failed", "sent")]


def test_cli_run_that_fails_raises_an_alert(tiny_data_dir: Path, webhook: Webhook, monkeypatch) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with pytest.raises(PipelineError, match=r"month must be in 1\.\.12"):
        run_pipeline(tiny_data_dir, "2026-13-01")
    assert [b["kind"] for b in webhook.bodies] == ["run_failed"]
    assert _rows(tiny_data_dir, "select kind from audit.alerts") == [("run_failed",)]


def test_failure_alert_waits_while_another_process_holds_the_warehouse(
    tiny_data_dir: Path, webhook: Webhook
) -> None:
    path = project.warehouse_path(tiny_data_dir)
    path.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(path)!r}); "
            "print('locked', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        delivery = raise_outside_run(tiny_data_dir, _alert("run_failed"), lock_wait_s=1)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
    assert delivery.status == "sent" and len(webhook.bodies) == 1  # told at once
    assert pending_path(tiny_data_dir).is_file()

    con = duckdb.connect(str(path))
    try:
        assert record_pending(con, tiny_data_dir) == 1
        assert con.execute("select kind, delivery from audit.alerts").fetchall() == [("run_failed", "sent")]
    finally:
        con.close()
    assert not pending_path(tiny_data_dir).exists()


# ---------------------------------------------------------------------------------------------
# The landing sensor
# ---------------------------------------------------------------------------------------------


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def _settle_all(landing: Path) -> None:
    for path in landing.rglob("*"):
        if path.is_file():
            _age(path, 3600)


def _tick(data_dir: Path, cursor: str | None, instance: dg.DagsterInstance | None = None):
    context = dg.build_sensor_context(
        instance=instance or dg.DagsterInstance.ephemeral(),
        cursor=cursor,
        resources={"warehouse": Warehouse(data_dir=str(data_dir))},
    )
    result = landing_sensor(context)
    return result, context.cursor


def test_landing_sensor_runs_once_per_settled_change(tiny_data_dir: Path) -> None:
    landing = project.landing_dir(tiny_data_dir)
    _settle_all(landing)
    first, cursor = _tick(tiny_data_dir, None)
    assert isinstance(first, dg.RunRequest) and first.tags["invoice_pipeline/trigger"] == "landing"
    assert "erp/erp_bj.csv" in first.tags["invoice_pipeline/new_files"]
    again, same = _tick(tiny_data_dir, cursor)
    assert isinstance(again, dg.SkipReason) and same == cursor

    new = landing / "erp" / "erp_sh.csv"
    new.write_bytes((landing / "erp" / "erp_bj.csv").read_bytes())
    growing, held = _tick(tiny_data_dir, cursor)  # just written: still settling
    assert isinstance(growing, dg.SkipReason) and "still settling" in growing.skip_message and held == cursor
    _age(new, 120)
    landed, moved = _tick(tiny_data_dir, cursor)
    assert isinstance(landed, dg.RunRequest) and landed.tags["invoice_pipeline/new_files"] == "erp/erp_sh.csv"
    assert landed.run_key != first.run_key and moved != cursor


def test_landing_sensor_ignores_partial_temporary_and_hidden_files(tiny_data_dir: Path) -> None:
    landing = project.landing_dir(tiny_data_dir)
    _settle_all(landing)
    _, cursor = _tick(tiny_data_dir, None)
    for name in ("upload.csv.part", "upload.csv.tmp", ".hidden.csv", "notes.txt"):
        (landing / "erp" / name).write_text("x")
        _age(landing / "erp" / name, 3600)
    result, after = _tick(tiny_data_dir, cursor)
    assert isinstance(result, dg.SkipReason) and after == cursor


def test_landing_sensor_cursor_stays_small(tmp_path: Path) -> None:
    landing = tmp_path / "landing" / "erp"
    landing.mkdir(parents=True)
    for i in range(2000):
        (landing / f"erp_{i:05d}.csv").write_text("组织\n")
    snapshot = landing_snapshot(tmp_path / "landing", time.time() + 3600, settle_s=60)
    assert len(snapshot.settled) == 2000
    _, cursor = evaluate_landing(snapshot, None, run_in_progress=False)
    assert len(cursor) < 200


def test_landing_sensor_waits_for_a_running_nightly(tiny_data_dir: Path) -> None:
    _settle_all(project.landing_dir(tiny_data_dir))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_run(dg.DagsterRun(job_name="nightly", status=dg.DagsterRunStatus.STARTED))
    result, cursor = _tick(tiny_data_dir, None, instance)
    assert isinstance(result, dg.SkipReason) and "in progress" in result.skip_message and cursor is None


def test_landing_sensor_starts_nothing_before_any_file_has_settled() -> None:
    """A new instance's first tick over files still settling (or none) must not start a run."""
    from invoice_pipeline.defs.ops.sensors import LandedFileState

    result, cursor = evaluate_landing(LandingSnapshot((), ("erp/fresh.csv",)), None, False)
    assert isinstance(result, dg.SkipReason) and "1 still settling" in result.skip_message
    assert cursor is None
    settled = LandingSnapshot((LandedFileState("erp/fresh.csv", 1_000, 10),), ())
    request, _ = evaluate_landing(settled, cursor, False)
    assert isinstance(request, dg.RunRequest)


def test_evaluate_landing_names_only_files_newer_than_the_last_request() -> None:
    old = LandingSnapshot((), ())
    _, cursor = evaluate_landing(old, None, False)
    from invoice_pipeline.defs.ops.sensors import LandedFileState

    files = tuple(LandedFileState(f"erp/{i}.csv", 1_000 + i, 10) for i in range(12))
    request, cursor = evaluate_landing(LandingSnapshot(files, ()), cursor, False)
    assert "and 2 more" in request.tags["invoice_pipeline/new_files"]
    more = (*files, LandedFileState("erp/new.csv", 5_000, 10))
    request, _ = evaluate_landing(LandingSnapshot(more, ()), cursor, False)
    assert request.tags["invoice_pipeline/new_files"] == "erp/new.csv"


# ---------------------------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------------------------


def test_nightly_schedule_requests_the_nightly_job_at_two_in_shanghai() -> None:
    definitions = defs()
    schedule = definitions.resolve_schedule_def("nightly_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 2 * * *", "Asia/Shanghai")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 28, 2, 0, tzinfo=SHANGHAI)
    )
    data = schedule.evaluate_tick(context)
    assert len(data.run_requests) == 1 and schedule.job_name == "nightly"


def test_monthly_reports_schedule_asks_for_the_month_that_ended() -> None:
    schedule = defs().resolve_schedule_def("monthly_reports_schedule")
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 12, 1, 6, 0, tzinfo=SHANGHAI))
    [request] = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2026-11"


def test_sensors_start_running() -> None:
    definitions = defs()
    for name in ("landing_sensor", "run_failure_alert"):
        assert definitions.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING
