"""Approval of a backup's cost from the Prefect UI, before any work is done."""

from __future__ import annotations

from typing import Literal

from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field

from labvault.backup_text import estimate_cost_text
from labvault.pricing import Estimate
from labvault.sizes import human_size


class CostApproval(RunInput):
    """The form shown on a paused create-backup run: no answer is chosen for the approver, so
    submitting the form untouched is refused by the form rather than read as either answer."""

    decision: Literal["Approve", "Decline"] = Field(
        title="Decision",
        description="Approve: create the backup at the cost shown above. "
                    "Decline: cancel this run; nothing is written and nothing is charged.",
    )

    @property
    def approved(self) -> bool:
        return self.decision == "Approve"


def estimate_markdown(estimate: Estimate) -> str:
    return (
        f"### Backup of `{estimate.organization_sid}`: approve the cost?\n\n"
        f"| Item | Estimate |\n|---|---|\n"
        f"| versions | {estimate.versions} |\n| files | {estimate.files} |\n"
        f"| estimated size | {human_size(estimate.estimated_bytes)} ({estimate.estimated_bytes} bytes) |\n"
        f"| cost | {estimate_cost_text(estimate)} |\n"
        f"| storage | {estimate.storage_cost_per_month} {estimate.currency} per month, "
        f"{estimate.storage_cost_for_retention} {estimate.currency} for {estimate.retention_days} days |\n"
    )


def approve_cost(estimate: Estimate, timeout_minutes: int) -> bool:
    """Pause the run until someone approves or declines in the UI; True means go ahead."""
    answer = pause_flow_run(
        wait_for_input=CostApproval.with_initial_data(description=estimate_markdown(estimate)),
        timeout=timeout_minutes * 60,
        poll_interval=3,
    )
    return answer.approved
