"""MLflow's data as MLflow sees it: runs stuck or waiting for ``mlflow gc``, rows that name
what no longer exists, values MLflow never writes.

Every default query is bounded: it reads small tables (``experiments``, ``runs``, the
registry's) or probes MLflow's indexes a bounded number of times (one probe per run, never
a scan of ``metrics``, ``params``, ``tags`` or ``latest_metrics``). Orphans in a run's child
tables are looked for only where no foreign key prevents them, by walking the distinct run
ids of the child's ``run_uuid`` index (a skip scan: one index probe per run). The one full
comparison of ``latest_metrics`` with ``metrics`` is :func:`latest_metric_disagreements`,
for the opt-in slow check. Each listing returns the first ``cap`` ids and the total.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from psycopg import sql

from pytest_mlflowdb.db.database import Database
from pytest_mlflowdb.probes.grants import advice
from pytest_mlflowdb.results.findings import sql_name

#: the run status and lifecycle values MLflow writes (runs_status_check and friends)
RUN_STATUSES = ("SCHEDULED", "FAILED", "FINISHED", "RUNNING", "KILLED")
LIFECYCLE_STAGES = ("active", "deleted")
#: model_versions.current_stage and .status: enforced only in MLflow's Python code
VERSION_STAGES = ("None", "Staging", "Production", "Archived", "Deleted_Internal")
VERSION_STATUSES = ("PENDING_REGISTRATION", "FAILED_REGISTRATION", "READY")
#: what ``delete_model_version`` writes into run_id instead of the run's id
REDACTED_RUN_ID = "REDACTED-RUN-ID"
#: the run children whose rows name a run; MLflow's migrations give each a foreign key
RUN_CHILDREN = ("metrics", "latest_metrics", "params", "tags")
TABLES = ("experiments", "runs", "inputs", "model_versions", "registered_model_aliases",
          *RUN_CHILDREN)

_NOW_MS = "(extract(epoch FROM now()) * 1000)::bigint"

_LAYOUT = """
SELECT c.relname AS table, c.oid::bigint AS oid,
       has_table_privilege(c.oid, 'SELECT') AS readable,
       row_security_active(c.oid) AS rls,
       array(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
       array(SELECT a.attname::text FROM pg_index i
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
             WHERE i.indrelid = c.oid AND i.indisvalid AND i.indpred IS NULL) AS leading,
       (SELECT string_agg(f.conname, ', ' ORDER BY f.conname) FROM pg_constraint f
        WHERE f.conrelid = c.oid AND f.contype = 'f' AND f.convalidated
          AND f.confrelid = (SELECT r.oid FROM pg_class r WHERE r.relname = 'runs'
                             AND r.relnamespace = c.relnamespace AND r.relkind IN ('r', 'p'))
          AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgconstraint = f.oid
                          AND t.tgrelid = c.oid AND t.tgenabled = 'D')) AS run_fk
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND c.relname = ANY(%(tables)s)
"""


@dataclass(frozen=True)
class Table:
    """One MLflow table as this session sees it."""

    name: str
    columns: frozenset[str]
    #: columns that lead a valid, non-partial index (an index probe on them is cheap)
    indexed: frozenset[str]
    #: why this role cannot read all its rows (a missing grant, row level security), or None
    hidden: str | None
    #: the validated, enabled foreign key(s) to runs, or None
    run_fk: str | None


@dataclass(frozen=True)
class Layout:
    """MLflow's tables in ``schema`` that this check reads, by name (missing ones absent)."""

    schema: str
    tables: dict[str, Table] = field(default_factory=dict)

    def has(self, table: str, *columns: str) -> bool:
        found = self.tables.get(table)
        return found is not None and set(columns) <= found.columns

    def name(self, table: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(table))


@dataclass(frozen=True)
class Listing:
    """Rows found: the first ``cap`` of them (their ids, oldest or first first) and how
    many there are in all."""

    total: int
    ids: tuple[str, ...] = ()

    def text(self) -> str:
        more = f" (first {len(self.ids)} of {self.total})" if self.total > len(self.ids) else ""
        return ", ".join(self.ids) + more


