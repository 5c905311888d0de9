"""Is the default audit fast at one database and at forty?

One run, side by side, on one throwaway loopback server with genuine MLflow databases
(MLflow's migrations at head plus bulk COPY, ``tools/build_mlflow_db.py``):

1. the default audit of one database / check_postgres's eight actions that cover the same
   ground (connection, database_size, bloat, last_vacuum, last_analyze, txn_wraparound,
   backends, sequence), run one after the other as a monitoring system runs them:
   goal <= 0.5;
2. the default audit / the floor: a one-test pytest run in the same environment that
   imports psycopg, connects and runs one query: goal <= 1.5;
3. the default audit at the large database / at the small one: goal <= 1.2;
4. an unrelated 200-test suite with the plugin installed / with ``-p no:mlflowdb``:
   goal <= 1.05 (the plugin stays dormant);
5. forty databases with ``-n 2`` / the same forty in one process, for information: one
   process collects its targets concurrently, so xdist is no longer needed for speed
   (``network.py`` holds the fleet's goal, behind an emulated network);
6. where the time of one audit goes (``--profile``: cProfile of one in-process run,
   grouped by package).

Every figure is the median of ``--repeats`` runs, alternating the two sides; the two
cheap ones (the floor and the dormant plugin, whose sides differ by tens of milliseconds)
of four times as many, at least 21.

The pytest runs happen in a virtualenv of their own holding what a user installs
(``pip install pytest-mlflowdb pytest-xdist``, from this checkout), not in the
development one, whose test extras (MLflow and its dependencies) add their own pytest
plugins to every run on both sides of each figure. Python writes and reuses its bytecode
there as it does by default; the script says what the same audit costs with
``PYTHONDONTWRITEBYTECODE=1`` (common in container images), where pytest cannot cache its
assertion rewriting of the plugin's modules and redoes it on every run.
``--python-env current`` measures with the interpreter running the script instead.

    python benchmarks/speed.py [--small 100000] [--large 10000000] [--fleet 40]
                               [--repeats 5] [--profile] [--python-env user|current]

Needs check_postgres (``apt-get install check-postgres``) for figure 1 and pytest-xdist
for figure 5. Not a test: not collected, not run in CI. It writes only to the databases it
creates on the server it starts, and stops that server at the end. Passwords travel in
PGPASSWORD, never on a command line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

CHECK_POSTGRES_ACTIONS = (
    ("connection", []),
    ("database_size", ["--warning=100GB", "--critical=200GB"]),
    ("bloat", []),
    ("last_vacuum", []),
    ("last_analyze", []),
    ("txn_wraparound", []),
    ("backends", []),
    ("sequence", []),
)
FLOOR_TEST = '''
import os

import psycopg


def test_one_query():
    with psycopg.connect(os.environ["FLOOR_URI"], connect_timeout=10) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
'''


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, int, str]:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=1800, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start, done.returncode, done.stdout + done.stderr


def median_pair(repeats: int, left: Callable[[], float], right: Callable[[], float]
                ) -> tuple[float, float]:
    """Medians of ``left`` and ``right`` over ``repeats`` alternating runs (one warm-up)."""
    left(), right()
    lefts, rights = [], []
    for _ in range(repeats):
        lefts.append(left())
        rights.append(right())
    return statistics.median(lefts), statistics.median(rights)


def user_python(workdir: Path) -> str:
    """A virtualenv with what a user installs: this checkout and pytest-xdist."""
    venv = workdir / "user-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", str(ROOT), "pytest-xdist"],
                   check=True, stdin=subprocess.DEVNULL)
    return python


class Bench:
    def __init__(self, server, workdir: Path, python: str = sys.executable) -> None:
        self.server = server
        self.workdir = workdir
        self.python = python
        self.env = dict(os.environ, PGPASSWORD=server.password)
        self.env.pop("PYTEST_ADDOPTS", None)
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)  # Python's default; see the docstring
        # the audits' own folder: pytest collects the folder it runs in, and the floor's
        # test and the unrelated suite (folders of their own) must not join the audit
        self.audits = workdir / "audits"
        self.audits.mkdir(exist_ok=True)

    def uri(self, database: str) -> str:
        return f"postgresql://{self.server.user}@{self.server.host}:{self.server.port}/{database}"

    def audit(self, *uris: str, extra: tuple[str, ...] = (), report: str = "a.json",
              env: dict[str, str] | None = None, fresh: bool = False) -> float:
        if fresh:  # as on a first run: pytest's cached assertion rewriting of the plugin gone
            site = Path(self.python).parent.parent / "lib"  # the venv (not the symlink target)
            for cached in site.glob("python*/site-packages/pytest_mlflowdb/**/*-pytest-*.pyc"):
                cached.unlink()
        args = [f"--mlflowdb-uri={u}" for u in uris]
        # a temporary folder of its own: xdist makes one per run, and pytest then deletes
        # the oldest of the machine's earlier runs' folders (a test suite's can be large)
        wall, code, out = timed([self.python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                 f"--basetemp={self.workdir / 'basetemp'}",
                                 *args, f"--mlflowdb-report={report}", *extra],
                                self.audits, env or self.env)
        if not (self.audits / report).exists():
            raise RuntimeError(f"the audit wrote no report (exit {code}): {out[-500:]}")
        return wall

    def outcomes(self, report: str = "a.json") -> str:
        document = json.loads((self.audits / report).read_text())
        noted = [f"{c['id']} {c['outcome']}" for c in document["checks"]
                 if c["outcome"] not in ("passed", "skipped")]
        summary = {k: v for k, v in document["summary"].items() if v}
        return f"{summary} {'; '.join(noted)}".strip()

    def check_postgres(self, database: str) -> float:
        start = time.perf_counter()
        for action, extra in CHECK_POSTGRES_ACTIONS:
            subprocess.run(["check_postgres", f"--action={action}", "-H", self.server.host,
                            "-p", str(self.server.port), "-u", self.server.user,
                            "--dbname", database, *extra], env=self.env, capture_output=True,
                           timeout=300, stdin=subprocess.DEVNULL)
        return time.perf_counter() - start

    def floor(self, database: str) -> float:
        folder = self.workdir / "floor"
        folder.mkdir(exist_ok=True)
        (folder / "test_floor.py").write_text(FLOOR_TEST)
        env = dict(self.env, FLOOR_URI=self.uri(database))
        wall, code, out = timed([self.python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                 "test_floor.py"], folder, env)
        if code != 0:
            raise RuntimeError(f"the floor run failed: {out[-500:]}")
        return wall

    def unrelated(self, dormant: bool) -> float:
        folder = self.workdir / "unrelated"
        if not folder.exists():
            folder.mkdir()
            for module in range(20):
                (folder / f"test_m{module}.py").write_text("".join(
                    f"def test_{i}():\n    assert sum(range({i} * 10)) >= 0\n\n"
                    for i in range(10)))
        plugin = ["-p", "no:mlflowdb"] if not dormant else []
        wall, code, out = timed([self.python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                 *plugin], folder, self.env)
        if code != 0 or "200 passed" not in out:
            raise RuntimeError(f"the unrelated suite did not pass: {out[-500:]}")
        return wall


def profile(bench: Bench, database: str) -> None:
    """One audit in-process under cProfile: cumulative time by top-level package."""
    import pstats

    out = bench.workdir / "audit.prof"
    subprocess.run([bench.python, "-m", "cProfile", "-o", str(out), "-m", "pytest", "-q",
                    "-p", "no:cacheprovider", f"--mlflowdb-uri={bench.uri(database)}"],
                   cwd=bench.audits, env=bench.env, capture_output=True, timeout=600)
    if not out.exists():
        print("profile: cProfile wrote nothing")
        return
    stats = pstats.Stats(str(out))
    total = max(v[3] for v in stats.stats.values())  # type: ignore[attr-defined]
    own: dict[str, float] = {}
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in \
            stats.stats.items():  # type: ignore[attr-defined]
        key = "other"
        for marker, label in (("pytest_mlflowdb", "pytest_mlflowdb"), ("/checks/", "checks"),
                              ("psycopg", "psycopg"), ("_pytest", "pytest"),
                              ("pluggy", "pluggy"), ("xdist", "xdist"),
                              ("importlib", "imports"), ("<frozen", "imports"),
                              ("tabulate", "tabulate"), ("socket", "network"),
                              ("selectors", "network (waiting on the server)")):
            if marker in filename:
                key = label
                break
        if filename == "~":
            key = "builtins (C: I/O, waits)"
        own[key] = own.get(key, 0.0) + tottime
    print(f"\nprofile of one audit ({total:.2f}s in-process), own time by package:")
    for key, seconds in sorted(own.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {key:<34}{seconds:>7.3f}s")
    print("  top functions by cumulative time:")
    stats.sort_stats("cumulative").print_stats(r"pytest_mlflowdb|checks", 12)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=10_000_000)
    parser.add_argument("--fleet", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--server", default="path")
    parser.add_argument("--python-env", choices=("user", "current"), default="user",
                        help="where pytest runs: a fresh virtualenv with what a user "
                             "installs (default), or this interpreter's environment")
    args = parser.parse_args(argv)
    if shutil.which("check_postgres") is None:
        parser.error("check_postgres is not installed (apt-get install check-postgres)")

    from build_mlflow_db import build_database, settle, tune_for_bulk_load

    from pytest_mlflowdb.servers import start_server

    server = start_server(args.server, settings={"max_connections": "200"})
    figures: list[tuple[str, float, float | None, str]] = []
    try:
        tune_for_bulk_load(server)
        small = build_database(server, "bench_small", args.small)
        print("built", small.summary(), flush=True)
        large = build_database(server, "bench_large", args.large)
        print("built", large.summary(), flush=True)
        with server.admin() as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            size = conn.execute("SELECT pg_size_pretty(pg_database_size('bench_small')), "
                                "pg_size_pretty(pg_database_size('bench_large'))").fetchone()
            fleet = [f"bench_fleet_{i}" for i in range(args.fleet)]
            for name in fleet:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE bench_small')
        settle(server)  # no checkpoint or autovacuum of the 10M-row load under the timings
        with tempfile.TemporaryDirectory(prefix="mlflowdb-speed-") as tmp:
            python = user_python(Path(tmp)) if args.python_env == "user" else sys.executable
            bench = Bench(server, Path(tmp), python)
            small_uri, large_uri = bench.uri("bench_small"), bench.uri("bench_large")
            audit, cp = median_pair(args.repeats, lambda: bench.audit(small_uri),
                                    lambda: bench.check_postgres("bench_small"))
            outcomes = bench.outcomes()
            figures.append(("audit / check_postgres's 8 actions", audit / cp, 0.5,
                            f"{audit:.2f}s vs {cp:.2f}s ({size[0]})"))
            # the cheap figures' sides differ by tens of milliseconds on a machine whose
            # runs spread as much: more pairs than the costly figures get
            cheap = max(4 * args.repeats, 21)
            beside, floor = median_pair(cheap, lambda: bench.audit(small_uri),
                                        lambda: bench.floor("bench_small"))
            figures.append(("audit / floor (1-test pytest, psycopg, 1 query)", beside / floor,
                            1.5, f"{beside:.2f}s vs {floor:.2f}s"))
            no_cache = dict(bench.env, PYTHONDONTWRITEBYTECODE="1")
            uncached = statistics.median(bench.audit(small_uri, env=no_cache, fresh=True)
                                         for _ in range(args.repeats))
            big, little = median_pair(args.repeats, lambda: bench.audit(large_uri),
                                      lambda: bench.audit(small_uri))
            figures.append((f"audit at {args.large:,} / at {args.small:,} metric rows",
                            big / little, 1.2, f"{big:.2f}s ({size[1]}) vs {little:.2f}s"))
            with_plugin, without = median_pair(cheap, lambda: bench.unrelated(True),
                                               lambda: bench.unrelated(False))
            figures.append(("200 unrelated tests, plugin installed / -p no:mlflowdb",
                            with_plugin / without, 1.05,
                            f"{with_plugin:.3f}s vs {without:.3f}s"))
            uris = [bench.uri(name) for name in fleet]
            parallel, serial = median_pair(
                max(1, args.repeats // 2),
                lambda: bench.audit(*uris, extra=("-n", "2"), report="fleet.json"),
                lambda: bench.audit(*uris, report="fleet.json"))
            figures.append((f"{args.fleet} databases, -n 2 / one process", parallel / serial,
                            None, f"{parallel:.2f}s vs {serial:.2f}s"))
            if args.profile:
                profile(bench, "bench_small")
    finally:
        server.stop()

    where = "a user virtualenv" if args.python_env == "user" else sys.executable
    print(f"\nPostgreSQL {version}, {os.cpu_count()} cores, medians of {args.repeats} "
          f"alternating runs, pytest in {where}; one audit's outcomes: {outcomes}")
    print(f"(not a goal) the audit with PYTHONDONTWRITEBYTECODE=1: {uncached:.2f}s")
    ok = True
    for name, ratio, goal, detail in figures:
        if goal is None:
            print(f"{name:<58}{ratio:>6.2f}  (not a goal)         ({detail})")
            continue
        met = ratio <= goal
        ok &= met
        print(f"{name:<58}{ratio:>6.2f}  goal <= {goal:<5} {'met' if met else 'NOT MET'}"
              f"  ({detail})")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
