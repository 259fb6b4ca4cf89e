"""Run the nightly job in this process on one data directory and write each step's wall time.

    .venv/bin/python bench/nightly_job.py DATA_DIR --as-of 2026-11-01 --json OUT.json

Used by bench/run.py, which starts it as a fresh process so that its peak RSS is the job's own.
Step times come from the run's event log (STEP_START → STEP_SUCCESS/FAILURE timestamps); with
the in-process executor the steps run one after another, so they add up to the job's wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

STAGE_OF_SUFFIX = (
    "_expectations",
    "_key_is_unique",
    "_rows_accounted_for",
    "_files_read_completely",
    "_belong_to_an_entity",
    "_each_reference_matches_one_invoice",
)


def stage_of(step_key: str) -> str:
    """The benchmark's stage of a step: ingest, staging, checks, core, findings, report, publish, backup."""
    if step_key.endswith(STAGE_OF_SUFFIX):
        return "checks"
    for prefix, stage in (
        ("ingest_", "ingest"),
        ("stage_", "staging"),
        ("core__", "core"),
        ("report__", "report"),
        ("reports__", "publish"),
        ("ops__", "backup"),
        ("audit__", "findings"),
        ("findings", "findings"),
    ):
        if step_key.startswith(prefix):
            return stage
    return "other"


class RssSampler:
    """Samples this process's resident memory every 0.1 s in a thread, so each step's peak can be
    read off afterwards from the step's start and end times in the event log."""

    def __init__(self, every_s: float = 0.1):
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)

    @staticmethod
    def rss_bytes() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self, every_s: float) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), self.rss_bytes()))
            self._stop.wait(every_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def peak_between(self, start: float, end: float) -> int:
        return max((rss for t, rss in self.samples if start <= t <= end), default=0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--as-of", default="")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()

    started = time.perf_counter()
    import dagster as dg

    os.environ["INVOICE_PIPELINE_DATA_DIR"] = str(args.data_dir)
    from invoice_pipeline.definitions import defs

    job = defs().resolve_job_def("nightly")
    loaded = time.perf_counter()
    instance = dg.DagsterInstance.ephemeral()
    with RssSampler() as sampler:
        result = job.execute_in_process(
            run_config={
                "resources": {
                    "warehouse": {"config": {"data_dir": str(args.data_dir)}},
                    "settings": {"config": {"as_of": args.as_of}},
                },
                "loggers": {"console": {"config": {"log_level": "ERROR"}}},
            },
            instance=instance,
            raise_on_error=False,
        )
    finished = time.perf_counter()
    starts: dict[str, float] = {}
    steps: dict[str, float] = {}
    peaks: dict[str, int] = {}
    for entry in instance.all_logs(result.run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            starts[event.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in starts:
            steps[event.step_key] = entry.timestamp - starts[event.step_key]
            peaks[event.step_key] = sampler.peak_between(starts[event.step_key], entry.timestamp)
    stages: dict[str, float] = {}
    for key, seconds in steps.items():
        stages[stage_of(key)] = stages.get(stage_of(key), 0.0) + seconds
    failures = [e.step_key for e in result.all_events if e.is_step_failure]
    args.json.write_text(
        json.dumps(
            {
                "success": result.success,
                "failed_steps": failures,
                "load_definitions_s": round(loaded - started, 3),
                "job_s": round(finished - loaded, 3),
                "stages_s": {k: round(v, 3) for k, v in sorted(stages.items())},
                "steps_s": {k: round(v, 3) for k, v in sorted(steps.items(), key=lambda kv: -kv[1])},
                "steps_peak_rss_bytes": dict(sorted(peaks.items(), key=lambda kv: -kv[1])),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
