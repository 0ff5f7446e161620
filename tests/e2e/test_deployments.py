"""prefect.yaml against a real Prefect server: deploy, run from the API as the UI does, serve."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.schedules import CronSchedule
from prefect.flow_runs import resume_flow_run
from sqlalchemy import select

from deployments.project import read_deployments
from labvault.db.engine import session_factory
from labvault.db.models import Backup, BackupStatus
from tests.browser import launch_chromium
from tests.conftest import SMTP_PASSWORD
from tests.e2e.conftest import BIN, ROOT, PrefectServer, stop

POOL = "labvault"
BLOCK_SETTINGS = ["LABVAULT_DATABASE_PASSWORD_BLOCK", "LABVAULT_S3_CREDENTIALS_BLOCK",
                  "LABVAULT_SMTP_CREDENTIALS_BLOCK"]


def wait_for_state(flow_run_id: Any, types: set[StateType], timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            flow_run = client.read_flow_run(flow_run_id)
        if flow_run.state and flow_run.state.type in types:
            return flow_run
        time.sleep(0.5)
    raise AssertionError(f"flow run {flow_run_id} never reached {types}: {flow_run.state}")


FINAL = {StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED}


def run_deployment_as_the_ui_does(name: str, parameters: dict[str, Any]) -> Any:
    """POST /deployments/{id}/create_flow_run, which is what the UI's Run button sends."""
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(name)
        return client.create_flow_run_from_deployment(deployment.id, parameters=parameters)


@pytest.fixture(scope="module")
def deployed(prefect_server: PrefectServer) -> PrefectServer:
    prefect_server.deploy(POOL)
    return prefect_server


@pytest.fixture(scope="module")
def worker(deployed: PrefectServer):  # type: ignore[no-untyped-def]
    process = deployed.start("worker", str(BIN / "prefect"), "worker", "start", "--pool", POOL,
                             "--type", "process")
    yield process
    stop(process)


def test_prefect_deploy_all_registers_every_deployment_of_prefect_yaml(deployed: PrefectServer) -> None:
    expected = {f"{Path(spec.entrypoint).stem.replace('_', '-')}/{spec.name}" for spec in read_deployments()}
    with get_client(sync_client=True) as client:
        deployments = client.read_deployments()
        flows = {flow.id: flow.name for flow in client.read_flows()}
    names = {f"{flows[d.flow_id]}/{d.name}" for d in deployments}
    assert {name.split("/")[1] for name in names} == {spec.name for spec in read_deployments()}
    assert len(expected) == len(names) == len(read_deployments()) == 8
    assert {d.work_pool_name for d in deployments} == {POOL}
    crons = {d.name: [s.schedule.cron for s in d.schedules] for d in deployments}
    assert crons["scheduled-backup"] == ["0 2 * * *"]
    assert crons["expire-backups"] == ["0 * * * *"]
    assert crons["create-backup"] == []
    with get_client(sync_client=True) as client:
        template = client.read_work_pool(POOL).base_job_template
        k8s = client.read_work_pool("labvault-k8s").base_job_template
    env = template["variables"]["properties"]["env"]["default"]
    assert env["PREFECT_LOGGING_EXTRA_LOGGERS"] == "labvault"
    assert {name: env[name] for name in BLOCK_SETTINGS} == dict.fromkeys(BLOCK_SETTINGS)  # the worker's
    assert k8s["job_configuration"]["job_manifest"]["kind"] == "Job"


