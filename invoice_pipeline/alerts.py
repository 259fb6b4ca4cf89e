"""Alerts: telling people that a run broke something, in `audit.alerts` and on a webhook.

Three kinds, at most one of each per run:
- `run_failed` (error): a run did not finish — raised by the run-failure sensor in Dagster and
  by `invoice-pipeline run` when the job fails;
- `new_error_findings` (error): the run opened or reopened findings of severity `error`
  (sync rules aside);
- `sync_problems` (error or warning, as the worst finding): the run opened or reopened findings
  of the sync family; the message adds each affected system's line of audit.sync_health.

Alerts are about change, not state: a problem that stays open raises nothing the next night (the
reports and audit.findings list it every day), so a chat channel is not flooded by the same gaps.
Each message says what happened, how many, how much money, and where to look.

Delivery: when `INVOICE_PIPELINE_ALERT_WEBHOOK` is set (http or https), each alert is POSTed as
JSON — `{"text", "title", "kind", "severity", "run_id", "finding_count", "amount", "details"}`
(Slack-style `text`), or in the shape WeCom/DingTalk (`{"msgtype": "text", ...}`) or Feishu
(`{"msg_type": "text", ...}`) robots take when `INVOICE_PIPELINE_ALERT_WEBHOOK_FORMAT` says
`wecom`, `dingtalk` or `feishu`. Three attempts; an alert that still fails is kept as `failed`
and retried by the runs of the next 7 days. Alert text masks resident IDs in TINs.

A failure alert raised while another run holds the warehouse (DuckDB allows one writer) is sent
at once and waits in `warehouse/pending_alerts.jsonl` until the next run records it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl

from invoice_pipeline import project
from invoice_pipeline.normalize import mask_tin
from invoice_pipeline.warehouse import connect, ensure_audit_tables, table_exists, transaction

log = logging.getLogger(__name__)

WEBHOOK_ENV = "INVOICE_PIPELINE_ALERT_WEBHOOK"
WEBHOOK_FORMAT_ENV = "INVOICE_PIPELINE_ALERT_WEBHOOK_FORMAT"
UI_URL_ENV = "INVOICE_PIPELINE_UI_URL"
DEFAULT_UI_URL = "http://127.0.0.1:3000"
WEBHOOK_FORMATS = ("generic", "wecom", "dingtalk", "feishu")
ATTEMPTS = 3
TIMEOUT_S = 10
RETRY_DAYS = 7
# Rule families whose new findings are reported as sync problems rather than as error findings.
SYNC_FAMILY = "sync"
EXAMPLES = 3

ALERTS_DDL = """
create table if not exists audit.alerts (
    alert_id varchar primary key,
    run_id varchar not null,
    kind varchar not null,
    severity varchar not null,
    raised_at timestamptz not null,
    title varchar not null,
    message varchar not null,
    finding_count bigint,
    amount decimal(18, 2),
    details json,
    delivery varchar not null,
    delivery_error varchar,
    delivery_attempts bigint not null,
    delivered_at timestamptz
)
"""


@dataclass(frozen=True)
class Alert:
    run_id: str
    kind: str
    severity: str
    title: str
    message: str
    finding_count: int | None = None
    amount: Decimal | None = None
    details: dict = field(default_factory=dict)

    @property
    def alert_id(self) -> str:
        return hashlib.sha256(f"{self.run_id}\x1f{self.kind}".encode()).hexdigest()[:20]

    @property
    def text(self) -> str:
        return f"{self.title}\n{self.message}"


@dataclass(frozen=True)
class Delivery:
    """`sent`, `failed` (with the error) or `not_configured` (no webhook set)."""

    status: str
    error: str | None = None
    attempts: int = 0
    delivered_at: datetime | None = None


def money(amount: Decimal | float | None) -> str:
    return f"{Decimal(str(amount or 0)):,.2f} 元"


def _money_note(amount: Decimal | float | None) -> str:
    """` · 1,234.00 元`, or nothing for problems without an amount (sync runs, files)."""
    return f" · {money(amount)}" if amount is not None else ""


def ui_run_url(run_id: str) -> str:
    return f"{(os.environ.get(UI_URL_ENV) or DEFAULT_UI_URL).rstrip('/')}/runs/{run_id}"


def mask_tins(values: list[str | None]) -> list[str | None]:
    """The same values with resident IDs inside TINs masked (company USCCs unchanged)."""
    return pl.DataFrame({"v": values}, schema={"v": pl.String}).select(mask_tin(pl.col("v")))["v"].to_list()


# ---------------------------------------------------------------------------------------------
# What to say
# ---------------------------------------------------------------------------------------------

_NEW_FINDINGS_SQL = """
select
    f.rule_id,
    f.severity,
    f.entity_tin,
    {entity_name} as entity_name,
    f.period,
    f.invoice_uid,
    f.subject,
    f.amount,
    f.details ->> 'system' as sync_system,
    e.event
