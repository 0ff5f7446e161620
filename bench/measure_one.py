"""Runs one command and reports its wall time, CPU time (user + system, its threads and children
included) and peak RSS (this helper's only child)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    started = time.perf_counter()
    done = subprocess.run(spec["command"], cwd=spec["cwd"], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        sys.stderr.write(done.stderr[-3000:])
        sys.exit(done.returncode)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
                      "rss_mb": usage.ru_maxrss / 1024, "stdout": done.stdout}))
