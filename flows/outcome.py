"""How a labvault flow run ends when it fails: with its one-line reason where people look first.

Prefect's own failed state says "Flow run encountered an exception: …" followed by whatever the
exception held, and the reason is then read from tracebacks in the logs. A flow wrapped here
ends Failed with the reason alone as the state message (the run page's header), the exception
kept as the state's result (so `state.result()` still raises it) and the traceback in the logs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from prefect import get_run_logger
from prefect.states import Failed

from labvault.errors import one_line

F = TypeVar("F", bound=Callable[..., Any])


def fails_with_reason(fn: F) -> F:
    """Wrap a flow function (under `@flow`) so an exception ends the run Failed with its reason.

    Only `Exception`: Prefect's pauses, cancellations and crashes are `BaseException` and pass."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            reason = one_line(exc)
            get_run_logger().error("Failed: %s", reason, exc_info=exc)
            return Failed(message=reason, data=exc)

    return run  # type: ignore[return-value]
