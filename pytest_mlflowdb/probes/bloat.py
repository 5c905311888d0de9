"""Table and btree index bloat: an estimate from catalog statistics, and exact measurement.

The estimate follows the ioguix queries (fillfactor-aware, TOAST-aware, btree-specific for
indexes) but lays each tuple out column by column in Python with the columns' alignment,
which removes the padding error those queries admit, and models PG13+ btree deduplication.
It reads ``pg_class``, ``pg_attribute``, ``pg_stats`` and ``pg_stat_all_tables`` only:
no relation lock is taken, so a table locked ``ACCESS EXCLUSIVE`` cannot block it, and its
cost does not grow with the rows. Where statistics cannot be trusted the estimate says so
(``trusted=False`` and ``reason``) instead of giving a confident wrong figure.

``exact_bloat`` reads pages (``pgstattuple_approx`` / ``pgstatindex``): only for
relations the estimate flagged, under the session's statement and lock timeouts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pytest_mlflowdb.db.database import Database
from pytest_mlflowdb.text import first_line

BLOCK = 8192
PAGE_HEADER = 24
BTREE_SPECIAL = 16
MAXALIGN = 8
LINE_POINTER = 4
#: statistics are stale when more rows changed since ANALYZE than this share of the rows
STALE_SHARE = 0.2
#: above this share of pages in TOAST the heap estimate says too little
TOAST_SHARE = 0.5
_ALIGN = {"c": 1, "s": 2, "i": 4, "d": 8}


@dataclass(frozen=True)
class BloatEstimate:
    """One relation's estimated bloat; ``bloat_bytes`` excludes the fillfactor reserve."""

    schema: str
    relation: str
    kind: str  # "table" or "index"
    table: str  # the table an index belongs to, or the table itself
    size_bytes: int
    bloat_bytes: int
    bloat_pct: float  # 0-100 of size_bytes
    trusted: bool
    reason: str | None = None  # why the estimate cannot be trusted
    fillfactor: int = 100


class BloatMeasureError(RuntimeError):
    """Exact measurement is impossible here (extension missing, no privilege, lock)."""


_TABLES = """
SELECT c.oid, c.relname, c.relkind, c.relpages, c.reltuples,
       coalesce(t.relpages, 0) AS toast_pages, greatest(coalesce(t.reltuples, 0), 0)
         AS toast_tuples,
       coalesce((SELECT substring(o FROM 'fillfactor=([0-9]+)')::int
                 FROM unnest(c.reloptions) o WHERE o LIKE 'fillfactor=%%'), 100) AS fillfactor,
       coalesce(s.n_mod_since_analyze, 0) AS modified,
       -- dead heap tuples that still have index entries (HOT updates made none)
       coalesce(s.n_dead_tup * (1 - s.n_tup_hot_upd::float8
                / nullif(s.n_tup_upd + s.n_tup_del, 0)), s.n_dead_tup, 0) AS dead_entries
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p', 'm')
"""

_INDEXES = """
SELECT i.oid, i.relname, ix.indrelid AS table_oid, i.relpages, i.reltuples, ix.indisunique
         AS is_unique, ix.indnatts AS natts, ix.indkey::int2[] AS keys,
       coalesce((SELECT substring(o FROM 'fillfactor=([0-9]+)')::int
                 FROM unnest(i.reloptions) o WHERE o LIKE 'fillfactor=%%'), 90) AS fillfactor,
       NOT coalesce((SELECT o FROM unnest(i.reloptions) o
                     WHERE o LIKE 'deduplicate_items=%%') IN ('deduplicate_items=off',
                     'deduplicate_items=false'), false) AS dedup
FROM pg_index ix
JOIN pg_class i ON i.oid = ix.indexrelid
JOIN pg_class c ON c.oid = ix.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_am am ON am.oid = i.relam
WHERE n.nspname = %(schema)s AND am.amname = 'btree' AND ix.indisvalid
  AND c.relkind IN ('r', 'm')
"""

