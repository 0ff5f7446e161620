"""SMTP and S3 credentials never appear in logs, artifacts, errors or `show` output."""

from __future__ import annotations

import logging

from tests.cli.test_cli import labvault
from tests.conftest import S3_SECRET_KEY
from tests.factories import make_organization
from tests.flows.run_record import run_record
from tests.flows.test_create_backup import backup_of, run

SMTP_PASSWORD = "smtp-Pa55-never-printed"


def test_credentials_stay_out_of_everything_a_user_sees(sessions, s3_settings, smtp_server, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    from labvault.storage.from_url import files_store

    monkeypatch.setenv("LABVAULT_SMTP_USERNAME", "mailer")
    monkeypatch.setenv("LABVAULT_SMTP_PASSWORD", SMTP_PASSWORD)
    with sessions() as session:
        organization = make_organization(session, files_store(s3_settings), file_names=["a.txt"])
    row, _ = next(iter(organization.files.values()))
    files_store(s3_settings).delete(row.storage_key)  # a failure too, so errors are seen
    with caplog.at_level(logging.DEBUG):
        failed = run(organization)
    assert failed.is_failed()

    backup = backup_of(sessions, failed)
    seen = [caplog.text, backup.error or "", run_record(failed)]
    shown = labvault("backup", "show", backup.sid, "--json")
    seen += [shown.stdout, shown.stderr]
    listed = labvault("backup", "list")
    seen += [listed.stdout]
    seen += [message.as_string() for _, message in smtp_server.messages]
    everything = "\n".join(seen)
    assert "is missing from the files store" in everything  # we did look at the right output
    for secret in (SMTP_PASSWORD, S3_SECRET_KEY):  # the secret both S3 servers check
        assert secret not in everything
