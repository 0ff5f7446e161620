"""The install is what the lock and the deployments say: a fresh machine gets the tested set."""

from __future__ import annotations

import tomllib
from importlib.metadata import metadata, version
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).parents[1]


def locked() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    return {name.lower(): pinned for name, _, pinned in (line.partition("==") for line in lines) if pinned}


def test_prefect_yaml_names_the_installed_prefect() -> None:
    declared = yaml.safe_load((ROOT / "prefect.yaml").read_text())["prefect-version"]
    assert declared == version("prefect") == locked()["prefect"]


def test_the_lock_holds_a_sqlalchemy_prefects_scheduler_works_with() -> None:
    """With SQLAlchemy 2.1.9, Prefect 3.9.0's scheduler was seen failing every minute."""
    assert locked()["sqlalchemy"].startswith("2.0.")
    assert version("sqlalchemy").startswith("2.0.")


def test_requires_python_admits_no_python_prefect_refuses() -> None:
    ours = SpecifierSet(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"])
    prefects = SpecifierSet(metadata("prefect")["Requires-Python"])
    for minor in range(8, 16):
        python = f"3.{minor}"
        assert python not in ours or python in prefects, f"pyproject admits Python {python}, Prefect does not"
