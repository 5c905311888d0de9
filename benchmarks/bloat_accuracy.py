"""How accurate is the bloat estimate?

Starts one throwaway server on loopback and builds three genuine MLflow databases on it
with ``tools/build_mlflow_db.py``, all freshly loaded (COPY, VACUUM ANALYZE):
``acc_restored`` with metrics' indexes rebuilt after the COPY (as a restore leaves
them), ``acc_logged`` with the rows COPYed into the live indexes (as a tracking server
fills them), and ``acc_bloated``, like ``acc_logged`` plus bloat made on purpose
(updates and deletes on params, tags, metrics and latest_metrics with autovacuum off on
them, then ANALYZE). For every MLflow table and btree index of at least ``--min-size``
it compares three figures, each a percent of the relation's size:

- **exact**: ``pgstattuple`` for tables, ``(dead_tuple_len + free_space) / table_len``
  (a full scan, the truth); ``pgstatindex`` for btree indexes, the share of the index not
  needed to hold its leaf tuples at its fillfactor:
  ``1 - (1 + internal_pages + leaf_pages * avg_leaf_density / fillfactor) / pages``;
- **estimate**: ``pytest_mlflowdb.probes.bloat.estimate_bloat`` (what the bloat checks
  report; relations it does not trust are listed as such and left out of its error);
- **check_postgres**: its ``bloat`` action run against the same server
  (``check_postgres_bloat``, Debian package ``check-postgres``), read from its output:
  ``(pages - shouldbe) / pages``.

It prints the table and the mean absolute error (percentage points) of each against
the exact figure, beside the goal: the estimate's error at most 5 points and below
check_postgres's. Not a test: not collected by pytest, not run in CI.

    python benchmarks/bloat_accuracy.py [--rows 2000000] [--min-size 256kB]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

GOAL_MAE = 5.0
MLFLOW_TABLES = ("experiments", "runs", "params", "tags", "metrics", "latest_metrics")


@dataclass
class Row:
    database: str
    kind: str  # table or index
    relation: str
    size_bytes: int
    exact: float
    estimate: float | None = None
    untrusted: str | None = None
    check_postgres: float | None = None


def exact_figures(conn) -> list[Row]:
    """pgstattuple / pgstatindex over MLflow's tables and their btree indexes."""
    rows = []
    for table in MLFLOW_TABLES:
        size, dead, free = conn.execute(
            "SELECT table_len, dead_tuple_len, free_space FROM pgstattuple(%s::regclass)",
            (table,)).fetchone()
        rows.append(Row("", "table", table, size, 100.0 * (dead + free) / size if size else 0))
        for index, fillfactor in conn.execute(
                "SELECT c.relname, coalesce((SELECT split_part(o, '=', 2)::int FROM"
                " unnest(c.reloptions) o WHERE o LIKE 'fillfactor=%%'), 90)"
                " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                " JOIN pg_am a ON a.oid = c.relam"
                " WHERE i.indrelid = %s::regclass AND a.amname = 'btree'", (table,)).fetchall():
            size, internal, leaves, density = conn.execute(
                "SELECT index_size, internal_pages, leaf_pages, avg_leaf_density"
                " FROM pgstatindex(%s::regclass)", (index,)).fetchone()
            pages = size / 8192
            if pages <= 1 or leaves == 0:
                continue
            needed = 1 + internal + leaves * (density / fillfactor)
            rows.append(Row("", "index", index, size, max(0.0, 100.0 * (1 - needed / pages))))
    return rows


_CP_TABLE = re.compile(r"\(db \S+\) table (\S+?)\.(\S+) rows:\S* pages:(\d+) shouldbe:(\d+)")
_CP_INDEX = re.compile(r"\(db \S+\) index (\S+) rows:\S* pages:(\d+) shouldbe:(\d+)")


def check_postgres_figures(server, database: str) -> dict[tuple[str, str], float]:
    """check_postgres's bloat action, every relation reported (warning at 0 bytes)."""
    program = shutil.which("check_postgres_bloat") or shutil.which("check_postgres.pl")
    if program is None:
        raise SystemExit("check_postgres is not installed: apt-get install -y check-postgres")
    args = [program] if program.endswith("_bloat") else [program, "--action=bloat"]
    done = subprocess.run(
        args + [f"--host={server.host}", f"--port={server.port}", f"--dbuser={server.user}",
                f"--dbname={database}", "--warning=0", "--critical=1000TB",
                "--perflimit=100000", "--schema=public"],
        env=dict(os.environ, PGPASSWORD=server.password), capture_output=True, text=True,
        timeout=600, stdin=subprocess.DEVNULL)
    out = done.stdout + done.stderr
    figures: dict[tuple[str, str], float] = {}
    for _schema, table, pages, shouldbe in _CP_TABLE.findall(out):
        figures[("table", table)] = _cp_percent(int(pages), int(shouldbe))
    for index, pages, shouldbe in _CP_INDEX.findall(out):
        figures[("index", index)] = _cp_percent(int(pages), int(shouldbe))
    if not figures:
        raise SystemExit("could not read check_postgres's output: " + out.strip()[:300])
    return figures


