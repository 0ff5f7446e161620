"""URLs with credentials: refused as parameters, masked wherever shown (no Prefect needed)."""

from __future__ import annotations

import pytest

from labvault.errors import InvalidInputError
from labvault.url_secrets import credentials_in, database_url, files_url, masked_url, refuse_credentials

PASSWORD = "pw-Never-Shown"


@pytest.mark.parametrize(("url", "shown"), [
    (f"postgresql+psycopg://user:{PASSWORD}@db.example:5432/lab",
     "postgresql+psycopg://user:***@db.example:5432/lab"),
    (f"postgresql+psycopg://user@db/lab?sslmode=require&password={PASSWORD}",
     "postgresql+psycopg://user@db/lab?sslmode=require&password=***"),
    (f"ftp://user:p@{PASSWORD}@host/archive.zip", "ftp://user:***@host/archive.zip"),
    (f"https://bucket.s3/key.zip?X-Amz-Signature={PASSWORD}&X-Amz-Expires=60",
     "https://bucket.s3/key.zip?X-Amz-Signature=***&X-Amz-Expires=60"),
    (f"weird://user:{PASSWORD}@[bad/x", "weird://***"),
    ("sqlite:////var/lib/labvault/restored.db", "sqlite:////var/lib/labvault/restored.db"),
    ("s3://bucket/restored-files", "s3://bucket/restored-files"),
    ("/srv/restored files", "/srv/restored files"),
    ("bk-0123456789ab", "bk-0123456789ab"),
])
def test_masked_url_hides_passwords_and_leaves_the_rest(url: str, shown: str) -> None:
    assert masked_url(url) == shown
    assert PASSWORD not in masked_url(url)


def test_a_parsed_url_with_a_password_set_in_memory_is_masked() -> None:
    url = database_url("postgresql+psycopg://restorer@db/lab", name="--to-database",
                       secret_option="--to-database-password-secret").set(password=PASSWORD)
    assert url.render_as_string(hide_password=False) == f"postgresql+psycopg://restorer:{PASSWORD}@db/lab"
    assert masked_url(url) == "postgresql+psycopg://restorer:***@db/lab"


@pytest.mark.parametrize(("url", "carries"), [
    ("postgresql://u:secret@h/d", True), ("postgresql://u@h/d?password=x", True),
    ("postgresql://u@h/d?sslpassword=x", True), ("s3://KEY:SECRET@bucket/x", True),
    ("postgresql://u@h/d", False), ("postgresql://u:@h/d", False), ("/tmp/a:b@c", False),
    ("https://h/x.zip?X-Amz-Signature=abc", False),  # a presigned link may be given on purpose
])
def test_credentials_in(url: str, carries: bool) -> None:
    assert credentials_in(url) is carries


def test_a_password_in_a_database_url_is_refused_saying_how_to_pass_it() -> None:
    with pytest.raises(InvalidInputError) as refused:
        database_url(f"postgresql+psycopg://restorer:{PASSWORD}@db/lab", name="--to-database",
                     secret_option="--to-database-password-secret")
    assert str(refused.value) == (
        "--to-database 'postgresql+psycopg://restorer:***@db/lab' carries a password, which Prefect "
        "would store in plain text with the run's parameters; leave it out of the URL and give it in "
        "PGPASSWORD or ~/.pgpass, or name a Prefect Secret block holding it with "
        "--to-database-password-secret")
    with pytest.raises(InvalidInputError, match=r"'sqlite:////x.db\?password=\*\*\*' carries a password.*"
                                                r"leave it out of the URL and name a Prefect Secret block"):
        database_url(f"sqlite:////x.db?password={PASSWORD}", name="to_database_url",
                     secret_option="to_database_password_secret")


@pytest.mark.parametrize(("url", "message"), [
    ("not a url", "--to-database is not a SQLAlchemy URL; use e.g. sqlite:////path/to/restored.db or "
                  "postgresql+psycopg://user@host/database"),
    ("", "--to-database is not a SQLAlchemy URL"),
    ("nosuch://u@h/d", "--to-database 'nosuch://u@h/d': unknown database dialect 'nosuch'"),
    ("postgresql+nope://u@h/d", "unknown database dialect 'postgresql+nope'"),
    ("mysql+mysqldb://u@h/d", "the driver for 'mysql+mysqldb' is not installed"),
])
def test_a_database_url_that_cannot_be_used_is_named(url: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        database_url(url, name="--to-database", secret_option="--to-database-password-secret")
    assert str(refused.value).startswith("--to-database ") and message in str(refused.value)
    assert "LABVAULT_DATABASE_URL" not in str(refused.value)


def test_a_usable_database_url_is_parsed() -> None:
    url = database_url("postgresql+psycopg://restorer@db:5433/lab", name="n", secret_option="s")
    assert (url.username, url.password, url.host, url.port, url.database) == ("restorer", None, "db", 5433, "lab")


def test_files_urls_and_sources() -> None:
    assert files_url("s3://bucket/files", name="--to-files") == "s3://bucket/files"
    with pytest.raises(InvalidInputError, match="^--to-files is empty; give a folder"):
        files_url("  ", name="--to-files")
    with pytest.raises(InvalidInputError, match=r"^--to-files 's3://KEY:\*\*\*@bucket/x' carries a password.*"
                                                r"AWS_ACCESS_KEY_ID"):
        files_url("s3://KEY:SECRET@bucket/x", name="--to-files")
    refuse_credentials("bk-0123456789ab", name="SOURCE", instead="…")  # a sid is no URL
    with pytest.raises(InvalidInputError, match=r"^SOURCE 'ftp://u:\*\*\*@h/a.zip' carries a password"):
        refuse_credentials("ftp://u:p@h/a.zip", name="SOURCE", instead="…")
