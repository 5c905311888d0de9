"""What the workload area adds to the default audit, on a database MLflow has worked.

One throwaway loopback server (it preloads ``pg_stat_statements``, as every throwaway
server does), one genuine MLflow database with ``--rows`` metric rows
(``tools/build_mlflow_db.py``), ``pg_stat_statements`` created in it and filled to about
``--entries`` entries (distinct statements, a fifth of them on MLflow's tables, so the
area's server-side filter has work and sends some back). Then, side by side and
alternating, the default audit with and without the area (``--deselect`` of its module):

1. the wall time of the whole audit subprocess (median), and the area's checks' own
   durations from the JSON report: goal <= 0.3 s added;
2. round trips of one audit through ``latency_proxy.py`` (a 2 ms link), with and
   without the area: goal <= 3 added.

    python benchmarks/workload_cost.py [--rows 1000000] [--entries 5000] [--repeats 5]

Not a test: not collected, not run in CI. Writes only to the database it creates on the
server it starts; the password travels in PGPASSWORD.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from latency_proxy import LatencyProxy  # noqa: E402
from speed import Bench  # noqa: E402  (speed.py puts ROOT and tools/ on sys.path)

GOAL_SECONDS = 0.3
GOAL_TRIPS = 3
WITHOUT = ("--deselect", "pytest_mlflowdb/checks/workload.py")


_CATALOG_COLUMNS = ("relname", "relnamespace", "reltype", "relowner", "relam", "relfilenode",
                    "reltablespace", "relpages", "reltuples", "relallvisible", "reltoastrelid",
                    "relhasindex", "relisshared", "relpersistence")
_RUNS_COLUMNS = ("run_uuid", "name", "source_type", "source_name", "entry_point_name",
                 "user_id", "status", "start_time", "end_time", "source_version",
                 "lifecycle_stage", "artifact_uri", "experiment_id", "deleted_time")


def _columns(names: tuple[str, ...], i: int) -> str:
    """The ``i``-th subset of ``names`` (column aliases and constants are not part of a
    statement's identity in pg_stat_statements; the columns read are)."""
    return ", ".join(n for bit, n in enumerate(names) if i >> bit & 1)


def fill_statements(server, database: str, entries: int) -> int:
    """About ``entries`` distinct statements in pg_stat_statements; returns its count."""
    import psycopg

    with psycopg.connect(server.uri(database), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("SELECT pg_stat_statements_reset()")
        with conn.pipeline():
            for i in range(entries):
                if i % 5 == 0:  # on MLflow's tables: the area reads these back
                    conn.execute(f"SELECT {_columns(_RUNS_COLUMNS, i // 5 + 1)} FROM runs "
                                 "WHERE experiment_id = 0 LIMIT 1")
                else:
                    conn.execute(f"SELECT {_columns(_CATALOG_COLUMNS, i + 1)} FROM pg_class "
                                 "WHERE oid = 0")
        return int(conn.execute("SELECT count(*) FROM pg_stat_statements").fetchone()[0])


def area_seconds(bench: Bench, report: str) -> float:
    document = json.loads((bench.workdir / report).read_text())
    return sum(c.get("duration_s") or 0.0 for c in document["checks"]
               if c["id"].startswith("workload."))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--entries", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--server", default="path")
    args = parser.parse_args(argv)

    from build_mlflow_db import build_database, tune_for_bulk_load

    from pytest_mlflowdb.servers import start_server

    server = start_server(args.server)
    try:
        tune_for_bulk_load(server)
        build = build_database(server, "bench_workload", args.rows)
        print("built", build.summary(), flush=True)
        entries = fill_statements(server, "bench_workload", args.entries)
        with server.admin() as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        with tempfile.TemporaryDirectory(prefix="mlflowdb-bench-") as tmp:
            bench = Bench(server, Path(tmp))
            uri = bench.uri("bench_workload")
            bench.audit(uri, report="with.json")  # warm-up, not counted
            bench.audit(uri, extra=WITHOUT, report="without.json")
            walls: dict[str, list[float]] = {"with": [], "without": []}
            own: list[float] = []
            for _ in range(args.repeats):
                walls["with"].append(bench.audit(uri, report="with.json"))
                own.append(area_seconds(bench, "with.json"))
                walls["without"].append(bench.audit(uri, extra=WITHOUT, report="without.json"))
            outcomes = bench.outcomes("with.json")
            trips = {}
            with LatencyProxy((server.host, server.port), 0.001) as proxy:
                proxied = f"postgresql://{server.user}@127.0.0.1:{proxy.port}/bench_workload"
                for label, extra in (("with", ()), ("without", WITHOUT)):
                    proxy.reset()
                    bench.audit(proxied, extra=extra, report=f"proxied-{label}.json")
                    trips[label] = proxy.round_trips
    finally:
        server.stop()

    added = statistics.median(walls["with"]) - statistics.median(walls["without"])
    added_trips = trips["with"] - trips["without"]
    print(f"\nPostgreSQL {version}, {args.rows:,} metric rows, {entries} pg_stat_statements "
          f"entries, median of {args.repeats} audits each (after a warm-up); {outcomes}")
    print(f"audit wall time with the area {statistics.median(walls['with']):.2f}s, "
          f"without {statistics.median(walls['without']):.2f}s")
    rows = (
        ("wall time added by the area", f"{added:.3f}s", f"<= {GOAL_SECONDS}s",
         added <= GOAL_SECONDS),
        ("the area's checks' own time", f"{statistics.median(own):.3f}s",
         f"<= {GOAL_SECONDS}s", statistics.median(own) <= GOAL_SECONDS),
        ("round trips added (2 ms link)", f"{added_trips} ({trips['without']} -> "
         f"{trips['with']})", f"<= {GOAL_TRIPS}", added_trips <= GOAL_TRIPS),
    )
    for name, value, goal, ok in rows:
        print(f"{name:<32}{value:>22}  goal {goal:<8} {'within goal' if ok else 'ABOVE GOAL'}")
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