def layout(db: Database, schema: str) -> Layout:
    """The tables :data:`TABLES` of ``schema``: columns, indexes, access, run foreign keys."""
    def collect(d: Database) -> Layout:
        user = d.preflight.current_user
        tables = {}
        for r in d.rows(_LAYOUT, {"schema": schema, "tables": list(TABLES)}):
            hidden = None
            if not r["readable"]:
                grant = f"GRANT SELECT ON {sql_name(schema, r['table'])}"
                hidden = (f"no SELECT privilege on {schema}.{r['table']} "
                          f"({advice(d, grant)})")
            elif r["rls"]:
                hidden = (f"row level security on {schema}.{r['table']} may hide rows from "
                          f"{user} (audit as its owner or a role with BYPASSRLS)")
            tables[r["table"]] = Table(r["table"], frozenset(r["columns"]),
                                       frozenset(r["leading"]), hidden, r["run_fk"])
        return Layout(schema, tables)

    return db.cached(f"integrity:layout:{schema}", collect)


#: every listing is written to walk MLflow's indexes (one probe per run or id): with
#: sequential scans off its plan cannot turn into a scan of metrics per run, which the
#: planner chose for a table with no recent vacuum (an empty visibility map)
INDEX_ONLY_PLAN = {"enable_seqscan": "off"}


def _listing(db: Database, query: sql.Composable, params: dict[str, Any]) -> Listing:
    """Run a query whose rows carry ``id`` and ``total`` (``count(*) OVER ()``)."""
    found = db.rows(query, params, planner=INDEX_ONLY_PLAN)
    return Listing(int(found[0]["total"]) if found else 0, tuple(str(r["id"]) for r in found))


def stuck_runs(db: Database, lay: Layout, age_s: float, cap: int) -> tuple[Listing, int]:
    """Active runs still RUNNING, with no end time, started more than ``age_s`` ago (oldest
    first), and how many active runs are RUNNING in all."""
    query = sql.SQL(
        "SELECT run_uuid AS id, count(*) OVER () AS total FROM {runs} "
        "WHERE status = 'RUNNING' AND end_time IS NULL AND lifecycle_stage = 'active' "
        "AND start_time < " + _NOW_MS + " - %(age_ms)s ORDER BY start_time, run_uuid "
        "LIMIT %(cap)s").format(runs=lay.name("runs"))
    count = sql.SQL("SELECT count(*) FROM {} WHERE status = 'RUNNING' AND "
                    "lifecycle_stage = 'active'").format(lay.name("runs"))
    stuck, running = db.each(_call, [
        partial(_listing, db, query, {"age_ms": int(age_s * 1000), "cap": cap}),
        partial(db.value, count)])
    return stuck, int(running)


def _call(read: Callable[[], Any]) -> Any:
    return read()


@dataclass(frozen=True)
class GcBacklog:
    """Soft-deleted rows of one table: due for ``mlflow gc --older-than``, never seen by it
    (no time to compare), and how many are deleted in all."""

    due: Listing
    undated: Listing
    deleted: int


def gc_backlog(db: Database, lay: Layout, table: str, age_s: float, cap: int) -> GcBacklog:
    """``runs`` (by ``deleted_time``, as gc's ``_get_deleted_runs``) or ``experiments``
    (by ``last_update_time``, as gc's filter) soft-deleted longer than ``age_s`` ago."""
    key, stamp, due = (("run_uuid", "deleted_time", "<=") if table == "runs"
                       else ("experiment_id", "last_update_time", "<"))
    base = sql.SQL("FROM {t} WHERE lifecycle_stage = 'deleted'").format(t=lay.name(table))
    params = {"age_ms": int(age_s * 1000), "cap": cap}
    listing = ("SELECT {key}::text AS id, count(*) OVER () AS total {base} AND {cond} "
               "ORDER BY {order}, {key} LIMIT %(cap)s")
    due_cond = sql.SQL("{} " + due + " " + _NOW_MS + " - %(age_ms)s").format(
        sql.Identifier(stamp))
    found, undated, deleted = db.each(_call, [
        partial(_listing, db, sql.SQL(listing).format(
            key=sql.Identifier(key), base=base, cond=due_cond, order=sql.Identifier(stamp)),
            params),
        partial(_listing, db, sql.SQL(listing).format(
            key=sql.Identifier(key), base=base, cond=sql.SQL("{} IS NULL").format(
                sql.Identifier(stamp)), order=sql.Identifier(key)), params),
        partial(db.value, sql.SQL("SELECT count(*) {}").format(base))])
    return GcBacklog(found, undated, int(deleted))


