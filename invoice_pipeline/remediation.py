"""Remediation: who did what about a finding, and when, in `audit.finding_actions` (issue 7).

`invoice-pipeline annotate FINDING_ID --action ACTION --by NAME [--note TEXT]` and the Dagster
job `annotate_finding` (Launchpad, run config `finding_id, action, by, note`) both call
`record_action`; the CLI records `via = cli`, the job `via = dagster run <run_id>`.

Actions:
- `reissue_requested` — the counterparty was asked for a new or corrected invoice;
- `entered_in_erp` — the invoice was booked (or the booking corrected) in the ERP;
- `claim_corrected` — the expense claim was corrected;
- `accepted_risk` — the team decided to live with the problem; needs a note saying why;
- `note` — a remark; needs a note; changes nothing else.

The rules, decided once here and computed in one place, the view `audit.finding_status`
(invoice_pipeline/findings.py) that every count reads:

- **Append-only.** An action is never changed or deleted, not even when its finding resolves:
  the ledger keeps what the data said (audit.findings, audit.finding_events) and this table
  what people did. A mistaken action is answered by a later one (a `note` saying so, or the
  action really taken).
- **Spell.** A finding's current spell began when a run last opened or reopened it.
- **Open action** = the latest action other than `note` recorded during the finding's current
  spell, while the finding is open in the ledger. It is what the team is waiting for the data
  to confirm. It stops being open when a run resolves the finding (the fix worked) or a later
  non-note action replaces it. Notes are commentary: they never open, replace or close one.
- **accepted_risk** is in force while it is the open action. It ends when the data resolves the
  finding, and **a reopened finding is open again**, counted and alerted (as `reopened`) like
  any other, until someone accepts it again with a new note. Why: an acceptance is a judgement
  about the problem as it stood (its amount, its evidence). When the data shows it fixed and
  then broken again, that is new information; carrying the old acceptance over would let a
  recurrence vanish from every count without anyone deciding so — the silent loss this ledger
  exists to prevent. Re-accepting costs one command; an unnoticed recurrence costs a VAT return.
  A later `reissue_requested`, `entered_in_erp` or `claim_corrected` also ends an acceptance
  (someone is working on it again).
- **States** (`audit.finding_status.state`): `open` — open in the ledger, no accepted_risk in
  force; `accepted` — open in the ledger with an accepted_risk in force; `resolved`.
- **Open counts** everywhere count `state = 'open'` only, and accepted findings are counted
  apart as "accepted", never silently dropped: audit.runs (`findings_open`,
  `findings_accepted`), the findings asset's checks and metadata, report.findings_by_rule
  (`open_findings` / `accepted_findings`), report.open_finding_age, the compliance workbook and
  HTML page (summary, per rule, ageing; the evidence sheets list accepted findings marked
  已接受风险), the CLI summary, and the analysts' snapshot (which copies all of these and the
  view). report.period_summary counts invoices, not findings; alerts count what a run opened or
  reopened, so a reopened accepted finding alerts again.
- **Resolution is unchanged.** A finding resolves when the data no longer shows it, whatever
  was recorded about it, and keeps its actions; if it comes back it is reopened, keeps them
  too, and starts a new spell.

Recording an action refreshes the report tables that read the view (report.findings_by_rule,
report.open_finding_age, report.open_finding_actions), so a report written before the next run
already shows it; audit.runs and the analysts' snapshot show it from the next run.

`acted_by` is a staff member's name: personal data. The warehouse keeps it in full; the reports
and the analysts' snapshot mask it like other people's names, and scrub notes like free text.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb

from invoice_pipeline import project
from invoice_pipeline.warehouse import connect, ensure_audit_tables, table_exists, transaction

ACTIONS = ("reissue_requested", "entered_in_erp", "claim_corrected", "accepted_risk", "note")
NOTE_REQUIRED = frozenset({"accepted_risk", "note"})
NEAR_MATCHES = 5
SHANGHAI = ZoneInfo("Asia/Shanghai")

_STATE_AFTER = {
    "open": "open, waiting for the next run to confirm the fix",
    "accepted": "accepted: counted apart from open findings, still listed (marked) in reports",
    "resolved": "resolved already; the action is kept with its history",
}


class RemediationError(Exception):
    """An action that cannot be recorded; the message is one line for a person."""


class InvalidAction(RemediationError):
    """The request itself is wrong (unknown action, no name, accepted_risk without a note)."""


class UnknownFinding(RemediationError):
    """No finding has this id; the message lists near matches."""


@dataclass(frozen=True)
class RecordedAction:
    action_id: str
    finding_id: str
    action: str
    acted_by: str
    note: str | None
    acted_at: datetime
    via: str
    rule_id: str
    subject: str
    state: str  # the finding's state after the action (audit.finding_status)
    refreshed: dict[str, int] = field(default_factory=dict)  # report table -> rows

    def describe(self) -> str:
        what = "note added" if self.action == "note" else f"{self.action} recorded"
        return (
            f"{what} on finding {self.finding_id} ({self.rule_id} {self.subject}) by {self.acted_by} "
            f"at {self.acted_at.astimezone(SHANGHAI):%Y-%m-%d %H:%M:%S} Asia/Shanghai via {self.via} "
            f"[action {self.action_id}]; "
            f"the finding is {_STATE_AFTER.get(self.state, self.state)}"
        )


def validate(action: str, acted_by: str, note: str | None) -> tuple[str, str, str | None]:
    """(action, acted_by, note) cleaned, or InvalidAction."""
    action = (action or "").strip()
    if action not in ACTIONS:
        raise InvalidAction(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
    acted_by = " ".join((acted_by or "").split())
    if not acted_by:
        raise InvalidAction("say who did it (--by NAME)")
    note = (note or "").strip() or None
    if action in NOTE_REQUIRED and note is None:
        why = "say why the risk is accepted" if action == "accepted_risk" else "a note needs its text"
        raise InvalidAction(f"{action} needs --note: {why}")
    return action, acted_by, note


def near_matches(con: duckdb.DuckDBPyConnection, text: str, limit: int = NEAR_MATCHES) -> list[tuple]:
    """Findings that `text` may have meant: (finding_id, rule_id, subject, status).

    An id that starts with it or is a few typos away, or a finding whose subject or invoice is
    exactly it (people paste the invoice number).
    """
    key = text.strip().lower()
    if not key:
        return []
    return con.execute(
        """
        select finding_id, rule_id, subject, status
        from audit.findings
        where starts_with(finding_id, $key)
            or (length($key) >= 8 and levenshtein(finding_id, $key) <= 3)
            or subject = $text
            or invoice_uid = $text
        order by
            subject = $text or invoice_uid = $text desc,
            starts_with(finding_id, $key) desc,
            levenshtein(finding_id, $key),
            status,
            finding_id
        limit $limit
        """,
        {"key": key, "text": text.strip(), "limit": limit},
    ).fetchall()


def _unknown(con: duckdb.DuckDBPyConnection, finding_id: str) -> UnknownFinding:
    found = near_matches(con, finding_id)
    hint = (
        "; did you mean "
        + "; ".join(f"{fid} ({rule} {subject}, {status})" for fid, rule, subject, status in found)
        if found
        else "; see audit.findings (or the reports) for finding ids"
    )
    return UnknownFinding(f"no finding {finding_id.strip()!r} in audit.findings{hint}")


def status_refreshing_models():
    """The report models that read the status view or the actions, in build order."""
    from invoice_pipeline.layers import discover_models

    reads = {("audit", "finding_status"), ("audit", "finding_actions")}
    return [
        m for m in discover_models(project.MODELS_DIR) if m.schema == "report" and reads & set(m.depends_on)
    ]


def refresh_report_tables(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rebuild the report tables that show finding states and actions, where a run built them."""
    from invoice_pipeline.layers import build_model

    return {
        m.table: build_model(con, m)
        for m in status_refreshing_models()
        if table_exists(con, m.schema, m.table)
    }