def test_every_parameter_has_a_description_and_bounds_are_enforced(deployed: PrefectServer) -> None:
    with get_client(sync_client=True) as client:
        for deployment in client.read_deployments():
            properties = deployment.parameter_openapi_schema["properties"]
            assert properties, deployment.name
            for name, schema in properties.items():
                assert schema.get("description"), f"{deployment.name}.{name} has no description"
                assert schema["title"] != name and schema["title"][0].isupper(), \
                    f"{deployment.name}.{name} is titled {schema['title']!r} in the run form"
        create = client.read_deployment_by_name("create-backup/create-backup")
        assert create.parameters == {"require_approval": True}
        form = create.parameter_openapi_schema["properties"]
        assert (form["organization_sid"]["title"], form["requested_by"]["title"]) == ("Organization", "Requested by")
        assert form["retention_days"]["type"] == "integer" and "anyOf" not in form["retention_days"]
        for bad in ({"retention_days": -1}, {"approval_timeout_minutes": 0}, {"name": ""}):
            with pytest.raises(Exception, match="(?i)validation|invalid|422|409"):
                client.create_flow_run_from_deployment(create.id, parameters={
                    "organization_sid": "lab-a", "name": "x", "requested_by": "admin@lab-a.example",
                    **bad})


def test_the_ui_run_form_shows_the_parameter_descriptions(deployed: PrefectServer, tmp_path: Path) -> None:
    """Headless Chromium opens the server's UI at create-backup's run form, as a data engineer
    would, and reads the descriptions there; the screenshot stays in the test's folder."""
    from playwright.sync_api import sync_playwright

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("create-backup/create-backup")
    ui = deployed.url.removesuffix("/api")
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2200})
            page.goto(f"{ui}/deployments/deployment/{deployment.id}/run", wait_until="networkidle")
            for text in ("Retention (days)", "Requested by", "Approval timeout (minutes)",
                         "Sid of the organization to back up.",
                         "Days the backup is kept after it completes",
                         "Pause before any work and show the estimated cost for approval."):
                page.get_by_text(text, exact=False).first.wait_for(timeout=30_000)
            page.screenshot(path=str(tmp_path / "create-backup-run-form.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "create-backup-run-form.png").stat().st_size > 10_000


def test_create_backup_from_the_run_button_waits_for_approval_then_completes(worker, e2e_settings) -> None:  # type: ignore[no-untyped-def]
    flow_run = run_deployment_as_the_ui_does("create-backup/create-backup", {
        "organization_sid": "lab-a", "name": "From the UI", "requested_by": "admin@lab-a.example"})
    wait_for_state(flow_run.id, {StateType.PAUSED} | FINAL)
    with session_factory(e2e_settings.database_url)() as session:
        assert session.scalars(select(Backup)).all() == [], "work started before approval"
    resume_flow_run(flow_run.id, run_input={"decision": "Approve"})
    finished = wait_for_state(flow_run.id, FINAL)
    assert finished.state.type == StateType.COMPLETED, finished.state
    with session_factory(e2e_settings.database_url)() as session:
        backup = session.scalar(select(Backup).where(Backup.flow_run_id == str(flow_run.id)))
    assert backup.status is BackupStatus.COMPLETED and Path(backup.file_path).exists()
    with get_client(sync_client=True) as client:
        keys = {a.key for a in client.read_artifacts()}
    assert {f"backup-{backup.sid}", f"backup-{backup.sid}-download"} <= keys


def test_expire_backups_runs_from_its_deployment(worker) -> None:  # type: ignore[no-untyped-def]
    flow_run = run_deployment_as_the_ui_does("expire-backups/expire-backups", {})
    assert wait_for_state(flow_run.id, FINAL).state.type == StateType.COMPLETED


def test_the_scheduler_creates_the_scheduled_runs_and_the_worker_completes_them(worker, e2e_settings) -> None:  # type: ignore[no-untyped-def]
    """The server's own scheduler, not the test, makes the runs: a schedule due every minute is
    added beside prefect.yaml's on expire-backups and scheduled-backup (for an organization of
    this server's database), and the runs it creates reach Completed through the worker. With
    SQLAlchemy 2.1 the scheduler failed every minute and no run was ever created."""
    every_minute = CronSchedule(cron="* * * * *", timezone="UTC")
    schedules = {"expire-backups/expire-backups": {},
                 "scheduled-backup/scheduled-backup": {"organization_sid": "lab-b",
                                                       "requested_by": "admin@lab-b.example"}}
    deployments = {}
    with get_client(sync_client=True) as client:
        for name, parameters in schedules.items():
            deployment = client.read_deployment_by_name(name)
            created = client.create_deployment_schedules(deployment.id, [(every_minute, True)],
                                                         parameters=parameters, slug="e2e-every-minute")
            deployments[name] = (deployment.id, created[0].id)
    try:
        for name, (deployment_id, _) in deployments.items():
            run = wait_for_scheduled_run(deployment_id, timeout=240)
            finished = wait_for_state(run.id, FINAL, timeout=240)
            assert finished.state.type == StateType.COMPLETED, (name, finished.state)
    finally:
        with get_client(sync_client=True) as client:
            for deployment_id, schedule_id in deployments.values():
                client.delete_deployment_schedule(deployment_id, schedule_id)
                for run in client.read_flow_runs(
                        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))):
                    if run.state and run.state.type in (StateType.SCHEDULED, StateType.PENDING):
                        client.delete_flow_run(run.id)
    with session_factory(e2e_settings.database_url)() as session:
        nightly = session.scalars(select(Backup).where(Backup.name.like("Nightly %"))).all()
    assert nightly and {b.organization_sid for b in nightly} == {"lab-b"}
    assert BackupStatus.COMPLETED in {b.status for b in nightly}