def _workspace(lay: Layout, alias: str, table: str) -> str:
    """An id's prefix naming a workspace other than MLflow's default (3.10+ schemas)."""
    if not lay.has(table, "workspace"):
        return ""
    return f"CASE WHEN {alias}.workspace <> 'default' THEN {alias}.workspace || '/' ELSE '' END || "


def orphan_versions(db: Database, lay: Layout, cap: int, *, runs_source: bool) -> Listing:
    """Model versions (not deleted) whose run_id names no run (MLflow's placeholder for a
    redacted run id excepted): with ``runs_source``, those whose source is a ``runs:/`` URI
    (loading them resolves the missing run and fails), else the others. runs is probed
    through its primary key."""
    query = sql.SQL(
        "SELECT " + _workspace(lay, "v", "model_versions") + "v.name || ' v' || v.version "
        "|| ' (run ' || v.run_id || ')' AS id, count(*) OVER () AS total FROM {mv} v "
        "WHERE v.run_id IS NOT NULL AND v.run_id <> %(redacted)s "
        "AND v.current_stage IS DISTINCT FROM 'Deleted_Internal' "
        "AND (coalesce(v.source, '') LIKE 'runs:/%%') = %(runs_source)s "
        "AND NOT EXISTS (SELECT 1 FROM {runs} r WHERE r.run_uuid = v.run_id) "
        "ORDER BY v.name, v.version LIMIT %(cap)s").format(
            mv=lay.name("model_versions"), runs=lay.name("runs"))
    return _listing(db, query, {"redacted": REDACTED_RUN_ID, "cap": cap,
                                "runs_source": runs_source})


def stale_aliases(db: Database, lay: Layout, cap: int) -> Listing:
    """Aliases whose version is missing or deleted (``Deleted_Internal``)."""
    on_ws = workspace = ""
    if lay.has("registered_model_aliases", "workspace") and lay.has("model_versions",
                                                                      "workspace"):
        on_ws = " AND v.workspace = a.workspace"
        workspace = _workspace(lay, "a", "registered_model_aliases")
    query = sql.SQL(
        "SELECT " + workspace + "a.name || '@' || a.alias || ' -> v' || a.version || "
        "CASE WHEN v.name IS NULL THEN ' (missing)' ELSE ' (deleted)' END AS id, "
        "count(*) OVER () AS total FROM {al} a LEFT JOIN {mv} v ON v.name = a.name "
        "AND v.version = a.version" + on_ws + " WHERE v.name IS NULL "
        "OR v.current_stage = 'Deleted_Internal' ORDER BY a.name, a.alias LIMIT %(cap)s"
    ).format(al=lay.name("registered_model_aliases"), mv=lay.name("model_versions"))
    return _listing(db, query, {"cap": cap})


def orphan_inputs(db: Database, lay: Layout, cap: int) -> Listing:
    """Runs named by ``inputs`` rows (destination RUN) that no longer exist: ``inputs`` has
    no foreign key and ``mlflow gc`` leaves them behind. A skip scan of MLflow's
    (destination_type, destination_id, source_type) index, one runs probe per run."""
    query = _distinct(lay, "inputs", "destination_id", "destination_type = 'RUN'") + sql.SQL(
        "SELECT u AS id, count(*) OVER () AS total FROM walk WHERE u IS NOT NULL AND "
        "(SELECT 1 FROM {runs} r WHERE r.run_uuid = walk.u) IS NULL "
        "ORDER BY u LIMIT %(cap)s").format(runs=lay.name("runs"))
    return _listing(db, query, {"cap": cap})


