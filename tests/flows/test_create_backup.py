"""The create-backup flow under a real Prefect API (the test harness), read back like a user."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from sqlalchemy import func, select

from flows.create_backup import create_backup
from labvault.db.models import Backup, BackupStatus
from labvault.errors import NotFoundError, PermissionDeniedError
from tests.archive_checks import assert_archive_matches
from tests.factories import make_organization


def run(organization, **changes):  # type: ignore[no-untyped-def]
    parameters = {"organization_sid": organization.sid, "name": "Weekly", "description": "for audit",
                  "requested_by": organization.admin_email, **changes}
    return create_backup(**parameters, return_state=True)


def backup_of(sessions, state) -> Backup | None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        return session.scalar(
            select(Backup).where(Backup.flow_run_id == str(state.state_details.flow_run_id))
        )


def task_run_names(state) -> list[str]:  # type: ignore[no-untyped-def]
    async def read() -> list[str]:
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
            )
            return sorted(run.name.rsplit("-", 1)[0] for run in runs)

    return asyncio.run(read())


def test_the_flow_makes_a_completed_backup_that_reads_back(sessions, organization) -> None:  # type: ignore[no-untyped-def]
    state = run(organization)
    assert state.is_completed(), state.message
    backup = backup_of(sessions, state)
    assert backup is not None and backup.status is BackupStatus.COMPLETED
    assert (backup.name, backup.description, backup.created_by) == (
        "Weekly", "for audit", organization.admin_email)
    assert state.result()["sid"] == backup.sid
    assert state.result()["status"] == "Completed"
    manifest = assert_archive_matches(Path(backup.file_path), organization, backup)
    # hostile names became safe entry names; the manifest keeps the originals
    originals = {e["original_name"] for e in manifest["entries"] if e["kind"] == "file"}
    assert {"../../etc/passwd", "plate reader/run 3.csv", "x" * 300 + ".dat"} <= originals
    for entry in manifest["entries"]:
        inner = entry["path"].split("/", 1)[1]
        assert ".." not in inner and "\x07" not in inner and "\u202e" not in inner
        assert len(inner.rsplit("/", 1)[-1].encode()) <= 240
    assert backup.error is None
    assert backup.flow_run_id == str(state.state_details.flow_run_id)


def test_task_runs_do_not_grow_with_the_number_of_items(sessions, files, organization) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        bigger = make_organization(session, files, sid="org-big", records=30, versions_per_record=5,
                                   file_names=[f"f{i}.bin" for i in range(25)])
    small, large = run(organization), run(bigger)
    assert small.is_completed() and large.is_completed()
    assert task_run_names(small) == task_run_names(large) == sorted([
        "estimate-backup", "start-backup", "open-archive", "snapshot-versions", "copy-files", "seal-archive",
        "verify-archive", "finish-backup", "notify"])


def test_a_missing_blob_fails_the_run_and_the_backup_names_the_file(sessions, files, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    row, _ = sorted(organization.files.values(), key=lambda item: item[0].uid)[-1]
    files.delete(row.storage_key)
    state = run(organization)
    assert state.is_failed()
    backup = backup_of(sessions, state)
    assert backup.status is BackupStatus.ERROR
    assert backup.error == f"file {row.uid} ({row.name}) is missing from the files store"
    assert backup.file_path is None
    assert backups_storage.list() == [], "a partial or whole archive was left behind"


@pytest.mark.parametrize(
    ("changes", "error"),
    [({"organization_sid": "no-such-org"}, NotFoundError),
     ({"requested_by": "member@org-1.example"}, PermissionDeniedError)],
)
def test_a_refused_request_fails_the_run_and_creates_no_backup(sessions, backups_storage, organization, changes, error) -> None:  # type: ignore[no-untyped-def]
    state = run(organization, **changes)
    assert state.is_failed()
    with pytest.raises(error):
        state.result()
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Backup)) == 0
    assert backups_storage.list() == []


def test_two_runs_make_two_backups(sessions, organization) -> None:  # type: ignore[no-untyped-def]
    first, second = run(organization), run(organization)
    assert backup_of(sessions, first).sid != backup_of(sessions, second).sid
    with sessions() as session:
        statuses = session.scalars(select(Backup.status)).all()
    assert statuses == [BackupStatus.COMPLETED, BackupStatus.COMPLETED]


def progress_artifacts(state) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The run's progress artifacts by key, as its Artifacts tab shows them."""
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterType,
    )

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]),
            type=ArtifactFilterType(any_=["progress"])))
    return {artifact.key: artifact.data for artifact in artifacts}


def test_each_progress_artifact_of_a_completed_run_ends_at_100_percent(sessions, organization) -> None:  # type: ignore[no-untyped-def]
    state = run(organization)
    assert state.is_completed(), state.message
    sid = backup_of(sessions, state).sid
    assert progress_artifacts(state) == {f"{sid}-files": 100.0, f"{sid}-versions": 100.0}


def notify_lines(caplog: pytest.LogCaptureFixture, sid: str) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.getMessage().startswith(f"Backup {sid}: notice ")]


def test_without_smtp_the_notify_log_says_the_notice_was_only_logged(sessions, organization, caplog) -> None:  # type: ignore[no-untyped-def]
    with caplog.at_level("INFO"):
        state = run(organization)
    sid = backup_of(sessions, state).sid
    assert notify_lines(caplog, sid) == [
        f"Backup {sid}: notice \"[labvault] Backup 'Weekly' Completed\" logged only, not emailed "
        "(LABVAULT_SMTP_HOST is not set)"]


def test_with_smtp_the_notify_log_names_whom_it_emailed(sessions, organization, smtp_server, caplog) -> None:  # type: ignore[no-untyped-def]
    with caplog.at_level("INFO"):
        state = run(organization)
    sid = backup_of(sessions, state).sid
    assert notify_lines(caplog, sid) == [
        f"Backup {sid}: notice \"[labvault] Backup 'Weekly' Completed\" emailed to {organization.admin_email}"]
    assert [recipients for recipients, _ in smtp_server.messages] == [[organization.admin_email]]