def wait_for_scheduled_run(deployment_id: Any, timeout: float) -> Any:
    """The first run the scheduler created for the deployment that is due by now."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))
        due = [run for run in runs if run.auto_scheduled and run.expected_start_time
               and run.expected_start_time.timestamp() < time.time() + 60]
        if due:
            return min(due, key=lambda run: run.expected_start_time)
        time.sleep(1)
    raise AssertionError(f"the scheduler created no run for deployment {deployment_id}")


def test_the_fan_out_backs_up_three_organizations(worker, e2e_settings) -> None:  # type: ignore[no-untyped-def]
    flow_run = run_deployment_as_the_ui_does("backup-all-organizations/backup-all-organizations", {})
    finished = wait_for_state(flow_run.id, FINAL, timeout=300)
    assert finished.state.type == StateType.COMPLETED, finished.state
    with session_factory(e2e_settings.database_url)() as session:
        made = session.scalars(select(Backup).where(Backup.name.like("Weekly %"))).all()
    assert sorted(b.organization_sid for b in made) == ["lab-a", "lab-b", "lab-c"]
    assert {b.status for b in made} == {BackupStatus.COMPLETED}
    assert {b.created_by for b in made} == {"admin@lab-a.example", "admin@lab-b.example", "admin@lab-c.example"}


def test_the_backups_page_starts_deployment_runs_that_a_worker_completes(worker, e2e_settings) -> None:  # type: ignore[no-untyped-def]
    """With a Prefect server configured, the page starts a create-backup deployment run (as the
    UI's Run button does) rather than running the flow itself; the worker builds the backup."""
    from fastapi.testclient import TestClient

    from labvault.db.models import AuditEvent
    from labvault_web.app import create_app
    from tests.web.conftest import csrf_of, sign_in_as, wait_for_status

    sessions = session_factory(e2e_settings.database_url)
    with TestClient(create_app(e2e_settings), follow_redirects=False) as browser:
        sign_in_as(browser, sessions, "admin@lab-b.example")
        form = browser.get("/backups/new")
        created = browser.post("/backups", data={"name": "From the page", "csrf": csrf_of(form.text)})
        assert created.status_code == 303, created.text
    with sessions() as session:
        backup = session.scalar(select(Backup).where(Backup.name == "From the page"))
    assert backup is not None and wait_for_status(sessions, backup.sid, timeout=180).status is BackupStatus.COMPLETED
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(backup.flow_run_id)
        deployment = client.read_deployment(flow_run.deployment_id)
    assert deployment.name == "create-backup" and flow_run.work_pool_name == POOL
    assert {"via:web", "organization:lab-b"} <= set(flow_run.tags)
    with sessions() as session:
        doors = session.scalars(select(AuditEvent.door).where(AuditEvent.backup_sid == backup.sid)).all()
    assert doors == ["web"]


def test_labvault_serve_refuses_to_replace_the_pools_deployments(worker, deployed: PrefectServer) -> None:  # type: ignore[no-untyped-def]
    """`prefect deploy` made the pool's deployments: serve must leave them as they are."""
    import subprocess

    def pool_deployments() -> dict[str, tuple[Any, Any, Any]]:
        with get_client(sync_client=True) as client:
            return {d.name: (d.work_pool_name, d.path, d.pull_steps) for d in client.read_deployments()}

    before = pool_deployments()
    refused = subprocess.run([str(BIN / "labvault"), "serve"], cwd=ROOT, env=deployed.env, text=True,
                             capture_output=True, timeout=180)
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == (
        "error: deployment create-backup/create-backup belongs to work pool 'labvault' (made by "
        "`prefect deploy`); serving it here would replace it and break its worker runs: start a "
        "worker instead (prefect worker start --pool labvault), or delete the pool's deployments first\n")
    assert pool_deployments() == before
    flow_run = run_deployment_as_the_ui_does("expire-backups/expire-backups", {})
    assert wait_for_state(flow_run.id, FINAL).state.type == StateType.COMPLETED


def test_a_worker_run_takes_a_block_named_in_the_pools_job_template(worker, e2e_settings, smtp_login_server) -> None:  # type: ignore[no-untyped-def]
    """The worker's own environment names no SMTP server: the pool's template `env` names the
    EmailServerCredentials block, and the run's notice goes through that block's server and login."""
    from prefect.client.schemas.actions import WorkPoolUpdate
    from prefect_email import EmailServerCredentials

    mailbox, logins, port = smtp_login_server
    EmailServerCredentials(username="mailer", password=SMTP_PASSWORD, smtp_server="127.0.0.1",
                           smtp_type="INSECURE", smtp_port=port).save("pool-mailer", overwrite=True)
    with get_client(sync_client=True) as client:
        template = client.read_work_pool(POOL).base_job_template
        changed = copy.deepcopy(template)
        changed["variables"]["properties"]["env"]["default"]["LABVAULT_SMTP_CREDENTIALS_BLOCK"] = "pool-mailer"
        client.update_work_pool(POOL, WorkPoolUpdate(base_job_template=changed))
    try:
        flow_run = run_deployment_as_the_ui_does("create-backup/create-backup", {
            "organization_sid": "lab-c", "name": "Mailed", "requested_by": "admin@lab-c.example",
            "require_approval": False})
        finished = wait_for_state(flow_run.id, FINAL)
    finally:
        with get_client(sync_client=True) as client:
            client.update_work_pool(POOL, WorkPoolUpdate(base_job_template=template))
    assert finished.state.type == StateType.COMPLETED, finished.state
    assert logins == [("mailer", SMTP_PASSWORD)]
    [(recipients, message)] = mailbox.messages
    assert recipients == ["admin@lab-c.example"]
    assert message["Subject"] == "[labvault] Backup 'Mailed' Completed"


def test_labvault_serve_serves_every_deployment_without_a_pool(worker, deployed: PrefectServer) -> None:  # type: ignore[no-untyped-def]
    """A user without a work pool: the deployments come from `labvault serve` alone."""
    stop(worker)
    with get_client(sync_client=True) as client:
        for deployment in client.read_deployments():
            client.delete_deployment(deployment.id)
    server = deployed.start("serve", str(BIN / "labvault"), "serve")
    log = deployed.logs / "serve.log"
    try:
        deadline = time.monotonic() + 120
        while "expire-backups/expire-backups" not in log.read_text(errors="replace"):
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        served = log.read_text(errors="replace")
        assert all(f"{spec.name}" in served for spec in read_deployments())
        flow_run = run_deployment_as_the_ui_does("expire-backups/expire-backups", {})
        assert wait_for_state(flow_run.id, FINAL).state.type == StateType.COMPLETED
    finally:
        stop(server)
