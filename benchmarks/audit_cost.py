"""Does the default audit's time grow with the rows in MLflow's tables?

Starts one throwaway server on loopback, builds two genuine MLflow databases on it with
``tools/build_mlflow_db.py`` (MLflow's migrations at head, bulk COPY, VACUUM ANALYZE):
one with 100 thousand metric rows, one with 10 million. Then it times the default audit
of each, ``pytest --mlflowdb-uri=...`` as a subprocess in an empty folder, several times
alternating the two, and prints the medians side by side with their ratio beside the
goal (large / small <= 1.2). Two figures per database: the wall time of the whole
subprocess (what a CI job waits for) and the sum of the checks' own durations from the
JSON report (what the checks cost, without Python's and pytest's start-up).

    python benchmarks/audit_cost.py [--small 100000] [--large 10000000] [--repeats 7]

Not a test: not collected by pytest, not run in CI. It writes only to the databases it
creates on the server it starts, and stops that server at the end.
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

GOAL_RATIO = 1.2


def run_audit(server, database: str, workdir: Path) -> tuple[float, float, str]:
    """One default audit as a subprocess: (wall seconds, sum of checks' seconds, outcomes
    with the checks that warned or failed named).

    The password travels in PGPASSWORD, never on the command line."""
    report = workdir / f"{database}.json"
    uri = (f"postgresql://{quote(server.user, safe='')}@{server.host}:{server.port}/"
           f"{quote(database, safe='')}")
    env = dict(os.environ, PGPASSWORD=server.password)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", f"--mlflowdb-uri={uri}",
         f"--mlflowdb-report={report}", "-q", "-p", "no:cacheprovider"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=600,
        stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    if not report.exists():
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        raise RuntimeError(f"the audit of {database} wrote no report (exit "
                           f"{done.returncode}): " + " | ".join(tail))
    document = json.loads(report.read_text())
    checks = sum(c.get("duration_s") or 0.0 for c in document["checks"])
    summary = {k: v for k, v in document["summary"].items() if v}
    noted = [f"{c['id']} {c['outcome']}" for c in document["checks"]
             if c["outcome"] not in ("passed", "skipped")]
    return wall, checks, f"{summary} {'; '.join(noted)}".strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--server", default="path",
                        help="throwaway server kind: path (default), wheel, container, auto")
    args = parser.parse_args(argv)

    from build_mlflow_db import build_database, tune_for_bulk_load

    from pytest_mlflowdb.servers import start_server

    server = start_server(args.server)
    try:
        tune_for_bulk_load(server)
        sizes = {"small": args.small, "large": args.large}
        builds = {}
        for label, rows in sizes.items():
            builds[label] = build_database(server, f"bench_{label}", rows)
            print("built", builds[label].summary(), flush=True)
        with server.admin() as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        walls: dict[str, list[float]] = {k: [] for k in sizes}
        checks: dict[str, list[float]] = {k: [] for k in sizes}
        summaries = {}
        with tempfile.TemporaryDirectory(prefix="mlflowdb-bench-") as tmp:
            for label in sizes:  # warm-up: caches, first imports; not counted
                run_audit(server, f"bench_{label}", Path(tmp))
            for _ in range(args.repeats):
                for label in sizes:
                    wall, spent, summaries[label] = run_audit(server, f"bench_{label}",
                                                              Path(tmp))
                    walls[label].append(wall)
                    checks[label].append(spent)
    finally:
        server.stop()

    print(f"\nPostgreSQL {version}, {os.cpu_count()} cores, median of {args.repeats} "
          "audits each (after one warm-up)")
    print(f"{'database':<12}{'metric rows':>14}{'built in':>11}{'audit wall':>13}"
          f"{'checks':>10}  outcomes")
    for label, rows in sizes.items():
        built = sum(builds[label].timings.values())
        print(f"{'bench_' + label:<12}{rows:>14,}{built:>10.1f}s"
              f"{statistics.median(walls[label]):>12.2f}s"
              f"{statistics.median(checks[label]):>9.3f}s  {summaries[label]}")
    ok = True
    for name, series in (("audit wall time", walls), ("checks' own time", checks)):
        ratio = statistics.median(series["large"]) / statistics.median(series["small"])
        verdict = "within goal" if ratio <= GOAL_RATIO else "ABOVE GOAL"
        ok &= ratio <= GOAL_RATIO
        print(f"ratio large/small, {name}: {ratio:.2f} (goal <= {GOAL_RATIO}) {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
