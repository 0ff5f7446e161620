"""F: what Prefect adds: task runs per backup at two sizes, and the wall time of a backup of an
empty organization once Prefect is up (a test harness server, started before the clock)."""

from __future__ import annotations

import asyncio
import json
import time


def main() -> dict:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from flows.create_backup import create_backup

    def task_runs(state) -> int:  # type: ignore[no-untyped-def]
        async def count() -> int:
            async with get_client() as client:
                return len(await client.read_task_runs(flow_run_filter=FlowRunFilter(
                    id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))))
        return asyncio.run(count())

    def back_up(organization: str):  # type: ignore[no-untyped-def]
        return create_backup(organization_sid=organization, name="bench", return_state=True,
                             requested_by=f"admin@{organization}")

    with prefect_test_harness(), temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        back_up("bench-empty")  # warm-up: imports, first connections
        started = time.perf_counter()
        empty = back_up("bench-empty")
        empty_seconds = time.perf_counter() - started
        small, large = back_up("bench-small"), back_up("bench")
        assert empty.is_completed() and small.is_completed() and large.is_completed()
        return {"empty_backup_seconds": empty_seconds, "task_runs_small": task_runs(small),
                "task_runs_large": task_runs(large)}


if __name__ == "__main__":
    print(json.dumps(main()))