def _distinct(lay: Layout, table: str, column: str, where: str = "TRUE") -> sql.Composed:
    """The distinct values of ``table.column`` (as ``walk(u)``) by a skip scan of an index
    on it: one index probe per distinct value, whatever the table's size."""
    return sql.SQL(
        "WITH RECURSIVE walk(u) AS ((SELECT {c} FROM {t} WHERE " + where + " ORDER BY {c} "
        "LIMIT 1) UNION ALL SELECT (SELECT x.{c} FROM {t} x WHERE " + where + " AND x.{c} > "
        "w.u ORDER BY x.{c} LIMIT 1) FROM walk w WHERE w.u IS NOT NULL) ").format(
            c=sql.Identifier(column), t=lay.name(table))


def orphan_children(db: Database, lay: Layout, table: str, cap: int) -> Listing:
    """Run ids named in ``table`` (a run child) that name no run. Call it only when
    ``table`` has an index leading with run_uuid (the skip scan needs it)."""
    query = _distinct(lay, table, "run_uuid") + sql.SQL(
        "SELECT u AS id, count(*) OVER () AS total FROM walk WHERE u IS NOT NULL AND "
        "(SELECT 1 FROM {runs} r WHERE r.run_uuid = walk.u) IS NULL "
        "ORDER BY u LIMIT %(cap)s").format(runs=lay.name("runs"))
    return _listing(db, query, {"cap": cap})


def latest_without_metrics(db: Database, lay: Layout, cap: int) -> Listing:
    """Runs that have latest_metrics rows but no metrics rows at all: one probe of each
    table's run_uuid index per run (the per-key comparison is the slow check's)."""
    return _listing(db, latest_without_metrics_query(lay), {"cap": cap})


def latest_without_metrics_query(lay: Layout) -> sql.Composed:
    return sql.SQL(
        "SELECT r.run_uuid AS id, count(*) OVER () AS total FROM {runs} r "
        "WHERE (SELECT 1 FROM {lm} l WHERE l.run_uuid = r.run_uuid LIMIT 1) IS NOT NULL "
        "AND (SELECT 1 FROM {m} m WHERE m.run_uuid = r.run_uuid LIMIT 1) IS NULL "
        "ORDER BY r.run_uuid LIMIT %(cap)s").format(
            runs=lay.name("runs"), lm=lay.name("latest_metrics"), m=lay.name("metrics"))


@dataclass(frozen=True)
class ExperimentZero:
    """Experiment 0 (MLflow's "Default"), and what a store's start would do without it."""

    exists: bool
    lifecycle_stage: str | None
    experiments: int
    #: the id of another experiment already named "Default" (MLflow's insert would fail)
    default_name_taken_by: int | None


def experiment_zero(db: Database, lay: Layout) -> ExperimentZero:
    row = db.row(sql.SQL(
        "SELECT (SELECT lifecycle_stage FROM {e} WHERE experiment_id = 0) AS stage, "
        "EXISTS (SELECT 1 FROM {e} WHERE experiment_id = 0) AS present, "
        "(SELECT count(*) FROM {e}) AS experiments, "
        "(SELECT min(experiment_id) FROM {e} WHERE name = 'Default' AND experiment_id <> 0) "
        "AS taken").format(e=lay.name("experiments"))) or {}
    return ExperimentZero(bool(row["present"]), row["stage"], int(row["experiments"]),
                          row["taken"])


@dataclass(frozen=True)
class SequenceState:
    """``experiments.experiment_id``'s sequence against the largest id in the table."""

    name: str | None
    #: the value the next nextval() returns, or None when unreadable
    next_value: int | None
    max_id: int | None
    #: why it could not be read, or None
    error: str | None = None


