"""Deleting one backup, and the scheduled expiry: archives leave storage, rows leave listings."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest

from labvault import audit, backups, catalog, deletion, expiry
from labvault.backups import start_backup
from labvault.db.models import Backup, BackupStatus
from labvault.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from tests.factories import make_organization
from tests.labvault.test_backups import request_for, run_backup

WINDOW = timedelta(minutes=60)


def listed(sessions) -> list[str]:  # type: ignore[no-untyped-def]
    with sessions() as session:
        return [b.sid for b in catalog.list_backups(session)]


def test_delete_removes_the_archive_and_the_listing_but_keeps_the_row(sessions, files, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    sid = run_backup(sessions, files, backups_storage, request_for(organization))
    assert backups_storage.exists(f"{organization.sid}/{sid}.zip")
    with sessions() as session:
        deletion.delete_backup(session, backups_storage, sid, organization.admin_email)
    assert backups_storage.list() == []
    assert listed(sessions) == []
    with sessions() as session:
        assert session.get(Backup, sid).date_deleted is not None
        with pytest.raises(NotFoundError, match=f"backup '{sid}' does not exist"):
            deletion.delete_backup(session, backups_storage, sid, organization.admin_email)


@pytest.mark.parametrize(
    ("who", "error", "message"),
    [("member@org-1.example", PermissionDeniedError, "is not an admin of organization 'org-1'"),
     ("nobody@else.example", PermissionDeniedError, "is not an admin")],
)
def test_only_an_admin_of_the_organization_may_delete(sessions, files, backups_storage, organization, who, error, message) -> None:  # type: ignore[no-untyped-def]
    sid = run_backup(sessions, files, backups_storage, request_for(organization))
    with sessions() as session, pytest.raises(error, match=message):
        deletion.delete_backup(session, backups_storage, sid, who)
    assert listed(sessions) == [sid]
    assert backups_storage.exists(f"{organization.sid}/{sid}.zip")


def test_an_in_progress_backup_cannot_be_deleted(sessions, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        sid = start_backup(session, request_for(organization))
        with pytest.raises(InvalidInputError, match=f"backup {sid} is In Progress"):
            deletion.delete_backup(session, backups_storage, sid, organization.admin_email)
    assert listed(sessions) == [sid]


def test_expiry_deletes_what_is_due_reaps_stale_runs_and_is_idempotent(sessions, files, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    due = run_backup(sessions, files, backups_storage, request_for(organization, name="old"))
    kept = run_backup(sessions, files, backups_storage, request_for(organization, name="fresh"))
    now = datetime.now(timezone.utc)
    with sessions() as session:
        session.get(Backup, due).date_expired = now - timedelta(seconds=1)
        stale = start_backup(session, request_for(organization, name="stuck"), now=now - timedelta(hours=3))
        other = make_organization(session, files, sid="org-2", file_names=[])
        live = start_backup(session, request_for(other, name="running"), now=now - timedelta(hours=3))
        session.get(Backup, live).heartbeat_at = now - timedelta(minutes=5)
        session.commit()

    with sessions() as session:
        report = expiry.expire_backups(session, backups_storage, stale_after=WINDOW, now=now)
    assert report.deleted == [due]
    assert report.reaped == [stale]
    assert not backups_storage.exists(f"{organization.sid}/{due}.zip")
    assert backups_storage.exists(f"{organization.sid}/{kept}.zip")
    with sessions() as session:
        reaped = session.get(Backup, stale)
        assert reaped.status is BackupStatus.ERROR
        assert reaped.error == f"stale: no progress since {(now - timedelta(hours=3)).isoformat()}"
        assert session.get(Backup, live).status is BackupStatus.IN_PROGRESS
    assert due not in listed(sessions) and kept in listed(sessions)

    with sessions() as session:
        again = expiry.expire_backups(session, backups_storage, stale_after=WINDOW, now=now)
    assert again.did_nothing
    with sessions() as session:
        trail = [(e.action, e.actor, e.door, e.detail) for e in audit.events_of(session, due)]
    assert trail == [("created", organization.admin_email, "flow", ""), ("deleted", "expiry", "flow", "expired")]


def test_expiry_removes_only_old_partials_of_backups_not_running(sessions, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        running = start_backup(session, request_for(organization))
    keys = {"orphan": "org-1/bk-gone.zip.partial", "fresh": "org-1/bk-new.zip.partial",
            "running": f"org-1/{running}.zip.partial"}
    for key in keys.values():
        pending = backups_storage.open_write(key.removesuffix(".partial"))
        pending.write(b"half an archive")  # left behind as the partial, as by a killed worker
    old = (datetime.now(timezone.utc) - 2 * WINDOW).timestamp()
    for name in ("orphan", "running"):
        os.utime(backups_storage.url(keys[name]), (old, old))

    with sessions() as session:
        report = expiry.expire_backups(session, backups_storage, stale_after=WINDOW)
    assert report.orphans_removed == [keys["orphan"]]
    assert sorted(backups_storage.list()) == sorted([keys["fresh"], keys["running"]])


def test_expiry_removes_the_whole_archive_of_a_backup_that_never_completed(sessions, files, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    """A run killed after its archive got its final name (during verification) is reaped, and
    its archive goes with it; a Completed backup's archive stays."""
    kept = run_backup(sessions, files, backups_storage, request_for(organization, name="done"))
    long_ago = datetime.now(timezone.utc) - 2 * WINDOW
    with sessions() as session:
        killed = start_backup(session, request_for(organization, name="killed"), now=long_ago)
        with backups.open_archive(session, backups_storage, killed) as archive:
            archive.seal()
    assert backups_storage.exists(f"{organization.sid}/{killed}.zip")

    with sessions() as session:
        report = expiry.expire_backups(session, backups_storage, stale_after=WINDOW)
    assert backups_storage.list() == [f"{organization.sid}/{kept}.zip"]
    assert report.reaped == [killed]
    assert report.failed_archives_removed == [f"{organization.sid}/{killed}.zip"]
    with sessions() as session:
        assert session.get(Backup, killed).status is BackupStatus.ERROR
        assert session.get(Backup, kept).status is BackupStatus.COMPLETED
        assert expiry.expire_backups(session, backups_storage, stale_after=WINDOW).did_nothing
