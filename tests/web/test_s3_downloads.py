"""Downloads from an S3 backups store: a redirect to a presigned URL that lives for minutes."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from labvault.db.models import BackupStatus
from tests.web.conftest import csrf_of, sign_in_as, wait_for_status


@pytest.fixture
def backups_on_s3(settings, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> str:  # type: ignore[no-untyped-def]
    """The backups store on S3 (listed before `browser`, so the page is made with it)."""
    monkeypatch.setenv("LABVAULT_BACKUPS_URL", f"s3://{s3_bucket}/backups")
    monkeypatch.setenv("LABVAULT_S3_PART_SIZE_MB", "5")
    return s3_bucket


def test_an_s3_archive_downloads_through_a_presigned_url_valid_for_minutes(backups_on_s3, browser, sessions, organization) -> None:  # type: ignore[no-untyped-def]
    sign_in_as(browser, sessions, organization.admin_email)
    form = browser.get("/backups/new")
    created = browser.post("/backups", data={"name": "On S3", "csrf": csrf_of(form.text)})
    sid = created.headers["location"].removeprefix("/backups/")
    assert wait_for_status(sessions, sid).status is BackupStatus.COMPLETED

    redirected = browser.get(f"/backups/{sid}/download")
    assert redirected.status_code == 303
    link = redirected.headers["location"]
    query = parse_qs(urlparse(link).query)
    if "X-Amz-Expires" in query:  # signature version 4
        assert query["X-Amz-Expires"] == ["300"]
    else:  # version 2, as s3fs signs for these endpoints: an absolute expiry time
        assert 0 < int(query["Expires"][0]) - time.time() <= 300
    assert urlparse(link).path.endswith(f"/backups/{organization.sid}/{sid}.zip")
    whole = httpx.get(link, timeout=60)
    assert whole.status_code == 200 and whole.content[:4] == b"PK\x03\x04"
    part = httpx.get(link, headers={"Range": "bytes=0-99"}, timeout=60)
    assert part.status_code == 206 and part.content == whole.content[:100]
