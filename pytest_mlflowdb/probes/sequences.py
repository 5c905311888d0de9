"""The sequences behind MLflow's columns: where each stands, what its column can hold,
and the largest value already in that column.

A sequence is found the way PostgreSQL itself ties it to a column (``pg_depend``): owned
by it (``serial``), its identity, or named in its default (``nextval(...)``). Its value
is read from the sequence relation itself (``last_value`` and ``is_called``: the next
value ``nextval`` gives, which ``pg_sequences`` cannot tell after a ``setval(..., false)``),
only when the role may SELECT it: an unreadable sequence is reported as such, never as 0%.
The column's largest value is read through a btree index that leads with the column
(``max()`` then reads one index entry), never by scanning the table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import psycopg
from psycopg import sql

from pytest_mlflowdb.db.database import Database
from pytest_mlflowdb.text import first_line

#: the values an integer column of each type can hold
TYPE_BOUNDS = {"int2": (-(2**15), 2**15 - 1), "int4": (-(2**31), 2**31 - 1),
               "int8": (-(2**63), 2**63 - 1)}

_SEQUENCES = """
WITH tied AS (
    -- serial (owned by the column, 'a') and identity ('i') sequences
    SELECT d.objid AS seq, d.refobjid AS tbl, d.refobjsubid AS attnum,
           CASE d.deptype WHEN 'i' THEN 'identity' ELSE 'owned' END AS how, 1 AS rank
    FROM pg_depend d
    WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
      AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
    UNION ALL
    -- a default nextval('seq') the column does not own
    SELECT d.refobjid, ad.adrelid, ad.adnum, 'default', 2
    FROM pg_depend d JOIN pg_attrdef ad ON ad.oid = d.objid
    WHERE d.classid = 'pg_attrdef'::regclass AND d.refclassid = 'pg_class'::regclass
), one AS (
    SELECT DISTINCT ON (seq, tbl, attnum) seq, tbl, attnum, how
    FROM tied ORDER BY seq, tbl, attnum, rank
)
SELECT sn.nspname AS seq_schema, sc.relname AS seq_name, tc.relname AS table_name,
       a.attname AS column_name, a.attnum, t.typname AS column_typname,
       format_type(a.atttypid, a.atttypmod) AS column_type, one.how,
       format_type(s.seqtypid, NULL) AS seq_type, s.seqstart::text AS start,
       s.seqmin::text AS minimum, s.seqmax::text AS maximum,
       s.seqincrement::text AS increment, s.seqcycle AS cycles,
       has_sequence_privilege(sc.oid, 'SELECT') AS readable,
       has_column_privilege(tc.oid, a.attnum, 'SELECT') AS column_readable,
       row_security_active(tc.oid) AS rows_hidden,
       EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                    JOIN pg_am am ON am.oid = ic.relam
               WHERE i.indrelid = tc.oid AND i.indkey[0] = a.attnum AND am.amname = 'btree'
                 AND i.indisvalid AND i.indisready AND i.indpred IS NULL) AS indexed