from audit.finding_events as e
join audit.findings as f using (finding_id)
{entities_join}
where e.run_id = ? and e.event in ('opened', 'reopened')
order by f.amount desc nulls last, f.rule_id, f.subject
"""


def new_findings(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    """The findings a run opened or reopened, largest amount first, with the entity's name."""
    has_entities = table_exists(con, "staging", "entities")
    sql = _NEW_FINDINGS_SQL.format(
        entity_name="n.name" if has_entities else "cast(null as varchar)",
        entities_join="left join staging.entities as n on n.tin = f.entity_tin" if has_entities else "",
    )
    return con.sql(sql, params=[run_id]).pl()


def _rule_lines(found: pl.DataFrame) -> list[str]:
    by_rule = (
        found.group_by("rule_id")
        .agg(
            pl.len().alias("n"),
            pl.when(pl.col("amount").is_not_null().any()).then(pl.col("amount").sum()).alias("amount"),
        )
        .sort(["amount", "n", "rule_id"], descending=[True, True, False], nulls_last=True)
    )
    return [f"- {r['rule_id']}: {r['n']}{_money_note(r['amount'])}" for r in by_rule.iter_rows(named=True)]


def _example_lines(found: pl.DataFrame) -> list[str]:
    top = found.head(EXAMPLES)
    # A subject that is not an invoice number may be a TIN (invalid_tin): mask resident IDs.
    subjects = mask_tins(top["subject"].to_list())
    lines = []
    for row, subject in zip(top.iter_rows(named=True), subjects, strict=True):
        entity = row["entity_name"] or mask_tins([row["entity_tin"]])[0] or "group-wide"
        period = row["period"] or "-"
        what = row["invoice_uid"] or subject
        lines.append(f"- {row['rule_id']} {what} · {entity} · {period}{_money_note(row['amount'])}")
    return lines


def _where_to_look(run_id: str, data_dir: Path) -> list[str]:
    return [
        "Where to look:",
        f"- DuckDB {project.warehouse_path(data_dir)}: select * from audit.findings where finding_id in "
        f"(select finding_id from audit.finding_events where run_id = '{run_id}')",
        f"- reports: {data_dir / 'reports'}",
        f"- Dagster run: {ui_run_url(run_id)}",
    ]


