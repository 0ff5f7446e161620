"""Prefect global concurrency limits around a backup's work, under the Prefect harness: two runs
of one organization wait for each other rather than one being refused, and a store's cap holds."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import select

from flows.create_backup import create_backup
from labvault.db.models import Backup, BackupStatus
from labvault.settings import get_settings
from tasks.slots import ensure_limits, organization_limit, slots_apply, store_limit
from tests.factories import make_organization
from tests.timelines import most_at_once


def limits() -> dict[str, int]:
    with get_client(sync_client=True) as client:
        return {limit.name: limit.limit for limit in client.read_global_concurrency_limits(limit=200)
                if limit.name.startswith("labvault-")}


def at_once(*runs: Callable[[], Any]) -> list[Any]:
    """Start every run at the same moment, each in a thread of its own; their final states."""
    with ThreadPoolExecutor(len(runs)) as pool:
        return [future.result() for future in [pool.submit(run) for run in runs]]


def backup_run(organization: Any, name: str) -> Callable[[], Any]:
    return lambda: create_backup(organization_sid=organization.sid, name=name,
                                 requested_by=organization.admin_email, return_state=True)


@pytest.fixture(autouse=True)
def _slow_backups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every backup spends 3 s copying its files, so runs started together do collide."""
    from labvault import backups

    copy_files = backups.copy_files

    def slowly(*args: Any, **kwargs: Any) -> int:
        time.sleep(3)
        return copy_files(*args, **kwargs)

    monkeypatch.setattr(backups, "copy_files", slowly)


@pytest.fixture(autouse=True)
def _no_limits_left_over() -> None:
    with get_client(sync_client=True) as client:
        for name in limits():
            client.delete_global_concurrency_limit_by_name(name)


def test_two_runs_of_one_organization_both_complete_one_after_the_other(sessions, organization) -> None:  # type: ignore[no-untyped-def]
    """Without the organization's limit the second start is refused (`already has backup … in
    progress`): here it waits for the first backup's end, then makes its own."""
    states = at_once(backup_run(organization, "first"), backup_run(organization, "second"))
    assert [state.is_completed() for state in states] == [True, True], [s.message for s in states]
    with sessions() as session:
        made = session.scalars(select(Backup).where(Backup.organization_sid == organization.sid)).all()
    assert sorted(b.name for b in made) == ["first", "second"]
    assert {b.status for b in made} == {BackupStatus.COMPLETED}
    assert most_at_once(made) == 1
    assert limits() == {f"labvault-org-{organization.sid}": 1}  # made once, by whichever came first


def test_the_store_cap_keeps_backups_of_different_organizations_apart(sessions, files, organization, monkeypatch, settings) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        other = make_organization(session, files, sid="org-2")
    monkeypatch.setenv("LABVAULT_MAX_PARALLEL_BACKUPS", "1")
    states = at_once(backup_run(organization, "one"), backup_run(other, "two"))
    assert [state.is_completed() for state in states] == [True, True], [s.message for s in states]
    with sessions() as session:
        made = session.scalars(select(Backup)).all()
    assert len(made) == 2 and most_at_once(made) == 1
    store = store_limit(settings.backups_url)
    assert limits() == {"labvault-org-org-1": 1, "labvault-org-org-2": 1, store: 1}
    assert settings.backups_url not in store and "home" not in store


def test_limits_are_made_once_and_set_back_to_their_size() -> None:
    ensure_limits({"labvault-org-lab-x": 1, "labvault-store-abc": 4})
    ensure_limits({"labvault-org-lab-x": 1, "labvault-store-abc": 4})
    assert limits() == {"labvault-org-lab-x": 1, "labvault-store-abc": 4}
    ensure_limits({"labvault-store-abc": 2})  # LABVAULT_MAX_PARALLEL_BACKUPS changed
    assert limits() == {"labvault-org-lab-x": 1, "labvault-store-abc": 2}


def test_limit_names_carry_no_secret_and_only_characters_prefect_takes() -> None:
    assert organization_limit("lab-a") == "labvault-org-lab-a"
    odd = organization_limit("lab/a&b")
    assert odd.startswith("labvault-org-") and "/" not in odd and "&" not in odd
    with_password = store_limit("https://user:hunter2@store.example/backups")
    assert "hunter2" not in with_password and with_password.startswith("labvault-store-")
    assert store_limit("s3://bucket/a") != store_limit("s3://bucket/b")


def test_auto_takes_slots_only_against_a_server_named_by_prefect_api_url(settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert slots_apply(get_settings())  # the harness's server is named
    with temporary_settings(restore_defaults={PREFECT_API_URL}):  # the CLI's temporary server
        assert not slots_apply(get_settings())
    monkeypatch.setenv("LABVAULT_BACKUP_SLOTS", "on")
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert slots_apply(get_settings())


def test_with_slots_off_none_is_taken_and_the_database_refuses_a_second_backup(sessions, organization, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LABVAULT_BACKUP_SLOTS", "off")
    states = at_once(backup_run(organization, "first"), backup_run(organization, "second"))
    assert sorted(state.is_completed() for state in states) == [False, True]
    [refused] = [state for state in states if not state.is_completed()]
    assert "already has backup" in refused.message and "in progress" in refused.message
    assert limits() == {}
