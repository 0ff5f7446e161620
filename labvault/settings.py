"""Settings from `LABVAULT_*` environment variables, with working defaults under `LABVAULT_HOME`."""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from labvault.errors import InvalidInputError
from labvault.url_secrets import credentials_in

# The Prefect block type each `*_block` setting names; the Prefect side loads the block.
BLOCK_TYPES = {"s3_credentials_block": "aws-credentials",
               "smtp_credentials_block": "email-server-credentials",
               "database_password_block": "secret"}
_BLOCK_NAME = re.compile(r"(?:(?P<type>[a-z0-9-]+)/)?(?P<name>[a-z0-9-]+)")

# LABVAULT_S3_OBJECT_LOCK's values: none, or S3's two retention modes.
OBJECT_LOCK_MODES = ("", "governance", "compliance")
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
    s3_object_lock: str = Field(
        "", description="governance or compliance: each archive on the S3 backups store is locked "
                        "(S3 Object Lock) until the backup's expiry date; its bucket must have Object "
                        "Lock enabled. Empty (the default): no lock.",
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
    backup_slots: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Whether a backup holds its organization's Prefect global concurrency slot (and "
                    "its store's, with LABVAULT_MAX_PARALLEL_BACKUPS). auto: when PREFECT_API_URL "
                    "names a server, whose services free a killed run's slot when its lease ends; "
                    "Prefect's temporary server (used without PREFECT_API_URL) runs no services, so "
                    "there a killed run's slot would stay taken for ever. The database's guard keeps "
                    "backups of one organization apart either way.",
    )
    max_parallel_backups: int = Field(
        0, ge=0, le=10_000,
        description="Most backups writing to the backups store at once, across every worker "
                    "(0: no cap); a backup over the cap waits for a slot.",
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
    smtp_ssl: bool = Field(False, description="Connect to SMTP over TLS from the start (SMTPS, port 465).")
    smtp_from: str = Field("labvault@localhost", description="Sender address of notices.")
    public_url: str = Field(
        "", description="Address of the Backups page (`labvault web`) as people reach it, e.g. "
                        "https://backups.example.org; emails link there. Empty: emails give the "
                        "archive's path.")
    web_secret_key: SecretStr | None = Field(
        None, description="Key signing the Backups page's session cookies; empty: a random key "
                          "kept in <home>/web-secret-key (sessions survive restarts).")
    web_session_hours: int = Field(
        8, ge=1, le=24 * 30, description="Hours a Backups page session lasts before signing in again.")

    s3_credentials_block: str = Field(
        "", description="Prefect AwsCredentials block (`name` or `aws-credentials/name`) whose keys, "
                        "region and endpoint reach S3, in place of the AWS_* variables.")
    smtp_credentials_block: str = Field(
        "", description="Prefect EmailServerCredentials block (`name` or `email-server-credentials/name`) "
                        "giving the SMTP server, port, TLS and login, in place of LABVAULT_SMTP_HOST, "
                        "_PORT, _USERNAME, _PASSWORD, _STARTTLS and _SSL.")
    database_password_block: str = Field(
        "", description="Prefect Secret block (`name` or `secret/name`) holding the password of "
                        "LABVAULT_DATABASE_URL, which then carries none.")

    @field_validator(*BLOCK_TYPES, mode="after")
    @classmethod
    def _bare_block_name(cls, value: str, info: ValidationInfo) -> str:
        """The block's own name: Prefect's `Block.load` on a block class takes it without the type."""
        if not value:
            return value
        block_type = BLOCK_TYPES[str(info.field_name)]
        match = _BLOCK_NAME.fullmatch(value)
        if match is None or match["type"] not in (None, block_type):
            raise ValueError(f"{value!r} does not name a block of type {block_type}; give `name` or "
                             f"`{block_type}/name` (lowercase letters, digits and dashes)")
        return match["name"]

    @field_validator("notify_emails", mode="before")
    @classmethod
    def _split_addresses(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("s3_object_lock")
    @classmethod
    def _object_lock_mode(cls, value: str) -> str:
        mode = value.strip().lower()
        if mode not in OBJECT_LOCK_MODES:
            raise ValueError(f"{value!r} is no Object Lock mode; use governance or compliance, or leave "
                             "it empty for none")
        return mode

    @field_validator("public_url")
    @classmethod
    def _web_address(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("give the page's address, starting with https:// (or http:// on a "
                             "trusted network)")
        return value.rstrip("/")

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
        if self.smtp_ssl and self.smtp_starttls:
            raise ValueError("LABVAULT_SMTP_SSL and LABVAULT_SMTP_STARTTLS are both set; keep the one "
                             "your server speaks")
        if self.smtp_credentials_block and (self.smtp_host or self.smtp_password is not None):
            raise ValueError("LABVAULT_SMTP_CREDENTIALS_BLOCK gives the SMTP server and login; unset "
                             "LABVAULT_SMTP_HOST and LABVAULT_SMTP_PASSWORD")
        if self.database_password_block and credentials_in(self.database_url):
            raise ValueError("LABVAULT_DATABASE_URL carries a password and LABVAULT_DATABASE_PASSWORD_BLOCK "
                             "names one; leave the password out of the URL")
        if self.s3_object_lock and _location(self.backups_url)[0] != "s3":
            raise ValueError(f"LABVAULT_S3_OBJECT_LOCK={self.s3_object_lock}: Object Lock needs an S3 "
                             f"backups store, and LABVAULT_BACKUPS_URL is {self.backups_url!r}; point it "
                             "at s3://bucket/prefix or unset LABVAULT_S3_OBJECT_LOCK")
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
