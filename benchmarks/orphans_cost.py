"""Is integrity.orphans' cost flat in metric rows, whatever the planner thinks?

The per-run probes of ``integrity.orphans`` (latest_metrics rows whose run has no metric
row; run children that name no run) walk MLflow's run_uuid indexes, one probe per run.
On a metrics table with no recent vacuum (an empty visibility map) the planner prices an
index-only probe above a sequential scan that stops at its first match, and would scan
metrics once per run; so the probes run with sequential scans off in their transaction
(``probes.integrity.INDEX_ONLY_PLAN``).

One run, side by side, on one throwaway loopback server (system binaries: pg_visibility
empties the visibility map, as a table never vacuumed since its load has it), for a small
and a large genuine MLflow database (``tools/build_mlflow_db.py``): the probe as the
planner would plan it, and as the audit runs it, each also with planner costs that price
index reads dearly (as an empty visibility map and a cold cache do). Prints each median
and, beside the goal, the audit's cost per run at the large database / at the small one:
at most 1.5 (flat in metric rows; the walk is one index probe per run, and the build
makes one run per 2,000 metric rows).

    python benchmarks/orphans_cost.py [--small 100000] [--large 2000000] [--repeats 5]

Not a test: not collected, not run in CI. It writes only to the databases it creates.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

GOAL_RATIO = 1.5


def _probe_seconds(uri: str, planner: dict[str, str] | None) -> float:
    from pytest_mlflowdb.config.targets import parse_target
    from pytest_mlflowdb.db.database import Database
    from pytest_mlflowdb.probes import integrity as probe

    db = Database(parse_target(uri), statement_timeout=600).connect()
    try:
        lay = probe.layout(db, "public")
        query = probe.latest_without_metrics_query(lay)
        started = time.perf_counter()
        db.rows(query, {"cap": 10}, planner=planner)
        return time.perf_counter() - started
    finally:
        db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    import psycopg
    from build_mlflow_db import build_database, tune_for_bulk_load

    from pytest_mlflowdb.probes.integrity import INDEX_ONLY_PLAN
    from pytest_mlflowdb.servers import start_server

    server = start_server("path")
    sizes = {"small": args.small, "large": args.large}
    times: dict[tuple[str, str], list[float]] = {}
    try:
        tune_for_bulk_load(server)
        uris = {}
        for label, rows in sizes.items():
            build_database(server, f"orphans_{label}", rows)
            uris[label] = server.uri(f"orphans_{label}")
            with psycopg.connect(uris[label], autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_visibility")
                conn.execute("SELECT pg_truncate_visibility_map('metrics')")
                conn.execute("SELECT pg_truncate_visibility_map('latest_metrics')")
        adverse = {"random_page_cost": "4000", "seq_page_cost": "0.001"}
        plans = {"as planned": None, "audit": INDEX_ONLY_PLAN,
                 "as planned, adverse": adverse, "audit, adverse": adverse | INDEX_ONLY_PLAN}
        with psycopg.connect(uris["large"]) as conn:
            runs = {label: conn.execute(
                "SELECT count(*) FROM runs").fetchone()[0] for label in ("large",)}
        with psycopg.connect(uris["small"]) as conn:
            runs["small"] = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
        for _ in range(args.repeats):
            for label in sizes:
                for name, planner in plans.items():
                    times.setdefault((label, name), []).append(
                        _probe_seconds(uris[label], planner))
    finally:
        server.stop()
    print(f"latest_metrics without metrics, median of {args.repeats} (seconds), empty "
          "visibility map; adverse: random_page_cost 4000, seq_page_cost 0.001")
    print(f"{'database':<10}{'metric rows':>13}{'runs':>7}" + "".join(f"{n:>21}" for n in plans))
    for label, rows in sizes.items():
        cells = "".join(f"{statistics.median(times[(label, n)]):>21.3f}" for n in plans)
        print(f"{label:<10}{rows:>13,}{runs[label]:>7}{cells}")
    ok = True
    for name in ("audit", "audit, adverse"):
        per_run = {label: statistics.median(times[(label, name)]) / runs[label]
                   for label in sizes}
        ratio = per_run["large"] / per_run["small"]
        verdict = "within goal" if ratio <= GOAL_RATIO else "ABOVE GOAL"
        ok &= ratio <= GOAL_RATIO
        print(f"{name}: per-run cost large/small {ratio:.2f} (goal <= {GOAL_RATIO}) {verdict}")
    return 0 if ok else 1

if __name__ == "__main__":
    sys.exit(main())
