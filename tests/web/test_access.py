"""Who gets in: every access rule of the Backups page, over HTTP."""

from __future__ import annotations

import html
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update

from labvault import sign_in
from labvault.backups import BackupRequest, start_backup
from labvault.db.models import Backup, SignInToken, User
from labvault.utc import utcnow
from tests.factories import make_organization
from tests.web.conftest import csrf_of, sign_in_as


def a_backup(sessions: Any, organization: Any) -> str:
    with sessions() as session:
        sid = start_backup(session, BackupRequest(organization.sid, "Weekly", "", organization.admin_email))
        backup = session.get(Backup, sid)
        backup.status, backup.error = backup.status.ERROR, "file u1 (a.pdf) is missing"
        session.commit()
    return sid


def backup_count(sessions: Any) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Backup))


def test_without_a_session_pages_ask_to_sign_in_and_posts_are_refused(browser, sessions, organization) -> None:  # type: ignore[no-untyped-def]
    sid = a_backup(sessions, organization)
    for path in ("/backups", f"/backups/{sid}", f"/backups/{sid}/download", "/backups/new"):
        response = browser.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/sign-in?next=%2Fbackups"), path
    form = browser.get("/sign-in")
    refused = browser.post(f"/backups/{sid}/delete", data={"csrf": csrf_of(form.text)})
    assert refused.status_code == 403 and "sign in again" in refused.text
    with sessions() as session:
        assert session.get(Backup, sid).date_deleted is None


def test_the_emailed_link_signs_in_once_and_unknown_addresses_get_the_same_answer(smtp_server, browser, sessions, organization) -> None:  # type: ignore[no-untyped-def]
    form = browser.get("/sign-in?next=/backups/new")
    answers = []
    for email in (organization.admin_email, "nobody@example.org", organization.member_email):
        answer = browser.post("/sign-in", data={"email": email, "csrf": csrf_of(form.text),
                                                "next": "/backups/new"})
        assert answer.status_code == 200
        answers.append(answer.text)
    assert answers[0] == answers[1] == answers[2]
    [(recipients, message)] = smtp_server.messages
    assert recipients == [organization.admin_email]
    link = next(line.strip() for line in message.get_content().splitlines() if "/sign-in/link?" in line)
    path = link.removeprefix("http://testserver")
    confirm = browser.get(path)
    token = path.split("token=")[1].split("&")[0]
    used = browser.post("/sign-in/link", data={"token": token, "csrf": csrf_of(confirm.text),
                                               "next": "/backups/new"})
    assert (used.status_code, used.headers["location"]) == (303, "/backups/new")
    cookie = used.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "max-age=28800" in cookie
    assert browser.get("/backups").status_code == 200
    with sessions() as session:
        stored = session.scalars(select(SignInToken.token_hash)).all()
    assert token not in stored and len(stored) == 1  # only its hash is kept

    again = browser.post("/sign-in/link", data={"token": token, "csrf": csrf_of(browser.get("/backups").text)})
    assert again.status_code == 403
    assert "this sign-in link has expired or was already used; ask for a new one" in again.text


