"""What every task needs from the environment, read when the task runs (never at import)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from labvault.database import session_factory
from labvault.settings import Settings, get_settings
from labvault.storage import Storage, backups_store, files_store


def settings() -> Settings:
    return get_settings()


def sessions() -> sessionmaker[Session]:
    return session_factory(settings().database_url)


def run_id() -> str | None:
    """The flow run this task belongs to: the run that holds its backup (see labvault.liveness)."""
    from prefect.runtime import flow_run

    return flow_run.id


def files() -> Storage:
    return files_store(settings())


def backups_storage() -> Storage:
    return backups_store(settings())
