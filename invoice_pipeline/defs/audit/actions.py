"""Remediation from the Dagster UI: the `annotate_finding` job, for people who never use a terminal.

Launchpad → run config:

    ops:
      record_finding_action:
        config:
          finding_id: 1a2b3c4d5e6f7a8b
          action: accepted_risk   # or reissue_requested, entered_in_erp, claim_corrected, note
          by: 张三
          note: 金额低于重要性水平，经财务经理批准接受

It records the action exactly as `invoice-pipeline annotate` does (invoice_pipeline/remediation.py,
where the rules are), with `via = dagster run <run_id>`, and fails with the reason for an unknown
finding or an accepted_risk without a note.
"""

import enum

import dagster as dg
from pydantic import Field

from invoice_pipeline.defs.resources import WAREHOUSE_POOL, Warehouse
from invoice_pipeline.remediation import ACTIONS, RemediationError, record_action


class Action(enum.Enum):
    """What was done about the finding (the Launchpad offers these values)."""

    reissue_requested = "reissue_requested"
    entered_in_erp = "entered_in_erp"
    claim_corrected = "claim_corrected"
    accepted_risk = "accepted_risk"
    note = "note"


assert tuple(a.value for a in Action) == ACTIONS, "Action must list remediation.ACTIONS"


class FindingActionConfig(dg.Config):
    """One action on one finding."""

    finding_id: str = Field(
        description="The finding's id: audit.findings.finding_id (16 hex characters, also in the reports)."
    )
    action: Action = Field(
        description="reissue_requested, entered_in_erp, claim_corrected, accepted_risk (needs a note saying "
        "why; takes the finding out of the open counts until the data resolves it) or note (needs a note)."
    )
    by: str = Field(description="Who did it: your name.")
    note: str = Field(default="", description="Free text; required for accepted_risk and note.")


@dg.op(pool=WAREHOUSE_POOL, tags={"domain": "vat"})
def record_finding_action(
    context: dg.OpExecutionContext, config: FindingActionConfig, warehouse: Warehouse
) -> None:
    """Append the action to audit.finding_actions (who, what, when, via this run) and refresh the
    report tables that show finding states and actions. Fails, recording nothing, when the finding
    id is unknown (the message lists near matches) or accepted_risk or note comes without a note.
    """
    with warehouse.connect() as con:
        try:
            recorded = record_action(
                con,
                config.finding_id,
                config.action.value,
                config.by,
                config.note,
                via=f"dagster run {context.run.run_id}",
            )
        except RemediationError as exc:
            raise dg.Failure(description=str(exc)) from exc
    context.log.info(recorded.describe())
    for table, rows in recorded.refreshed.items():
        context.log_event(
            dg.AssetMaterialization(
                asset_key=dg.AssetKey(["report", table]),
                description=f"Refreshed after {recorded.action} on finding {recorded.finding_id}.",
                metadata={"dagster/row_count": rows, "finding_id": recorded.finding_id},
            )
        )


@dg.job(
    name="annotate_finding",
    description="Record what was done about a finding (audit.finding_actions): set finding_id, action, "
    "by and note in the Launchpad's run config. accepted_risk needs a note and takes the finding out of the "
    "open counts (it stays listed as accepted) until the data resolves it; the same as "
    "`invoice-pipeline annotate`.",
    tags={"domain": "vat"},
)
def annotate_finding() -> None:
    record_finding_action()