# Columns of the tables and of the indexes (expression keys have their own pg_stats rows
# under the index's name). has_column_privilege: pg_stats hides what the role cannot read.
_COLUMNS = """
SELECT a.attrelid AS oid, a.attnum, a.attname, a.attlen, a.attalign,
       CASE WHEN c.relkind = 'i' THEN true
            ELSE has_column_privilege(a.attrelid, a.attnum, 'SELECT') END AS visible,
       s.avg_width, s.null_frac, s.n_distinct
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname
                    AND s.attname = a.attname AND NOT s.inherited
WHERE n.nspname = %(schema)s AND a.attnum > 0 AND NOT a.attisdropped
  AND c.relkind IN ('r', 'm', 'i')
ORDER BY a.attrelid, a.attnum
"""


@dataclass(frozen=True)
class _Column:
    name: str
    length: int
    align: int
    visible: bool
    width: float | None  # avg_width, None without statistics
    null_frac: float
    n_distinct: float


def _catalog(db: Database, schema: str) -> dict[str, Any]:
    """The three catalog reads for ``schema``, once per session."""
    def collect(d: Database) -> dict[str, Any]:
        columns: dict[int, list[_Column]] = {}
        for r in d.rows(_COLUMNS, {"schema": schema}):
            columns.setdefault(r["oid"], []).append(_Column(
                r["attname"], int(r["attlen"]), _ALIGN.get(r["attalign"], MAXALIGN),
                bool(r["visible"]), None if r["avg_width"] is None else float(r["avg_width"]),
                float(r["null_frac"] or 0), float(r["n_distinct"] or 0)))
        return {"tables": d.rows(_TABLES, {"schema": schema}),
                "indexes": d.rows(_INDEXES, {"schema": schema}), "columns": columns}
    return db.cached(f"bloat_catalog:{schema}", collect)


def _align(offset: float, align: int) -> float:
    return math.ceil(offset / align) * align


def _data_width(columns: list[_Column]) -> float:
    """Average bytes of the columns laid out in order with their alignment (a short
    varlena, under 127 bytes, has a 1-byte header and is not aligned)."""
    offset = 0.0
    for col in columns:
        width = col.width or 0.0
        present = 1.0 - col.null_frac
        short_varlena = col.length == -1 and width < 127
        if not short_varlena and present >= 0.5:
            offset = _align(offset, col.align)
        offset += width * present
    return offset


def _problem(columns: list[_Column], role_hint: str) -> str | None:
    hidden = [c.name for c in columns if not c.visible]
    if hidden:
        return (f"statistics hidden from this role for column(s) {', '.join(hidden)} "
                f"({role_hint})")
    missing = [c.name for c in columns if c.width is None]
    if missing:
        return f"no statistics for column(s) {', '.join(missing)} (run ANALYZE)"
    return None


def _pct(bloat: float, size: float) -> float:
    return round(100.0 * bloat / size, 2) if size > 0 else 0.0


def _table_estimate(schema: str, t: dict, columns: list[_Column]) -> BloatEstimate:
    pages, tuples = int(t["relpages"]), float(t["reltuples"])
    toast_pages, fill = int(t["toast_pages"]), int(t["fillfactor"])
    size = (pages + toast_pages) * BLOCK

    def untrusted(reason: str) -> BloatEstimate:
        return BloatEstimate(schema, t["relname"], "table", t["relname"], size, 0, 0.0, False,
                             reason, fill)

    if t["relkind"] == "p":
        return untrusted("a partitioned parent holds no rows: its partitions are estimated")
    if tuples < 0:
        if pages == 0:
            return BloatEstimate(schema, t["relname"], "table", t["relname"], size, 0, 0.0,
                                 True, None, fill)
        return untrusted("never analysed: no row count to compare with")
    if int(t["modified"]) > max(STALE_SHARE * tuples, 1000):
        return untrusted(f"statistics are stale: {int(t['modified'])} rows changed since the "
                         f"last ANALYZE of ~{int(tuples)} rows")
    if tuples > 0:
        problem = _problem(columns, "grant SELECT on the table, or pg_read_all_data")
        if problem:
            return untrusted(problem)
    if size and toast_pages / (pages + toast_pages) > TOAST_SHARE:
        return untrusted("mostly TOAST: column widths in pg_stats do not describe it")
    nullable = any(c.null_frac > 0 for c in columns)
    header = _align(23 + (math.ceil(len(columns) / 8) if nullable else 0), MAXALIGN)
    tuple_size = _align(header + _data_width(columns), MAXALIGN) + LINE_POINTER
    per_page = max(1, min(291, math.floor((BLOCK - PAGE_HEADER) * fill / 100 / tuple_size)))
    expected = math.ceil(tuples / per_page) + math.ceil(float(t["toast_tuples"]) / 4)
    bloat = max(0, pages + toast_pages - expected) * BLOCK
    return BloatEstimate(schema, t["relname"], "table", t["relname"], size, bloat,
                         _pct(bloat, size), True, None, fill)


