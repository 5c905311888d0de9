"""Round-trip latency and connection-slot usage."""

from __future__ import annotations

import time
from dataclasses import dataclass

from pytest_mlflowdb.db.database import Database


@dataclass(frozen=True)
class Latency:
    median_s: float
    min_s: float
    max_s: float
    samples: int


def latency(db: Database, samples: int = 5) -> Latency:
    """Median wall time of ``samples`` trivial round trips, inside one transaction so that
    only the round trip is timed (not BEGIN, the timeouts and COMMIT). Measured once per
    session, with the session to itself (``collect.alone``)."""
    return db.cached(f"connectivity:latency:{samples}", lambda d: _measure(d, samples))


def _measure(db: Database, samples: int) -> Latency:
    timings = []
    with db.transaction() as cur:
        for _ in range(max(1, samples)):
            started = time.perf_counter()
            cur.execute("SELECT 1")
            cur.fetchone()
            timings.append(time.perf_counter() - started)
    return Latency(_median(timings), min(timings), max(timings), len(timings))


def _median(values: list[float]) -> float:
    """The median (``statistics`` is not imported for it: it brings ``fractions``,
    whose import costs more than every sample it would sort)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


@dataclass(frozen=True)
class ConnectionUsage:
    in_use: int
    max_connections: int
    reserved: int
    #: of ``in_use``, sessions of other roles whose type this role may not see
    hidden: int = 0

    @property
    def usable(self) -> int:
        return max(1, self.max_connections - self.reserved)

    @property
    def percent(self) -> float:
        return 100.0 * self.in_use / self.usable


# Without pg_read_all_stats, other roles' rows are listed with their details (backend_type
# among them) NULL. Such a row attached to a database is counted as a client connection:
# background processes have no database (checkpointer, launchers, io workers), and the few
# that have one (autovacuum and parallel workers) come and go. Over-counting them can only
# warn early; leaving other roles' sessions out would pass a server that is full.
_USAGE_SQL = """
SELECT (SELECT count(*) FILTER (WHERE backend_type = 'client backend')
          + count(*) FILTER (WHERE backend_type IS NULL AND datid IS NOT NULL)
        FROM pg_stat_activity) AS in_use,
       (SELECT count(*) FILTER (WHERE backend_type IS NULL AND datid IS NOT NULL)
        FROM pg_stat_activity) AS hidden,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int
       + coalesce(current_setting('reserved_connections', true)::int, 0) AS reserved
"""


def connection_usage(db: Database) -> ConnectionUsage:
    """Client backends (of every role) against the slots ordinary roles can use.

    ``pg_stat_activity`` lists every backend to every role, but without
    ``pg_read_all_stats`` the type of other roles' backends is hidden: those attached to
    a database are counted as clients (``hidden`` says how many), so a plain role sees
    the same usage as a ``pg_monitor`` one.
    """
    def collect(db: Database) -> ConnectionUsage:
        row = db.row(_USAGE_SQL)
        assert row is not None
        return ConnectionUsage(row["in_use"], row["max_connections"], row["reserved"],
                               row["hidden"])

    return db.cached("connectivity:usage", collect)
