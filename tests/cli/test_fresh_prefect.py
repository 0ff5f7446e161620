"""The embedded default as a new user meets it: a fresh PREFECT_HOME, no analytics setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_the_demo_on_a_fresh_prefect_home_prints_nothing_on_stderr(tmp_path: Path) -> None:
    """Prefect's analytics, on by default, printed telemetry errors (or 130 lines of `database
    is locked`) on a first run; labvault turns them off unless the user turned them on."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PREFECT_", "LABVAULT_"))}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), LABVAULT_HOME=str(tmp_path / "labvault"))
    done = subprocess.run([str(Path(sys.executable).with_name("labvault")), "demo"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "Completed" in done.stdout
