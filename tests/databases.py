"""Test databases: a fresh SQLite file per test, or a fresh PostgreSQL database per session.

PostgreSQL comes from `LABVAULT_TEST_POSTGRES_URL` (default: the machine's server on
127.0.0.1:5432 as user postgres). Unreachable, it fails every PostgreSQL test in CI (`CI=true`)
and skips them, with the reason, on a developer's machine.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from labvault.db.engine import engine_for
from labvault.db.models import Base
from tests.services import unavailable

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
# Every table of the models, so a table added later is emptied too.
TABLES = ", ".join(sorted(Base.metadata.tables))


def postgres_admin_url() -> str:
    """The server to make test databases on; fail (CI) or skip (elsewhere) if it does not answer."""
    url = os.environ.get("LABVAULT_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 5})
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:  # any reason PostgreSQL cannot be used is the same verdict
        reason = f"PostgreSQL at {make_url(url).render_as_string(hide_password=True)} is unreachable: {exc}"
        unavailable(reason, "PostgreSQL")
    return url


@contextmanager
def fresh_postgres_database(admin_url: str) -> Iterator[str]:
    """CREATE a database with a unique name, yield its URL, DROP it (forcing out connections)."""
    name = f"labvault_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        engine_for(url).dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def empty_postgres_tables(url: str) -> None:
    """Between tests: every table emptied; fail fast rather than wait on a stuck connection."""
    with engine_for(url).begin() as connection:
        connection.execute(text("SET LOCAL lock_timeout = '10s'"))
        connection.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
