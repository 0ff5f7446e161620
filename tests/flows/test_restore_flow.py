"""restore-backup through its own door (the Prefect UI, the API, Python): a target database's
password comes from a Secret block and is seen nowhere; a URL carrying one is refused."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler
from sqlalchemy import Engine, create_engine, event, func, select, text
from sqlalchemy.engine import make_url

from flows.restore_backup import restore_backup
from labvault.db.engine import engine_for, session_factory
from labvault.db.models import Version
from labvault.errors import InvalidInputError
from tests.databases import postgres_admin_url
from tests.flows.test_create_backup import backup_of, run

PASSWORD = "restore-Pw-never-shown-7"


def what_prefect_keeps(state: Any) -> tuple[str, str]:
    """The run's parameters, and everything else it left: its state message, every log line of it
    and of its tasks, its artifacts; read back through the Prefect API as the UI shows them."""
    APILogHandler().flush()
    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        parameters = json.dumps(client.read_flow_run(run_id).parameters)
        seen = [state.message or ""]
        seen += [log.message for log in client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))]
        seen += [json.dumps(a.data, default=str) + (a.description or "") for a in client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))]
    return parameters, "\n".join(seen)


@pytest.fixture
def password_protected_target() -> Iterator[str]:
    """A PostgreSQL database owned by a role of its own that has a password; its URL has none."""
    admin_url = postgres_admin_url()
    role, database = f"labvault_restorer_{uuid.uuid4().hex[:8]}", f"labvault_restored_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'"))
        connection.execute(text(f'CREATE DATABASE "{database}" OWNER {role}'))
    url = make_url(admin_url).set(username=role, password=None, database=database)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        engine_for(url.set(password=PASSWORD).render_as_string(hide_password=False)).dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            connection.execute(text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_password_comes_from_a_secret_block_and_is_seen_nowhere(sessions, organization, password_protected_target, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    archive = backup_of(sessions, run(organization)).file_path
    block = f"restore-target-{uuid.uuid4().hex[:8]}"
    Secret(value=PASSWORD).save(block)
    passwords_given_to_the_driver: list[str | None] = []

    def on_connect(dialect, conn_rec, cargs, cparams) -> None:  # type: ignore[no-untyped-def]
        passwords_given_to_the_driver.append(cparams.get("password"))

    event.listen(Engine, "do_connect", on_connect)
    try:
        state = restore_backup(source=archive, to_database_url=password_protected_target,
                               to_files_url=str(tmp_path / "files"), to_database_password_secret=block,
                               return_state=True)
    finally:
        event.remove(Engine, "do_connect", on_connect)
    assert state.is_completed(), state.message
    assert passwords_given_to_the_driver and set(passwords_given_to_the_driver) == {PASSWORD}
    restored_url = make_url(password_protected_target).set(password=PASSWORD).render_as_string(hide_password=False)
    with session_factory(restored_url)() as session:
        assert session.scalar(select(func.count()).select_from(Version)) == len(organization.versions)

    parameters, rest = what_prefect_keeps(state)
    assert block in parameters and PASSWORD not in parameters
    masked_target = password_protected_target.replace("@", ":***@", 1)
    assert masked_target in rest and "Restored " in rest  # the artifact and the task's logs were read
    assert PASSWORD not in rest


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_password_inside_a_url_parameter_is_refused_and_never_logged(sessions, organization, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    archive = backup_of(sessions, run(organization)).file_path
    state = restore_backup(source=archive,
                           to_database_url=f"postgresql+psycopg://restorer:{PASSWORD}@127.0.0.1/lab",
                           to_files_url=str(tmp_path / "files"), return_state=True)
    assert state.is_failed()
    with pytest.raises(InvalidInputError) as refused:
        state.result()
    assert str(refused.value) == (
        "to_database_url 'postgresql+psycopg://restorer:***@127.0.0.1/lab' carries a password, which "
        "Prefect would store in plain text with the run's parameters; leave it out of the URL and give "
        "it in PGPASSWORD or ~/.pgpass, or name a Prefect Secret block holding it with "
        "to_database_password_secret")
    parameters, rest = what_prefect_keeps(state)
    # Prefect stored the parameter as given (refusing it is what keeps such runs from being made a
    # habit); nothing the run wrote itself repeats it.
    assert PASSWORD in parameters and "Task run failed" in rest
    assert PASSWORD not in rest
    assert not (tmp_path / "files").exists()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_unknown_secret_block_is_named(sessions, organization, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    archive = backup_of(sessions, run(organization)).file_path
    state = restore_backup(source=archive, to_database_url=f"sqlite:///{tmp_path / 'restored.db'}",
                           to_files_url=str(tmp_path / "files"), to_database_password_secret="no-such-block",
                           return_state=True)
    assert state.is_failed()
    assert state.message.endswith(
        "to_database_password_secret 'no-such-block': no Prefect secret block has that name; create it "
        "with `prefect block create secret` (or on the Blocks page of the Prefect UI)")
