"""Which failures a task retries: transient ones only."""

from __future__ import annotations

import pytest
from prefect.states import Failed
from sqlalchemy.exc import OperationalError

from labvault.errors import InvalidInputError, MissingBlobError, TransientError
from tasks.retries import is_transient


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (TransientError("S3 throttled"), True),
        (OperationalError("SELECT 1", {}, Exception("server closed the connection")), True),
        (MissingBlobError("file u1 (a.pdf) is missing from the files store"), False),
        (InvalidInputError("backup name is empty"), False),
        (ValueError("a bug"), False),
    ],
)
def test_only_transient_failures_are_retried(error: Exception, retried: bool) -> None:
    assert is_transient(None, None, Failed(data=error)) is retried