def findings_alert(
    run_id: str, kind: str, found: pl.DataFrame, as_of: datetime, data_dir: Path, sync_lines: list[str]
) -> Alert | None:
    """One alert over the given newly open findings of a run (None when there are none)."""
    if found.is_empty():
        return None
    count = found.height
    reopened = found.filter(pl.col("event") == "reopened").height
    has_amount = found["amount"].null_count() < count
    amount = Decimal(str(found["amount"].sum())).quantize(Decimal("0.01")) if has_amount else None
    severity = "error" if (found["severity"] == "error").any() else "warning"
    what = "new error finding" if kind == "new_error_findings" else "new sync problem"
    title = (
        f"[invoice_pipeline] {count} {what}{'s' if count != 1 else ''}"
        + (f" ({reopened} reopened)" if reopened else "")
        + (f" · {money(amount)} at stake" if amount is not None else "")
    )
    message = "\n".join(
        [
            f"Run {run_id}, as of {as_of.isoformat(timespec='minutes')}.",
            "By rule:",
            *_rule_lines(found),
            "Largest:" if kind == "new_error_findings" else "Findings:",
            *_example_lines(found),
            *(["Sync health (audit.sync_health):", *sync_lines] if sync_lines else []),
            *_where_to_look(run_id, data_dir),
        ]
    )
    details = {
        "by_rule": {
            r["rule_id"]: r["n"]
            for r in found.group_by("rule_id").agg(pl.len().alias("n")).iter_rows(named=True)
        },
        "reopened": reopened,
        "as_of": as_of.isoformat(),
    }
    return Alert(run_id, kind, severity, title, message, count, amount, details)


def sync_health_lines(con: duckdb.DuckDBPyConnection, systems: list[str]) -> list[str]:
    """One line per sync system: last success, failures over 7 days, records lost."""
    if not systems or not table_exists(con, "audit", "sync_health"):
        return []
    rows = con.execute(
        "select system, last_success_at, hours_since_success, runs_7d, failed_runs_7d, failure_rate_7d, "
        "records_lost_7d from audit.sync_health where system in (select unnest(?)) order by system",
        [systems],
    ).fetchall()
    lines = []
    for system, last_success, hours, runs, failed, rate, lost in rows:
        since = f"last success {hours} h ago" if last_success is not None else "never succeeded"
        share = (
            f"{failed} of {runs} runs failed in 7 days ({float(rate or 0):.0%})"
            if runs
            else "no runs in 7 days"
        )
        lines.append(f"- {system}: {since}; {share}; {lost} records lost")
    return lines


def run_alerts(
    con: duckdb.DuckDBPyConnection, run_id: str, as_of: datetime, data_dir: Path, sync_rules: set[str]
) -> list[Alert]:
    """The alerts a finished run raises from the findings it opened or reopened."""
    found = new_findings(con, run_id)
    is_sync = pl.col("rule_id").is_in(sorted(sync_rules))
    errors = found.filter(~is_sync & (pl.col("severity") == "error"))
    sync = found.filter(is_sync)
    systems = sorted(set(sync["sync_system"].drop_nulls().to_list()))
    alerts = [
        findings_alert(run_id, "new_error_findings", errors, as_of, data_dir, []),
        findings_alert(run_id, "sync_problems", sync, as_of, data_dir, sync_health_lines(con, systems)),
    ]
    return [a for a in alerts if a is not None]


def failed_run_alert(
    job_name: str, run_id: str, failures: list[tuple[str, str]], data_dir: Path, reason: str = ""
) -> Alert:
    """The alert for a run that did not finish: which steps failed and why (first line of each)."""
    steps = [
        f"- {step}: {message.strip().splitlines()[0] if message.strip() else 'failed'}"
        for step, message in failures
    ]
    title = f"[invoice_pipeline] {job_name} run failed" + (f" at {failures[0][0]}" if failures else "")
    message = "\n".join(
        [
            f"Run {run_id} did not finish; the warehouse keeps its last committed state.",
            *(["Failed steps:", *steps] if steps else [f"Reason: {reason or 'see the run log'}"]),
            "Where to look:",
            f"- Dagster run: {ui_run_url(run_id)}",
            f"- DuckDB {project.warehouse_path(data_dir)}: audit.runs (finished runs), audit.load_log",
            "- re-run: invoice-pipeline run, or launch the job again in the Dagster UI",
        ]
    )
    details = {"job": job_name, "failed_steps": [s for s, _ in failures], "reason": reason}
    return Alert(run_id, "run_failed", "error", title, message, len(failures) or None, None, details)


# ---------------------------------------------------------------------------------------------
# Sending and recording
# ---------------------------------------------------------------------------------------------


