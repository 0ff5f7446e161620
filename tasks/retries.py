"""Retry policy shared by tasks: transient errors only, with exponential backoff."""

from __future__ import annotations

from typing import Any

from prefect.tasks import exponential_backoff
from sqlalchemy.exc import DisconnectionError, OperationalError

from labvault.errors import TransientError

# A lost connection, a failover, SQLite's "database is locked": the database may answer later.
TRANSIENT_DATABASE_ERRORS = (OperationalError, DisconnectionError)


def is_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only what may pass by itself; a permanent error fails at once."""
    try:
        state.result()
    except (TransientError, *TRANSIENT_DATABASE_ERRORS):
        return True
    except BaseException:
        return False
    return False


RETRY_TRANSIENT: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_condition_fn": is_transient,
}
