"""What the server areas (settings, stats, archiving, replication) add to the default
audit: round trips across an emulated link and seconds on loopback.

One throwaway loopback server with a genuine MLflow database (``tools/build_mlflow_db.py``).
The same default audit runs with the four areas and without them (``--deselect`` of their
modules: a deselected check's probes are not collected), alternating the two sides:

1. round trips of one audit through ``latency_proxy.py`` (``--rtt`` link), with minus
   without: goal <= 2;
2. seconds on loopback, median of ``--repeats`` alternating pairs, with minus without,
   for the whole subprocess and for the checks' own summed durations: goal <= 0.05 s.

    python benchmarks/server_cost.py [--rows 100000] [--rtt 20] [--repeats 11]

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

AREAS = ("settings", "stats", "archiving", "replication")
WITHOUT = tuple(f"--deselect=pytest_mlflowdb/checks/{area}.py" for area in AREAS)
GOAL_TRIPS, GOAL_SECONDS = 2, 0.05


def _checks_seconds(bench: Bench, report: str) -> tuple[float, int]:
    document = json.loads((bench.workdir / report).read_text())
    return (sum(c.get("duration_s") or 0.0 for c in document["checks"]),
            len(document["checks"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="metric rows")
    parser.add_argument("--rtt", type=float, default=20.0, help="round trip, milliseconds")
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args(argv)

    from build_mlflow_db import build_database, tune_for_bulk_load

    from pytest_mlflowdb.servers import start_server

    server = start_server("path")
    figures: list[tuple[str, float, float]] = []
    try:
        tune_for_bulk_load(server)
        build_database(server, "cost_db", args.rows)
        with tempfile.TemporaryDirectory(prefix="mlflowdb-cost-") as tmp:
            bench = Bench(server, Path(tmp))
            uri = bench.uri("cost_db")
            sides = {"with": (), "without": WITHOUT}
            for extra in sides.values():  # warm-up
                bench.audit(uri, extra=extra)
            counts = {}
            with LatencyProxy((server.host, server.port), args.rtt / 2000) as proxy:
                trips: dict[str, list[int]] = {k: [] for k in sides}
                for _ in range(3):
                    for side, extra in sides.items():
                        proxy.reset()
                        bench.audit(f"postgresql://{server.user}@127.0.0.1:{proxy.port}/"
                                    "cost_db", extra=extra, report=f"{side}.json")
                        trips[side].append(proxy.round_trips)
                        counts[side] = _checks_seconds(bench, f"{side}.json")[1]
            walls: dict[str, list[float]] = {k: [] for k in sides}
            spent: dict[str, list[float]] = {k: [] for k in sides}
            for _ in range(args.repeats):
                for side, extra in sides.items():
                    walls[side].append(bench.audit(uri, extra=extra, report=f"{side}.json"))
                    spent[side].append(_checks_seconds(bench, f"{side}.json")[0])
            outcomes = bench.outcomes("with.json")
    finally:
        server.stop()
    med = statistics.median
    print(f"\n{args.rows:,} metric rows; {counts['with']} checks with the areas, "
          f"{counts['without']} without; {args.rtt:g} ms link for round trips (median of "
          f"3), loopback seconds median of {args.repeats} alternating pairs")
    print(f"  round trips: with {med(trips['with']):g}, without {med(trips['without']):g}")
    print(f"  wall: with {med(walls['with']):.3f} s, without {med(walls['without']):.3f} s")
    print(f"  checks' own: with {med(spent['with']):.3f} s, without "
          f"{med(spent['without']):.3f} s")
    figures.append(("round trips added", med(trips["with"]) - med(trips["without"]),
                    GOAL_TRIPS))
    figures.append(("seconds added, whole audit (wall)",
                    med(walls["with"]) - med(walls["without"]), GOAL_SECONDS))
    figures.append(("seconds added, checks' own durations",
                    med(spent["with"]) - med(spent["without"]), GOAL_SECONDS))
    ok = True
    for name, value, goal in figures:
        verdict = "within goal" if value <= goal else "ABOVE GOAL"
        ok &= value <= goal
        print(f"{name}: {value:.3f} (goal <= {goal}) {verdict}")
    print(f"outcomes with the areas: {outcomes}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
