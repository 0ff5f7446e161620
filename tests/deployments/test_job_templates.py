"""The Kubernetes job template is the process pool's (the one the e2e tests run on) with other
infrastructure: the same run settings, the same job fields, only how a run is started differs."""

from __future__ import annotations

import json
from typing import Any

from deployments.project import PROJECT_ROOT

TEMPLATES = PROJECT_ROOT / "deployments" / "job_templates"
# What only says where and how a run is started: the process's folder, the pod and its cluster.
INFRASTRUCTURE = {"working_dir", "namespace", "job_manifest", "cluster_config", "job_watch_timeout_seconds",
                  "pod_watch_timeout_seconds", "image", "image_pull_policy", "service_account_name",
                  "settings_secret", "cpu", "memory", "finished_job_ttl"}


def template(kind: str) -> dict[str, Any]:
    return json.loads((TEMPLATES / f"{kind}.json").read_text())


def test_both_templates_give_a_run_the_same_settings() -> None:
    process, kubernetes = template("process"), template("kubernetes")
    env = process["variables"]["properties"]["env"]
    assert kubernetes["variables"]["properties"]["env"] == env
    assert {"LABVAULT_DATABASE_URL", "LABVAULT_DATABASE_PASSWORD_BLOCK", "LABVAULT_BACKUPS_URL",
            "LABVAULT_S3_CREDENTIALS_BLOCK"} <= set(env["default"])
    assert not any(value for name, value in env["default"].items() if "PASSWORD" in name or "SECRET" in name)


def test_they_differ_only_in_infrastructure() -> None:
    process, kubernetes = template("process"), template("kubernetes")
    for part in ("job_configuration", "variables"):
        a = process[part] if part == "job_configuration" else process[part]["properties"]
        b = kubernetes[part] if part == "job_configuration" else kubernetes[part]["properties"]
        assert set(a) - INFRASTRUCTURE == set(b) - INFRASTRUCTURE, part
    shared = set(process["job_configuration"]) - INFRASTRUCTURE
    assert {key: process["job_configuration"][key] for key in shared} == \
        {key: kubernetes["job_configuration"][key] for key in shared}
    container = kubernetes["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    assert (container["env"], container["args"]) == ("{{ env }}", "{{ command }}")
