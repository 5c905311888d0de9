"""Index usage and sizes, table sizes, foreign keys, and how old the statistics are.

What each index is (its keys, opclasses, validity) is read with the rest of the schema,
once, by :func:`pytest_mlflowdb.probes.schema.live_snapshot`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pytest_mlflowdb.db.database import Database


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
    return db.cached(f"index_table_sizes:{schema}:{','.join(names)}", lambda d: {
        r["name"]: TableSize(r["name"], int(r["bytes"]), r["estimated_rows"])
        for r in d.rows(_TABLE_SIZES, {"schema": schema, "tables": names})})


_STATS_AGE = """
SELECT extract(epoch FROM now() - coalesce(d.stats_reset, pg_postmaster_start_time()))
         AS seconds,
       d.stats_reset IS NOT NULL AS was_reset
FROM pg_stat_database d WHERE d.datname = current_database()
"""


def stats_age(db: Database) -> tuple[float, bool]:
    """Seconds the usage counters have been counting (since reset, else server start)."""
    def collect(d: Database) -> tuple[float, bool]:
        row: Any = d.row(_STATS_AGE)
        return float(row["seconds"]), bool(row["was_reset"])

    return db.cached("stats_age", collect)


@dataclass(frozen=True)
class ForeignKey:
    """A foreign key of ``table``: deleting (or re-keying) a row of ``referenced`` looks
    up ``columns`` in ``table``, a scan of its heap unless an index leads with them."""

    table: str
    name: str
    columns: tuple[str, ...]
    referenced: str
    heap_bytes: int  # what a sequential scan of the table reads
    estimated_rows: int | None  # None: never analysed


_FOREIGN_KEYS = """
SELECT c.relname AS table_name, con.conname AS name, r.relname AS referenced,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, position)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
             ORDER BY k.position) AS columns,
       pg_relation_size(c.oid) AS heap_bytes,
       CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint END AS estimated_rows
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class r ON r.oid = con.confrelid
WHERE n.nspname = %(schema)s AND con.contype = 'f'
ORDER BY c.relname, con.conname
"""


def foreign_keys(db: Database, schema: str) -> list[ForeignKey]:
    """Foreign keys of the tables in ``schema``, their columns read from ``conkey`` (not
    from definition text) and their table's size (catalogs and sizes only, no scan)."""
    return db.cached(f"foreign_keys:{schema}", lambda d: [
        ForeignKey(r["table_name"], r["name"], tuple(r["columns"]), r["referenced"],
                   int(r["heap_bytes"] or 0), r["estimated_rows"])
        for r in d.rows(_FOREIGN_KEYS, {"schema": schema})])