def _index_estimate(schema: str, ix: dict, table: dict, table_columns: list[_Column],
                    own_columns: list[_Column], major: int) -> BloatEstimate:
    pages, fill = int(ix["relpages"]), int(ix["fillfactor"])
    size = pages * BLOCK
    tuples = float(ix["reltuples"])
    tuples = float(table["reltuples"]) if tuples < 0 else tuples
    # entries of dead rows stay in the index until VACUUM: pages hold them, not bloat yet
    dead = max(0.0, float(table["dead_entries"] or 0))

    def result(bloat: float, trusted: bool = True, reason: str | None = None) -> BloatEstimate:
        bloat_bytes = int(max(0, bloat))
        return BloatEstimate(schema, ix["relname"], "index", table["relname"], size,
                             bloat_bytes, _pct(bloat_bytes, size), trusted, reason, fill)

    if tuples < 0:
        return result(0, pages <= 1, None if pages <= 1 else "never analysed or vacuumed")
    if int(table["modified"]) > max(STALE_SHARE * float(table["reltuples"]), 1000):
        return result(0, False, f"statistics are stale: {int(table['modified'])} rows of "
                      f"{table['relname']} changed since its last ANALYZE")
    by_num = {i + 1: c for i, c in enumerate(table_columns)}
    keys = []
    for pos, attnum in enumerate(ix["keys"][: int(ix["natts"])]):
        if attnum > 0 and attnum in by_num:
            keys.append(by_num[attnum])
        elif pos < len(own_columns):  # an expression: its stats are under the index's name
            keys.append(own_columns[pos])
    if tuples > 0:
        problem = _problem(keys, "grant SELECT on the table, or pg_read_all_data")
        if problem or len(keys) < int(ix["natts"]):
            return result(0, False, problem or "an index column has no statistics")
    nullable = any(c.null_frac > 0 for c in keys)
    header = 8 + (4 if nullable else 0)
    key_width = _align(_align(header, MAXALIGN) + _data_width(keys), MAXALIGN)
    usable = (BLOCK - PAGE_HEADER - BTREE_SPECIAL) * fill / 100
    tuples += dead if tuples >= 0 else 0
    entries, entry_size = tuples, key_width + LINE_POINTER
    first = keys[0] if keys else None
    if major >= 13 and ix["dedup"] and not ix["is_unique"] and first is not None \
            and tuples > 0:
        distinct = first.n_distinct if first.n_distinct > 0 else -first.n_distinct * tuples
        if len(keys) == 1 and distinct and tuples / distinct >= 2:
            # posting lists: a key then 6 bytes per heap TID, each list capped near half
            # of the largest item (BTMaxItemSize / 2, about 1350 bytes)
            per_value = tuples / distinct
            per_list = max(1, math.floor((1352 - key_width) / 6))
            lists = math.ceil(per_value / per_list)
            entries = distinct * lists
            entry_size = _align(key_width + 6 * per_value / lists, MAXALIGN) + LINE_POINTER
    leaf_pages = math.ceil(entries * entry_size / usable) if entries else 0
    fanout = max(2, math.floor((BLOCK - PAGE_HEADER - BTREE_SPECIAL) * 0.7
                               / (key_width + 8 + LINE_POINTER)))
    internal, level = 0, leaf_pages
    while level > 1:
        level = math.ceil(level / fanout)
        internal += level
    expected = 1 + leaf_pages + internal
    return result((pages - expected) * BLOCK)


