"""What the Prefect server keeps of a flow run and shows to anyone who can read it."""

from __future__ import annotations

import json

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
from prefect.client.schemas.objects import State
from prefect.logging.handlers import APILogWorker


def run_record(state: State) -> str:
    """The run's state message, parameters, logs and artifacts as one text, to search for secrets."""
    run_id = state.state_details.flow_run_id
    APILogWorker.drain_all(timeout=10)  # logs travel in batches: the last may be on their way
    with get_client(sync_client=True) as client:
        seen = [state.message or "", json.dumps(client.read_flow_run(run_id).parameters, default=str)]
        seen += [log.message for log in client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))]
        seen += [json.dumps(a.data, default=str) for a in client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))]
    return "\n".join(seen)
