"""Sensors: a run when new files have landed and settled; an alert when a run fails.

Both start RUNNING with the daemon (`make ui`, or `dagster-daemon` in production), so an
instance works unattended; stop them in the UI's Automation tab.
"""

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from invoice_pipeline.alerts import failed_run_alert, raise_outside_run
from invoice_pipeline.defs.ops.jobs import nightly
from invoice_pipeline.defs.resources import Warehouse
from invoice_pipeline.ingest import list_landed_files
from invoice_pipeline.specs import load_specs

SETTLE_ENV = "INVOICE_PIPELINE_SETTLE_SECONDS"
INTERVAL_ENV = "INVOICE_PIPELINE_SENSOR_INTERVAL_SECONDS"
DEFAULT_SETTLE_S = 60
DEFAULT_INTERVAL_S = 30
# Named in a run's tags; the rest are counted.
NAMED_NEW_FILES = 10
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dataclass(frozen=True)
class LandedFileState:
    relative_path: str
    mtime_ns: int
    size: int


@dataclass(frozen=True)
class LandingSnapshot:
    settled: tuple[LandedFileState, ...]
    settling: tuple[str, ...]

    @property
    def digest(self) -> str:
        """One hash of every settled file's path, size and modification time."""
        text = "\n".join(f"{f.relative_path}\t{f.mtime_ns}\t{f.size}" for f in self.settled)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    @property
    def newest_ns(self) -> int:
        return max((f.mtime_ns for f in self.settled), default=0)


def settle_seconds() -> float:
    return float(os.environ.get(SETTLE_ENV) or DEFAULT_SETTLE_S)


def landing_snapshot(landing: Path, now: float, settle_s: float) -> LandingSnapshot:
    """The files the ingest would read (same filter: no hidden, `.part`, `.tmp`, foreign or
    escaping files), split into settled — unmodified for `settle_s` seconds — and still settling.

    A file still being written keeps getting a fresh modification time, so it is not settled.
    Only stat() calls: the sensor runs in the code server on every tick.
    """
    settled, settling = [], []
    for spec in load_specs().values():
        for path in list_landed_files(landing, spec):
            try:
                stat = path.stat()
            except FileNotFoundError:  # removed between listing and stat
                continue
            relative = path.relative_to(landing).as_posix()
            if now - stat.st_mtime >= settle_s:
                settled.append(LandedFileState(relative, stat.st_mtime_ns, stat.st_size))
            else:
                settling.append(relative)
    return LandingSnapshot(tuple(sorted(settled, key=lambda f: f.relative_path)), tuple(sorted(settling)))


def evaluate_landing(
    snapshot: LandingSnapshot, cursor: str | None, run_in_progress: bool
) -> tuple[dg.RunRequest | dg.SkipReason, str | None]:
    """What the landing sensor does for a snapshot: (a run request or the reason to skip, new cursor).

    The cursor is `{"digest", "newest_ns", "files"}`: a fixed size whatever the number of
    files. A different digest means a file was added, changed or removed since the last run
    request; while a nightly run is queued or running the cursor does not move, so files that
    arrive during a run start the next one.
    """
    previous = json.loads(cursor) if cursor else {}
    settling = f"; {len(snapshot.settling)} still settling" if snapshot.settling else ""
    if not snapshot.settled and not previous:
        # A new instance's first ticks: an empty landing folder is not a change worth a run.
        return dg.SkipReason(f"no settled files in landing yet{settling}"), cursor
    if snapshot.digest == previous.get("digest"):
        return dg.SkipReason(
            f"no new or changed settled files ({len(snapshot.settled)} settled{settling})"
        ), cursor
    if run_in_progress:
        return dg.SkipReason(
            f"files changed, but a nightly run is in progress; looking again after it{settling}"
        ), cursor
    since = previous.get("newest_ns", 0)
    new = [f.relative_path for f in snapshot.settled if f.mtime_ns > since]
    named = ", ".join(new[:NAMED_NEW_FILES]) + (
        f" and {len(new) - NAMED_NEW_FILES} more" if len(new) > NAMED_NEW_FILES else ""
    )
    request = dg.RunRequest(
        run_key=f"landing-{snapshot.digest[:20]}",
        tags={
            "invoice_pipeline/trigger": "landing",
            "invoice_pipeline/settled_files": str(len(snapshot.settled)),
            "invoice_pipeline/new_files": named or "(changed or removed files)",
        },
    )
    new_cursor = json.dumps(
        {"digest": snapshot.digest, "newest_ns": snapshot.newest_ns, "files": len(snapshot.settled)}
    )
    return request, new_cursor


@dg.sensor(
    job=nightly,
    minimum_interval_seconds=int(os.environ.get(INTERVAL_ENV) or DEFAULT_INTERVAL_S),
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def landing_sensor(context: dg.SensorEvaluationContext, warehouse: Warehouse):
    """Starts the nightly job when files have landed (or changed) and settled.

    Grain: at most one run request per tick, for the whole landing folder. A file is settled
    when it has not been modified for `$INVOICE_PIPELINE_SETTLE_SECONDS` (default 60); hidden,
    `*.part`/`*.tmp` and other files the ingest would not read are ignored. Ticks every
    `$INVOICE_PIPELINE_SENSOR_INTERVAL_SECONDS` (default 30). The run's tags name the new files.
    """
    snapshot = landing_snapshot(warehouse.landing, time.time(), settle_seconds())
    busy = bool(
        context.instance.get_run_records(dg.RunsFilter(job_name=nightly.name, statuses=IN_PROGRESS), limit=1)
    )
    result, cursor = evaluate_landing(snapshot, context.cursor, busy)
    if cursor != context.cursor:
        context.update_cursor(cursor)
    return result


# Jobs whose failures are answered in the UI by the person who launched them, not by operations:
# annotate_finding fails on a mistyped finding id or a missing note, and says so in its run.
NOT_ALERTED_JOBS = frozenset({"annotate_finding"})


@dg.run_failure_sensor(name="run_failure_alert", default_status=dg.DefaultSensorStatus.RUNNING)
def run_failure_alert(context: dg.RunFailureSensorContext, warehouse: Warehouse) -> None:
    """Raises a `run_failed` alert for every failed run of this code location: one row in
    audit.alerts (or warehouse/pending_alerts.jsonl while another run holds the warehouse) and
    a message to `$INVOICE_PIPELINE_ALERT_WEBHOOK` naming the failed steps and their errors.
    Except the jobs in NOT_ALERTED_JOBS, whose failures are their launcher's input errors."""
    if context.dagster_run.job_name in NOT_ALERTED_JOBS:
        context.log.info(
            f"run {context.dagster_run.run_id} of {context.dagster_run.job_name} failed: no alert"
        )
        return
    failures = []
    for event in context.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None and error.cause is not None:
            error = error.cause  # the user's exception, not Dagster's wrapper
        failures.append((event.step_key or "?", error.message if error else event.message or ""))
    run = context.dagster_run
    alert = failed_run_alert(
        run.job_name, run.run_id, failures, warehouse.root, context.failure_event.message or ""
    )
    delivery = raise_outside_run(warehouse.root, alert)
    context.log.info(f"run {run.run_id} failed: alert {delivery.status}")