def estimate_bloat(db: Database, schema: str,
                   relations: Iterable[str] | None = None) -> list[BloatEstimate]:
    """Estimated bloat of the tables of ``schema`` and their btree indexes (catalogs only).

    ``relations`` limits it to these tables (with their indexes) or indexes, by name;
    None means every table of the schema. Largest bloat first.
    """
    cat = _catalog(db, schema)
    wanted = None if relations is None else set(relations)
    tables = {t["oid"]: t for t in cat["tables"]}
    columns = cat["columns"]
    major = db.preflight.major
    found: list[BloatEstimate] = []
    for t in tables.values():
        if wanted is None or t["relname"] in wanted:
            found.append(_table_estimate(schema, t, columns.get(t["oid"], [])))
    for ix in cat["indexes"]:
        table = tables.get(ix["table_oid"])
        if table is None or not (wanted is None or ix["relname"] in wanted
                                 or table["relname"] in wanted):
            continue
        found.append(_index_estimate(schema, ix, table, columns.get(table["oid"], []),
                                     columns.get(ix["oid"], []), major))
    return sorted(found, key=lambda e: (-e.bloat_bytes, e.relation))


_EXTENSION = """
SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pgstattuple'
"""


def exact_bloat(db: Database, schema: str, relation: str, kind: str) -> tuple[int, float]:
    """(bloat bytes, percent) measured by reading pages: ``pgstattuple_approx`` for a table
    (free space and dead tuples beyond the fillfactor reserve), ``pgstatindex`` for a btree
    index (leaf density against its fillfactor). Raises BloatMeasureError, one line, when
    the extension is missing, the role may not run it, or the relation stays locked."""
    import psycopg

    home = db.value(_EXTENSION)
    if home is None:
        raise BloatMeasureError(f"extension missing: pgstattuple is not installed in "
                                f"{db.preflight.dbname} (CREATE EXTENSION pgstattuple)")
    rel = ".".join('"' + part.replace('"', '""') + '"' for part in (schema, relation))
    fn = f'"{home}".pgstattuple_approx' if kind == "table" else f'"{home}".pgstatindex'
    try:
        if kind == "table":
            r: Any = db.row(f"SELECT table_len, approx_free_space, dead_tuple_len, "
                            f"(SELECT coalesce((SELECT substring(o FROM 'fillfactor=([0-9]+)')"
                            f"::int FROM unnest(reloptions) o WHERE o LIKE 'fillfactor=%%'),"
                            f" 100) FROM pg_class WHERE oid = %(rel)s::regclass) AS ff "
                            f"FROM {fn}(%(rel)s::regclass)", {"rel": rel})
            size = int(r["table_len"])
            reserve = size * (100 - int(r["ff"])) / 100
            bloat = max(0, int(r["approx_free_space"]) + int(r["dead_tuple_len"]) - reserve)
        else:
            r = db.row(f"SELECT index_size, avg_leaf_density, leaf_pages, empty_pages, "
                       f"deleted_pages, "
                       f"(SELECT coalesce((SELECT substring(o FROM 'fillfactor=([0-9]+)')"
                       f"::int FROM unnest(reloptions) o WHERE o LIKE 'fillfactor=%%'), 90) "
                       f"FROM pg_class WHERE oid = %(rel)s::regclass) AS ff "
                       f"FROM {fn}(%(rel)s::regclass)", {"rel": rel})
            size = int(r["index_size"])
            # pages emptied by deletes (deleted, empty) are left out of avg_leaf_density
            # but still take their place in the file: they are bloat too
            bloat = (int(r["empty_pages"]) + int(r["deleted_pages"])) * BLOCK
            density = float(r["avg_leaf_density"])
            if not math.isnan(density) and r["leaf_pages"]:
                share = max(0.0, 1 - density / int(r["ff"]))
                bloat += int(r["leaf_pages"]) * BLOCK * share
    except psycopg.errors.LockNotAvailable:
        raise BloatMeasureError(f"{schema}.{relation} is locked by another session (lock "
                                "timeout)") from None
    except psycopg.errors.InsufficientPrivilege as exc:
        raise BloatMeasureError(f"no privilege: {first_line(exc)} (needs "
                                "pg_stat_scan_tables)") from None
    except psycopg.errors.QueryCanceled:
        raise BloatMeasureError(f"measuring {schema}.{relation} exceeded the statement "
                                "timeout") from None
    return int(bloat), _pct(bloat, size)
