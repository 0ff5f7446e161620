"""Tasks of the fan-out flow: which organizations, start their runs, wait for the outcome."""

from __future__ import annotations

import time
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from sqlalchemy import select

from labvault.backups import admin_emails
from labvault.db.models import Organization
from labvault.errors import PermanentError
from tasks import context
from tasks.retries import RETRY_TRANSIENT
from tasks.run_tags import organization_tag

POLL_SECONDS = 2.0


@task(name="list-organizations", cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def list_organizations() -> dict[str, str]:
    """Organization sid → the email of its first admin; organizations without admin are skipped."""
    logger = get_run_logger()
    found: dict[str, str] = {}
    with context.sessions()() as session:
        for sid in session.scalars(select(Organization.sid).order_by(Organization.sid)):
            admins = admin_emails(session, sid)
            if admins:
                found[sid] = admins[0]
            else:
                logger.warning("Organization %s has no admin: it is not backed up", sid)
    return found


@task(name="start-create-backup-runs", cache_policy=NO_CACHE)
def start_create_backup_runs(deployment: str, organizations: dict[str, str], name: str,
                             description: str, retention_days: int | None,
                             parent_run_id: str) -> dict[str, str]:
    """Start one create-backup run per organization (no approval); returns sid → flow run id.

    The idempotency key makes a retried fan-out reuse the runs it already started.
    """
    runs = {}
    for organization_sid, admin in organizations.items():
        flow_run = run_deployment(
            deployment, timeout=0, idempotency_key=f"{parent_run_id}:{organization_sid}",
            tags=[organization_tag(organization_sid)],
            parameters={"organization_sid": organization_sid, "name": name, "requested_by": admin,
                        "description": description, "retention_days": retention_days,
                        "require_approval": False},
        )
        runs[organization_sid] = str(flow_run.id)
    get_run_logger().info("Started %d create-backup runs from %s", len(runs), deployment)
    return runs


@task(name="wait-for-runs", cache_policy=NO_CACHE)
def wait_for_runs(runs: dict[str, str], timeout_hours: float = 24) -> dict[str, Any]:
    """Wait until every run is final; a table artifact shows each organization's outcome."""
    deadline = time.monotonic() + timeout_hours * 3600
    outcome: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        while len(outcome) < len(runs) and time.monotonic() < deadline:
            for organization_sid, run_id in runs.items():
                if organization_sid in outcome:
                    continue
                state = client.read_flow_run(run_id).state
                if state is not None and state.is_final():
                    outcome[organization_sid] = state.name
            time.sleep(POLL_SECONDS if len(outcome) < len(runs) else 0)
    rows = [{"organization": sid, "flow run": runs[sid], "state": outcome.get(sid, "not finished")}
            for sid in runs]
    create_table_artifact(rows, key="backup-all-organizations",
                          description="Outcome of each organization's create-backup run")
    failed = [row["organization"] for row in rows if row["state"] != "Completed"]
    if failed:
        raise PermanentError(f"backups did not complete for: {', '.join(failed)}")
    return {"runs": runs, "states": outcome}
