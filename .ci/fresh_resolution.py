"""Compare what pip resolves today within pyproject.toml's bounds with constraints.txt.

Reads pip's installation report (`pip install --dry-run --report`) and prints one line per
package whose version differs from the lock, or that only one side has. Exit 0: the same set;
exit 1: differences (CI then runs the tests on the fresh set too).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(report_path: str, lock_path: str) -> int:
    report = json.loads(Path(report_path).read_text())
    fresh = {normalized(item["metadata"]["name"]): item["metadata"]["version"]
             for item in report["install"] if not item.get("is_direct")}
    locked = {}
    for line in Path(lock_path).read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, _, version = line.partition("==")
            locked[normalized(name)] = version.strip()
    ignored = {"pip", "setuptools", "wheel"}
    differences = [f"{name}: lock {locked.get(name, '-')}, fresh {fresh.get(name, '-')}"
                   for name in sorted((set(fresh) | set(locked)) - ignored)
                   if fresh.get(name) != locked.get(name)]
    for line in differences:
        print(line)
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
