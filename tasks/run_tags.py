"""Tags that let the Prefect UI filter runs by what they work on, and say which door asked.

A door (the CLI, the Backups page) tags the runs it starts `via:cli` or `via:web`; a run started
from the Prefect UI or a schedule has neither and counts as the flow door in the audit trail."""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.runtime import flow_run


def organization_tag(organization_sid: str) -> str:
    return f"organization:{organization_sid}"


def tag_flow_run(organization_sid: str) -> None:
    """Add the organization's tag to the flow run this code runs in (known only once the run
    has read its backup, so it cannot be set when the run is created)."""
    run_id, tag = flow_run.id, organization_tag(organization_sid)
    if run_id is None or tag in flow_run.tags:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(run_id, tags=[*flow_run.tags, tag])


DOOR_TAG = "via:"


def door_tag(door: str) -> str:
    return f"{DOOR_TAG}{door}"


def requesting_door() -> str:
    """The door that started the flow run this code runs in: `cli`, `web` or `flow`."""
    doors = [tag.removeprefix(DOOR_TAG) for tag in flow_run.tags if tag.startswith(DOOR_TAG)]
    return doors[0] if doors else "flow"
