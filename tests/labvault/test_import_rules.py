"""The layout's import rules: the domain never imports Prefect, and each mechanism imports only
what sits below it (each subpackage's docstring says what it must never import).

Read from the source, so an import inside a function (labvault defers costly ones) counts too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DOMAIN = ROOT / "labvault"
MIGRATIONS = DOMAIN / "db" / "migrations"
# What every part may lean on: the version, errors, settings, and small helpers of no layer.
FOUNDATIONS = frozenset({"labvault", "labvault.errors", "labvault.settings", "labvault.url_secrets",
                         "labvault.sizes", "labvault.utc", "labvault.json_codec"})
MECHANISMS = ("zipstream", "archive", "storage", "db")
# For each mechanism: the parts of labvault it may import, and the packages it must not.
ALLOWED = {
    "zipstream": {"zipstream"},
    "archive": {"archive", "zipstream", "storage", "foundation"},
    "storage": {"storage", "foundation"},
    "db": {"db", "foundation"},
    "foundation": {"foundation"},
}
FORBIDDEN_PACKAGES = {"archive": {"sqlalchemy", "alembic"}, "storage": {"sqlalchemy", "alembic"}}
# What no domain module imports, operations included: Prefect, and the doors and adapters over it.
ABOVE_THE_DOMAIN = frozenset({"prefect", "tasks", "flows", "deployments", "labvault_cli", "labvault_web"})


def module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def domain_modules() -> list[Path]:
    return sorted(p for p in DOMAIN.rglob("*.py") if MIGRATIONS not in p.parents)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function; `from labvault import x`
    names the module `labvault.x` where x is one."""
    found: set[str] = set()
    package = module_of(path) if path.stem == "__init__" else module_of(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # `from . import x`, `from ..zipstream import y`
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base]).strip(".")
            found.add(base)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                if (ROOT / candidate.replace(".", "/")).with_suffix(".py").exists() or \
                        (ROOT / candidate.replace(".", "/") / "__init__.py").exists():
                    found.add(candidate)
    return found


def layer_of(module: str) -> str:
    if module in FOUNDATIONS:
        return "foundation"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in MECHANISMS else "operation"


def violations(layer: str) -> list[str]:
    found = []
    for path in domain_modules():
        module = module_of(path)
        if layer_of(module) != layer:
            continue
        for imported in sorted(imports_of(path)):
            top = imported.split(".")[0]
            if top == "labvault" and layer_of(imported) not in ALLOWED[layer]:
                found.append(f"{module} imports {imported} ({layer_of(imported)})")
            if top in FORBIDDEN_PACKAGES.get(layer, ()):
                found.append(f"{module} imports {imported}")
            if layer == "zipstream" and top != "labvault" and top not in sys.stdlib_module_names \
                    and top != "__future__":
                found.append(f"{module} imports {imported} (not the standard library)")
    return found


@pytest.mark.parametrize("layer", [*MECHANISMS, "foundation"])
def test_each_mechanism_imports_only_what_sits_below_it(layer: str) -> None:
    assert [p for p in domain_modules() if layer_of(module_of(p)) == layer], f"no module in {layer}"
    assert violations(layer) == []


def test_no_domain_module_imports_prefect_or_a_door_even_inside_a_function() -> None:
    found = [f"{module_of(path)} imports {imported}" for path in domain_modules()
             for imported in sorted(imports_of(path)) if imported.split(".")[0] in ABOVE_THE_DOMAIN]
    assert found == []


def test_the_rules_see_imports_inside_functions_and_from_the_package() -> None:
    """The checks would catch a breach: they find a deferred import (S3's range reader, imported
    when an object is first read), a module named in `from labvault import x`, and a deferred
    import of Prefect in a CLI command (the same walk, over a door that may import it)."""
    assert "labvault.storage.range_reader" in imports_of(DOMAIN / "storage" / "s3.py")
    assert "labvault.audit" in imports_of(DOMAIN / "backups.py")
    assert layer_of("labvault.backups") == "operation" and "operation" not in ALLOWED["archive"]
    assert "prefect" in {name.split(".")[0] for name in imports_of(ROOT / "labvault_cli" / "context.py")}


def test_the_domain_package_never_imports_prefect() -> None:
    modules = [module_of(p) for p in domain_modules()]
    code = f"import sys; import {', '.join(modules)}; print('prefect' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
