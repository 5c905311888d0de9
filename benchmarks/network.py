"""The audit across a network: seconds and round trips behind an emulated link.

Users' databases sit a few to tens of milliseconds away. This kernel has no netem, so a
loopback proxy of our own (``latency_proxy.py``) delays every chunk by half the round
trip each way and counts the round trips that cross it. One run, side by side, on one
throwaway loopback server with a genuine MLflow database (``tools/build_mlflow_db.py``):

1. the default audit through a ``--rtt`` link / check_postgres's eight actions (the same
   ground as ``speed.py`` figure 1) through the same link: goal <= 0.5;
2. round trips of one default audit, in all and after its connections are open (each
   connection's start-up and password exchange, about 3 round trips, set apart): goal
   <= 25 after the connection is open;
3. ``--fleet`` databases, each behind a link of its own, audited by one pytest process
   (``--mlflowdb-uri-file``): the wall time, with the goal of 10 s for forty.

    python benchmarks/network.py [--rows 200000] [--rtt 20] [--fleet 40] [--repeats 3]

Needs check_postgres (``apt-get install check-postgres``) for figure 1. Not a test: not
collected, not run in CI. Writes only to the databases it creates on the server it
starts; passwords travel in PGPASSWORD, never on a command line.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from latency_proxy import LatencyProxy  # noqa: E402
from speed import ROOT, Bench  # noqa: E402  (speed.py puts ROOT and tools/ on sys.path)

#: round trips of opening one connection (start-up, SCRAM's two exchanges)
CONNECT_ROUND_TRIPS = 3


def _through(bench: Bench, proxy: LatencyProxy, database: str) -> str:
    return f"postgresql://{bench.server.user}@127.0.0.1:{proxy.port}/{database}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="metric rows")
    parser.add_argument("--rtt", type=float, default=20.0, help="round trip, milliseconds")
    parser.add_argument("--fleet", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if shutil.which("check_postgres") is None:
        parser.error("check_postgres is not installed (apt-get install check-postgres)")

    from build_mlflow_db import build_database, tune_for_bulk_load

    from pytest_mlflowdb.servers import start_server

    delay = args.rtt / 2000
    server = start_server("path")
    figures: list[tuple[str, float, float | None, str]] = []
    try:
        tune_for_bulk_load(server)
        build_database(server, "net_db", args.rows)
        for i in range(args.fleet):
            with server.admin() as conn:
                conn.execute(f'CREATE DATABASE "net_fleet_{i}" TEMPLATE "net_db"')
        with tempfile.TemporaryDirectory(prefix="mlflowdb-net-") as tmp:
            bench = Bench(server, Path(tmp))
            with LatencyProxy((server.host, server.port), delay) as proxy:
                uri = _through(bench, proxy, "net_db")
                bench.audit(uri)  # warm-up
                audits, cps, trips, conns = [], [], [], []
                for _ in range(args.repeats):
                    proxy.reset()
                    audits.append(bench.audit(uri))
                    trips.append(proxy.round_trips)
                    conns.append(proxy.connections)
                    started = time.perf_counter()
                    for action, extra in _actions():
                        bench_cp(bench, proxy.port, "net_db", action, extra)
                    cps.append(time.perf_counter() - started)
                outcomes = bench.outcomes()
            audit, cp = statistics.median(audits), statistics.median(cps)
            figures.append((f"default audit / check_postgres's 8 actions, {args.rtt:g} ms "
                            f"RTT ({audit:.2f} s vs {cp:.2f} s)", audit / cp, 0.5, outcomes))
            total, opened = statistics.median(trips), statistics.median(conns)
            figures.append((f"round trips of one audit after its {opened:g} connection(s) "
                            f"opened ({total:g} in all)",
                            total - CONNECT_ROUND_TRIPS * opened, 25, ""))
            with contextlib.ExitStack() as stack:
                proxies = [stack.enter_context(LatencyProxy((server.host, server.port), delay))
                           for _ in range(args.fleet)]
                fleet = Path(tmp) / "fleet.txt"
                fleet.write_text("".join(f"{_through(bench, p, f'net_fleet_{i}')}\n"
                                         for i, p in enumerate(proxies)))
                started = time.perf_counter()
                bench.audit(extra=(f"--mlflowdb-uri-file={fleet}",), report="fleet.json")
                wall = time.perf_counter() - started
                # the largest child so far: the fleet's pytest is the biggest of them
                peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            goal = 10.0 * args.fleet / 40
            figures.append((f"{args.fleet} databases, each behind its own link, one pytest "
                            f"process (s; peak memory {peak:.0f} MB)", wall, goal,
                            bench.outcomes("fleet.json")))
    finally:
        server.stop()
    print(f"\n{args.rows:,} metric rows, {args.rtt:g} ms round trip, median of "
          f"{args.repeats}; run from {ROOT}")
    ok = True
    for name, value, goal, note in figures:
        verdict = "" if goal is None else ("within goal" if value <= goal else "ABOVE GOAL")
        ok &= goal is None or value <= goal
        print(f"{name}: {value:.2f} (goal <= {goal}) {verdict}" + (f"  [{note}]" if note else ""))
    return 0 if ok else 1


def _actions():
    from speed import CHECK_POSTGRES_ACTIONS

    return CHECK_POSTGRES_ACTIONS


def bench_cp(bench: Bench, port: int, database: str, action: str, extra: list[str]) -> None:
    import subprocess

    subprocess.run(["check_postgres", f"--action={action}", "-H", "127.0.0.1", "-p", str(port),
                    "-u", bench.server.user, "--dbname", database, *extra], env=bench.env,
                   capture_output=True, timeout=300, stdin=subprocess.DEVNULL)


if __name__ == "__main__":
    sys.exit(main())
