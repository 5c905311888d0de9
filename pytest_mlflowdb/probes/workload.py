"""What the audited database spends its time on: ``pg_stat_statements``' entries of this
database that name one of MLflow's tables, the database's totals, and since when the
statistics count.

Read in one flight (three independent statements). Other roles' statements are hidden
(``<insufficient privilege>``) without ``pg_read_all_stats``; they are counted, not
read. The auditing role's statements are told apart (the audit's own reads) unless it
owns MLflow's tables. The server leaves out other databases' entries and utility
statements; the names of MLflow's tables are looked for here: a regular expression of
seventy names on the server costs ~100 ms over a full ``pg_stat_statements`` (5,000
entries), sending the texts a few milliseconds.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from pytest_mlflowdb.db.database import Database, own_backend_pids

EXTENSION = "pg_stat_statements"
HIDDEN = "<insufficient privilege>"

# statements that change the schema or the session, not MLflow's operations
_UTILITY = (r"^\s*(create|alter|drop|comment|grant|revoke|truncate|vacuum|analyze|set|reset"
            r"|show|begin|start|commit|end|rollback|savepoint|release|lock|copy|prepare"
            r"|deallocate|discard|listen|notify|explain|refresh|reindex|cluster)\M")

_STATEMENTS = """
SELECT s.query, s.calls, s.total_exec_time AS total_ms, s.rows,
       s.shared_blks_read AS blocks_read, s.shared_blks_hit AS blocks_hit,
       s.userid = (SELECT oid FROM pg_roles WHERE rolname = current_user)
         AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.relname = 'experiments'
                         AND c.relkind IN ('r', 'p') AND c.relowner = s.userid) AS auditor
FROM {schema}.pg_stat_statements s
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND s.query <> %(hidden)s AND s.query !~* %(utility)s
"""

_TOTALS = """
SELECT count(*) AS statements, coalesce(sum(s.total_exec_time), 0) AS total_ms,
       count(*) FILTER (WHERE s.query = %(hidden)s) AS hidden,
       coalesce(sum(s.total_exec_time) FILTER (WHERE s.query = %(hidden)s), 0) AS hidden_ms
FROM {schema}.pg_stat_statements s
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
"""

# pg_stat_statements 1.9 (PostgreSQL 14) keeps when it was reset and how many entries it
# evicted; the server's start otherwise bounds the statistics' age
_SINCE = """
SELECT i.stats_reset, i.dealloc, pg_postmaster_start_time() AS started, now() AS now
FROM {schema}.pg_stat_statements_info i
"""
_SINCE_OLD = """
SELECT NULL::timestamptz AS stats_reset, NULL::bigint AS dealloc,
       pg_postmaster_start_time() AS started, now() AS now