def _cp_percent(pages: int, shouldbe: int) -> float:
    return 100.0 * max(0, pages - shouldbe) / pages if pages else 0.0


def estimate_figures(uri: str) -> dict[tuple[str, str], object]:
    """The project's estimate, through the read-only session the audit uses."""
    from pytest_mlflowdb.config.targets import parse_target
    from pytest_mlflowdb.db.database import Database
    from pytest_mlflowdb.probes import bloat  # the bloat area's probe

    db = Database(parse_target(uri), statement_timeout=120).connect()
    try:
        return {(e.kind, e.relation): e for e in bloat.estimate_bloat(db, "public")}
    finally:
        db.close()


def measure(server, database: str, min_size: int) -> list[Row]:
    import psycopg

    uri = server.uri(database)
    with psycopg.connect(uri, autocommit=True, connect_timeout=10) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        rows = [r for r in exact_figures(conn) if r.size_bytes >= min_size]
    estimates = estimate_figures(uri)
    cp = check_postgres_figures(server, database)
    for row in rows:
        row.database = database
        estimate = estimates.get((row.kind, row.relation))
        if estimate is None:
            row.untrusted = "not estimated"
        elif not estimate.trusted:
            row.untrusted = estimate.reason or "untrusted"
        else:
            row.estimate = float(estimate.bloat_pct)
        row.check_postgres = cp.get((row.kind, row.relation))
    return rows


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def report(rows: list[Row]) -> bool:
    print(f"{'database':<14}{'kind':<6}{'relation':<34}{'size MiB':>10}{'exact %':>9}"
          f"{'estimate %':>11}{'check_pg %':>11}")
    for r in rows:
        note = f"  untrusted: {r.untrusted}" if r.untrusted else ""
        print(f"{r.database:<14}{r.kind:<6}{r.relation:<34}{r.size_bytes / 2**20:>10.1f}"
              f"{r.exact:>9.1f}{_fmt(r.estimate):>11}{_fmt(r.check_postgres):>11}{note}")
    ours = [abs(r.estimate - r.exact) for r in rows if r.estimate is not None]
    theirs_all = [abs(r.check_postgres - r.exact) for r in rows if r.check_postgres is not None]
    # the fair comparison: the same relations, those both tools give a figure for
    both = [r for r in rows if r.estimate is not None and r.check_postgres is not None]
    ours_same = [abs(r.estimate - r.exact) for r in both]
    theirs_same = [abs(r.check_postgres - r.exact) for r in both]
    untrusted = sum(1 for r in rows if r.estimate is None)
    if not ours:
        print("\nthe estimate gave no trusted figure: nothing to compare")
        return False
    mae, cp_mae = statistics.mean(ours), statistics.mean(theirs_all) if theirs_all else None
    print(f"\nmean absolute error vs exact, {len(ours)} relations estimated"
          f" ({untrusted} untrusted, left out):")
    print(f"  estimate        {mae:6.2f} points   (goal <= {GOAL_MAE:g})"
          f" {'within goal' if mae <= GOAL_MAE else 'ABOVE GOAL'}")
    if cp_mae is not None:
        print(f"  check_postgres  {cp_mae:6.2f} points   ({len(theirs_all)} relations)")
    if both:
        a, b = statistics.mean(ours_same), statistics.mean(theirs_same)
        print(f"  on the {len(both)} relations both report: estimate {a:.2f},"
              f" check_postgres {b:.2f} -> {'estimate better' if a < b else 'ESTIMATE NOT BETTER'}")
        return mae <= GOAL_MAE and a < b
    return mae <= GOAL_MAE


def _size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)B?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1MB, 512kB)")
    return int(match.group(1)) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[
        match.group(2).lower()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="metric rows per database")
    parser.add_argument("--min-size", type=_size, default=256 * 2**10,
                        help="compare relations of at least this size (default 256kB)")
    parser.add_argument("--server", default="path",
                        help="throwaway server kind (needs the pgstattuple extension)")
    args = parser.parse_args(argv)

    from build_mlflow_db import build_database, tune_for_bulk_load

    from pytest_mlflowdb.servers import start_server

    server = start_server(args.server)
    try:
        tune_for_bulk_load(server)
        rows: list[Row] = []
        for name, bloat, rebuilt in (("acc_restored", False, True),
                                     ("acc_logged", False, False),
                                     ("acc_bloated", True, False)):
            stats = build_database(server, name, args.rows, bloat=bloat,
                                   rebuild_indexes=rebuilt)
            print("built", stats.summary(), flush=True)
            rows += measure(server, name, args.min_size)
        with server.admin() as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
    finally:
        server.stop()
    print(f"\nPostgreSQL {version}; relations of at least {args.min_size / 2**20:g} MiB\n")
    return 0 if report(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
