"""Round-trip latency and connection-slot usage."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from ..database import Database


@dataclass(frozen=True)
class Latency:
    median_s: float
    min_s: float
    max_s: float
    samples: int


def latency(db: Database, samples: int = 5) -> Latency:
    """Median wall time of ``samples`` trivial round trips, inside one transaction so that
    only the round trip is timed (not BEGIN, the timeouts and COMMIT)."""
    timings = []
    with db.transaction() as cur:
        for _ in range(max(1, samples)):
            started = time.perf_counter()
            cur.execute("SELECT 1")
            cur.fetchone()
            timings.append(time.perf_counter() - started)
    return Latency(statistics.median(timings), min(timings), max(timings), len(timings))


@dataclass(frozen=True)
class ConnectionUsage:
    in_use: int
    max_connections: int
    reserved: int

    @property
    def usable(self) -> int:
        return max(1, self.max_connections - self.reserved)

    @property
    def percent(self) -> float:
        return 100.0 * self.in_use / self.usable


_USAGE_SQL = """
SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS in_use,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int
       + coalesce(current_setting('reserved_connections', true)::int, 0) AS reserved
"""


def connection_usage(db: Database) -> ConnectionUsage:
    """Client backends against the slots ordinary roles can use.

    ``pg_stat_activity`` lists every backend to every role (only details are hidden
    without ``pg_read_all_stats``), so the count is right without extra privileges.
    """
    row = db.row(_USAGE_SQL)
    assert row is not None
    return ConnectionUsage(row["in_use"], row["max_connections"], row["reserved"])
