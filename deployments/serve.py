"""`labvault serve`: every deployment of prefect.yaml served from this process, no work pool.

Uses `prefect.serve`, so runs started from the UI or on schedule execute here, each in a
subprocess. Schedules are paused when the process stops (Prefect's default for served flows).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from prefect import serve
from prefect.client.schemas.schedules import construct_schedule
from prefect.flows import load_flow_from_entrypoint

from deployments.project import PROJECT_ROOT, DeploymentSpec, read_deployments


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


def serve_all(limit: int | None = None) -> None:
    """Serve every deployment of prefect.yaml until interrupted."""
    os.chdir(PROJECT_ROOT)
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    serve(*(to_deployment(spec) for spec in read_deployments()), limit=limit)
