"""The Backups page in process (FastAPI's TestClient), flows run by its own background threads
under the session's Prefect harness, on SQLite and PostgreSQL like the rest."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from labvault import sign_in
from labvault.db.models import Backup, BackupStatus
from labvault.settings import get_settings
from labvault_web.app import create_app
from labvault_web.runs import FlowRuns


@pytest.fixture(autouse=True)
def _under_prefect(prefect_harness: None) -> None:
    """Flows started by the page run against the session's Prefect test harness."""


@pytest.fixture
def app(settings, sessions):  # type: ignore[no-untyped-def]
    """The page with the settings as the test set them (fixtures such as `smtp_server`, listed
    before `browser`, change the environment after `settings` was read)."""
    return create_app(get_settings(), flow_runs=FlowRuns(sessions, in_process=True))


@pytest.fixture
def browser(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """One browser: a cookie jar; not signed in yet."""
    with TestClient(app, follow_redirects=False) as client:
        yield client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def sign_in_as(client: TestClient, sessions: Any, email: str) -> None:
    """Sign in through a one-time link, as a browser does: open it, then confirm."""
    with sessions() as session:
        [(_, token)] = sign_in.issue_links(session, email)
    confirm = client.get("/sign-in/link", params={"token": token})
    assert confirm.status_code == 200
    done = client.post("/sign-in/link", data={"token": token, "csrf": csrf_of(confirm.text)})
    assert done.status_code == 303, done.text


def wait_for_status(sessions: Any, sid: str, timeout: float = 90) -> Backup:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sessions() as session:
            backup = session.get(Backup, sid)
            if backup is not None and backup.status is not BackupStatus.IN_PROGRESS:
                return backup
        time.sleep(0.2)
    raise AssertionError(f"backup {sid} still running after {timeout} s")
