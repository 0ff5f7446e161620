"""Settings from `LABVAULT_*` environment variables, with working defaults under `LABVAULT_HOME`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from labvault.errors import InvalidInputError


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

    @model_validator(mode="after")
    def _fill_defaults_under_home(self) -> "Settings":
        self.home = self.home.expanduser()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'labvault.db'}"
        if not self.files_url:
            self.files_url = str(self.home / "files")
        if not self.backups_url:
            self.backups_url = str(self.home / "backups")
        return self


def get_settings() -> Settings:
    """Read the settings now (tests and workers change the environment between calls)."""
    try:
        return Settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        variable = "LABVAULT_" + str(error["loc"][0]).upper() if error["loc"] else "LABVAULT_*"
        raise InvalidInputError(f"{variable}: {error['msg']}; fix that environment variable") from exc
