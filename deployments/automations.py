"""The automation a production server needs: flow runs whose process died are marked Crashed.

A run's process (a worker's child, a Kubernetes pod) that dies with its machine says nothing to
the server: its run would stay Running for ever, and the fan-out waiting for it with it. Every
flow run sends a heartbeat event (`PREFECT_FLOWS_HEARTBEAT_FREQUENCY`, at least 30 s); this
automation, evaluated by the server's triggers service, crashes a run silent for three beats.
labvault's own reaper (expire-backups) then turns its backup into Error.

    python -m deployments.automations     # once per server; idempotent
"""

from __future__ import annotations

from datetime import timedelta

from prefect.automations import Automation
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY

CRASH_SILENT_RUNS = "labvault-crash-silent-flow-runs"
FINAL_EVENTS = {f"prefect.flow-run.{state}" for state in ("Completed", "Failed", "Cancelled", "Crashed")}


def crash_silent_runs(heartbeat_seconds: int) -> Automation:
    """Crash a flow run that sent a heartbeat and then neither another one nor a final state
    within three heartbeats."""
    return Automation(
        name=CRASH_SILENT_RUNS,
        description="A flow run whose heartbeats stopped (its process or machine died) is Crashed.",
        trigger=EventTrigger(
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *FINAL_EVENTS},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=3 * heartbeat_seconds),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                    message="No heartbeat for three beats: its process died")],
    )


def ensure_crash_silent_runs(heartbeat_seconds: int | None = None) -> Automation:
    """The automation on the server of PREFECT_API_URL, made if missing (by name)."""
    try:
        return Automation.read(name=CRASH_SILENT_RUNS)
    except ValueError:  # Prefect's "Automation with name … not found"
        seconds = heartbeat_seconds or PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() or 180
        return crash_silent_runs(seconds).create()


if __name__ == "__main__":
    made = ensure_crash_silent_runs()
    print(f"automation {made.name}: crashes runs silent for {made.trigger.within}")  # type: ignore[union-attr]
