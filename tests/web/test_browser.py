"""A lab admin's journey through the Backups page in Chromium, against `labvault web` on a
loopback port with the embedded default (its own Prefect, flows in the web process) and the
SMTP sink of the other tests. Screenshots of each screen stay in the test's folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import launch_chromium
from tests.conftest import free_port

ROOT = Path(__file__).parents[2]
LABVAULT = Path(sys.executable).with_name("labvault")


@pytest.fixture
def web_server(smtp_server, settings, organization, tmp_path: Path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """`labvault web` as an admin starts it: a process of its own, no Prefect server."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               LABVAULT_PUBLIC_URL=url)
    log = (tmp_path / "web.log").open("wb")
    process = subprocess.Popen([str(LABVAULT), "web", "--port", str(port)], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/sign-in", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "web.log").read_text()
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def emailed_link(smtp_server: Any, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for _, message in smtp_server.messages:
            found = re.search(r"(http://\S+/sign-in/link\?\S+)", message.get_content())
            if found:
                return found.group(1)
        time.sleep(0.2)
    raise AssertionError("no sign-in email arrived")


def test_a_lab_admin_manages_backups_in_the_browser(web_server: str, smtp_server, sessions, files, organization, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=90_000)
    shots = tmp_path / "screens"
    shots.mkdir()
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
            page.set_default_timeout(90_000)

            # 1. sign in through the emailed link
            page.goto(f"{web_server}/backups")
            expect(page).to_have_url(re.compile(r"/sign-in\?next="))
            page.fill("#email", organization.admin_email)
            page.click("text=Email me a sign-in link")
            expect(page.locator("h1")).to_have_text("Check your email")
            page.goto(emailed_link(smtp_server))
            page.screenshot(path=str(shots / "sign-in.png"))
            page.click("button:has-text('Sign in')")
            expect(page.locator("h1")).to_have_text("Backups")
            expect(page.locator("text=No backups yet.")).to_be_visible()

            # 2. + Add Backup shows the cost first
            page.click("text=+ Add Backup")
            expect(page.locator(".cost .amount")).to_contain_text("USD")
            page.screenshot(path=str(shots / "add-backup.png"), full_page=True)

            # 3. submit; the detail page goes from In Progress to Completed without a reload
            page.fill("#name", "Q3 audit")
            page.fill("#description", "before the move")
            page.click("button:has-text('Submit')")
            expect(page).to_have_url(re.compile(r"/backups/bk-[0-9a-f]+$"))
            page.evaluate("window.__same_page = true")
            expect(page.locator("#backup-fields")).to_have_attribute("data-status", "Completed")
            assert page.evaluate("window.__same_page === true"), "the page was reloaded"
            page.screenshot(path=str(shots / "detail.png"), full_page=True)
            first_sid = page.url.rsplit("/", 1)[1]

            # 5. download the archive and verify it with the CLI
            with page.expect_download() as download_info:
                page.click(f"a[href='/backups/{first_sid}/download']")
            archive = tmp_path / "downloaded.zip"
            download_info.value.save_as(archive)
            verified = subprocess.run([str(LABVAULT), "backup", "verify", str(archive)],
                                      capture_output=True, text=True, timeout=120)
            assert verified.returncode == 0, verified.stderr
            assert "every entry matches the manifest" in verified.stdout

            # an interrupted download resumes where it stopped (curl -C -)
            cookie = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())
            resumed = tmp_path / "resumed.zip"
            resumed.write_bytes(archive.read_bytes()[:1000])
            subprocess.run(["curl", "-sf", "-C", "-", "-o", str(resumed), "-H", f"Cookie: {cookie}",
                            f"{web_server}/backups/{first_sid}/download"], check=True, timeout=60)
            assert resumed.read_bytes() == archive.read_bytes()

            # a second backup, then 4. search and clear, and each filter
            page.goto(f"{web_server}/backups/new")
            page.fill("#name", "Nightly")
            page.click("button:has-text('Submit')")
            expect(page.locator("#backup-fields")).to_have_attribute("data-status", "Completed")
            page.goto(f"{web_server}/backups")
            expect(page.locator("tbody tr")).to_have_count(2)
            page.fill("input[name=q]", "audit")
            page.click("button:has-text('Search')")
            expect(page.locator("tbody tr")).to_have_count(1)
            expect(page).to_have_url(re.compile(r"q=audit"))
            page.screenshot(path=str(shots / "search.png"), full_page=True)
            page.click("text=Clear")
            expect(page.locator("tbody tr")).to_have_count(2)
            for label, rows in (("Backups completed", 2), ("Backups in progress", 0),
                                ("Backups with errors", 0), ("All backups", 2)):
                page.click(f"nav.filters >> text={label}")
                expect(page.locator("tbody tr")).to_have_count(rows)
            page.screenshot(path=str(shots / "list.png"), full_page=True)

            # 6. delete one from the list and the other from its detail page
            page.click(f"tr[data-sid='{first_sid}'] a.delete")
            page.click("button:has-text('Delete')")
            expect(page.locator(".notice")).to_contain_text(f"Backup {first_sid} (Q3 audit) deleted.")
            expect(page.locator("tbody tr")).to_have_count(1)
            page.click("tbody tr a")
            page.click("a:has-text('Delete')")
            page.click("button:has-text('Delete')")
            expect(page.locator("text=No backups yet.")).to_be_visible()

            # 7. a backup that fails: its reason shows; with the blob back, Retry completes it
            row, data = sorted(organization.files.values(), key=lambda item: item[0].uid)[0]
            files.delete(row.storage_key)
            page.goto(f"{web_server}/backups/new")
            page.fill("#name", "Will fail")
            page.click("button:has-text('Submit')")
            expect(page.locator("#backup-fields")).to_have_attribute("data-status", "Error")
            expect(page.locator("#backup-fields .error")).to_contain_text(
                f"file {row.uid} ({row.name}) is missing from the files store")
            page.screenshot(path=str(shots / "error.png"), full_page=True)
            pending = files.open_write(row.storage_key)
            pending.write(data)
            pending.commit()
            page.click("button:has-text('Retry')")
            expect(page.locator("#backup-fields")).to_have_attribute("data-status", "Completed")
            expect(page.locator("table.audit")).to_contain_text("retried")
        finally:
            browser.close()
    assert {path.name for path in shots.iterdir()} >= {"list.png", "detail.png", "add-backup.png"}
