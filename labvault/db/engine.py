"""Engine and session factory, built once per database URL; the schema comes from Alembic.

The caller owns the session: domain functions take a `Session` and never commit on their own
unless their contract says so.
"""

from __future__ import annotations

import os
import sqlite3
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from labvault.errors import InvalidInputError, NotFoundError
from labvault.json_codec import load_json
from labvault.url_secrets import masked_url

MIGRATIONS = Path(__file__).with_name("migrations")
URL_EXAMPLE = "sqlite:///path.db or postgresql+psycopg://user@host/database"


def _enable_sqlite_concurrency(engine: Engine) -> None:
    """WAL lets a backup stream rows while another connection records progress."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def _sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite URL; None for other databases and in-memory SQLite."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).expanduser()


def _open_existing_sqlite_only(engine: Engine, path: Path) -> None:
    """SQLite would create a missing file on connect: a command that only reads would leave an
    empty database behind. Connections open the file read-write but never create it; only
    `upgrade_schema` (the one place a schema is made) creates it."""

    @event.listens_for(engine, "do_connect")
    def _connect(_dialect, _record, cargs, cparams) -> None:  # type: ignore[no-untyped-def]
        if not path.is_file():
            raise NotFoundError(f"database {str(path)!r} does not exist; run `labvault db upgrade` to "
                                "create it, or point LABVAULT_DATABASE_URL at an existing database")
        cargs[:1] = [f"file:{quote(str(path.absolute()))}?mode=rw"]
        cparams["uri"] = True


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    """One engine per URL for the life of the process (connection pools are per engine)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInputError(
            f"LABVAULT_DATABASE_URL is not a valid SQLAlchemy URL; use e.g. {URL_EXAMPLE}"
        ) from exc
    try:
        engine = create_engine(parsed, pool_pre_ping=True, json_deserializer=load_json)
    except NoSuchModuleError as exc:
        raise InvalidInputError(f"LABVAULT_DATABASE_URL {masked_url(parsed)!r}: unknown database dialect "
                                f"{parsed.drivername!r}; use e.g. {URL_EXAMPLE}") from exc
    except ImportError as exc:
        raise InvalidInputError(f"LABVAULT_DATABASE_URL {masked_url(parsed)!r}: the driver for "
                                f"{parsed.drivername!r} is not installed ({exc}); install it or "
                                f"use e.g. {URL_EXAMPLE}") from exc
    if parsed.get_backend_name() == "sqlite":
        _enable_sqlite_concurrency(engine)
        path = _sqlite_file(parsed)
        if path is not None:
            _open_existing_sqlite_only(engine, path)
    return engine


def create_sqlite_file(url: str) -> None:
    """Make an empty SQLite database file (and its folder) for a SQLite URL whose file is missing;
    other databases are made by their administrators."""
    path = _sqlite_file(make_url(url))
    if path is None or path.exists():
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sqlite3.connect(path).close()
    except (OSError, sqlite3.Error) as exc:
        reason = ("a file stands where a folder is needed" if isinstance(exc, (FileExistsError, NotADirectoryError))
                  else getattr(exc, "strerror", None) or str(exc))
        raise InvalidInputError(f"cannot create the database file {str(path)!r}: {reason}; "
                                "point LABVAULT_DATABASE_URL at a writable folder") from exc


def check_connection(url: str, *, name: str) -> None:
    """Connect once, so a database given as `name` (an option or parameter naming a target) that
    cannot be reached or refuses us is named in the error; a bare connection failure would read
    as a fault of LABVAULT_DATABASE_URL. A SQLite file not made yet passes when its folder can
    be made: `upgrade_schema` creates it."""
    path = _sqlite_file(make_url(url))
    if path is not None and not path.exists():
        folder = path.parent
        while not folder.exists():
            folder = folder.parent
        if not (folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)):
            raise InvalidInputError(f"{name} {masked_url(url)!r}: cannot create the database file there "
                                    f"({str(folder)!r} is not a writable folder)")
        return
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
    """Create or upgrade the schema by migration (never `create_all` outside tests); a SQLite
    file is created here, and only here."""
    create_sqlite_file(url)
    command.upgrade(alembic_config(url), revision)
