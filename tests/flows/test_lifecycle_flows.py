"""Approval, retry, delete, expiry and email, through the flows under the Prefect harness."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import StateType
from prefect.flow_runs import resume_flow_run
from sqlalchemy import func, select

from flows.delete_backup import delete_backup
from flows.expire_backups import expire_backups
from flows.retry_backup import retry_backup
from labvault.db.models import Backup, BackupStatus
from tests.flows.test_create_backup import backup_of, run


def paused_flow_run_id(timeout: float = 60) -> Any:
    """The id of the one paused flow run, once the run has reached its approval form."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))
        if runs:
            return runs[0].id
        time.sleep(0.2)
    raise AssertionError("no flow run paused for approval")


def run_with_approval(organization: Any, approve: bool) -> Any:
    result: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: result.update(state=run(organization, require_approval=True)))
    worker.start()
    flow_run_id = paused_flow_run_id()
    with get_client(sync_client=True) as client:
        paused = client.read_flow_run(flow_run_id)
    resume_flow_run(flow_run_id, run_input={"decision": "Approve" if approve else "Decline"})
    worker.join(timeout=120)
    assert not worker.is_alive()
    return paused, result["state"]


def count_backups(sessions) -> int:  # type: ignore[no-untyped-def]
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Backup))


def test_an_approved_run_pauses_before_any_work_then_completes(sessions, organization) -> None:  # type: ignore[no-untyped-def]
    paused, state = run_with_approval(organization, approve=True)
    assert paused.state.type == StateType.PAUSED
    assert state.is_completed(), state.message
    backup = backup_of(sessions, state)
    assert backup.status is BackupStatus.COMPLETED
    assert backup.cost is not None and backup.cost > 0


