"""Listing backups as the Backups page does: keyword search, four status filters, organization."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from labvault import catalog
from labvault.backups import fail_backup, start_backup
from labvault.db.models import Backup, BackupStatus
from labvault.errors import InvalidInputError
from tests.factories import make_organization
from tests.labvault.test_backups import request_for


@pytest.fixture
def three_backups(sessions, files, organization):  # type: ignore[no-untyped-def]
    """Q1 (Completed), 'Before the 100% move' (Error), Nightly of org-2 (In Progress)."""
    with sessions() as session:
        other = make_organization(session, files, sid="org-2", file_names=[])
        q1 = start_backup(session, request_for(organization, name="Q1 audit", description="quarterly"),
                          now=datetime(2026, 1, 1, tzinfo=timezone.utc))
        session.get(Backup, q1).status = BackupStatus.COMPLETED
        session.commit()
        move = start_backup(session, request_for(organization, name="Before the 100% move",
                                                 description="lab relocation"),
                            now=datetime(2026, 2, 1, tzinfo=timezone.utc))
        fail_backup(session, move, "boom")
        nightly = start_backup(session, request_for(other, name="Nightly"),
                               now=datetime(2026, 3, 1, tzinfo=timezone.utc))
    return {"q1": q1, "move": move, "nightly": nightly}


def sids(sessions, **filters) -> list[str]:  # type: ignore[no-untyped-def]
    with sessions() as session:
        return [b.sid for b in catalog.list_backups(session, **filters)]


def test_newest_first_and_each_status_filter(sessions, three_backups) -> None:  # type: ignore[no-untyped-def]
    b = three_backups
    assert sids(sessions) == [b["nightly"], b["move"], b["q1"]]
    for name, expected in [("all", [b["nightly"], b["move"], b["q1"]]), ("completed", [b["q1"]]),
                           ("in-progress", [b["nightly"]]), ("error", [b["move"]]),
                           ("In Progress", [b["nightly"]]), ("ERROR", [b["move"]])]:
        assert sids(sessions, status=catalog.parse_status_filter(name)) == expected, name


def test_search_matches_sid_name_and_description_in_any_case(sessions, three_backups) -> None:  # type: ignore[no-untyped-def]
    b = three_backups
    assert sids(sessions, search="AUDIT") == [b["q1"]]
    assert sids(sessions, search="relocation") == [b["move"]]
    assert sids(sessions, search=b["nightly"][-6:].upper()) == [b["nightly"]]
    assert sids(sessions, search="100%") == [b["move"]]
    assert sids(sessions, search="%") == [b["move"]]  # a literal percent sign, not a wildcard
    assert sids(sessions, search="_") == []
    assert sids(sessions, search="nothing like it") == []


def test_filters_combine_with_organization(sessions, three_backups) -> None:  # type: ignore[no-untyped-def]
    b = three_backups
    assert sids(sessions, organization_sid="org-1") == [b["move"], b["q1"]]
    assert sids(sessions, organization_sid="org-1", status=BackupStatus.ERROR, search="move") == [b["move"]]


@pytest.mark.parametrize("value", ["done", "", "completed;--", "all "*3])
def test_an_unknown_status_filter_names_the_choices(value: str) -> None:
    with pytest.raises(InvalidInputError, match="use one of all, completed, in-progress, error"):
        catalog.parse_status_filter(value)


@pytest.mark.parametrize("keyword", ["", "   "])
def test_an_empty_keyword_is_refused(sessions, keyword: str) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session, pytest.raises(InvalidInputError, match="search keyword is empty"):
        catalog.list_backups(session, search=keyword)
