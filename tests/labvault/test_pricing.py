"""Estimates come from SQL aggregates and never undercharge the archive that is then made."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from labvault.errors import NotFoundError
from labvault.pricing import Pricing, estimate_backup
from tests.factories import make_organization
from tests.labvault.test_backups import PRICING, request_for, run_backup


def test_estimate_counts_and_bytes_match_the_data(sessions, organization) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        estimate = estimate_backup(session, organization.sid, PRICING)
    assert estimate.versions == len(organization.versions)
    assert estimate.files == len(organization.files)
    assert estimate.file_bytes == sum(len(data) for _, data in organization.files.values())
    assert estimate.estimated_bytes > estimate.file_bytes
    assert estimate.currency == "USD" and estimate.retention_days == 30


def test_the_estimate_is_never_below_the_real_archive(sessions, files, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        estimate = estimate_backup(session, organization.sid, PRICING)
    sid = run_backup(sessions, files, backups_storage, request_for(organization))
    archive = Path(backups_storage.url(f"{organization.sid}/{sid}.zip"))
    assert estimate.estimated_bytes >= archive.stat().st_size


def test_an_empty_organization_costs_nothing_but_the_manifest(sessions, files) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        make_organization(session, files, sid="empty", records=1, versions_per_record=0, file_names=[])
        estimate = estimate_backup(session, "empty", PRICING)
    assert (estimate.versions, estimate.files, estimate.file_bytes) == (0, 0, 0)
    assert estimate.cost == Decimal("0.01")  # rounded up to the cent, never free-but-charged


def test_prices_round_up_to_the_cent() -> None:
    pricing = Pricing(Decimal("0.10"), Decimal("0.03"), "EUR", retention_days=45)
    assert pricing.creation_cost(10**9) == Decimal("0.10")
    assert pricing.creation_cost(10**9 + 1) == Decimal("0.11")
    assert pricing.storage_cost_per_month(2 * 10**9) == Decimal("0.06")
    assert pricing.storage_cost_for_retention(2 * 10**9) == Decimal("0.09")


def test_unknown_organization(sessions) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session, pytest.raises(NotFoundError, match="organization 'nope' does not exist"):
        estimate_backup(session, "nope", PRICING)
