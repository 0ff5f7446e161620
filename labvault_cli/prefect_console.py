"""What Prefect may print on the CLI's stderr while a command runs a flow in this process.

A command's stderr is its own: one `error:` line when a request is refused, a run's warnings, and
nothing else. Prefect's console handler would add its chatter (the temporary server starting and,
at exit, stopping; runs beginning and finishing; its events worker flushing at exit) and, when a
task raises, the task run's and the flow run's tracebacks above the CLI's line. The run's full
story stays in Prefect's API (its `api` handler is untouched); only the console is filtered.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

from prefect.logging.handlers import PrefectConsoleHandler
from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

from labvault.errors import LabvaultError, TransientError


class CliConsoleFilter(logging.Filter):
    """Let through a flow or task run's warnings and errors, and anything else's errors; drop
    every record of a run that failed with a `LabvaultError` (its traceback, its "Finished in
    state Failed" line, a failure hook's line), which the CLI prints itself in one line. Other
    failures keep their tracebacks."""

    def __init__(self) -> None:
        super().__init__()
        self._explained_runs: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        run = getattr(record, "task_run_id", None) or getattr(record, "flow_run_id", None)
        if ((record.exc_info and isinstance(record.exc_info[1], LabvaultError))
                or _names_a_labvault_failure(record.getMessage())):
            if run:
                self._explained_runs.add(str(run))
            return False
        if run is None:  # Prefect's own services: the temporary server, the events worker
            return record.levelno >= logging.ERROR
        return record.levelno >= logging.WARNING and str(run) not in self._explained_runs


_FAILED_WITH = re.compile(r"encountered an exception:? (\w+):")


def _error_names(error: type[BaseException]) -> set[str]:
    return {error.__name__}.union(*(_error_names(sub) for sub in error.__subclasses__()))


def _names_a_labvault_failure(message: str) -> bool:
    """A "Finished in state Failed(… encountered an exception NotFoundError: …)" line. A task
    whose retry condition turns a permanent error down logs no traceback before it (Prefect
    logs one only when retries run out), so this line is all there is to know the run by."""
    found = _FAILED_WITH.search(message)
    return found is not None and found.group(1) in _error_names(LabvaultError)


def quiet_prefect_console() -> None:
    """Install the filter on Prefect's console handlers for the rest of this process (the CLI is
    a process of its own; the temporary server logs its stop at exit). Idempotent."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not any(
                isinstance(f, CliConsoleFilter) for f in handler.filters):
            handler.addFilter(CliConsoleFilter())


@contextmanager
def prefect_start_errors() -> Iterator[None]:
    """Prefect's two ways of not starting (its temporary server too slow to come up, or the
    configured server not answering) as one line saying what to do, not a RuntimeError's
    traceback. Both are raised as RuntimeError and told apart by their wording."""
    try:
        yield
    except RuntimeError as exc:
        exited = re.search(r"server process exited with code (-?\d+)", str(exc))
        if exited:
            raise TransientError(
                f"Prefect's temporary server stopped while starting (exit code {exited.group(1)}); "
                "run `prefect server start` to see why, or set PREFECT_API_URL to a running "
                "Prefect server") from None
        if "ephemeral Prefect API server" in str(exc):
            raise TransientError(
                "Prefect's temporary server did not start within "
                f"{PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()} s (the machine may be busy); "
                "raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or set PREFECT_API_URL to "
                "a running Prefect server") from None
        if "Failed to reach API" in str(exc):
            raise TransientError(
                f"cannot reach the Prefect API at {PREFECT_API_URL.value()}; start that server, "
                "or unset PREFECT_API_URL to run on a temporary one") from None
        raise
