"""Engine and session factory, built once per database URL; the schema comes from Alembic.

The caller owns the session: domain functions take a `Session` and never commit on their own
unless their contract says so.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from labvault.errors import InvalidInputError
from labvault.json_codec import load_json
from labvault.url_secrets import masked_url

MIGRATIONS = Path(__file__).with_name("migrations")


def _enable_sqlite_concurrency(engine: Engine) -> None:
    """WAL lets a backup stream rows while another connection records progress."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    """One engine per URL for the life of the process (connection pools are per engine)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInputError(
            "LABVAULT_DATABASE_URL is not a valid SQLAlchemy URL; use e.g. sqlite:///path.db"
        ) from exc
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, pool_pre_ping=True, json_deserializer=load_json)
    if parsed.get_backend_name() == "sqlite":
        _enable_sqlite_concurrency(engine)
    return engine


def check_connection(url: str, *, name: str) -> None:
    """Connect once, so a database given as `name` (an option or parameter naming a target) that
    cannot be reached or refuses us is named in the error; a bare connection failure would read
    as a fault of LABVAULT_DATABASE_URL."""
    try:
        with engine_for(url).connect():
            pass
    except (SQLAlchemyError, OSError) as exc:
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
        raise InvalidInputError(f"{name} {masked_url(url)!r}: cannot connect ({reason}); check the URL, "
                                "that the database is up and that the user may log in") from exc


@lru_cache(maxsize=8)
def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(engine_for(url), expire_on_commit=False)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = url
    return config


def upgrade_schema(url: str, revision: str = "head") -> None:
    """Create or upgrade the schema by migration (never `create_all` outside tests)."""
    command.upgrade(alembic_config(url), revision)