def experiment_sequence(db: Database, lay: Layout) -> SequenceState:
    """The sequence behind experiments.experiment_id (pg_get_serial_sequence), its next
    value, and max(experiment_id) through the primary key."""
    table = f"{lay.schema}.experiments"
    row = db.row("SELECT s AS name, CASE WHEN s IS NOT NULL THEN "
                 "has_sequence_privilege(s, 'SELECT') END AS readable FROM "
                 "pg_get_serial_sequence(format('%%I.%%I', %s::text, 'experiments'), "
                 "'experiment_id') AS s", (lay.schema,)) or {}
    name = row.get("name")
    if name is None:
        return SequenceState(None, None, None, f"{table}.experiment_id has no sequence")
    if not row["readable"]:
        return SequenceState(name, None, None, f"no SELECT privilege on sequence {name} "
                             f"({advice(db, f'GRANT SELECT ON SEQUENCE {name}')})")
    found = db.row(sql.SQL(
        "SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END AS next, "
        "(SELECT max(experiment_id) FROM {e}) AS max_id FROM {seq}").format(
            e=lay.name("experiments"), seq=sql.SQL(name))) or {}
    return SequenceState(name, int(found["next"]), found["max_id"])


def has_rows(db: Database, lay: Layout, table: str) -> bool:
    """Whether ``table`` holds any row (reads one)."""
    return bool(db.value(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(lay.name(table))))


def unknown_values(db: Database, lay: Layout, table: str, column: str,
                   allowed: tuple[str, ...], key: str, cap: int) -> list[tuple[str | None,
                                                                                Listing]]:
    """Values of ``table.column`` that MLflow never writes (NULL included), each with the
    rows' ``key`` (a trusted SQL expression naming a row; capped) and count. ``table``
    is small (runs, experiments, the registry's)."""
    query = sql.SQL(
        "SELECT {c}::text AS value, count(*) AS total, (array_agg({k}::text ORDER BY {k}))"
        "[1:%(cap)s] AS ids FROM {t} WHERE {c} IS NULL OR NOT ({c}::text = ANY(%(allowed)s)) "
        "GROUP BY {c} ORDER BY count(*) DESC, {c}").format(
            c=sql.Identifier(column), k=sql.SQL(key), t=lay.name(table))
    rows = db.rows(query, {"cap": cap, "allowed": list(allowed)})
    return [(r["value"], Listing(int(r["total"]), tuple(r["ids"]))) for r in rows]


@dataclass(frozen=True)
class LatestMetricsDiff:
    """How ``latest_metrics`` differs from the newest ``metrics`` row per run and key."""

    #: (run, key) with metrics but no latest_metrics row
    missing: Listing
    #: (run, key) whose latest_metrics row is not the newest metric (by step, time, value)
    stale: Listing
    #: (run, key) of latest_metrics with no metrics row
    extra: Listing
    compared: int


_LATEST_DIFF = """
WITH newest AS (
  SELECT DISTINCT ON (run_uuid, key) run_uuid, key, value, timestamp, step
  FROM {m} ORDER BY run_uuid, key, step DESC, timestamp DESC, value DESC),
pairs AS (
  SELECT coalesce(n.run_uuid, l.run_uuid) || '/' || coalesce(n.key, l.key) AS id,
         CASE WHEN l.run_uuid IS NULL THEN 'missing' WHEN n.run_uuid IS NULL THEN 'extra'
              WHEN (n.value, n.step, n.timestamp) IS DISTINCT FROM
                   (l.value, l.step, l.timestamp) THEN 'stale' END AS kind
  FROM newest n FULL JOIN {lm} l ON l.run_uuid = n.run_uuid AND l.key = n.key)
SELECT kind, count(*) AS total, (array_agg(id ORDER BY id))[1:%(cap)s] AS ids
FROM pairs GROUP BY kind
"""


def latest_metric_disagreements(db: Database, lay: Layout, cap: int) -> LatestMetricsDiff:
    """The slow one: reads all of ``metrics`` and ``latest_metrics`` (a sort of metrics by
    run, key, step). Raises psycopg.errors.QueryCanceled past the statement timeout."""
    rows = db.rows(sql.SQL(_LATEST_DIFF).format(m=lay.name("metrics"),
                                                lm=lay.name("latest_metrics")), {"cap": cap})
    by_kind = {r["kind"]: Listing(int(r["total"]), tuple(r["ids"])) for r in rows}
    return LatestMetricsDiff(by_kind.get("missing", Listing(0)), by_kind.get("stale", Listing(0)),
                             by_kind.get("extra", Listing(0)),
                             sum(int(r["total"]) for r in rows))