def webhook_body(alert: Alert, fmt: str) -> dict:
    if fmt in ("wecom", "dingtalk"):
        return {"msgtype": "text", "text": {"content": alert.text}}
    if fmt == "feishu":
        return {"msg_type": "text", "content": {"text": alert.text}}
    return {
        "text": alert.text,
        "title": alert.title,
        "kind": alert.kind,
        "severity": alert.severity,
        "run_id": alert.run_id,
        "finding_count": alert.finding_count,
        "amount": str(alert.amount) if alert.amount is not None else None,
        "details": alert.details,
    }


def webhook_settings() -> tuple[str, str]:
    """(url, format) from the environment; url empty when alerts are not sent anywhere."""
    url = (os.environ.get(WEBHOOK_ENV) or "").strip()
    fmt = (os.environ.get(WEBHOOK_FORMAT_ENV) or "generic").strip().lower()
    if fmt not in WEBHOOK_FORMATS:
        raise ValueError(f"{WEBHOOK_FORMAT_ENV} must be one of {', '.join(WEBHOOK_FORMATS)}, got {fmt!r}")
    if url and not url.lower().startswith(("http://", "https://")):
        raise ValueError(f"{WEBHOOK_ENV} must be an http(s) URL, got {url!r}")
    return url, fmt


def deliver(alert: Alert, url: str, fmt: str = "generic", attempts: int = ATTEMPTS) -> Delivery:
    """POST the alert; 2xx is sent. Retries with 1 s, 2 s pauses; never raises."""
    if not url:
        return Delivery("not_configured")
    if not url.lower().startswith(("http://", "https://")):  # never file:// or other urllib schemes
        return Delivery("failed", f"not an http(s) URL: {url!r}")
    body = json.dumps(webhook_body(alert, fmt), ensure_ascii=False, default=str).encode("utf-8")
    error = ""
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(  # noqa: S310 — scheme checked above
            url, data=body, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 — scheme checked above
                response.read()
                return Delivery("sent", None, attempt, datetime.now(UTC))
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code} {exc.reason}"
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        if attempt < attempts:
            time.sleep(attempt)
    log.warning("alert %s not delivered to the webhook: %s", alert.kind, error)
    return Delivery("failed", error, attempts)


def ensure_alerts_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists audit")
    con.execute(ALERTS_DDL)


def record(con: duckdb.DuckDBPyConnection, alert: Alert, delivery: Delivery, raised_at: datetime) -> None:
    """Insert the alert (a second record of the same run and kind is ignored)."""
    ensure_alerts_table(con)
    con.execute(
        "insert or ignore into audit.alerts values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            alert.alert_id,
            alert.run_id,
            alert.kind,
            alert.severity,
            raised_at,
            alert.title,
            alert.message,
            alert.finding_count,
            alert.amount,
            json.dumps(alert.details, ensure_ascii=False, default=str),
            delivery.status,
            delivery.error,
            delivery.attempts,
            delivery.delivered_at,
        ],
    )


def already_recorded(con: duckdb.DuckDBPyConnection, alert: Alert) -> bool:
    ensure_alerts_table(con)
    return bool(con.execute("select 1 from audit.alerts where alert_id = ?", [alert.alert_id]).fetchall())


def raise_alerts(
    con: duckdb.DuckDBPyConnection, alerts: list[Alert], raised_at: datetime
) -> list[tuple[Alert, Delivery]]:
    """Send and record alerts not recorded before (so a re-executed step does not send twice)."""
    url, fmt = webhook_settings()
    done = []
    for alert in alerts:
        if already_recorded(con, alert):
            continue
        delivery = deliver(alert, url, fmt)
        with transaction(con):
            record(con, alert, delivery, raised_at)
        done.append((alert, delivery))
    return done


