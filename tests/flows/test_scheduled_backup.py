"""scheduled-backup: no approval, a dated name, failed tries retried under the same sid, and
every admin emailed when the last try fails."""

from __future__ import annotations

from sqlalchemy import select

from flows.scheduled_backup import scheduled_backup
from labvault.db.models import Backup, BackupStatus, User


def test_a_try_that_fails_is_retried_under_the_same_sid(sessions, files, organization, smtp_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    row, data = next(iter(organization.files.values()))
    files.delete(row.storage_key)
    seen_between_tries: list[tuple[str, BackupStatus, str | None]] = []

    def blob_comes_back(minutes: int) -> None:
        with sessions() as session:
            backup = session.scalar(select(Backup))
            seen_between_tries.append((backup.sid, backup.status, backup.error))
        pending = files.open_write(row.storage_key)
        pending.write(data)
        pending.commit()

    monkeypatch.setattr("flows.scheduled_backup.wait_between_tries", blob_comes_back)
    state = scheduled_backup(organization_sid=organization.sid, requested_by=organization.admin_email,
                             name_template="Nightly {date} at {time}", minutes_between_tries=1,
                             return_state=True)
    assert state.is_completed(), state.message
    with sessions() as session:
        [backup] = session.scalars(select(Backup)).all()
    [(sid, status, error)] = seen_between_tries
    assert (sid, status) == (backup.sid, BackupStatus.ERROR) and row.uid in error
    assert backup.status is BackupStatus.COMPLETED and backup.error is None
    assert backup.name.startswith("Nightly 20") and " at " in backup.name
    assert [m["Subject"] for _, m in smtp_server.messages] == [f"[labvault] Backup '{backup.name}' Completed"]


def test_the_last_failed_try_emails_every_admin(sessions, files, organization, smtp_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        session.add(User(organization_sid=organization.sid, email="second-admin@org-1.example",
                         name="Second", is_admin=True))
        session.commit()
    row, _ = next(iter(organization.files.values()))
    files.delete(row.storage_key)
    sleeps: list[float] = []
    monkeypatch.setattr("flows.scheduled_backup.wait_between_tries", sleeps.append)
    state = scheduled_backup(organization_sid=organization.sid, requested_by=organization.admin_email,
                             tries=3, minutes_between_tries=30, return_state=True)
    assert state.is_failed()
    assert sleeps == [30, 30]
    with sessions() as session:
        [backup] = session.scalars(select(Backup)).all()
    assert backup.status is BackupStatus.ERROR and row.uid in backup.error
    [(recipients, message)] = smtp_server.messages
    assert set(recipients) == {organization.admin_email, "second-admin@org-1.example"}
    assert message["Subject"].endswith("Error")
    assert f"labvault backup retry {backup.sid}" in message.get_content()
