"""Sizes from the catalog: the database, each table (heap, TOAST, indexes) and its row
estimate (``reltuples``, never ``count(*)``), so the cost does not grow with the rows.

The size functions take an ACCESS SHARE lock; a table another session holds in ACCESS
EXCLUSIVE mode would make them wait, so each table is measured in its own statement under
the session's lock timeout, and a table that cannot be measured is reported as such
(``TableSize.error``) while the others are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import psycopg

from pytest_mlflowdb.db.database import Database

_TABLES = """
SELECT c.oid::bigint AS oid, c.relname AS name, c.relkind AS kind,
       CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint END AS rows
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND c.relname = ANY(%(tables)s)
ORDER BY c.relname
"""

_ALL_TABLES = """
SELECT c.relname AS name, pg_relation_size(c.oid) AS heap,
       pg_table_size(c.oid) - pg_relation_size(c.oid) AS toast,
       pg_indexes_size(c.oid) AS indexes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relkind = 'r' AND c.relname = ANY(%(tables)s)
"""

_ONE_TABLE = """
SELECT pg_relation_size(%(oid)s::oid) AS heap,
       pg_table_size(%(oid)s::oid) - pg_relation_size(%(oid)s::oid) AS toast,
       pg_indexes_size(%(oid)s::oid) AS indexes
"""


@dataclass(frozen=True)
class TableSize:
    """One table's size in bytes: heap (main fork), TOAST and other forks, indexes."""

    name: str
    heap: int
    toast: int
    indexes: int
    #: ``reltuples``; None when the table was never analysed or vacuumed
    rows: int | None
    #: why the table could not be measured (a lock held by another session...), or None
    error: str | None = None

    @property
    def total(self) -> int:
        return self.heap + self.toast + self.indexes


def database_size(db: Database) -> tuple[str, int]:
    """The audited database's name and ``pg_database_size`` in bytes (cached per session)."""
    def collect(d: Database) -> tuple[str, int]:
        row = d.row("SELECT current_database() AS name, "
                    "pg_database_size(current_database()) AS bytes") or {}
        return str(row["name"]), int(row["bytes"])

    return db.cached("size:database", collect)


def table_sizes(db: Database, schema: str, tables: Iterable[str]) -> list[TableSize]:
    """The ``tables`` of ``schema`` that exist, largest first (unmeasured ones last)."""
    names = sorted(set(tables))
    return db.cached(f"size:tables:{schema}:{','.join(names)}",
                     lambda d: _collect(d, schema, names))


def _collect(db: Database, schema: str, names: list[str]) -> list[TableSize]:
    """One statement for every table; one per table only when a lock stops the first."""
    listed = db.rows(_TABLES, {"schema": schema, "tables": names})
    try:
        sizes = {r["name"]: r for r in db.rows(_ALL_TABLES, {"schema": schema,
                                                              "tables": names})}
    except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled):
        return _one_by_one(db, listed)
    found = [TableSize(r["name"], 0, 0, 0, r["rows"], _PARTITIONED) if r["kind"] == "p"
             else TableSize(r["name"], int(sizes[r["name"]]["heap"]),
                            int(sizes[r["name"]]["toast"]), int(sizes[r["name"]]["indexes"]),
                            r["rows"])
             for r in listed if r["kind"] == "p" or r["name"] in sizes]
    return sorted(found, key=lambda t: (t.error is not None, -t.total, t.name))


_PARTITIONED = "partitioned table: its partitions hold the data"


def _one_by_one(db: Database, listed: list[dict]) -> list[TableSize]:
    """Each table in its own statement, so that one locked table costs only itself."""
    found = []
    for row in listed:
        if row["kind"] == "p":  # a partitioned parent holds no data of its own
            found.append(TableSize(row["name"], 0, 0, 0, row["rows"], _PARTITIONED))
            continue
        try:
            size = db.row(_ONE_TABLE, {"oid": row["oid"]}) or {}
        except psycopg.errors.LockNotAvailable:
            found.append(TableSize(row["name"], 0, 0, 0, row["rows"],
                                   "another session holds a lock on it (lock timeout)"))
            continue
        except psycopg.errors.QueryCanceled:
            found.append(TableSize(row["name"], 0, 0, 0, row["rows"],
                                   "measuring it exceeded the statement timeout"))
            continue
        found.append(TableSize(row["name"], int(size["heap"]), int(size["toast"]),
                               int(size["indexes"]), row["rows"]))
    return sorted(found, key=lambda t: (t.error is not None, -t.total, t.name))