def retry_failed(con: duckdb.DuckDBPyConnection, now: datetime) -> list[tuple[str, Delivery]]:
    """Deliver again the alerts of the last 7 days whose delivery failed; update their rows."""
    url, fmt = webhook_settings()
    ensure_alerts_table(con)
    if not url:
        return []
    rows = con.execute(
        "select alert_id, run_id, kind, severity, title, message, finding_count, amount, details, "
        "delivery_attempts from audit.alerts where delivery = 'failed' and raised_at >= ? order by raised_at",
        [now - timedelta(days=RETRY_DAYS)],
    ).fetchall()
    retried = []
    for alert_id, run_id, kind, severity, title, message, count, amount, details, attempts in rows:
        alert = Alert(run_id, kind, severity, title, message, count, amount, json.loads(details or "{}"))
        delivery = deliver(alert, url, fmt)
        with transaction(con):
            con.execute(
                "update audit.alerts set delivery = ?, delivery_error = ?, delivery_attempts = ?, "
                "delivered_at = ? where alert_id = ?",
                [
                    delivery.status,
                    delivery.error,
                    attempts + delivery.attempts,
                    delivery.delivered_at,
                    alert_id,
                ],
            )
        retried.append((alert_id, delivery))
    return retried


def undelivered(con: duckdb.DuckDBPyConnection, now: datetime) -> list[tuple[str, str, str]]:
    """(kind, run_id, error) of the alerts of the last 7 days whose delivery failed."""
    ensure_alerts_table(con)
    return con.execute(
        "select kind, run_id, delivery_error from audit.alerts "
        "where delivery = 'failed' and raised_at >= ? order by raised_at",
        [now - timedelta(days=RETRY_DAYS)],
    ).fetchall()


# ---------------------------------------------------------------------------------------------
# Alerts raised outside a run's warehouse connection (failure sensor, CLI)
# ---------------------------------------------------------------------------------------------


def pending_path(data_dir: Path) -> Path:
    return project.warehouse_path(data_dir).parent / "pending_alerts.jsonl"


def raise_outside_run(data_dir: Path, alert: Alert, lock_wait_s: float = 5.0) -> Delivery:
    """Send an alert and record it in the warehouse; if the warehouse stays locked by another
    writer for `lock_wait_s`, keep the record in pending_alerts.jsonl for the next run."""
    raised_at = datetime.now(UTC)
    deadline = time.monotonic() + lock_wait_s
    while True:
        try:
            con = connect(project.warehouse_path(data_dir))
            break
        except duckdb.IOException:
            if time.monotonic() >= deadline:
                con = None
                break
            time.sleep(0.5)
    if con is None:
        delivery = deliver(alert, *webhook_settings())
        path = pending_path(data_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        record_json = {
            "alert": {**asdict(alert), "amount": None if alert.amount is None else str(alert.amount)},
            "delivery": {**asdict(delivery), "delivered_at": _iso(delivery.delivered_at)},
            "raised_at": raised_at.isoformat(),
        }
        with path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record_json, ensure_ascii=False) + "\n")
        return delivery
    try:
        ensure_audit_tables(con)
        if already_recorded(con, alert):
            return Delivery("already_recorded")
        delivery = deliver(alert, *webhook_settings())
        with transaction(con):
            record(con, alert, delivery, raised_at)
        return delivery
    finally:
        con.close()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def record_pending(con: duckdb.DuckDBPyConnection, data_dir: Path) -> int:
    """Record the alerts that waited for the warehouse; returns how many. The file is removed
    only after its alerts are committed (a second import of the same alert is ignored)."""
    path = pending_path(data_dir)
    if not path.is_file():
        return 0
    count = 0
    with transaction(con):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            a, d = item["alert"], item["delivery"]
            alert = Alert(**{**a, "amount": None if a["amount"] is None else Decimal(a["amount"])})
            delivered_at = datetime.fromisoformat(d["delivered_at"]) if d["delivered_at"] else None
            record(
                con,
                alert,
                Delivery(d["status"], d["error"], d["attempts"], delivered_at),
                datetime.fromisoformat(item["raised_at"]),
            )
            count += 1
    path.unlink()
    return count
