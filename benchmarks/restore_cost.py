"""What does the restore check cost over doing the same by hand?

Starts one throwaway server on loopback, builds a genuine MLflow database on it with
``tools/build_mlflow_db.py`` (MLflow's migrations at head, bulk COPY, VACUUM ANALYZE),
then alternates, ``--repeats`` times each:

- by hand: ``pg_dump -Fc`` of that database, ``CREATE DATABASE ... TEMPLATE template0``,
  ``pg_restore --no-owner --no-privileges -j N`` into it, ``DROP DATABASE``;
- ours: ``pytest --mlflowdb-uri=... --mlflowdb-restore-test --mlflowdb-scratch-uri=...
  -m slow`` (only the backup checks) as a subprocess in an empty folder: the same dump,
  restore into the same server, plus what the checks add (reading the copy's schema,
  counting its rows, the newest data on both sides, dropping the scratch database).

It prints the medians side by side: the backup checks' own time (their "in all" figure
in the JSON report: dump, restore, verification, clean-up) and the whole pytest
subprocess (with Python's and pytest's start-up), each over the manual time, beside the
goal (<= 1.15). Exit status 0 when the checks' ratio is within the goal.

    python benchmarks/restore_cost.py [--rows 1000000] [--repeats 3] [--jobs N]

Not a test: not collected by pytest, not run in CI. It writes only to the databases it
creates on the server it starts, and stops that server at the end. The password travels
in PGPASSWORD, never on a command line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

GOAL_RATIO = 1.15


def _uri(server, database: str) -> str:
    return (f"postgresql://{quote(server.user, safe='')}@{server.host}:{server.port}/"
            f"{quote(database, safe='')}")


def by_hand(server, database: str, workdir: Path, jobs: int) -> float:
    """pg_dump -Fc, create, pg_restore -j N, drop: the wall time of the four."""
    env = dict(os.environ, PGPASSWORD=server.password)
    dump = workdir / "manual.dump"
    start = time.perf_counter()
    subprocess.run([str(server.bin_dir / "pg_dump"), "-Fc", "--no-sync", "-f", str(dump),
                    "-d", _uri(server, database)], env=env, check=True, capture_output=True)
    server.create_database("bench_manual_copy", template="template0")
    subprocess.run([str(server.bin_dir / "pg_restore"), "--no-owner", "--no-privileges",
                    "--exit-on-error", "-j", str(jobs), "-d",
                    _uri(server, "bench_manual_copy"), str(dump)],
                   env=env, check=True, capture_output=True)
    server.drop_database("bench_manual_copy")
    wall = time.perf_counter() - start
    dump.unlink()
    return wall


def ours(server, database: str, workdir: Path) -> tuple[float, float, str]:
    """The backup checks as a subprocess: (their own seconds, the subprocess's, outcome)."""
    report = workdir / "restore.json"
    env = dict(os.environ, PGPASSWORD=server.password)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", f"--mlflowdb-uri={_uri(server, database)}",
         "--mlflowdb-restore-test", f"--mlflowdb-scratch-uri={_uri(server, 'postgres')}",
         "-m", "slow", f"--mlflowdb-report={report}", "-q", "-p", "no:cacheprovider"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=3600,
        stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    if not report.exists():
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        raise RuntimeError(f"no report (exit {done.returncode}): " + " | ".join(tail))
    checks = {c["id"]: c for c in json.loads(report.read_text())["checks"]}
    total = next(f["value"] for f in checks["backup.rto"]["findings"]
                 if f["object"] == "backup checks")
    outcome = ", ".join(f"{i} {c['outcome']}" for i, c in sorted(checks.items())
                        if c["outcome"] != "passed") or "all backup checks passed"
    return float(total), wall, outcome


def main(argv: list[str] | None = None) -> int:
    from pytest_mlflowdb.servers.restore import default_jobs

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="metric rows")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=default_jobs(),
                        help="pg_restore -j by hand (the check uses the same default)")
    parser.add_argument("--server", default="wheel",
                        help="throwaway server kind: wheel (default), path, container, auto")
    args = parser.parse_args(argv)

    from build_mlflow_db import build_database, tune_for_bulk_load

    from pytest_mlflowdb.servers import start_server

    server = start_server(args.server)
    try:
        tune_for_bulk_load(server)
        stats = build_database(server, "bench_restore", args.rows)
        print(f"built bench_restore: {args.rows} metric rows, {stats.runs} runs "
              f"({sum(stats.timings.values()):.1f}s)", flush=True)
        manual, checks, walls, outcome = [], [], [], ""
        with tempfile.TemporaryDirectory() as folder:
            workdir = Path(folder)
            ours(server, "bench_restore", workdir)  # warm-up (page cache, imports)
            for _ in range(args.repeats):
                manual.append(by_hand(server, "bench_restore", workdir, args.jobs))
                seconds, wall, outcome = ours(server, "bench_restore", workdir)
                checks.append(seconds)
                walls.append(wall)
        m, c, w = (statistics.median(x) for x in (manual, checks, walls))
        print(f"by hand   pg_dump -Fc + pg_restore -j {args.jobs}: median {m:.2f}s "
              f"({', '.join(f'{x:.2f}' for x in manual)})")
        print(f"ours      backup checks' own time:        median {c:.2f}s "
              f"({', '.join(f'{x:.2f}' for x in checks)})  [{outcome}]")
        print(f"ours      whole pytest subprocess:        median {w:.2f}s "
              f"({', '.join(f'{x:.2f}' for x in walls)})")
        print(f"ratio checks / by hand = {c / m:.3f} (goal <= {GOAL_RATIO}); "
              f"whole pytest / by hand = {w / m:.3f}")
        return 0 if c / m <= GOAL_RATIO else 1
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
