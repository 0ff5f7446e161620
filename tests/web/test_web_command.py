"""`labvault web` as an admin starts it: the printed sign-in link, and its refusals."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port
from tests.web.conftest import csrf_of

LABVAULT = Path(sys.executable).with_name("labvault")


def test_the_printed_link_signs_the_admin_in(settings, organization, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    process = subprocess.Popen([str(LABVAULT), "web", "--port", str(port), "--as", organization.admin_email],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        first, second = process.stdout.readline(), process.stdout.readline()
        assert first == f"Sign in to the Backups page of {organization.sid} (once, within 15 minutes):\n"
        link = second.strip()
        assert re.fullmatch(rf"http://127\.0\.0\.1:{port}/sign-in/link\?token=[\w-]{{40,}}", link), link
        with httpx.Client(timeout=30) as client:
            for _ in range(100):
                try:
                    confirm = client.get(link)
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            signed_in = client.post(link.split("?")[0], data={"token": link.split("token=")[1],
                                                               "csrf": csrf_of(confirm.text)})
            assert signed_in.status_code == 303
            assert "No backups yet." in client.get(f"http://127.0.0.1:{port}/backups").text
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_link_for_someone_who_is_no_admin_is_refused_in_one_line(settings, organization) -> None:  # type: ignore[no-untyped-def]
    done = subprocess.run([str(LABVAULT), "web", "--as", organization.member_email], capture_output=True,
                          text=True, timeout=120)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (f"error: '{organization.member_email}' is not an admin of any organization (or "
                           "asked for too many links in the last 15 minutes); give an admin's email\n")
