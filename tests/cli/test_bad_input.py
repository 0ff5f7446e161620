"""The bad-input catalogue: every mistake a user can make gets one line on stderr, exit 1, no
traceback, and changes nothing in the database or the stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from labvault.db.models import Backup, File, Organization, Record, User, Version
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
    (["backup", "hold", "bk-unknown", "--as", ADMIN], {}, "backup 'bk-unknown' does not exist"),
    (["backup", "release", "%", "--as", ADMIN], {}, "backup '%' does not exist"),
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
    (["backup", "list"], {"LABVAULT_S3_OBJECT_LOCK": "yes"}, "LABVAULT_S3_OBJECT_LOCK: 'yes' is no Object Lock mode"),
    (create(), {"LABVAULT_S3_OBJECT_LOCK": "compliance"}, "Object Lock needs an S3 backups store"),
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
     "error: LABVAULT_SMTP_CREDENTIALS_BLOCK: 'Mail Server' does not name a block of type "
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


NO_S3 = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
         "AWS_DEFAULT_REGION": "us-east-1"}
OVERLAP = ("error: LABVAULT_BACKUPS_URL '{backups}' overlaps LABVAULT_FILES_URL '{home}/files'; expiry deletes "
           "partial archives in the backups store, so keep the two stores apart (neither inside the other); "
           "fix that environment variable")

# (command line, environment, the whole of stderr); {tmp} and {home} are the test's folders
WHOLE_STDERR: list[tuple[list[str], dict[str, str], str]] = [
    (["backup", "list", "--org", "nope"], {}, "error: organization 'nope' does not exist"),
    (["backup", "list", "--org", "nope", "--json"], {}, "error: organization 'nope' does not exist"),
    (["backup", "estimate", "--org", "org-1"], {"LABVAULT_PRICE_PER_GB": "1e30"},
     "error: LABVAULT_PRICE_PER_GB: Input should be less than or equal to 10000; fix that environment variable"),
    (["expire"], {"LABVAULT_STALE_AFTER_MINUTES": "99999999999"},
     "error: LABVAULT_STALE_AFTER_MINUTES: Input should be less than or equal to 5270400; fix that "
     "environment variable"),
    (["backup", "list"], {"LABVAULT_HOME": "{tmp}/a-file"},
     "error: LABVAULT_HOME: '{tmp}/a-file' is not a folder; point it at a folder (made if missing); fix that "
     "environment variable"),
    (["backup", "list"], {"LABVAULT_DATABASE_URL": "mysql://u@localhost/db"},
     "error: LABVAULT_DATABASE_URL 'mysql://u@localhost/db': the driver for 'mysql' is not installed (No "
     "module named 'MySQLdb'); install it or use e.g. sqlite:///path.db or postgresql+psycopg://user@host/database"),
    (create(), {"LABVAULT_BACKUPS_URL": "http://127.0.0.1:9/backups"},
     "error: LABVAULT_BACKUPS_URL 'http://127.0.0.1:9/backups': cannot write there (http:// stores cannot be "
     "written); point it at a writable folder or bucket"),
    (create(), {**NO_S3, "LABVAULT_BACKUPS_URL": "s3://bucket/backups"},
     "error: LABVAULT_BACKUPS_URL 's3://bucket/backups': cannot write there (Could not connect to the endpoint "
     'URL: "http://127.0.0.1:9/bucket/backups/.labvault-write-probe"); check the bucket, AWS_ENDPOINT_URL and '
     "the credentials"),
    (create(), {"LABVAULT_BACKUPS_URL": "{home}/files/backups"}, OVERLAP.replace("{backups}", "{home}/files/backups")),
    (["expire"], {"LABVAULT_BACKUPS_URL": "{home}/files"}, OVERLAP.replace("{backups}", "{home}/files")),
    (["backup", "verify", "file://{tmp}"], {}, "error: archive 'file://{tmp}' is a folder; give the URL of a zip"),
    (["backup", "verify", "s3://bucket/a.zip"], NO_S3,
     "error: cannot read archive 's3://bucket/a.zip': Could not connect to the endpoint URL: "
     '"http://127.0.0.1:9/bucket/a.zip"'),
    (["backup", "verify", "zip://a.txt::{tmp}/a.zip"], {},
     "error: archive 'zip://a.txt::{tmp}/a.zip' is a chain of URLs (::); give the zip's own path or URL"),
    (["db", "upgrade"], {"LABVAULT_DATABASE_URL": "sqlite:///{tmp}/a-file/x.db"},
     "error: cannot create the database file '{tmp}/a-file/x.db': a file stands where a folder is needed; "
     "point LABVAULT_DATABASE_URL at a writable folder"),
    (["backup", "hold", "bk-1"], {}, "error: missing option '--as' (see `labvault backup hold --help`)"),
    (["backup", "list"], {"LABVAULT_S3_OBJECT_LOCK": "compliance"},
     "error: LABVAULT_S3_OBJECT_LOCK=compliance: Object Lock needs an S3 backups store, and "
     "LABVAULT_BACKUPS_URL is '{home}/backups'; point it at s3://bucket/prefix or unset "
     "LABVAULT_S3_OBJECT_LOCK; fix that environment variable"),
    (["backup", "create"], {}, "error: missing option '--org' (see `labvault backup create --help`)"),
    (["backup", "create", "--org"], {}, "error: option '--org' requires an argument"),
    (["backup", "show"], {}, "error: missing argument 'sid' (see `labvault backup show --help`)"),
    (["backup", "lst"], {}, "error: no such command 'lst'. Did you mean 'list'? (see `labvault backup --help`)"),
    (["backup", "list", "--bogus"], {},
     "error: no such option: --bogus (Possible options: --org) (see `labvault backup list --help`)"),
    (["serve", "--limit", "0"], {},
     "error: invalid value for '--limit': Input should be greater than or equal to 1 (see `labvault serve --help`)"),
]


@pytest.mark.parametrize(("args", "env", "expected"), WHOLE_STDERR,
                         ids=[f"{i:02d}-{' '.join(c[0][:3])[:30]}" for i, c in enumerate(WHOLE_STDERR)])
def test_the_whole_stderr_is_one_error_line_and_nothing_changes(  # type: ignore[no-untyped-def]
        args, env, expected, sessions, two_organizations, settings, tmp_path, monkeypatch) -> None:
    home = Path(settings.home)
    (tmp_path / "a-file").write_text("not a folder")
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as archive:
        archive.writestr("a.txt", "a")
    before = snapshot(sessions, tmp_path)
    fill = {"tmp": str(tmp_path), "home": str(home)}
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(**fill))
    result = labvault(*[arg.format(**fill) for arg in args])
    assert (result.exit_code, result.stderr) == (1, expected.format(**fill) + "\n")
    monkeypatch.undo()
    assert snapshot(sessions, tmp_path) == before


def test_retry_and_delete_refuse_a_backups_store_they_cannot_write(  # type: ignore[no-untyped-def]
        sessions, files, organization, settings, tmp_path, monkeypatch) -> None:
    """Checked before the backup runs again or its row is touched, as `create` does."""
    row, _ = next(iter(organization.files.values()))
    files.delete(row.storage_key)
    failed = labvault("backup", "create", "--org", organization.sid, "--name", "x", "--as", ADMIN, "--yes", "--json")
    sid = json.loads(failed.stdout)["sid"]
    with sessions() as session:
        row_before = session.get(Backup, sid).__dict__.copy()
    before = snapshot(sessions, tmp_path)
    monkeypatch.setenv("LABVAULT_BACKUPS_URL", "http://127.0.0.1:9/backups")
    for args in (["backup", "retry", sid, "--as", ADMIN], ["backup", "delete", sid, "--as", ADMIN, "--yes"]):
        result = labvault(*args)
        assert (result.exit_code, result.stderr) == (1, (
            "error: LABVAULT_BACKUPS_URL 'http://127.0.0.1:9/backups': cannot write there (http:// stores "
            "cannot be written); point it at a writable folder or bucket\n")), args
    assert snapshot(sessions, tmp_path) == before
    with sessions() as session:
        after = session.get(Backup, sid).__dict__
        assert {k: v for k, v in after.items() if not k.startswith("_")} == {
            k: v for k, v in row_before.items() if not k.startswith("_")}


READ_ONLY = [["backup", "list"], ["backup", "list", "--org", "org-1"], ["backup", "show", "bk-1"],
             ["backup", "estimate", "--org", "org-1"], ["backup", "verify", "bk-1"], ["backup", "retry", "bk-1", "--as", ADMIN],
             ["backup", "delete", "bk-1", "--as", ADMIN, "--yes"], ["backup", "hold", "bk-1", "--as", ADMIN],
             ["backup", "release", "bk-1", "--as", ADMIN], CREATE, ["expire"]]


@pytest.mark.parametrize("args", READ_ONLY, ids=[" ".join(args[:2]) for args in READ_ONLY])
def test_a_fresh_home_is_left_empty_by_commands_that_find_no_database(args, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Reading created an empty SQLite file (and its folder) where none was."""
    for name in [name for name in os.environ if name.startswith("LABVAULT_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("LABVAULT_HOME", str(tmp_path / "home"))
    result = labvault(*args)
    assert (result.exit_code, result.stderr) == (1, (
        f"error: database '{tmp_path}/home/labvault.db' does not exist; run `labvault db upgrade` to create "
        "it, or point LABVAULT_DATABASE_URL at an existing database\n"))
    assert list(tmp_path.iterdir()) == []


def test_a_usage_mistake_is_one_line_in_a_real_process(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The console script as a shell runs it: no usage box, exit 1, stdout empty."""
    labvault_bin = Path(sys.executable).with_name("labvault")
    result = subprocess.run([str(labvault_bin), "backup", "create", "--org", "org-1"], capture_output=True,
                            text=True, env={**os.environ, "LABVAULT_HOME": str(tmp_path)}, timeout=120)
    assert (result.returncode, result.stderr, result.stdout) == (
        1, "error: missing option '--name' (see `labvault backup create --help`)\n", "")
