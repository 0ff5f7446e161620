"""Credentials from Prefect blocks (saved on the session's Prefect server) instead of environment
variables: S3 keys from an AwsCredentials block, the SMTP login from an EmailServerCredentials
block, the database password from a Secret block. None of them is seen in the run's record."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
from prefect.blocks.system import Secret
from prefect_aws import AwsCredentials
from prefect_email import EmailServerCredentials
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from labvault.db.models import BackupStatus
from labvault.errors import InvalidInputError
from labvault.storage.from_url import files_store
from tests.archive_checks import assert_archive_matches
from tests.cli.test_cli import labvault
from tests.conftest import S3_ACCESS_KEY, S3_SECRET_KEY, SMTP_PASSWORD
from tests.factories import make_organization
from tests.flows.run_record import run_record
from tests.flows.test_create_backup import backup_of, run

# The keys both test servers accept (SeaweedFS checks signatures; moto takes any key).
AWS_KEY_ID, AWS_SECRET = S3_ACCESS_KEY, S3_SECRET_KEY
DATABASE_PASSWORD = "db-block-Pa55-never-printed"
ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def block_name() -> str:
    return f"lab-{uuid.uuid4().hex[:8]}"


@ON_SQLITE
def test_a_backup_reaches_s3_with_the_keys_of_an_aws_credentials_block(  # type: ignore[no-untyped-def]
        sessions, s3_settings, s3_endpoint, monkeypatch, tmp_path) -> None:
    with sessions() as session:
        organization = make_organization(session, files_store(s3_settings), file_names=["scan.tif", "a.txt"])
    name = block_name()
    AwsCredentials(aws_access_key_id=AWS_KEY_ID, aws_secret_access_key=AWS_SECRET, region_name="us-east-1",
                   aws_client_parameters={"endpoint_url": s3_endpoint}).save(name)
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(variable)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("LABVAULT_S3_CREDENTIALS_BLOCK", f"aws-credentials/{name}")

    state = run(organization)

    assert state.is_completed(), state.message
    backup = backup_of(sessions, state)
    assert backup.status is BackupStatus.COMPLETED
    shown = labvault("backup", "show", backup.sid, "--json")  # the CLI reads the block too
    assert shown.exit_code == 0, shown.output
    link = json.loads(shown.stdout)["download_url"]
    assert f"AWSAccessKeyId={AWS_KEY_ID}" in link
    downloaded = httpx.get(link, timeout=60)
    assert downloaded.status_code == 200
    (tmp_path / "downloaded.zip").write_bytes(downloaded.content)
    assert_archive_matches(tmp_path / "downloaded.zip", organization, backup)
    record = run_record(state)
    assert backup.sid in record  # the logs and artifacts were read
    assert AWS_SECRET not in record + shown.output


@ON_SQLITE
def test_the_notice_goes_through_the_server_and_login_of_an_email_credentials_block(  # type: ignore[no-untyped-def]
        sessions, organization, smtp_login_server, monkeypatch) -> None:
    mailbox, logins, port = smtp_login_server
    name = block_name()
    EmailServerCredentials(username="mailer", password=SMTP_PASSWORD, smtp_server="127.0.0.1",
                           smtp_type="INSECURE", smtp_port=port).save(name)
    monkeypatch.setenv("LABVAULT_SMTP_CREDENTIALS_BLOCK", name)

    state = run(organization)

    assert state.is_completed(), state.message
    backup = backup_of(sessions, state)
    assert logins == [("mailer", SMTP_PASSWORD)]
    [(recipients, message)] = mailbox.messages
    assert recipients == [organization.admin_email]
    assert message["Subject"] == "[labvault] Backup 'Weekly' Completed"
    assert backup.sid in message.get_content()
    record = run_record(state)
    assert f"""notice "[labvault] Backup 'Weekly' Completed" emailed to {organization.admin_email}""" in record
    assert SMTP_PASSWORD not in record


@pytest.fixture
def role_with_password(postgres_url: str) -> Iterator[str]:
    """A login role with DATABASE_PASSWORD that may use the session's PostgreSQL database; its URL
    carries no password."""
    role = f"labvault_block_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD '{DATABASE_PASSWORD}'"))
        connection.execute(text(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}"))
        connection.execute(text(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}"))
    try:
        yield make_url(postgres_url).set(username=role).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP OWNED BY {role}"))
            connection.execute(text(f"DROP ROLE {role}"))
        admin.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_database_password_comes_from_a_secret_block(  # type: ignore[no-untyped-def]
        sessions, organization, role_with_password, monkeypatch) -> None:
    from tasks import context

    name = block_name()
    Secret(value=DATABASE_PASSWORD).save(name)
    monkeypatch.setenv("LABVAULT_DATABASE_URL", role_with_password)
    monkeypatch.setenv("LABVAULT_DATABASE_PASSWORD_BLOCK", f"secret/{name}")

    state = run(organization)

    assert state.is_completed(), state.message
    backup = backup_of(sessions, state)
    assert backup.status is BackupStatus.COMPLETED
    # The server trusts loopback and checks no password: what libpq was given shows it was sent.
    with context.sessions()() as session:
        connection = session.connection().connection.dbapi_connection
        assert (connection.info.user, connection.info.password) == (make_url(role_with_password).username,
                                                                   DATABASE_PASSWORD)
    record = run_record(state)
    assert backup.sid in record
    assert DATABASE_PASSWORD not in record


@ON_SQLITE
@pytest.mark.parametrize(("variable", "block_type"), [
    ("LABVAULT_S3_CREDENTIALS_BLOCK", "aws-credentials"),
    ("LABVAULT_SMTP_CREDENTIALS_BLOCK", "email-server-credentials"),
    ("LABVAULT_DATABASE_PASSWORD_BLOCK", "secret"),
])
def test_a_missing_block_is_named_with_the_command_that_creates_it(  # type: ignore[no-untyped-def]
        settings, monkeypatch, variable, block_type) -> None:
    from tasks import context

    monkeypatch.setenv(variable, "no-such-block")
    use = {"LABVAULT_S3_CREDENTIALS_BLOCK": context.backups_storage,
           "LABVAULT_SMTP_CREDENTIALS_BLOCK": lambda: context.smtp_settings(context.settings()),
           "LABVAULT_DATABASE_PASSWORD_BLOCK": context.sessions}[variable]
    with pytest.raises(InvalidInputError) as refused:
        use()
    assert str(refused.value) == (
        f"{variable} 'no-such-block': no Prefect {block_type} block has that name; create it with "
        f"`prefect block create {block_type}` (or on the Blocks page of the Prefect UI)")


@ON_SQLITE
def test_a_run_naming_a_missing_block_fails_before_a_backup_exists(sessions, organization, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LABVAULT_SMTP_CREDENTIALS_BLOCK", "no-such-mailer")

    state = run(organization)

    assert state.is_failed()
    assert state.message.endswith(
        "LABVAULT_SMTP_CREDENTIALS_BLOCK 'no-such-mailer': no Prefect email-server-credentials block has "
        "that name; create it with `prefect block create email-server-credentials` (or on the Blocks page "
        "of the Prefect UI)")
    assert backup_of(sessions, state) is None


@ON_SQLITE
def test_a_block_whose_stored_fields_fail_validation_is_refused_without_showing_them(settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import BlockDocumentUpdate

    from tasks import context

    name = block_name()
    block_id = EmailServerCredentials(username="mailer", password=SMTP_PASSWORD, smtp_server="127.0.0.1",
                                      smtp_type="INSECURE").save(name)
    with get_client(sync_client=True) as client:  # as a block saved by another version may look
        client.update_block_document(block_id, BlockDocumentUpdate(
            data={"username": "mailer", "password": SMTP_PASSWORD, "smtp_port": f"port-{SMTP_PASSWORD}"},
            merge_existing_data=False))
    monkeypatch.setenv("LABVAULT_SMTP_CREDENTIALS_BLOCK", name)
    with pytest.raises(InvalidInputError) as refused:
        context.smtp_settings(context.settings())
    assert str(refused.value) == (
        f"LABVAULT_SMTP_CREDENTIALS_BLOCK {name!r}: the stored block is not a valid email-server-credentials "
        "block for the prefect-aws / prefect-email installed here; open it on the Blocks page of the Prefect "
        "UI and save it again")
    assert refused.value.__suppress_context__  # the traceback does not show the stored values either
