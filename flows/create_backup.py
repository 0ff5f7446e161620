"""create-backup: one organization's versions and files into one downloadable zip."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run as current_flow_run
from prefect.states import Cancelled, State

from flows.approval import approve_cost
from flows.build_backup import build_backup, record_failure
from labvault.backups import BackupRequest
from tasks.backup_steps import estimate, start_backup


@flow(name="create-backup", on_failure=[record_failure], on_crashed=[record_failure])
def create_backup(organization_sid: str, name: str, requested_by: str, description: str = "",
                  require_approval: bool = False,
                  approval_timeout_minutes: int = 60) -> dict[str, Any] | State:
    """Back up every record version and uploaded file of one organization into one zip.

    Args:
        organization_sid: The organization to back up.
        name: A short name for the backup, shown in listings.
        requested_by: Email of an admin of the organization; the notice goes there.
        description: Optional longer text to remember the backup by.
        require_approval: Pause before any work until someone approves the estimated cost.
        approval_timeout_minutes: How long a paused run waits for approval before failing.
    """
    request = BackupRequest(organization_sid, name, description, requested_by)
    quote = estimate(request)
    if require_approval and not approve_cost(quote, approval_timeout_minutes):
        return Cancelled(message="The cost was not approved: no backup was made")
    sid = start_backup(request, flow_run_id=current_flow_run.id, cost=quote.cost)
    return build_backup(sid)
