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


@pytest.mark.parametrize(("variable", "given", "loaded"), [
    ("LABVAULT_S3_CREDENTIALS_BLOCK", "aws-credentials/lab-s3", "lab-s3"),
    ("LABVAULT_S3_CREDENTIALS_BLOCK", "lab-s3", "lab-s3"),
    ("LABVAULT_SMTP_CREDENTIALS_BLOCK", "email-server-credentials/mailer", "mailer"),
    ("LABVAULT_DATABASE_PASSWORD_BLOCK", "secret/db-password", "db-password"),
])
def test_a_block_is_named_with_or_without_its_type(variable: str, given: str, loaded: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, given)
    assert getattr(get_settings(), variable.removeprefix("LABVAULT_").lower()) == loaded


@pytest.mark.parametrize(("variable", "given", "block_type"), [
    ("LABVAULT_S3_CREDENTIALS_BLOCK", "secret/lab-s3", "aws-credentials"),
    ("LABVAULT_SMTP_CREDENTIALS_BLOCK", "Mail Server", "email-server-credentials"),
    ("LABVAULT_DATABASE_PASSWORD_BLOCK", "secret/db/password", "secret"),
])
def test_a_block_name_that_cannot_be_one_names_the_variable_and_the_spelling(
        variable: str, given: str, block_type: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, given)
    with pytest.raises(InvalidInputError) as refused:
        get_settings()
    assert str(refused.value) == (
        f"{variable}: {given!r} does not name a block of type {block_type}; give `name` or "
        f"`{block_type}/name` (lowercase letters, digits and dashes); fix that environment variable")


@pytest.mark.parametrize(("variables", "error"), [
    ({"LABVAULT_DATABASE_URL": "postgresql+psycopg://lab:pw@db/lab", "LABVAULT_DATABASE_PASSWORD_BLOCK": "db"},
     "LABVAULT_DATABASE_URL carries a password and LABVAULT_DATABASE_PASSWORD_BLOCK names one; leave the "
     "password out of the URL"),
    ({"LABVAULT_SMTP_HOST": "mail.example.org", "LABVAULT_SMTP_CREDENTIALS_BLOCK": "mailer"},
     "LABVAULT_SMTP_CREDENTIALS_BLOCK gives the SMTP server and login; unset LABVAULT_SMTP_HOST and "
     "LABVAULT_SMTP_PASSWORD"),
])
def test_a_block_and_a_variable_giving_the_same_secret_are_refused(
        variables: dict[str, str], error: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABVAULT_SMTP_PASSWORD", raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InvalidInputError) as refused:
        get_settings()
    assert str(refused.value) == f"{error}; fix that environment variable"


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("LABVAULT_PRICE_PER_GB", "1e30", "LABVAULT_PRICE_PER_GB: Input should be less than or equal to 10000"),
    ("LABVAULT_STORAGE_PRICE_PER_GB_MONTH", "1e30",
     "LABVAULT_STORAGE_PRICE_PER_GB_MONTH: Input should be less than or equal to 10000"),
    ("LABVAULT_BACKUP_SLOTS", "maybe", "LABVAULT_BACKUP_SLOTS: Input should be 'auto', 'on' or 'off'"),
    ("LABVAULT_MAX_PARALLEL_BACKUPS", "-1",
     "LABVAULT_MAX_PARALLEL_BACKUPS: Input should be greater than or equal to 0"),
    ("LABVAULT_MAX_PARALLEL_BACKUPS", "many",
     "LABVAULT_MAX_PARALLEL_BACKUPS: Input should be a valid integer, unable to parse string as an integer"),
    ("LABVAULT_STALE_AFTER_MINUTES", "99999999999",
     "LABVAULT_STALE_AFTER_MINUTES: Input should be less than or equal to 5270400"),
])
def test_a_value_out_of_bounds_is_refused(variable: str, value: str, message: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidInputError) as refused:
        get_settings()
    assert str(refused.value) == f"{message}; fix that environment variable"


def test_a_home_that_is_a_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "home").write_text("not a folder")
    monkeypatch.setenv("LABVAULT_HOME", str(tmp_path / "home"))
    with pytest.raises(InvalidInputError) as refused:
        get_settings()
    assert str(refused.value) == (f"LABVAULT_HOME: '{tmp_path / 'home'}' is not a folder; point it at a "
                                  "folder (made if missing); fix that environment variable")


@pytest.mark.parametrize(("files", "backups"), [
    ("{home}/files", "{home}/files"),
    ("{home}/files", "{home}/files/backups"),
    ("{home}/files", "file://{home}/files/backups/"),
    ("{home}/store/files", "{home}/store"),
    ("s3://bucket/data", "s3://bucket/data/"),
    ("s3://bucket/data", "s3a://bucket/data/backups"),
])
def test_stores_that_overlap_are_refused(files: str, backups: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Expiry removes `*.partial` objects of the backups store: inside the files store it deleted
    an uploaded file whose name ended in `.partial`."""
    files, backups = files.format(home=tmp_path), backups.format(home=tmp_path)
    monkeypatch.setenv("LABVAULT_FILES_URL", files)
    monkeypatch.setenv("LABVAULT_BACKUPS_URL", backups)
    with pytest.raises(InvalidInputError) as refused:
        get_settings()
    assert str(refused.value) == (
        f"LABVAULT_BACKUPS_URL {backups!r} overlaps LABVAULT_FILES_URL {files!r}; expiry deletes partial "
        "archives in the backups store, so keep the two stores apart (neither inside the other); "
        "fix that environment variable")


@pytest.mark.parametrize(("files", "backups"), [
    ("{home}/files", "{home}/files-backups"),
    ("s3://bucket/data", "s3://bucket/data-backups"),
    ("s3://bucket/data", "{home}/bucket/data"),
])
def test_stores_side_by_side_are_accepted(files: str, backups: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABVAULT_FILES_URL", files.format(home=tmp_path))
    monkeypatch.setenv("LABVAULT_BACKUPS_URL", backups.format(home=tmp_path))
    assert get_settings().backups_url == backups.format(home=tmp_path)