def test_an_expired_link_is_refused(browser, sessions, organization) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        [(_, token)] = sign_in.issue_links(session, organization.admin_email)
        session.execute(update(SignInToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    confirm = browser.get("/sign-in/link", params={"token": token})
    refused = browser.post("/sign-in/link", data={"token": token, "csrf": csrf_of(confirm.text)})
    assert refused.status_code == 403 and "expired or was already used" in refused.text
    assert browser.get("/backups").status_code == 303


def test_sign_in_requests_are_limited_per_address(smtp_server, browser, sessions, organization) -> None:  # type: ignore[no-untyped-def]
    form = browser.get("/sign-in")
    for _ in range(sign_in.LINKS_PER_ADDRESS + 2):
        browser.post("/sign-in", data={"email": organization.admin_email, "csrf": csrf_of(form.text)})
    assert len(smtp_server.messages) == sign_in.LINKS_PER_ADDRESS


def test_an_admin_removed_since_signing_in_gets_403(browser, sessions, organization) -> None:  # type: ignore[no-untyped-def]
    sign_in_as(browser, sessions, organization.admin_email)
    assert browser.get("/backups").status_code == 200
    with sessions() as session:
        session.scalar(select(User).where(User.email == organization.admin_email)).is_admin = False
        session.commit()
    refused = browser.get("/backups")
    assert refused.status_code == 403 and "not an admin" in refused.text


def test_another_organizations_admin_gets_404_and_never_sees_its_backups(browser, sessions, files, organization) -> None:  # type: ignore[no-untyped-def]
    sid = a_backup(sessions, organization)
    with sessions() as session:
        other = make_organization(session, files, sid="org-2")
    sign_in_as(browser, sessions, other.admin_email)
    listing = browser.get("/backups")
    assert listing.status_code == 200 and sid not in listing.text and "No backups yet." in listing.text
    searched = browser.get("/backups", params={"q": sid}).text
    assert "No backups match." in searched and f'data-sid="{sid}"' not in searched
    for path in (f"/backups/{sid}", f"/backups/{sid}/download", f"/backups/{sid}/fields",
                 f"/backups/{sid}/delete"):
        response = browser.get(path)
        assert response.status_code == 404, path
        assert f"backup {sid!r} does not exist" in html.unescape(response.text)
    csrf = csrf_of(listing.text)
    for action in ("delete", "retry"):
        assert browser.post(f"/backups/{sid}/{action}", data={"csrf": csrf}).status_code == 404
    with sessions() as session:
        backup = session.get(Backup, sid)
        assert backup.date_deleted is None and backup.status is backup.status.ERROR


def test_a_post_without_the_sessions_csrf_token_changes_nothing(browser, sessions, organization) -> None:  # type: ignore[no-untyped-def]
    sid = a_backup(sessions, organization)
    sign_in_as(browser, sessions, organization.admin_email)
    for data in ({}, {"csrf": "forged"}, {"csrf": ""}):
        for path in ("/backups", f"/backups/{sid}/delete", f"/backups/{sid}/retry", "/sign-out"):
            response = browser.post(path, data={"name": "x", **data})
            assert response.status_code == 403, (path, data)
            assert "This form is stale or did not come from this page" in response.text
    assert backup_count(sessions) == 1
    with sessions() as session:
        backup = session.get(Backup, sid)
        assert backup.date_deleted is None and backup.status is backup.status.ERROR
    assert browser.get("/backups").status_code == 200  # still signed in


def test_sign_out_ends_the_session(browser, sessions, organization) -> None:  # type: ignore[no-untyped-def]
    sign_in_as(browser, sessions, organization.admin_email)
    page = browser.get("/backups")
    out = browser.post("/sign-out", data={"csrf": csrf_of(page.text)})
    assert (out.status_code, out.headers["location"]) == (303, "/sign-in")
    assert browser.get("/backups").status_code == 303


def test_after_sign_in_only_paths_of_this_site_are_followed(browser, sessions, organization) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        [(_, token)] = sign_in.issue_links(session, organization.admin_email)
    confirm = browser.get("/sign-in/link", params={"token": token, "next": "https://evil.example/"})
    done = browser.post("/sign-in/link", data={"token": token, "csrf": csrf_of(confirm.text),
                                               "next": "//evil.example/"})
    assert done.headers["location"] == "/backups"


def test_sign_in_requests_are_limited_per_client(smtp_server, browser, sessions, organization) -> None:  # type: ignore[no-untyped-def]
    """Ten requests from one client in 15 minutes, whatever the addresses; the answer stays the same."""
    form = browser.get("/sign-in")
    answers = {browser.post("/sign-in", data={"email": f"guess{number}@example.org",
                                             "csrf": csrf_of(form.text)}).text for number in range(10)}
    over = browser.post("/sign-in", data={"email": organization.admin_email, "csrf": csrf_of(form.text)})
    assert over.status_code == 200 and answers == {over.text}
    assert smtp_server.messages == []


def test_behind_https_the_session_cookie_is_secure(monkeypatch, browser, sessions, organization) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from labvault.settings import get_settings
    from labvault_web.app import create_app

    monkeypatch.setenv("LABVAULT_PUBLIC_URL", "https://backups.example.org")
    with TestClient(create_app(get_settings()), base_url="https://backups.example.org",
                    follow_redirects=False) as secure_browser:
        with sessions() as session:
            [(_, token)] = sign_in.issue_links(session, organization.admin_email)
        confirm = secure_browser.get("/sign-in/link", params={"token": token})
        done = secure_browser.post("/sign-in/link", data={"token": token, "csrf": csrf_of(confirm.text)})
    cookie = done.headers["set-cookie"].lower()
    assert "; secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie
