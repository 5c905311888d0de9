"""Buffer cache hits of the audited database and of MLflow's tables and indexes, with
the moment the counters start from (their last reset, else the server's start).

``pg_stat_database`` and ``pg_statio_all_tables`` are readable by every role and cost the
same whatever the data's size.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass

from pytest_mlflowdb.db.database import Database

_DATABASE = """
SELECT d.datname AS name, d.blks_hit AS hits, d.blks_read AS reads, d.stats_reset,
       pg_postmaster_start_time() AS started, now() AS now
FROM pg_stat_database d WHERE d.datname = current_database()
"""

_TABLES = """
SELECT coalesce(sum(heap_blks_hit), 0)::bigint AS heap_hits,
       coalesce(sum(heap_blks_read), 0)::bigint AS heap_reads,
       coalesce(sum(idx_blks_hit), 0)::bigint AS index_hits,
       coalesce(sum(idx_blks_read), 0)::bigint AS index_reads,
       count(*) AS tables
FROM pg_statio_all_tables WHERE schemaname = %(schema)s AND relname = ANY(%(tables)s)
"""


@dataclass(frozen=True)
class Hits:
    """Blocks found in shared_buffers (hits) and read from outside them (reads)."""

    hits: int
    reads: int

    @property
    def ratio_pct(self) -> float | None:
        """Hits per block asked for, in percent; None before any block was asked for."""
        total = self.hits + self.reads
        return 100.0 * self.hits / total if total else None


@dataclass(frozen=True)
class CacheStats:
    """The database's hits, MLflow's tables' (heap) and their indexes', and since when."""

    database: str
    overall: Hits
    tables: Hits
    indexes: Hits
    table_count: int
    #: when the counters start: their last reset, else the server's start
    since: datetime.datetime
    #: whether ``since`` is a reset (True) or the server's start (False)
    reset: bool
    age_seconds: float


def cache_stats(db: Database, schema: str, tables: Iterable[str]) -> CacheStats:
    """The counters of the audited database and of ``tables`` in ``schema`` (cached)."""
    names = sorted(set(tables))
    return db.cached(f"cache:{schema}:{','.join(names)}",
                     lambda d: _collect(d, schema, names))


def _collect(db: Database, schema: str, names: list[str]) -> CacheStats:
    row = db.row(_DATABASE) or {}
    t = db.row(_TABLES, {"schema": schema, "tables": names}) or {}
    since = row["stats_reset"] or row["started"]
    return CacheStats(
        str(row["name"]), Hits(int(row["hits"]), int(row["reads"])),
        Hits(int(t["heap_hits"]), int(t["heap_reads"])),
        Hits(int(t["index_hits"]), int(t["index_reads"])), int(t["tables"]), since,
        row["stats_reset"] is not None, max(0.0, (row["now"] - since).total_seconds()))