"""


@dataclass(frozen=True)
class Statement:
    """One entry of ``pg_stat_statements`` that names an MLflow table."""

    query: str
    calls: int
    total_ms: float
    rows: int
    blocks_read: int
    blocks_hit: int
    #: run by the auditing role, which is not the owner of MLflow's tables (MLflow's
    #: role): the audit's own reads, not MLflow's
    auditor: bool


@dataclass(frozen=True)
class Workload:
    """MLflow's statements, the database's totals, and since when they are counted."""

    statements: tuple[Statement, ...]
    #: every entry of this database, and their time
    total_statements: int
    total_ms: float
    #: entries of other roles whose text this role may not read
    hidden: int
    hidden_ms: float
    since: datetime.datetime
    #: whether ``since`` is the statistics' reset (True) or the server's start (False)
    reset: bool
    age_seconds: float
    #: entries evicted since the reset (pg_stat_statements.max reached), None when unknown
    dealloc: int | None


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def workload(db: Database, tables: Iterable[str]) -> Workload:
    """The database's statements on ``tables`` (cached); a psycopg error when the view
    cannot be read (not loaded by ``shared_preload_libraries``, say)."""
    names = sorted(set(tables))
    return db.cached(f"workload:{','.join(names)}", lambda d: _collect(d, names))


def _collect(db: Database, names: list[str]) -> Workload:
    pre = db.preflight
    schema = sql.Identifier(pre.extension_schemas.get(EXTENSION, "public"))
    pattern = re.compile(r"(?<![\w$])\"?(?:" + "|".join(map(re.escape, names)) + r")\b",
                         re.IGNORECASE)
    since_sql = (sql.SQL(_SINCE).format(schema=schema)
                 if _version(pre.extensions.get(EXTENSION, "0")) >= (1, 9) else _SINCE_OLD)
    found, (totals,), (since,) = db.rows_many([
        (sql.SQL(_STATEMENTS).format(schema=schema), {"hidden": HIDDEN, "utility": _UTILITY}),
        (sql.SQL(_TOTALS).format(schema=schema), {"hidden": HIDDEN}),
        (since_sql, None),
    ])
    start = since["stats_reset"] or since["started"]
    return Workload(
        tuple(Statement(r["query"], int(r["calls"]), float(r["total_ms"]), int(r["rows"]),
                        int(r["blocks_read"]), int(r["blocks_hit"]), bool(r["auditor"]))
              for r in found if pattern.search(r["query"])),
        int(totals["statements"]), float(totals["total_ms"]), int(totals["hidden"]),
        float(totals["hidden_ms"]), start, since["stats_reset"] is not None,
        max(0.0, (since["now"] - start).total_seconds()),
        None if since["dealloc"] is None else int(since["dealloc"]))


# -- plans ---------------------------------------------------------------------------
_SIZES = """
SELECT c.relname AS name, pg_relation_size(c.oid) AS bytes, c.reltuples::bigint AS rows
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relname = ANY(%(tables)s) AND c.relkind IN ('r', 'p')
"""


@dataclass(frozen=True)
class Plan:
    """``EXPLAIN (FORMAT JSON)`` of one statement: the plan's top node, or why it could
    not be planned."""

    statement: str
    plan: dict | None
    error: str | None = None


def relation_sizes(db: Database, schema: str, tables: Iterable[str]) -> dict[str, tuple[int, int]]:
    """Heap size (bytes) and row estimate of each of ``tables`` in ``schema`` (cached)."""
    names = sorted(set(tables))

    def collect(d: Database) -> dict[str, tuple[int, int]]:
        return {r["name"]: (int(r["bytes"]), int(r["rows"]))
                for r in d.rows(_SIZES, {"schema": schema, "tables": names})}

    return db.cached(f"workload:sizes:{schema}:{','.join(names)}", collect)


def plans(db: Database, statements: Iterable[str]) -> tuple[Plan, ...]:
    """The plan of each statement (``EXPLAIN``, never ``ANALYZE``: nothing is executed,
    inside the audit's read-only transaction). One statement each, so one that cannot be
    planned fails alone; all are sent in one flight during a collection (cached).
    ``statements`` carry values, not ``$n``: a parameter cannot be left unbound in the
    extended protocol the pipelined session speaks (and ``GENERIC_PLAN`` would then plan
    with the bound values)."""
    texts = tuple(statements)

    def one(text: str) -> Plan:
        import psycopg

        try:
            row = db.row(sql.SQL("EXPLAIN (FORMAT JSON) ") + sql.SQL(text))
        except psycopg.Error as exc:
            return Plan(text, None, str(exc).strip().splitlines()[0] if str(exc).strip()
                        else type(exc).__name__)
        found = next(iter(row.values())) if row else None
        return Plan(text, found[0]["Plan"] if found else None)

    def collect(d: Database) -> tuple[Plan, ...]:
        return tuple(d.each(one, list(texts)))

    return db.cached(f"workload:plans:{hash(texts)}", collect)


# -- what mlflow gc and the UI will meet ------------------------------------------------
# The planner's statistics, never a count: the most common run_uuids of metrics and
# experiment_ids of runs with their share of the rows, and the tables' row estimates.
_COMMON = """
SELECT s.tablename AS table, s.attname AS column, s.n_distinct,
       s.most_common_vals::text::text[] AS vals, s.most_common_freqs AS freqs
FROM pg_stats s
WHERE s.schemaname = %(schema)s AND ((s.tablename = 'metrics' AND s.attname = 'run_uuid')
                                     OR (s.tablename = 'runs' AND s.attname = 'experiment_id'))
"""

_STUCK = """
SELECT v.name, v.version, v.status, v.last_updated_time, v.creation_time,
       (extract(epoch FROM now()) * 1000)::bigint
         - coalesce(v.last_updated_time, v.creation_time) AS age_ms
FROM {versions} v
WHERE v.status IN ('PENDING_REGISTRATION', 'FAILED_REGISTRATION')
ORDER BY coalesce(v.last_updated_time, v.creation_time) NULLS FIRST, v.name, v.version
LIMIT 100
"""


@dataclass(frozen=True)
class Common:
    """A column's most common values with their estimated rows, and its distinct count."""

    values: tuple[tuple[str, float], ...]
    n_distinct: float


@dataclass(frozen=True)
class Exposures:
    """What ``mlflow gc`` and the UI will meet: the planner's view of metrics per run and
    runs per experiment (None when never analysed or hidden), the tables' row estimates
    (never analysed: the most rows their size can hold), and the model versions left in a
    registration state."""

    metrics_per_run: Common | None
    runs_per_experiment: Common | None
    metrics_rows: float
    runs_rows: float
    stuck_versions: tuple[dict, ...]
    #: why the model versions could not be read (no SELECT), if so
    versions_error: str | None = None


def exposures(db: Database, schema: str) -> Exposures:
    """The statistics and the stuck model versions of MLflow's schema (cached); the
    versions' read failing alone (a missing privilege) is kept as its error."""
    def collect(d: Database) -> Exposures:
        import psycopg

        def read(statements: list) -> Any:
            try:
                return d.rows_many(statements)
            except psycopg.Error as exc:  # kept: the versions' read may lack a privilege
                return exc

        # two units side by side (one flight): the versions' failure aborts only its own
        stats, versions = d.each(read, [
            [(_COMMON, {"schema": schema}),
             (_SIZES, {"schema": schema, "tables": ["metrics", "runs"]})],
            [(sql.SQL(_STUCK).format(versions=sql.Identifier(schema, "model_versions")),
              None)]])
        if isinstance(stats, Exception):
            raise stats
        common: list[dict[str, Any]] = stats[0]
        sizes: list[dict[str, Any]] = stats[1]
        stuck, error = ([], str(versions).strip().splitlines()[0]) \
            if isinstance(versions, Exception) else (versions[0], None)
        rows = {r["name"]: float(r["rows"]) for r in sizes}
        # never analysed (-1): at most one row per 28 bytes of heap (a tuple's header and
        # line pointer), an upper bound from the size alone
        rows.update({r["name"]: float(int(r["bytes"]) // 28) for r in sizes
                     if float(r["rows"]) < 0})

        def of(table: str, column: str) -> Common | None:
            found = next((r for r in common if r["table"] == table
                          and r["column"] == column), None)
            if found is None:
                return None
            total = max(rows.get(table, 0.0), 0.0)
            pairs = zip(found["vals"] or (), found["freqs"] or (), strict=False)
            return Common(tuple((v, f * total) for v, f in pairs),
                          float(found["n_distinct"] or 0.0))

        return Exposures(of("metrics", "run_uuid"), of("runs", "experiment_id"),
                         rows.get("metrics", -1.0), rows.get("runs", -1.0),
                         tuple(stuck), error)

    return db.cached(f"workload:exposures:{schema}", collect)


# -- connections -------------------------------------------------------------------------
# Connection slots are the server's: every database's client sessions count, grouped by
# who holds them. Without pg_read_all_stats other roles' sessions show no state, client
# nor start (backend_type NULL): counted as hidden.
_CONNECTIONS = """
SELECT coalesce(a.usename::text, '?') AS role, coalesce(a.application_name, '') AS application,
       coalesce(host(a.client_addr), CASE WHEN a.backend_type IS NULL THEN '?' ELSE 'local'
                                          END) AS client,
       count(*) AS sessions, count(*) FILTER (WHERE a.state = 'idle') AS idle,
       count(*) FILTER (WHERE a.backend_type IS NULL) AS hidden,
       coalesce(max(extract(epoch FROM now() - a.backend_start)), 0)::float8 AS oldest_s,
       coalesce(percentile_disc(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM
         now() - a.backend_start)), 0)::float8 AS median_age_s,
       string_agg(DISTINCT a.datname::text, ', ') AS databases
FROM pg_stat_activity a
WHERE a.pid <> pg_backend_pid() AND a.pid <> ALL(%(own)s::int[])
  AND (a.backend_type = 'client backend' OR a.backend_type IS NULL)
GROUP BY 1, 2, 3 ORDER BY count(*) DESC, 1, 2, 3
"""
_SLOTS = """
SELECT current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS superuser_reserved,
       coalesce(current_setting('reserved_connections', true), '0')::int AS reserved
"""


@dataclass(frozen=True)
class Holder:
    """The client sessions of one role, application and client address."""

    role: str
    application: str
    client: str
    sessions: int
    idle: int
    hidden: int
    oldest_s: float
    median_age_s: float
    databases: str


@dataclass(frozen=True)
class Connections:
    holders: tuple[Holder, ...]
    max_connections: int
    #: slots kept for superusers and roles of pg_use_reserved_connections (16+)
    reserved: int

    @property
    def usable(self) -> int:
        return max(1, self.max_connections - self.reserved)


def connections(db: Database) -> Connections:
    """Who holds the server's connection slots, but the audit's own sessions (cached; one
    flight)."""
    def collect(d: Database) -> Connections:
        found, (slots,) = d.rows_many([(_CONNECTIONS, {"own": own_backend_pids()}),
                                       (_SLOTS, None)])
        return Connections(
            tuple(Holder(r["role"], r["application"], r["client"], int(r["sessions"]),
                         int(r["idle"]), int(r["hidden"]), float(r["oldest_s"]),
                         float(r["median_age_s"]), r["databases"] or "") for r in found),
            int(slots["max_connections"]),
            int(slots["superuser_reserved"]) + int(slots["reserved"]))

    return db.cached("workload:connections", collect)


# -- hypothetical indexes ------------------------------------------------------------------
def with_hypothetical_index(db: Database, index: str, statement: str) -> float | str:
    """The estimated total cost of ``statement`` (with values) planned as if ``index``
    (``CREATE INDEX ON schema.table (columns)``) existed, through hypopg: the index lives
    in this backend's memory only, nothing is written; it is made and dropped inside one
    read-only transaction (``hypopg_reset`` before and after). Returns the cost, or why
    it could not be measured."""
    import psycopg

    schema = sql.Identifier(db.preflight.extension_schemas.get("hypopg", "public"))
    reset = sql.SQL("SELECT {}.hypopg_reset()").format(schema)
    try:
        found = db.rows_many([
            (reset, None),
            (sql.SQL("SELECT indexrelid FROM {}.hypopg_create_index(%s)").format(schema),
             (index,)),
            (sql.SQL("EXPLAIN (FORMAT JSON) ") + sql.SQL(statement), None),
            (reset, None)])
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    plan = next(iter(found[2][0].values()))
    return float(plan[0]["Plan"]["Total Cost"])


# -- MLflow's basic-auth database --------------------------------------------------------
AUTH_VERSION_TABLE = "alembic_version_auth"
_AUTH = """
SELECT n.nspname AS schema FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname = 'alembic_version_auth' AND c.relkind IN ('r', 'p')
  AND n.nspname = ANY(current_schemas(false)) ORDER BY array_position(current_schemas(false),
  n.nspname) LIMIT 1
"""


@dataclass(frozen=True)
class AuthDatabase:
    """MLflow's basic-auth schema found on the search path: where, its revisions (None
    when unreadable, with the error) and its tables as captured."""

    schema: str
    revisions: tuple[str, ...] | None
    error: str | None
    snapshot: Any


def auth_database(db: Database) -> AuthDatabase | None:
    """MLflow's basic-auth schema on this session's search path, else None (cached). One
    statement on any other database; its revision and schema in one more flight."""
    def collect(d: Database) -> AuthDatabase | None:
        import psycopg

        from pytest_mlflowdb.probes.schema import capture

        found = d.row(_AUTH)
        if not found:
            return None
        schema = found["schema"]
        asked: list[tuple[Any, Any]] = []

        def ask(query: Any, params: Any) -> list:
            asked.append((query, params))
            return []

        capture(ask, schema)  # its seven statements, asked in the same order each time
        version = (sql.SQL("SELECT version_num FROM {}").format(
            sql.Identifier(schema, AUTH_VERSION_TABLE)), None)

        def read(statements: list) -> Any:
            try:
                return d.rows_many(statements)
            except psycopg.Error as exc:
                return exc

        versions, answers = d.each(read, [[version], asked])
        if isinstance(answers, Exception):
            raise answers
        replies = iter(answers)  # capture asks the same statements in the same order
        snapshot = capture(lambda q, p: next(replies), schema)
        if isinstance(versions, Exception):
            return AuthDatabase(schema, None, str(versions).strip().splitlines()[0], snapshot)
        return AuthDatabase(schema, tuple(r["version_num"] for r in versions[0]), None,
                            snapshot)

    return db.cached("workload:auth", collect)
