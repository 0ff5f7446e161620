"""`labvault backup verify LINK` and `labvault restore LINK`: an archive behind an http(s) link
(a presigned S3 GET) read as one resuming stream, its signature never shown or stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName

from tests.cli.test_cli import labvault
from tests.cli.test_lifecycle_cli import create
from tests.conftest import new_bucket, use_s3_endpoint
from tests.range_server import RangeServer

SIGNATURE = "Sig-Never-Shown-42"


@pytest.fixture
def archive(organization) -> bytes:  # type: ignore[no-untyped-def]
    return Path(create(organization)["file_path"]).read_bytes()


@pytest.fixture
def server(archive: bytes) -> Iterator[RangeServer]:
    serving = RangeServer(archive)
    yield serving
    serving.close()


def restore_run_parameters() -> list[tuple[str, str]]:
    """(name, source parameter) of every restore-backup run Prefect stored."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["restore-backup"])))
    return [(run.name, run.parameters["source"]) for run in runs]


def test_verify_and_restore_by_a_presigned_seaweedfs_link(request, organization, archive, tmp_path) -> None:  # type: ignore[no-untyped-def]
    use_s3_endpoint(request, "seaweedfs")
    bucket = new_bucket()
    client = boto3.session.Session().client("s3", config=Config(signature_version="s3v4"))
    client.put_object(Bucket=bucket, Key="org/bk.zip", Body=archive)
    link = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "org/bk.zip"},
                                         ExpiresIn=600)
    signature = link.split("X-Amz-Signature=")[1]
    verified = labvault("backup", "verify", link, "--json")
    assert verified.exit_code == 0, verified.output
    report = json.loads(verified.stdout)
    assert report["ok"] and report["files"] == len(organization.files)
    assert "X-Amz-Signature=***" in report["source"] and signature not in verified.output

    restored = labvault("restore", link, "--to-database", f"sqlite:///{tmp_path / 'restored.db'}",
                        "--to-files", str(tmp_path / "restored-files"), "--json")
    assert restored.exit_code == 0, restored.output
    assert json.loads(restored.stdout)["files"] == len(organization.files)
    assert signature not in restored.output
    (name, source), = [run for run in restore_run_parameters() if bucket in run[1]]
    assert "X-Amz-Signature=***" in source and "X-Amz-Credential=***" in source
    assert signature not in name and signature not in source


def test_verify_and_restore_resume_a_link_whose_connection_drops(organization, server, archive, tmp_path) -> None:  # type: ignore[no-untyped-def]
    link = f"{server.url}/bk.zip?X-Amz-Signature={SIGNATURE}"
    server.drops = 1
    verified = labvault("backup", "verify", link, "--json")
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["total_bytes"] > 0 and SIGNATURE not in verified.output
    body_ranges = [asked for asked in server.ranges if asked != "bytes=0-0"]
    assert any(not asked.startswith("bytes=0-") for asked in body_ranges[-2:])  # the resume

    server.drops = 1
    restored = labvault("restore", link, "--to-database", f"sqlite:///{tmp_path / 'restored.db'}",
                        "--to-files", str(tmp_path / "restored-files"), "--json")
    assert restored.exit_code == 0, restored.output
    report = json.loads(restored.stdout)
    assert (report["versions"], report["files"]) == (len(organization.versions), len(organization.files))
    for uid, (row, data) in organization.files.items():  # the restored bytes are the originals
        assert (tmp_path / "restored-files" / row.storage_key).read_bytes() == data
    assert SIGNATURE not in restored.output


MASKED = "/bk.zip?X-Amz-Signature=***"


@pytest.mark.parametrize(("change", "stderr"), [
    ({"status": 403}, "error: cannot read archive '{url}" + MASKED + "': the server answered HTTP 403; "
                      "the link may have expired"),
    ({"status": 404}, "error: archive '{url}" + MASKED + "' does not exist"),
    ({"status": 200}, "error: archive '{url}" + MASKED + "': the server does not serve byte ranges (HTTP "
                      "200 to a Range request); labvault needs them to read the archive's directory and "
                      "to resume"),
    ({"drops": -1}, "error: cannot read archive '{url}" + MASKED + "': the connection broke (5 resumes "
                    "tried)"),
    ({"max": 1000}, "error: archive '{url}" + MASKED + "' is {size} bytes, over the limit of 1000 "
                    "(LABVAULT_ARCHIVE_MAX_BYTES)"),
    ({"gzip": True}, "error: archive '{url}" + MASKED + "': the server sent it with Content-Encoding 'gzip' "
                     "although identity was asked; labvault needs the archive's bytes as they are"),
    ({"endless": True, "max_size": 70_000},
     "error: not a readable zip archive (truncated or corrupt): no end of central directory record"),
])
def test_a_bad_link_is_one_error_line_without_its_signature(server, archive, monkeypatch, change, stderr) -> None:  # type: ignore[no-untyped-def]
    if "max" in change:
        monkeypatch.setenv("LABVAULT_ARCHIVE_MAX_BYTES", str(change["max"]))
    server.status = change.get("status")
    server.drops = change.get("drops", 0)
    server.endless = change.get("endless", False)
    server.gzip = change.get("gzip", False)
    if "max_size" in change:
        server.data = archive[:change["max_size"]]  # declared short, then bytes without end
    result = labvault("backup", "verify", f"{server.url}/bk.zip?X-Amz-Signature={SIGNATURE}")
    assert result.exit_code == 1
    assert result.stderr == stderr.format(url=server.url, size=len(archive)) + "\n"


@pytest.mark.parametrize(("source", "stderr"), [
    ("http://example.com/bk.zip?X-Amz-Signature=" + SIGNATURE,
     "error: archive 'http://example.com/bk.zip?X-Amz-Signature=***' is a plain http link to another "
     "machine; use https (http is accepted on loopback only)"),
    ("https://example.com/bk.zip?X-Amz-Signature=***",
     "error: archive 'https://example.com/bk.zip?X-Amz-Signature=***' is a link whose signature was "
     "masked; give the whole link to `labvault restore` or `labvault backup verify`"),
])
def test_links_refused_before_any_request(source: str, stderr: str) -> None:
    for command in (["backup", "verify", source],
                    ["restore", source, "--to-database", "sqlite:///x.db", "--to-files", "x"]):
        result = labvault(*command)
        assert result.exit_code == 1
        assert result.stderr == stderr + "\n"
