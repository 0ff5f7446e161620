"""Settings from `LABVAULT_*` environment variables, with working defaults under `LABVAULT_HOME`."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from labvault.errors import InvalidInputError

# Ten years: a longer window is no window, and `now - window` must stay a date.
MAX_STALE_AFTER_MINUTES = 10 * 366 * 24 * 60
# Costs are stored as NUMERIC(12, 2): at this price 10 TB (LABVAULT_ARCHIVE_MAX_BYTES) still fits.
MAX_PRICE_PER_GB = Decimal(10_000)


class Settings(BaseSettings):
    """Everything labvault reads from its environment; built by `get_settings()`, never at import."""

    model_config = SettingsConfigDict(env_prefix="LABVAULT_", extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path.home() / ".labvault",
        description="Data folder holding the embedded database, files store and backups by default.",
    )
    database_url: str = Field(
        "",
        description="SQLAlchemy URL of the platform database; default: SQLite file <home>/labvault.db.",
    )
    files_url: str = Field(
        "", description="fsspec URL of the uploaded-files store; default: folder <home>/files."
    )
    backups_url: str = Field(
        "", description="fsspec URL where archives are written; default: folder <home>/backups."
    )
    retention_days: int = Field(
        30, ge=1, le=3650, description="Days a completed backup is kept, counted from its completion."
    )

    s3_part_size_mb: int = Field(
        8, ge=5, le=5120,
        description="Smallest part size of S3 multipart uploads in MiB (up to five parts are held in "
                    "memory); an archive expected to need more than 10,000 parts gets larger ones.",
    )
    verify_after_backup: bool = Field(
        True, description="Read every archive back from its destination and check it against its "
                          "manifest before marking the backup Completed (turn off for huge archives).",
    )
    archive_max_bytes: int = Field(
        10 * 1024**4, ge=1,
        description="Most bytes an archive's entries may expand to when it is verified or restored "
                    "(10 TiB by default); an archive declaring more is refused unread.",
    )
    stale_after_minutes: int = Field(
        60, ge=1, le=MAX_STALE_AFTER_MINUTES,
        description="An In Progress backup with no progress for this long is reaped to Error.",
    )
    price_per_gb: Decimal = Field(
        Decimal("0.10"), ge=0, le=MAX_PRICE_PER_GB,
        description="One-off charge per GB (10^9 bytes) of backup created.",
    )
    storage_price_per_gb_month: Decimal = Field(
        Decimal("0.02"), ge=0, le=MAX_PRICE_PER_GB,
        description="Charge per GB and month while a backup is kept.",
    )
    currency: str = Field("USD", min_length=3, max_length=3, description="ISO 4217 code of prices.")
    notify_emails: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated addresses told of every backup too."
    )
    smtp_host: str = Field("", description="SMTP server; empty means notices are only logged.")
    smtp_port: int = Field(25, ge=1, le=65535, description="SMTP port.")
    smtp_username: str = Field("", description="SMTP user name, if the server wants a login.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password (never logged).")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS.")
    smtp_from: str = Field("labvault@localhost", description="Sender address of notices.")

    @field_validator("notify_emails", mode="before")
    @classmethod
    def _split_addresses(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("home")
    @classmethod
    def _home_is_a_folder(cls, value: Path) -> Path:
        value = value.expanduser()
        if value.exists() and not value.is_dir():
            raise ValueError(f"{str(value)!r} is not a folder; point it at a folder (made if missing)")
        return value

    @model_validator(mode="after")
    def _fill_defaults_under_home(self) -> "Settings":
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'labvault.db'}"
        if not self.files_url:
            self.files_url = str(self.home / "files")
        if not self.backups_url:
            self.backups_url = str(self.home / "backups")
        if self.smtp_username and self.smtp_password is None:
            raise ValueError("smtp_password is required when smtp_username is set")
        if _overlap(self.files_url, self.backups_url):
            raise ValueError(
                f"LABVAULT_BACKUPS_URL {self.backups_url!r} overlaps LABVAULT_FILES_URL "
                f"{self.files_url!r}; expiry deletes partial archives in the backups store, so keep "
                "the two stores apart (neither inside the other)")
        return self


def _location(url: str) -> tuple[str, str]:
    """A store URL as (protocol, path without trailing slash); a plain path is an absolute
    local one."""
    protocol, found, path = url.partition("://")
    if not found or protocol == "file":
        return "file", os.path.abspath(os.path.expanduser(path if found else url))
    return {"s3a": "s3"}.get(protocol, protocol), path.rstrip("/")


def _overlap(first: str, second: str) -> bool:
    """Whether one store is the other or lies inside it."""
    (protocol_a, a), (protocol_b, b) = _location(first), _location(second)
    return protocol_a == protocol_b and (a == b or a.startswith(b.rstrip("/") + "/")
                                         or b.startswith(a.rstrip("/") + "/"))


def get_settings() -> Settings:
    """Read the settings now (tests and workers change the environment between calls)."""
    try:
        return Settings()
    except SettingsError as exc:
        raise InvalidInputError(f"{exc}; fix that environment variable") from exc
    except ValidationError as exc:
        error = exc.errors()[0]
        reason = str(error["ctx"]["error"]) if error["type"] == "value_error" else error["msg"]
        if error["loc"]:
            reason = f"LABVAULT_{str(error['loc'][0]).upper()}: {reason}"
        raise InvalidInputError(f"{reason}; fix that environment variable") from exc
