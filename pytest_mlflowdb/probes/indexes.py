"""Index usage and sizes, table sizes, and how old the statistics are."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..database import Database


@dataclass(frozen=True)
class IndexUsage:
    table: str
    name: str
    bytes: int
    scans: int


_USAGE = """
SELECT s.relname AS table_name, s.indexrelname AS name, s.idx_scan AS scans,
       pg_relation_size(s.indexrelid) AS bytes
FROM pg_stat_all_indexes s
WHERE s.schemaname = %(schema)s
"""


def index_usage(db: Database, schema: str) -> dict[str, IndexUsage]:
    """Scans and size of every index in ``schema``, by index name (one query)."""
    return db.cached(f"index_usage:{schema}", lambda d: {
        r["name"]: IndexUsage(r["table_name"], r["name"], int(r["bytes"] or 0),
                              int(r["scans"] or 0))
        for r in d.rows(_USAGE, {"schema": schema})
    })


_TABLE_SIZES = """
SELECT c.relname AS name, pg_total_relation_size(c.oid) AS bytes,
       CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint END AS estimated_rows
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND c.relname = ANY(%(tables)s)
"""


@dataclass(frozen=True)
class TableSize:
    name: str
    bytes: int
    estimated_rows: int | None  # None: never analysed, so unknown

    @property
    def rows_text(self) -> str:
        return (f"~{self.estimated_rows} rows" if self.estimated_rows is not None
                else "row count unknown (never analysed)")


def table_sizes(db: Database, schema: str, tables: Iterable[str]) -> dict[str, TableSize]:
    """Total size (with indexes and TOAST) and planner row estimate of ``tables``."""
    names = sorted(set(tables))
    if not names:
        return {}
    return {r["name"]: TableSize(r["name"], int(r["bytes"]), r["estimated_rows"])
            for r in db.rows(_TABLE_SIZES, {"schema": schema, "tables": names})}


_STATS_AGE = """
SELECT extract(epoch FROM now() - coalesce(d.stats_reset, pg_postmaster_start_time()))
         AS seconds,
       d.stats_reset IS NOT NULL AS was_reset
FROM pg_stat_database d WHERE d.datname = current_database()
"""


def stats_age(db: Database) -> tuple[float, bool]:
    """Seconds the usage counters have been counting (since reset, else server start)."""
    row: Any = db.row(_STATS_AGE)
    return float(row["seconds"]), bool(row["was_reset"])
