"""SQLAlchemy models of the platform being backed up and of its backups.

Table and column names follow the schema contract (DESIGN.md §2) exactly, so labvault can be
pointed at an existing platform database. Columns beyond the contract are nullable or defaulted.
"""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from labvault.utc import utcnow


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend.

    SQLite keeps no offset, so values are stored as naive UTC and come back aware; PostgreSQL
    stores `timestamptz`. A naive value handed in is taken to be UTC already.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Organization(Base):
    __tablename__ = "organizations"

    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organization_sid: Mapped[str] = mapped_column(ForeignKey("organizations.sid"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(255), default="")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)


class Record(Base):
    __tablename__ = "records"

    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_sid: Mapped[str] = mapped_column(ForeignKey("organizations.sid"), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")


class Version(Base):
    __tablename__ = "versions"

    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    record_sid: Mapped[str] = mapped_column(ForeignKey("records.sid"), index=True)
    organization_sid: Mapped[str] = mapped_column(ForeignKey("organizations.sid"))
    number: Mapped[int] = mapped_column(Integer)
    data: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str | None] = mapped_column(String(320), nullable=True)

    __table_args__ = (Index("ix_versions_organization_sid_sid", "organization_sid", "sid"),)


class File(Base):
    __tablename__ = "files"

    uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_sid: Mapped[str] = mapped_column(ForeignKey("organizations.sid"))
    record_sid: Mapped[str | None] = mapped_column(ForeignKey("records.sid"), nullable=True)
    name: Mapped[str] = mapped_column(Text)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    storage_key: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_files_organization_sid_uid", "organization_sid", "uid"),)


class BackupStatus(str, enum.Enum):
    """Stored as the short value; shown to people as the label."""

    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    ERROR = "error"

    @property
    def label(self) -> str:
        return {"in_progress": "In Progress", "completed": "Completed", "error": "Error"}[self.value]


RUNNING = "status = 'in_progress' AND date_deleted IS NULL"


class Backup(Base):
    __tablename__ = "backups"

    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_sid: Mapped[str] = mapped_column(ForeignKey("organizations.sid"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[BackupStatus] = mapped_column(
        Enum(
            BackupStatus,
            native_enum=False,
            length=16,
            values_callable=lambda statuses: [s.value for s in statuses],
            validate_strings=True,
            name="backup_status",
        )
    )
    versions: Mapped[int | None] = mapped_column(Integer, nullable=True)
    files: Mapped[int | None] = mapped_column(Integer, nullable=True)
    file_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    file_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    cost: Mapped[Decimal | None] = mapped_column(Numeric(12, 2), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(320), nullable=True)
    date_created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    date_completed: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    date_expired: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    date_deleted: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    flow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    progress_done: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    progress_total: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Chosen for this backup; empty means LABVAULT_RETENTION_DAYS at completion.
    retention_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The last check of the archive against its manifest (after writing, then periodically):
    # when, whether it matched, and if not, the first problems found.
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    verified_ok: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    verification_problem: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Kept whatever its expiry says until an admin releases it (litigation, an inspection):
    # expiry skips it and delete refuses it.
    legal_hold: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))

    __table_args__ = (
        # At most one running backup per organization, enforced by the database itself.
        Index("uq_backups_one_in_progress_per_organization", "organization_sid", unique=True,
              sqlite_where=text(RUNNING), postgresql_where=text(RUNNING)),
        # The Backups page: one organization's backups, newest first, a page at a time.
        Index("ix_backups_organization_sid_date_created", "organization_sid", "date_created"),
    )


class RestoreRun(Base):
    """A restore whose rows committed: written in the same transaction as them, so a restore
    killed after its commit is known to have committed and its staged blobs are put in place
    by whoever finds them (`restore_staging`), never thrown away."""

    __tablename__ = "restore_runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_sid: Mapped[str] = mapped_column(String(64))
    committed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SignInToken(Base):
    """A one-time sign-in link for one admin account: only the token's hash is kept, and it
    works once, for minutes."""

    __tablename__ = "sign_in_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuditEvent(Base):
    """Who did what to which backup, when, and through which door. Append-only, and kept after
    the backup is deleted (no foreign key: the backup row may be gone or never have existed)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    organization_sid: Mapped[str] = mapped_column(String(64))
    backup_sid: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(320))
    door: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (Index("ix_audit_events_backup", "backup_sid", "at"),)
