"""verify-backups: the periodic check as a flow, its emails and the run's outcome."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from flows.verify_backups import verify_backups
from labvault_cli.main import app as cli
from tests.flows.test_create_backup import backup_of, run
from tests.flows.test_lifecycle_flows import newest_artifact


def test_a_changed_archive_fails_the_run_and_its_admins_are_emailed(smtp_server, sessions, organization) -> None:  # type: ignore[no-untyped-def]
    good, bad = backup_of(sessions, run(organization)), backup_of(sessions, run(organization))
    data = bytearray(Path(bad.file_path).read_bytes())
    data[len(data) // 2] ^= 0xFF
    Path(bad.file_path).write_bytes(bytes(data))
    smtp_server.messages.clear()

    state = verify_backups(older_than_days=0, return_state=True)
    assert state.is_failed()
    assert state.message == (f"1 archive(s) no longer match their manifest: {bad.sid}; "
                             "their admins were emailed")
    [(recipients, message)] = smtp_server.messages
    assert recipients == [organization.admin_email]
    assert message["Subject"] == "[labvault] Backup 'Weekly' failed its periodic check"
    assert bad.sid in message.get_content() and "Do not rely on it for a restore" in message.get_content()
    assert f"`{bad.sid}`" in newest_artifact("backup-verification")

    shown = CliRunner().invoke(cli, ["backup", "show", bad.sid])
    assert "last verification" in shown.stdout and "FAILED" in shown.stdout
    listed = CliRunner().invoke(cli, ["backup", "list"], env={"COLUMNS": "200"})
    assert "ok" in listed.stdout and "FAILED" in listed.stdout
    with sessions() as session:
        from labvault.db.models import Backup

        assert session.get(Backup, good.sid).verified_ok is True

    assert verify_backups(older_than_days=30, return_state=True).is_completed()  # nothing due
