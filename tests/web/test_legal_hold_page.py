"""The Backups page and legal hold: the detail and the list say so, delete shows the refusal."""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import urlencode

from labvault import legal_hold
from labvault.db.models import Backup
from labvault.settings import get_settings
from labvault.storage.from_url import backups_store
from tests.web.conftest import csrf_of
from tests.web.test_backups_page import completed_backup


def test_a_backup_on_legal_hold_says_so_and_its_delete_is_refused(browser, sessions, organization) -> None:  # type: ignore[no-untyped-def]
    backup = completed_backup(browser, sessions, organization)
    sid = backup.sid
    with sessions() as session:
        legal_hold.set_legal_hold(session, backups_store(get_settings()), sid, organization.admin_email,
                                  on=True)
    detail = html.unescape(browser.get(f"/backups/{sid}").text)
    assert '<strong class="legal-hold">on legal hold</strong>' in detail
    assert f"<td>held</td><td>{organization.admin_email}</td><td>cli</td>" in detail
    assert "on legal hold" in browser.get("/backups").text

    confirm = browser.get(f"/backups/{sid}/delete")
    refused = browser.post(f"/backups/{sid}/delete", data={"csrf": csrf_of(confirm.text)})
    message = (f"backup {sid} is on legal hold; an admin releases it first "
               f"(`labvault backup release {sid} --as ADMIN`)")
    assert refused.status_code == 303
    assert refused.headers["location"] == f"/backups/{sid}?" + urlencode({"notice": message})
    assert message in html.unescape(browser.get(refused.headers["location"]).text)
    assert Path(backup.file_path).exists()
    with sessions() as session:
        assert session.get(Backup, sid).date_deleted is None