def new_action_id(at: datetime) -> str:
    """Sortable by time, unique: `20261128T051500123456Z-1a2b3c4d`."""
    return f"{at.astimezone(UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}"


def record_action(
    con: duckdb.DuckDBPyConnection,
    finding_id: str,
    action: str,
    acted_by: str,
    note: str | None = None,
    via: str = "cli",
    at: datetime | None = None,
    refresh_reports: bool = True,
) -> RecordedAction:
    """Append one action to audit.finding_actions (read-write connection to the warehouse).

    Raises InvalidAction for a bad request, UnknownFinding for an id no finding has, and
    InvalidAction for accepting the risk of a finding that is already resolved.
    """
    action, acted_by, note = validate(action, acted_by, note)
    finding_id = (finding_id or "").strip()
    if not finding_id:
        raise InvalidAction("name the finding (FINDING_ID, from audit.findings)")
    ensure_audit_tables(con)
    at = (at or datetime.now(UTC)).astimezone(UTC)
    action_id = new_action_id(at)
    with transaction(con):
        row = con.execute(
            "select finding_id, rule_id, subject, status from audit.findings where finding_id in (?, ?) "
            "order by finding_id = ? desc limit 1",
            [finding_id, finding_id.lower(), finding_id],
        ).fetchall()
        if not row:
            raise _unknown(con, finding_id)
        finding_id, rule_id, subject, status = row[0]
        if action == "accepted_risk" and status != "open":
            raise InvalidAction(
                f"finding {finding_id} is {status}: the data no longer shows it, so there is no risk to "
                "accept (record a note instead)"
            )
        con.execute(
            "insert into audit.finding_actions "
            "(action_id, finding_id, action, acted_by, note, acted_at, via) values (?, ?, ?, ?, ?, ?, ?)",
            [action_id, finding_id, action, acted_by, note, at, via],
        )
    refreshed = refresh_report_tables(con) if refresh_reports else {}
    (state,) = con.execute(
        "select state from audit.finding_status where finding_id = ?", [finding_id]
    ).fetchone()
    return RecordedAction(
        action_id, finding_id, action, acted_by, note, at, via, rule_id, subject, state, refreshed
    )


def annotate(
    data_dir: Path, finding_id: str, action: str, acted_by: str, note: str | None = None, via: str = "cli"
) -> RecordedAction:
    """`record_action` on the warehouse of a data directory (what the CLI's `annotate` runs)."""
    validate(action, acted_by, note)  # a usage mistake is reported before the warehouse is opened
    path = project.warehouse_path(data_dir)
    if not path.exists():
        raise RemediationError(f"no warehouse at {path}: run the pipeline first")
    try:
        con = connect(path)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise RemediationError(
                f"the warehouse {path} is in use by another process (a run?); try again when it has finished"
            ) from exc
        raise
    try:
        return record_action(con, finding_id, action, acted_by, note, via=via)
    finally:
        con.close()
