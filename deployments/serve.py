"""`labvault serve`: every deployment of prefect.yaml served from this process, no work pool.

Uses `prefect.serve`, so runs started from the UI or on schedule execute here, each in a
subprocess. Schedules are paused when the process stops (Prefect's default for served flows).

A served deployment has no work pool, path or pull steps: serving under the names that
`prefect deploy` gave a pool's deployments would overwrite them, and their runs would crash on
the workers afterwards. So serve refuses while such deployments exist.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from prefect import serve
from prefect.client.orchestration import get_client
from prefect.client.schemas.schedules import construct_schedule
from prefect.exceptions import ObjectNotFound
from prefect.flows import load_flow_from_entrypoint

from deployments.project import PROJECT_ROOT, DeploymentSpec, read_deployments
from labvault.errors import ConflictError


def _schedules(spec: DeploymentSpec) -> list[Any]:
    from prefect.client.schemas.actions import DeploymentScheduleCreate

    return [
        DeploymentScheduleCreate(
            schedule=construct_schedule(cron=entry["cron"], timezone=entry.get("timezone")),
            active=entry.get("active", True),
        )
        for entry in spec.schedules
    ]


def to_deployment(spec: DeploymentSpec) -> Any:
    flow = load_flow_from_entrypoint(str(PROJECT_ROOT / spec.entrypoint))
    return flow.to_deployment(name=spec.name, description=spec.description, tags=spec.tags,
                              parameters=spec.parameters, schedules=_schedules(spec))


def refuse_pool_deployments(deployments: list[Any]) -> None:
    """Refuse, in one line, to replace a deployment that a work pool serves."""
    with get_client(sync_client=True) as client:
        for deployment in deployments:
            name = f"{deployment.flow_name}/{deployment.name}"
            try:
                existing = client.read_deployment_by_name(name)
            except ObjectNotFound:
                continue
            if existing.work_pool_name:
                raise ConflictError(
                    f"deployment {name} belongs to work pool {existing.work_pool_name!r} (made by "
                    "`prefect deploy`); serving it here would replace it and break its worker "
                    f"runs: start a worker instead (prefect worker start --pool "
                    f"{existing.work_pool_name}), or delete the pool's deployments first")


def serve_all(limit: int | None = None) -> None:
    """Serve every deployment of prefect.yaml until interrupted."""
    os.chdir(PROJECT_ROOT)
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    deployments = [to_deployment(spec) for spec in read_deployments()]
    refuse_pool_deployments(deployments)
    serve(*deployments, limit=limit)
