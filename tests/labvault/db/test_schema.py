"""The schema comes from Alembic and matches the models."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from labvault.db.engine import engine_for, upgrade_schema
from labvault.db.models import Base
from tests.databases import fresh_postgres_database, postgres_admin_url

CONTRACT = {
    "organizations": {"sid", "name"},
    "users": {"id", "organization_sid", "email", "name", "is_admin"},
    "records": {"sid", "organization_sid", "name"},
    "versions": {"sid", "record_sid", "organization_sid", "number", "data", "created_at", "created_by"},
    "files": {"uid", "organization_sid", "record_sid", "name", "size", "content_type", "storage_key",
              "created_at"},
    "backups": {"sid", "organization_sid", "name", "description", "status", "versions", "files",
                "file_size", "file_path", "cost", "error", "created_by", "date_created",
                "date_completed", "date_expired", "date_deleted", "flow_run_id", "heartbeat_at"},
}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'schema.db'}"
        return
    with fresh_postgres_database(postgres_admin_url()) as url:
        yield url


def test_migrations_create_exactly_the_models(empty_database: str) -> None:
    url = empty_database
    upgrade_schema(url)
    upgrade_schema(url)  # a second upgrade is a no-op
    with engine_for(url).connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert diff == []
        inspector = inspect(connection)
        for table, columns in CONTRACT.items():
            assert columns <= {c["name"] for c in inspector.get_columns(table)}, table


@pytest.mark.parametrize(("ci", "verdict"), [("true", "1 error"), ("", "1 skipped")])
def test_an_unreachable_postgresql_fails_in_ci_and_skips_elsewhere(ci: str, verdict: str) -> None:
    root = Path(__file__).parents[3]
    env = {**os.environ, "CI": ci,
           "LABVAULT_TEST_POSTGRES_URL": "postgresql+psycopg://postgres@127.0.0.1:9/postgres"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
         "tests/labvault/test_backups.py::test_list_is_newest_first_and_unknown_sid_is_not_found"],
        cwd=root, env=env, capture_output=True, text=True,
    )
    assert verdict in result.stdout, result.stdout
    assert "PostgreSQL at postgresql+psycopg://postgres@127.0.0.1:9/postgres is unreachable" in result.stdout
    assert (result.returncode != 0) == (ci == "true")


def test_the_legal_hold_migration_goes_up_and_down_keeping_the_backups(empty_database: str) -> None:
    from alembic import command

    from labvault.db.engine import alembic_config

    url = empty_database
    upgrade_schema(url, "0005")
    with engine_for(url).begin() as connection:
        connection.exec_driver_sql("INSERT INTO organizations (sid, name) VALUES ('org-1', 'Lab')")
        connection.exec_driver_sql(
            "INSERT INTO backups (sid, organization_sid, name, description, status, date_created) "
            "VALUES ('bk-1', 'org-1', 'Old', '', 'completed', CURRENT_TIMESTAMP)")
    upgrade_schema(url)
    with engine_for(url).connect() as connection:
        assert connection.exec_driver_sql("SELECT sid, legal_hold FROM backups").all() == [("bk-1", False)]
    command.downgrade(alembic_config(url), "0005")
    with engine_for(url).connect() as connection:
        assert "legal_hold" not in {c["name"] for c in inspect(connection).get_columns("backups")}
        assert connection.exec_driver_sql("SELECT sid, name FROM backups").all() == [("bk-1", "Old")]
