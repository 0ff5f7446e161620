"""The periodic check of kept archives: oldest check first, within a budget, results recorded."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from labvault import reverification
from labvault.db.models import Backup, BackupStatus
from labvault.utc import utcnow
from tests.labvault.test_backups import request_for, run_backup


def completed_backup(sessions: Any, files: Any, backups_storage: Any, organization: Any) -> str:
    return run_backup(sessions, files, backups_storage, request_for(organization))


def corrupt_middle(path: str) -> None:
    data = bytearray(Path(path).read_bytes())
    data[len(data) // 2] ^= 0xFF
    Path(path).write_bytes(bytes(data))


def test_a_round_checks_the_oldest_first_records_results_and_respects_its_budget(sessions, files, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    first = completed_backup(sessions, files, backups_storage, organization)
    second = completed_backup(sessions, files, backups_storage, organization)
    third = completed_backup(sessions, files, backups_storage, organization)
    now = utcnow()
    with sessions() as session:
        for sid, checked in ((first, None), (second, now - timedelta(days=40)), (third, now - timedelta(days=1))):
            session.get(Backup, sid).verified_at = checked
        session.commit()
        size = session.get(Backup, first).file_size
    corrupt_middle(backups_storage.url(f"{organization.sid}/{second}.zip"))

    with sessions() as session:
        round_ = reverification.verify_due_backups(session, backups_storage, older_than=timedelta(days=30),
                                                   byte_budget=size, now=now)
    assert (round_.matched, list(round_.failed), round_.left_for_later) == ([first], [], 1)

    with sessions() as session:
        round_ = reverification.verify_due_backups(session, backups_storage, older_than=timedelta(days=30),
                                                   byte_budget=10 * size, now=now)
    assert round_.matched == [] and list(round_.failed) == [second]
    with sessions() as session:
        checked = {sid: (b.verified_at, b.verified_ok, b.verification_problem, b.status)
                   for sid in (first, second, third) for b in [session.get(Backup, sid)]}
    assert checked[first][:3] == (now, True, None)
    assert checked[second][:3] == (now, False, round_.failed[second])
    assert checked[second][3] is BackupStatus.COMPLETED  # kept, but marked
    assert checked[third][0] == now - timedelta(days=1)  # checked recently: not due

    with sessions() as session:
        again = reverification.verify_due_backups(session, backups_storage, older_than=timedelta(days=30),
                                                  byte_budget=10 * size, now=now)
    assert (again.matched, again.failed) == ([], {})


def test_a_missing_archive_is_a_failed_check(sessions, files, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    sid = completed_backup(sessions, files, backups_storage, organization)
    backups_storage.delete(f"{organization.sid}/{sid}.zip")
    with sessions() as session:
        round_ = reverification.verify_due_backups(session, backups_storage, older_than=timedelta(0),
                                                   byte_budget=10**9)
    assert round_.failed == {sid: f"the archive {organization.sid}/{sid}.zip is missing from the backups store"}
