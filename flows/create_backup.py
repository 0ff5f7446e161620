"""create-backup: one organization's versions and files into one downloadable zip."""

from typing import Annotated, Any

from prefect import flow
from prefect.runtime import flow_run as current_flow_run
from prefect.states import Cancelled, State
from pydantic import Field

from flows.approval import approve_cost
from flows.build_backup import build_backup, record_failure
from flows.outcome import fails_with_reason
from flows.parameters import (
    DESCRIPTION,
    NAME,
    ORGANIZATION,
    REQUESTED_BY,
    RETENTION,
    BackupName,
    Description,
    Email,
    OrganizationSid,
    RetentionDays,
    parameter,
)
from labvault.backups import BackupRequest
from tasks.backup_steps import estimate, start_backup
from tasks.slots import backup_slots


@flow(name="create-backup", flow_run_name="backup {organization_sid}: {name}",
      on_failure=[record_failure], on_crashed=[record_failure])
@fails_with_reason
def create_backup(
    organization_sid: OrganizationSid = ORGANIZATION,
    name: BackupName = NAME,
    requested_by: Email = REQUESTED_BY,
    description: Description = DESCRIPTION,
    retention_days: RetentionDays = RETENTION,
    require_approval: bool = parameter(
        False, "Require approval", "Pause before any work and show the estimated cost for approval."),
    approval_timeout_minutes: Annotated[int, Field(ge=1, le=10080)] = parameter(
        60, "Approval timeout (minutes)", "How long a paused run waits for approval before it fails."),
) -> dict[str, Any] | State:
    """Back up every record version and uploaded file of one organization into one zip."""
    request = BackupRequest(organization_sid, name, description, requested_by)
    quote = estimate(request)
    if require_approval and not approve_cost(quote, approval_timeout_minutes):
        return Cancelled(message="The cost was not approved: no backup was made")
    with backup_slots(organization_sid):
        sid = start_backup(request, flow_run_id=current_flow_run.id, cost=quote.cost,
                           retention_days=retention_days)
        return build_backup(sid)
