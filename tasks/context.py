"""What every task needs from the environment, read when the task runs (never at import).

This is the one place that loads Prefect blocks: a `LABVAULT_*_BLOCK` setting names a block whose
credentials are read here, each time they are needed (a rotated key is seen by the next task),
and handed to the Prefect-free domain as plain values that live in memory only: never in an
environment variable, a run parameter, a log line or an error message.
"""

from __future__ import annotations

import logging
from typing import TypeVar

from prefect.blocks.core import Block
from prefect.blocks.system import Secret
from sqlalchemy.orm import Session, sessionmaker

from labvault.db.engine import session_factory
from labvault.errors import InvalidInputError
from labvault.notification import Notifier, notifier_for
from labvault.settings import Settings, get_settings
from labvault.storage.from_url import backups_store, files_store
from labvault.storage.s3 import S3Credentials
from labvault.storage.store import Storage
from labvault.url_secrets import with_password

B = TypeVar("B", bound=Block)


def settings() -> Settings:
    return get_settings()


def load_block(block_class: type[B], block_name: str, *, name: str) -> B:
    """The block `block_name` of `block_class`'s type, named by the setting or option `name`."""
    slug = block_class.get_block_type_slug()
    try:
        return block_class.load(block_name)
    except ValueError:  # Prefect's "Unable to find block document named …"
        raise InvalidInputError(f"{name} {block_name!r}: no Prefect {slug} block has that name; create "
                                f"it with `prefect block create {slug}` (or on the Blocks page of the "
                                "Prefect UI)") from None
    except RuntimeError:  # stored fields that fail validation; their values (secrets too) unshown
        raise InvalidInputError(f"{name} {block_name!r}: the stored block is not a valid {slug} block "
                                "for the prefect-aws / prefect-email installed here; open it on the "
                                "Blocks page of the Prefect UI and save it again") from None


def secret_password(block_name: str, *, name: str) -> str:
    """The text held by the Prefect Secret block `block_name` (given as `name`): a password that
    never travels as a parameter or a setting, read where it is used."""
    value = load_block(Secret, block_name, name=name).get()
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"{name} {block_name!r}: the Secret block must hold the password as text")
    return value


def database_url(current: Settings | None = None) -> str:
    """LABVAULT_DATABASE_URL, with the password of LABVAULT_DATABASE_PASSWORD_BLOCK set in it:
    for an engine only, never to be shown."""
    current = current or settings()
    if not current.database_password_block:
        return current.database_url
    password = secret_password(current.database_password_block, name="LABVAULT_DATABASE_PASSWORD_BLOCK")
    return with_password(current.database_url, password)


def sessions() -> sessionmaker[Session]:
    return session_factory(database_url())


def run_id() -> str | None:
    """The flow run this task belongs to: the run that holds its backup (see labvault.liveness)."""
    from prefect.runtime import flow_run

    return flow_run.id


def s3_credentials(current: Settings) -> S3Credentials | None:
    """The keys, region and endpoint of LABVAULT_S3_CREDENTIALS_BLOCK (an AwsCredentials block);
    None leaves S3 to the AWS variables, ~/.aws or an instance role."""
    if not current.s3_credentials_block:
        return None
    from prefect_aws import AwsCredentials  # boto3 and prefect-aws: only S3 users pay the import

    setting = "LABVAULT_S3_CREDENTIALS_BLOCK"
    block = load_block(AwsCredentials, current.s3_credentials_block, name=setting)
    session = block.get_boto3_session()  # resolves a profile or an assumed role into keys
    found = session.get_credentials()
    if found is None:
        raise InvalidInputError(f"{setting} {current.s3_credentials_block!r}: the block gives no AWS "
                                "credentials; set its access key id and secret access key (or a profile)")
    keys = found.get_frozen_credentials()
    return S3Credentials(access_key_id=keys.access_key, secret_access_key=keys.secret_key,
                         session_token=keys.token, region=session.region_name,
                         endpoint_url=block.aws_client_parameters.endpoint_url)


def files(current: Settings | None = None) -> Storage:
    current = current or settings()
    return files_store(current, s3_credentials(current))


def backups_storage(current: Settings | None = None) -> Storage:
    current = current or settings()
    return backups_store(current, s3_credentials(current))


def smtp_settings(current: Settings) -> Settings:
    """`current` with the SMTP server, port, TLS and login of LABVAULT_SMTP_CREDENTIALS_BLOCK (an
    EmailServerCredentials block) in place of the LABVAULT_SMTP_* ones."""
    if not current.smtp_credentials_block:
        return current
    from prefect_email import EmailServerCredentials
    from prefect_email.credentials import SMTPType

    block = load_block(EmailServerCredentials, current.smtp_credentials_block,
                       name="LABVAULT_SMTP_CREDENTIALS_BLOCK")
    security = SMTPType(block.smtp_type)
    server = getattr(block.smtp_server, "value", block.smtp_server)  # an SMTPServer name or a host
    return current.model_copy(update={
        "smtp_host": server, "smtp_port": block.smtp_port or security.value,
        "smtp_ssl": security is SMTPType.SSL, "smtp_starttls": security is SMTPType.STARTTLS,
        "smtp_username": block.username or "", "smtp_password": block.password if block.username else None,
    })


def check_credentials() -> None:
    """Load every block the settings name, so a missing one is refused before any work starts
    rather than when a late step (the notice) first needs it."""
    current = settings()
    database_url(current)
    s3_credentials(current)
    smtp_settings(current)


def notifier(logger: logging.Logger | logging.LoggerAdapter) -> Notifier:  # type: ignore[type-arg]
    """How notices go out: SMTP (from the settings or their block), else `logger`."""
    return notifier_for(smtp_settings(settings()), logger)