def test_a_declined_run_ends_without_a_backup(sessions, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    _paused, state = run_with_approval(organization, approve=False)
    assert state.is_cancelled()
    assert "not approved" in state.message
    assert count_backups(sessions) == 0
    assert backups_storage.list() == []


def test_retry_makes_an_error_backup_completed_under_the_same_sid(sessions, files, organization) -> None:  # type: ignore[no-untyped-def]
    row, data = next(iter(organization.files.values()))
    files.delete(row.storage_key)
    failed = backup_of(sessions, run(organization))
    assert failed.status is BackupStatus.ERROR

    pending = files.open_write(row.storage_key)
    pending.write(data)
    pending.commit()
    state = retry_backup(backup_sid=failed.sid, requested_by=organization.admin_email, return_state=True)
    assert state.is_completed(), state.message
    with sessions() as session:
        retried = session.get(Backup, failed.sid)
        assert (retried.status, retried.error) == (BackupStatus.COMPLETED, None)
        assert retried.date_expired is not None and Path(retried.file_path).exists()
        assert session.scalar(select(func.count()).select_from(Backup)) == 1

    refused = retry_backup(backup_sid=failed.sid, requested_by=organization.admin_email,
                          return_state=True)
    assert refused.is_failed() and "is Completed; only a backup in Error can be retried" in refused.message
    with sessions() as session:
        assert session.get(Backup, failed.sid).status is BackupStatus.COMPLETED


def test_delete_and_expire_flows(sessions, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    first = backup_of(sessions, run(organization))
    second = backup_of(sessions, run(organization))
    deleted = delete_backup(backup_sid=first.sid, requested_by=organization.admin_email)
    assert deleted["sid"] == first.sid
    assert not backups_storage.exists(f"{organization.sid}/{first.sid}.zip")

    with sessions() as session:
        session.get(Backup, second.sid).date_expired = second.date_created
        session.commit()
    assert expire_backups() == {"deleted": [second.sid], "kept": [], "reaped": [], "failed_archives_removed": [], "orphans_removed": [], "restores_settled": []}
    assert second.sid in expiry_artifact()
    assert expire_backups() == {"deleted": [], "kept": [], "reaped": [], "failed_archives_removed": [], "orphans_removed": [], "restores_settled": []}
    assert "Nothing to do" in expiry_artifact()
    assert backups_storage.list() == []


def newest_artifact(key: str) -> str:
    """The newest artifact of `key`, as the Artifacts page shows it."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        [artifact, *_] = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC, limit=1)
    return str(artifact.data)


def expiry_artifact() -> str:
    return newest_artifact("backup-expiry")


def test_the_requester_gets_an_email_with_the_download_link(sessions, organization, smtp_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LABVAULT_NOTIFY_EMAILS", "lab-ops@org-1.example")
    backup = backup_of(sessions, run(organization))
    [(recipients, message)] = smtp_server.messages
    assert recipients == [organization.admin_email, "lab-ops@org-1.example"]
    assert message["Subject"] == "[labvault] Backup 'Weekly' Completed"
    assert f"Download: {backup.file_path}" in message.get_content()


def test_a_failed_backup_emails_its_reason(sessions, files, organization, smtp_server) -> None:  # type: ignore[no-untyped-def]
    row, _ = next(iter(organization.files.values()))
    files.delete(row.storage_key)
    backup = backup_of(sessions, run(organization))
    [(_, message)] = smtp_server.messages
    assert message["Subject"] == "[labvault] Backup 'Weekly' Error"
    assert backup.error in message.get_content()
    assert f"labvault backup retry {backup.sid}" in message.get_content()


def test_an_email_that_cannot_be_sent_leaves_the_backup_completed(sessions, organization, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import free_port

    monkeypatch.setenv("LABVAULT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("LABVAULT_SMTP_PORT", str(free_port()))  # nobody listens there
    monkeypatch.setattr("tasks.backup_steps.notify.retry_delay_seconds", [0, 0, 0])
    state = run(organization)
    assert state.is_completed(), state.message
    assert backup_of(sessions, state).status is BackupStatus.COMPLETED


def test_a_retry_is_asked_by_a_current_admin_and_only_current_admins_are_told(sessions, files, organization, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """An admin removed between the failure and the retry can neither retry nor get the link."""
    from labvault.db.models import User

    row, data = next(iter(organization.files.values()))
    files.delete(row.storage_key)
    failed = backup_of(sessions, run(organization))
    smtp_server.messages.clear()
    with sessions() as session:
        session.add(User(organization_sid=organization.sid, email="admin2@org-1.example", name="Second",
                         is_admin=True))
        session.scalar(select(User).where(User.email == organization.admin_email)).is_admin = False
        session.commit()
    pending = files.open_write(row.storage_key)
    pending.write(data)
    pending.commit()

    refused = retry_backup(backup_sid=failed.sid, requested_by=organization.admin_email, return_state=True)
    assert refused.is_failed()
    assert refused.message == f"'{organization.admin_email}' is not an admin of organization '{organization.sid}'"
    with sessions() as session:
        assert session.get(Backup, failed.sid).status is BackupStatus.ERROR
    assert smtp_server.messages == []

    state = retry_backup(backup_sid=failed.sid, requested_by="admin2@org-1.example", return_state=True)
    assert state.is_completed(), state.message
    [(recipients, message)] = smtp_server.messages
    assert recipients == ["admin2@org-1.example"]
    assert message["Subject"] == "[labvault] Backup 'Weekly' Completed"
    with sessions() as session:
        assert session.get(Backup, failed.sid).created_by == "admin2@org-1.example"


def test_a_failed_run_says_why_in_its_state_and_in_an_artifact(sessions, files, organization) -> None:  # type: ignore[no-untyped-def]
    row, _ = next(iter(organization.files.values()))
    files.delete(row.storage_key)
    state = run(organization)
    backup = backup_of(sessions, state)
    assert state.is_failed()
    assert state.message == backup.error == f"file {row.uid} ({row.name}) is missing from the files store"
    artifact = newest_artifact(f"backup-{backup.sid}-failure")
    assert f"# Backup {backup.sid} failed" in artifact
    assert f"**Reason:** {backup.error}" in artifact
    assert f"labvault backup retry {backup.sid} --as <admin email>" in artifact
    refused = run(organization, organization_sid="no-such-org")
    assert refused.message == "organization 'no-such-org' does not exist"
    assert "**Reason:** organization 'no-such-org' does not exist" in newest_artifact("backup-refused")


def test_runs_are_named_after_what_they_do_and_tagged_with_the_organization(sessions, organization) -> None:  # type: ignore[no-untyped-def]
    created = run(organization)
    backup = backup_of(sessions, created)
    deleted = delete_backup(backup_sid=backup.sid, requested_by=organization.admin_email, return_state=True)
    expired = expire_backups(return_state=True)
    names_and_tags = []
    with get_client(sync_client=True) as client:
        for state in (created, deleted, expired):
            flow_run = client.read_flow_run(state.state_details.flow_run_id)
            names_and_tags.append((flow_run.name, sorted(flow_run.tags)))
    assert names_and_tags == [("backup org-1: Weekly", ["organization:org-1"]),
                              (f"delete {backup.sid}", ["organization:org-1"]),
                              ("expire", [])]


def test_an_untouched_approval_form_is_refused_and_the_run_stays_paused(sessions, organization) -> None:  # type: ignore[no-untyped-def]
    result: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: result.update(state=run(organization, require_approval=True)))
    worker.start()
    flow_run_id = paused_flow_run_id()
    try:
        untouched = None
        try:
            resume_flow_run(flow_run_id, run_input={})
        except Exception as exc:  # the API refuses the input
            untouched = exc
        assert untouched is not None and "decision" in str(untouched)
        with get_client(sync_client=True) as client:
            assert client.read_flow_run(flow_run_id).state.type == StateType.PAUSED
        assert count_backups(sessions) == 0
    finally:
        resume_flow_run(flow_run_id, run_input={"decision": "Decline"})
        worker.join(timeout=120)
    assert result["state"].is_cancelled()
