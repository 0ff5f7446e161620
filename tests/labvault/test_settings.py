from pathlib import Path

import pytest

from labvault.errors import InvalidInputError
from labvault.settings import get_settings


def test_defaults_live_under_labvault_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABVAULT_HOME", str(tmp_path))
    for name in ("DATABASE_URL", "FILES_URL", "BACKUPS_URL", "RETENTION_DAYS"):
        monkeypatch.delenv(f"LABVAULT_{name}", raising=False)
    settings = get_settings()
    assert settings.database_url == f"sqlite:///{tmp_path / 'labvault.db'}"
    assert settings.files_url == str(tmp_path / "files")
    assert settings.backups_url == str(tmp_path / "backups")
    assert settings.retention_days == 30


@pytest.mark.parametrize("value", ["-1", "0", "many"])
def test_a_bad_retention_names_the_variable(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABVAULT_RETENTION_DAYS", value)
    with pytest.raises(InvalidInputError, match="^LABVAULT_RETENTION_DAYS: "):
        get_settings()
