"""The bad-input catalogue: every mistake a user can make gets one line on stderr, exit 1, no
traceback, and changes nothing in the database or the stores."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from labvault.models import Backup, File, Organization, Record, User, Version
from tests.cli.test_cli import labvault
from tests.factories import make_organization

ADMIN = "admin@org-1.example"
CREATE = ["backup", "create", "--org", "org-1", "--name", "Nightly", "--as", ADMIN, "--yes"]


def create(**changes: str) -> list[str]:
    args = list(CREATE)
    for option, value in changes.items():
        flag = {"name": "--name", "org": "--org", "who": "--as", "description": "--description"}[option]
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    return args


# (command line, environment, what the one line must say)
CATALOGUE: list[tuple[list[str], dict[str, str], str]] = [
    (create(name=""), {}, "backup name is empty"),
    (create(name="   \t"), {}, "backup name is empty"),
    (create(name="n" * 10_000), {}, "10000 characters; the limit is 255"),
    (create(description="d" * 10_000), {}, "10000 characters; the limit is 5000"),
    (create(name="bell \x07 name"), {}, "control or invisible formatting characters"),
    (create(name="right\u200fto\u200fleft"), {}, "right-to-left marks"),
    (create(name="override \u202egnp.exe"), {}, "right-to-left marks"),
    (create(description="escape \x1b[31m red"), {}, "control or invisible formatting characters"),
    (create(org="no-such-org"), {}, "organization 'no-such-org' does not exist"),
    (create(org="../../etc"), {}, "organization '../../etc' does not exist"),
    (create(org="x' OR '1'='1"), {}, "does not exist"),
    (create(org=""), {}, "organization '' does not exist"),
    (create(who="admin@org-2.example"), {}, "is not an admin of organization 'org-1'"),
    (create(who="member@org-1.example"), {}, "is not an admin of organization 'org-1'"),
    (create(who="stranger@example.org"), {}, "is not an admin"),
    (create(who=""), {}, "'' is not an admin"),
    (["backup", "estimate", "--org", "nope"], {}, "organization 'nope' does not exist"),
    (["backup", "estimate", "--org", "1; DROP TABLE backups"], {}, "does not exist"),
    (["backup", "show", "bk-unknown"], {}, "backup 'bk-unknown' does not exist"),
    (["backup", "show", "../../etc/passwd"], {}, "does not exist"),
    (["backup", "show", "bk' OR 1=1 --"], {}, "does not exist"),
    (["backup", "show", ""], {}, "backup '' does not exist"),
    (["backup", "delete", "bk-unknown", "--as", ADMIN, "--yes"], {}, "does not exist"),
    (["backup", "delete", "bk' OR 1=1 --", "--as", ADMIN, "--yes"], {}, "does not exist"),
    (["backup", "retry", "bk-unknown", "--as", ADMIN], {}, "backup 'bk-unknown' does not exist"),
    (["backup", "retry", "%", "--as", ADMIN], {}, "backup '%' does not exist"),
    (["backup", "list", "--status", "done"], {}, "unknown status filter 'done'"),
    (["backup", "list", "--status", ""], {}, "unknown status filter ''"),
    (["backup", "list", "--status", "completed; DROP TABLE backups"], {}, "unknown status filter"),
    (["backup", "list", "--search", ""], {}, "search keyword is empty"),
    (["backup", "list", "--search", "   "], {}, "search keyword is empty"),
    (["backup", "list"], {"LABVAULT_RETENTION_DAYS": "-1"}, "LABVAULT_RETENTION_DAYS: "),
    (["backup", "list"], {"LABVAULT_RETENTION_DAYS": "999999"}, "LABVAULT_RETENTION_DAYS: "),
    (["backup", "list"], {"LABVAULT_RETENTION_DAYS": "thirty"}, "LABVAULT_RETENTION_DAYS: "),
    (["backup", "list"], {"LABVAULT_PRICE_PER_GB": "-1"}, "LABVAULT_PRICE_PER_GB: "),
    (["backup", "list"], {"LABVAULT_S3_PART_SIZE_MB": "1"}, "LABVAULT_S3_PART_SIZE_MB: "),
    (["backup", "list"], {"LABVAULT_SMTP_PORT": "70000"}, "LABVAULT_SMTP_PORT: "),
    (["expire"], {"LABVAULT_STALE_AFTER_MINUTES": "0"}, "LABVAULT_STALE_AFTER_MINUTES: "),
    (["backup", "list"], {"LABVAULT_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/none"},
     "error: database: "),
    (["backup", "list"], {"LABVAULT_DATABASE_URL": "not a url"}, "LABVAULT_DATABASE_URL is not a valid"),
    (create(), {"LABVAULT_BACKUPS_URL": "/etc/passwd/backups"}, "LABVAULT_BACKUPS_URL '/etc/passwd/backups': cannot write there"),
    (create(), {"LABVAULT_FILES_URL": "nosuch://bucket/files"}, "LABVAULT_FILES_URL 'nosuch://bucket/files'"),
    (create(), {"LABVAULT_BACKUPS_URL": "nosuch://x"}, "LABVAULT_BACKUPS_URL 'nosuch://x'"),
    (create(), {"LABVAULT_S3_CREDENTIALS_BLOCK": "no-such-keys"},
     "error: LABVAULT_S3_CREDENTIALS_BLOCK 'no-such-keys': no Prefect aws-credentials block has that name; "
     "create it with `prefect block create aws-credentials` (or on the Blocks page of the Prefect UI)"),
    (["backup", "list"], {"LABVAULT_DATABASE_PASSWORD_BLOCK": "secret/no-such-password"},
     "error: LABVAULT_DATABASE_PASSWORD_BLOCK 'no-such-password': no Prefect secret block has that name; "
     "create it with `prefect block create secret` (or on the Blocks page of the Prefect UI)"),
    (["backup", "list"], {"LABVAULT_SMTP_CREDENTIALS_BLOCK": "Mail Server"},
     "error: LABVAULT_SMTP_CREDENTIALS_BLOCK: Value error, 'Mail Server' does not name a block of type "
     "email-server-credentials; give `name` or `email-server-credentials/name` (lowercase letters, digits "
     "and dashes); fix that environment variable"),
    (["backup", "verify", "/nonexistent/archive.zip"], {}, "archive '/nonexistent/archive.zip' does not exist"),
    (["backup", "verify", "bk-unknown"], {}, "backup 'bk-unknown' does not exist"),
    (["restore", "bk-unknown", "--to-database", "sqlite:////tmp/x.db", "--to-files", "/tmp/x"], {},
     "backup 'bk-unknown' does not exist"),
]


def snapshot(sessions, root: Path) -> tuple:  # type: ignore[no-untyped-def]
    with sessions() as session:
        counts = tuple(session.scalar(select(func.count()).select_from(model))
                       for model in (Organization, User, Record, Version, File, Backup))
    return counts, sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def two_organizations(sessions, files, organization):  # type: ignore[no-untyped-def]
    with sessions() as session:
        make_organization(session, files, sid="org-2", file_names=[])
    return organization


@pytest.mark.parametrize(("args", "env", "message"), CATALOGUE,
                         ids=[f"{i:02d}-{' '.join(c[0][:3])[:30]}" for i, c in enumerate(CATALOGUE)])
def test_a_mistake_is_one_line_and_changes_nothing(args, env, message, sessions, two_organizations, settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    home = Path(settings.home)
    before = snapshot(sessions, home)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = labvault(*args)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]
    assert "Traceback" not in result.output
    monkeypatch.undo()
    assert snapshot(sessions, home) == before


def test_the_catalogue_is_large() -> None:
    assert len(CATALOGUE) >= 40
