"""The deployments of `prefect.yaml`, read so nothing about them is written twice."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labvault.errors import InvalidInputError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PREFECT_YAML = PROJECT_ROOT / "prefect.yaml"


@dataclass(frozen=True)
class DeploymentSpec:
    """One entry of `deployments:` in prefect.yaml."""

    name: str
    entrypoint: str
    description: str = ""
    tags: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: list[dict[str, Any]] = field(default_factory=list)


def read_deployments(path: Path = PREFECT_YAML) -> list[DeploymentSpec]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInputError(f"cannot read {path}: {exc}") from exc
    return [
        DeploymentSpec(name=entry["name"], entrypoint=entry["entrypoint"],
                       description=entry.get("description", ""), tags=entry.get("tags") or [],
                       parameters=entry.get("parameters") or {},
                       schedules=entry.get("schedules") or [])
        for entry in document.get("deployments") or []
    ]