FROM one
JOIN pg_class sc ON sc.oid = one.seq AND sc.relkind = 'S'
JOIN pg_namespace sn ON sn.oid = sc.relnamespace
JOIN pg_sequence s ON s.seqrelid = sc.oid
JOIN pg_class tc ON tc.oid = one.tbl
JOIN pg_namespace tn ON tn.oid = tc.relnamespace
JOIN pg_attribute a ON a.attrelid = tc.oid AND a.attnum = one.attnum AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
WHERE tn.nspname = %(schema)s AND tc.relname = ANY(%(tables)s) AND tc.relkind IN ('r', 'p')
ORDER BY tc.relname, a.attname, sc.relname
"""


@dataclass(frozen=True)
class ColumnSequence:
    """One sequence that feeds one column of an MLflow table, with both their limits."""

    schema: str  # the sequence's schema
    name: str
    table: str  # in the MLflow schema the probe was asked about
    column: str
    column_type: str  # as SQL writes it: integer, bigint...
    how: str  # owned (serial), identity, default (nextval in the column's default)
    seq_type: str
    start: int
    minimum: int
    maximum: int
    increment: int
    cycles: bool
    readable: bool  # SELECT on the sequence
    column_readable: bool  # SELECT on the column
    indexed: bool  # a valid, non-partial btree index leads with the column
    #: row-level security applies to this role: max(column) may miss hidden rows
    rows_hidden: bool = False
    #: the next value nextval() gives; None when unreadable or not read (see error)
    next_value: int | None = None
    #: why the sequence could not be read although readable (a lock...), or None
    error: str | None = None
    #: bounds of the column's type (None: not an integer type, the sequence's bounds rule)
    type_bounds: tuple[int, int] | None = None

    @property
    def ascending(self) -> bool:
        return self.increment > 0

    @property
    def limit(self) -> int:
        """The last value the column can get from this sequence: the lower of the
        sequence's own bound and the column type's (the other way for a descending one)."""
        if self.ascending:
            own, typed = self.maximum, self.type_bounds[1] if self.type_bounds else None
            return own if typed is None else min(own, typed)
        own, typed = self.minimum, self.type_bounds[0] if self.type_bounds else None
        return own if typed is None else max(own, typed)

    @property
    def limited_by_type(self) -> bool:
        """Whether the column's type is the limit (alone, or as tight as the sequence's
        own bound: then only a wider column helps)."""
        if self.type_bounds is None:
            return False
        if self.ascending:
            return self.type_bounds[1] <= self.maximum
        return self.type_bounds[0] >= self.minimum

    def used_pct(self) -> float:
        """Share of the values from the sequence's first (minimum or maximum) to
        :attr:`limit` already handed out; 100 when the next value is beyond the limit."""
        assert self.next_value is not None
        first = self.minimum if self.ascending else self.maximum
        span = abs(self.limit - first) + 1
        used = (self.next_value - first) if self.ascending else (first - self.next_value)
        return max(0.0, min(100.0, 100.0 * used / span))


def column_sequences(db: Database, schema: str, tables: Iterable[str]) -> list[ColumnSequence]:
    """The sequences of ``tables`` in ``schema`` with their next values (cached)."""
    names = sorted(set(tables))
    return db.cached(f"sequences:{schema}:{','.join(names)}",
                     lambda d: _collect(d, schema, names))


def _collect(db: Database, schema: str, names: list[str]) -> list[ColumnSequence]:
    found = []
    for r in db.rows(_SEQUENCES, {"schema": schema, "tables": names}):
        found.append(ColumnSequence(
            r["seq_schema"], r["seq_name"], r["table_name"], r["column_name"],
            r["column_type"], r["how"], r["seq_type"], int(r["start"]), int(r["minimum"]),
            int(r["maximum"]), int(r["increment"]), bool(r["cycles"]), bool(r["readable"]),
            bool(r["column_readable"]), bool(r["indexed"]), bool(r["rows_hidden"]),
            type_bounds=TYPE_BOUNDS.get(r["column_typname"])))
    return db.each(lambda seq: _read_value(db, seq) if seq.readable else seq, found)


def _read_value(db: Database, seq: ColumnSequence) -> ColumnSequence:
    """The sequence's next value, read from the sequence relation (one row, one lock)."""
    query = sql.SQL("SELECT last_value::text AS last_value, is_called FROM {}").format(
        sql.Identifier(seq.schema, seq.name))
    try:
        row = db.row(query.as_string(db.connection)) or {}
    except psycopg.errors.LockNotAvailable:
        return replace(seq, error="another session holds a lock on it (lock timeout)")
    except psycopg.errors.QueryCanceled:
        return replace(seq, error="reading it exceeded the statement timeout")
    except psycopg.errors.InsufficientPrivilege as exc:  # e.g. no USAGE on its schema
        return replace(seq, error=f"no privilege: {first_line(exc)}")
    last = int(row["last_value"])
    return replace(seq, next_value=last + seq.increment if row["is_called"] else last)


@dataclass(frozen=True)
class ColumnExtreme:
    """The largest (smallest, for a descending sequence) value already in a column."""

    value: int | None  # None: the column holds no value (or could not be read)
    #: why it could not be read (no index, no privilege, a lock...), or None
    error: str | None = None


def column_extreme(db: Database, schema: str, table: str, column: str,
                   largest: bool = True) -> ColumnExtreme:
    """``max(column)`` (or ``min``) of ``schema.table``, read through a btree index.

    The caller checks that an index leads with the column; sequential scans are switched
    off in this transaction as well, so the planner reads one index entry, whatever
    the table's statistics say (cached per session).
    """
    def collect(d: Database) -> ColumnExtreme:
        query = sql.SQL("SELECT {}({})::text AS v FROM {}").format(
            sql.SQL("max" if largest else "min"), sql.Identifier(column),
            sql.Identifier(schema, table))
        try:
            row = d.row(query, planner={"enable_seqscan": "off"})
        except psycopg.errors.LockNotAvailable:
            return ColumnExtreme(None, "another session holds a lock on the table "
                                       "(lock timeout)")
        except psycopg.errors.QueryCanceled:
            return ColumnExtreme(None, "reading it exceeded the statement timeout")
        except psycopg.errors.InsufficientPrivilege as exc:
            return ColumnExtreme(None, f"no privilege: {first_line(exc)}")
        value = row["v"] if row else None
        return ColumnExtreme(None if value is None else int(value))

    return db.cached(f"sequences:extreme:{schema}.{table}.{column}:{largest}", collect)
