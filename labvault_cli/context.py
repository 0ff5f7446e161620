"""What every command works with: the settings, the database and the stores they name (with
the credentials of Prefect blocks where named), and flow runs in this process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from labvault.db.engine import session_factory
from labvault.settings import Settings, get_settings
from labvault.storage.from_url import backups_store, files_store
from labvault.storage.s3 import S3Credentials
from labvault.storage.store import Storage
from labvault_cli.errors import user_errors


def load_settings() -> Settings:
    """The settings; a bad one ends as the one `error:` line."""
    with user_errors():
        return get_settings()


def prefect_blocks() -> ModuleType:
    """`tasks.context`, which loads the credential blocks the settings name; imported only then,
    since it starts Prefect."""
    from labvault_cli.prefect_console import quiet_prefect_console
    from tasks import context

    quiet_prefect_console()
    return context


@contextmanager
def prefect_starting() -> Iterator[None]:
    """Prefect's start-up failures as one line (reading a block starts Prefect, as a flow does)."""
    from labvault_cli.prefect_console import prefect_start_errors

    with prefect_start_errors():
        yield


def labvault_database_url(settings: Settings) -> str:
    """LABVAULT_DATABASE_URL, with the password of LABVAULT_DATABASE_PASSWORD_BLOCK if one is named."""
    if not settings.database_password_block:
        return settings.database_url
    with user_errors(), prefect_starting():
        return prefect_blocks().database_url(settings)


def s3_credentials(settings: Settings) -> S3Credentials | None:
    """The keys of LABVAULT_S3_CREDENTIALS_BLOCK, if one is named."""
    if not settings.s3_credentials_block:
        return None
    with user_errors(), prefect_starting():
        return prefect_blocks().s3_credentials(settings)


def files_store_with_credentials(settings: Settings) -> Storage:
    """LABVAULT_FILES_URL's store, with the keys of LABVAULT_S3_CREDENTIALS_BLOCK if one is named."""
    return files_store(settings, s3_credentials(settings))


def backups_store_with_credentials(settings: Settings) -> Storage:
    """LABVAULT_BACKUPS_URL's store, with the keys of LABVAULT_S3_CREDENTIALS_BLOCK if one is named."""
    return backups_store(settings, s3_credentials(settings))


def sessions(settings: Settings):  # type: ignore[no-untyped-def]
    return session_factory(labvault_database_url(settings))


def run_flow(flow: Callable[..., Any], **parameters: Any) -> Any:
    """Run a flow in this process and return its final state (Prefect's ephemeral mode if no
    PREFECT_API_URL is set). Prefect's console stays quiet: a labvault error ends as the one
    `error:` line, its tracebacks only in the run's logs."""
    from prefect import tags

    from labvault_cli.prefect_console import prefect_start_errors, quiet_prefect_console
    from tasks.run_tags import door_tag

    quiet_prefect_console()
    with prefect_start_errors(), tags(door_tag("cli")):
        return flow(**parameters, return_state=True)
