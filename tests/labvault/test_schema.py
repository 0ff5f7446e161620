"""The schema comes from Alembic and matches the models; the domain does not import Prefect."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from labvault.database import engine_for, upgrade_schema
from labvault.models import Base

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


def test_migrations_create_exactly_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'schema.db'}"
    upgrade_schema(url)
    upgrade_schema(url)  # a second upgrade is a no-op
    with engine_for(url).connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert diff == []
        inspector = inspect(connection)
        for table, columns in CONTRACT.items():
            assert columns <= {c["name"] for c in inspector.get_columns(table)}, table


def test_the_domain_package_never_imports_prefect() -> None:
    domain = Path(__file__).parents[2] / "labvault"
    modules = sorted(f"labvault.{p.stem}" for p in domain.glob("*.py") if p.stem != "__init__")
    code = f"import sys; import {', '.join(modules)}; print('prefect' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
