"""What the restored copy and the live target hold: row counts and the newest data.

The copy is ours (a scratch database), so it is counted exactly. The live target is
production: its rows come from the catalog's estimates (``reltuples``, else the
statistics' ``n_live_tup``), never ``count(*)``, and its newest data from ``max()`` of
one column per table, in the audit's read-only transactions under its statement and lock
timeouts; metrics' newest timestamp is read from ``latest_metrics`` (one row per run and
key) rather than from the metrics table, which may hold billions of rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from pytest_mlflowdb.db.database import Database

#: (table, column in epoch milliseconds, what its max() is, what the rows are) of RPO
#: measured from the data
NEWEST = (
    ("runs", "start_time", "newest run start", "runs"),
    ("latest_metrics", "timestamp", "newest metric timestamp", "metrics"),
    ("model_versions", "creation_time", "newest model version", "model versions"),
    ("trace_info", "timestamp_ms", "newest trace", "traces"),
)

_ESTIMATES = """
SELECT c.relname AS name,
       CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint END AS reltuples,
       s.n_live_tup AS live_tuples
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND c.relname = ANY(%(tables)s)
ORDER BY c.relname
"""


@dataclass(frozen=True)
class Newest:
    """The max() of one NEWEST column: ``value`` (epoch ms, None when the table is empty
    or absent), or why it could not be read."""

    table: str
    what: str
    noun: str
    value: int | None
    error: str | None = None
    present: bool = True


def live_estimates(db: Database, schema: str, tables: list[str]) -> dict[str, int | None]:
    """Estimated rows of each existing table of ``tables`` (None: never analysed and no
    statistics yet)."""
    found = {}
    for row in db.rows(_ESTIMATES, {"schema": schema, "tables": tables}):
        estimate = row["reltuples"]
        if estimate is None or (estimate == 0 and row["live_tuples"]):
            estimate = row["live_tuples"]
        found[row["name"]] = None if estimate is None else int(estimate)
    return found


def exact_counts(db: Database, schema: str, tables: list[str]) -> dict[str, int]:
    """count(*) of each table of ``tables`` that exists in the copy."""
    present = sorted(r["name"] for r in db.rows(_ESTIMATES, {"schema": schema,
                                                              "tables": tables}))
    if not present:
        return {}
    query = sql.SQL(" UNION ALL ").join(  # one round trip for every table
        sql.SQL("SELECT {} AS name, count(*) AS n FROM {}.{}").format(
            sql.Literal(t), sql.Identifier(schema), sql.Identifier(t)) for t in present)
    return {r["name"]: int(r["n"]) for r in db.read("the copy's row counts", query)}


def newest(db: Database, schema: str) -> list[Newest]:
    """The newest data per NEWEST column; a table this role cannot read, a lock or a
    timeout is an ``error`` for that one, not the end of the rest."""
    present = {r["name"] for r in db.rows(_ESTIMATES, {"schema": schema,
                                                       "tables": [n[0] for n in NEWEST]})}
    found = []
    for table, column, what, noun in NEWEST:
        if table not in present:
            found.append(Newest(table, what, noun, None, present=False))
            continue
        query = sql.SQL("SELECT max({}) AS newest FROM {}.{}").format(
            sql.Identifier(column), sql.Identifier(schema), sql.Identifier(table))
        try:
            (row,) = db.read(f"{schema}.{table}", query, passthrough=(
                psycopg.errors.InsufficientPrivilege, psycopg.errors.LockNotAvailable,
                psycopg.errors.QueryCanceled))
            value = row["newest"]
        except psycopg.errors.InsufficientPrivilege:
            found.append(Newest(table, what, noun, None, f"no SELECT privilege on {schema}.{table} "
                                f"(GRANT SELECT ON {schema}.{table} TO the audit's role)"))
            continue
        except psycopg.errors.LockNotAvailable:
            found.append(Newest(table, what, noun, None, "another session holds a lock on it"))
            continue
        except psycopg.errors.QueryCanceled:
            found.append(Newest(table, what, noun, None, "reading it exceeded the statement "
                                "timeout"))
            continue
        found.append(Newest(table, what, noun, None if value is None else int(value)))
    return found


#: what tells one MLflow database from another, most telling first: (table, the key and
#: what else must match, what they are). Run ids are random (uuid4), so two databases
#: share none by chance; experiment ids count up from 1 everywhere, so their names must
#: match too; registered models are known by name. Experiment 0 ("Default") is in every
#: MLflow database and tells nothing.
KINSHIP = (
    ("runs", ("run_uuid",), "runs"),
    ("experiments", ("experiment_id", "name"), "experiments"),
    ("registered_models", ("name",), "registered models"),
)
#: how many of each side's newest keys (in the primary key's order) are compared
SAMPLE = 100


@dataclass(frozen=True)
class Kinship:
    """Whether the copy is of the live database, told by ``what``: of ``sampled`` keys
    (the copy's newest and the live target's newest), ``common`` are on both sides."""

    what: str
    sampled: tuple[int, int]
    common: int

    @property
    def foreign(self) -> bool:
        return self.common == 0


def _sample(db: Database, schema: str, table: str, columns: tuple[str, ...]) -> set[tuple]:
    """The newest SAMPLE keys by the primary key's index: a bounded read."""
    skip = sql.SQL("WHERE experiment_id <> 0 ") if table == "experiments" else sql.SQL("")
    query = sql.SQL("SELECT {} FROM {}.{} {}ORDER BY {} DESC LIMIT {}").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(schema),
        sql.Identifier(table), skip, sql.Identifier(columns[0]), sql.Literal(SAMPLE))
    return {tuple(r.values()) for r in db.read(f"{schema}.{table}", query)}


def _found(db: Database, schema: str, table: str, columns: tuple[str, ...],
           keys: set[tuple]) -> set[tuple]:
    """Which of ``keys`` ``db`` holds: at most SAMPLE primary key look-ups."""
    query = sql.SQL("SELECT {} FROM {}.{} WHERE {} = ANY(%(keys)s)").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(schema),
        sql.Identifier(table), sql.Identifier(columns[0]))
    rows = db.read(f"{schema}.{table}", query, {"keys": [k[0] for k in keys]})
    return {tuple(r.values()) for r in rows} & keys


def kinship(copy_db: Database, copy_schema: str, live: Database,
            live_schema: str) -> Kinship | None:
    """How the copy relates to the live database, by the first of KINSHIP both hold rows
    of; None when they hold none in common kind (an empty side, say) or the live target
    cannot be read: then nothing says the copy is another database's."""
    from pytest_mlflowdb.db.errors import DatabaseError

    tables = [t for t, _, _ in KINSHIP]
    mine = {r["name"] for r in copy_db.rows(_ESTIMATES, {"schema": copy_schema,
                                                         "tables": tables})}
    try:
        theirs = {r["name"] for r in live.rows(_ESTIMATES, {"schema": live_schema,
                                                            "tables": tables})}
        for table, columns, what in KINSHIP:
            if table not in mine or table not in theirs:
                continue
            copied = _sample(copy_db, copy_schema, table, columns)
            held = _sample(live, live_schema, table, columns)
            if not copied or not held:
                continue
            common = (_found(live, live_schema, table, columns, copied)
                      | _found(copy_db, copy_schema, table, columns, held))
            return Kinship(what, (len(copied), len(held)), len(common))
    except (DatabaseError, psycopg.Error):
        return None
    return None
