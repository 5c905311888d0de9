"""Workload: what the database spends its time on, per MLflow operation.

``pg_stat_statements``' entries that name MLflow's tables, grouped by the MLflow
operation that sends them (``pytest_mlflowdb.workload``: a catalog captured from MLflow's
own stores), with calls, total and mean time, share of the database's time, rows and
blocks read, and each group's costliest statements. An operation slow on average over
enough calls warns (PgHero's slow query); the operation over a share of the time is named
(information: MLflow's main operation takes that share of a healthy database's time).
The auditing role's statements do not count (the audit's own reads), unless that role
owns MLflow's tables.

``workload.plans`` plans the reads of MLflow's hot operations (the same catalog's
statements) on this data: ``EXPLAIN`` without ``ANALYZE``, inside the audit's read-only
transaction, each ``$n`` a constant no row has (estimated like an unknown value; a
pipelined session cannot leave a parameter unbound, so ``GENERIC_PLAN`` is not used). A
large MLflow table read whole warns with the index that would serve the scan.
"""

from __future__ import annotations

import datetime
import re

import psycopg
import pytest

from pytest_mlflowdb import check
from pytest_mlflowdb.audit.requirements import require_mlflow_schema
from pytest_mlflowdb.catalog import load_catalog
from pytest_mlflowdb.catalog.compare import compare
from pytest_mlflowdb.config.thresholds import format_value
from pytest_mlflowdb.indexes.recommended import RECOMMENDED_INDEXES
from pytest_mlflowdb.probes.grants import advice
from pytest_mlflowdb.probes.mlflow import mlflow_facts
from pytest_mlflowdb.probes.workload import (
    AUTH_VERSION_TABLE,
    EXTENSION,
    Common,
    Exposures,
    Plan,
    Workload,
    auth_database,
    connections,
    exposures,
    plans,
    relation_sizes,
    with_hypothetical_index,
    workload,
)
from pytest_mlflowdb.results.findings import sql_name
from pytest_mlflowdb.workload.auth import load_auth_catalog
from pytest_mlflowdb.workload.operations import (
    UNKNOWN,
    Group,
    group,
    load_operations,
    with_values,
)

_LOAD = (f"shared_preload_libraries = '{EXTENSION}' in postgresql.conf (a restart; on a "
         f"managed service its parameter group), then CREATE EXTENSION {EXTENSION}; in "
         "this database")


def _workload(db) -> Workload:
    return workload(db, load_catalog().mlflow_tables())


def _duration_ms(ms: float) -> str:
    return format_value("duration", ms / 1000.0)


def _since(found: Workload) -> str:
    when = found.since.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    age = format_value("duration", round(found.age_seconds))
    what = "the statistics were reset" if found.reset else "the server started"
    return f"counted since {what} at {when} ({age} ago)"


def _snippet(query: str, width: int = 160) -> str:
    flat = " ".join(query.split())
    return flat if len(flat) <= width else flat[:width - 3] + "..."


def _describe(g: Group, total_ms: float) -> str:
    share = 100.0 * g.total_ms / total_ms if total_ms else 0.0
    top = "; ".join(f"{_duration_ms(s.total_ms)} in {s.calls} call(s): {_snippet(s.query)}"
                    for s in g.top())
    return (f"{g.calls} call(s), {_duration_ms(g.total_ms)} in all "
            f"({format_value('percent', share)} of the database's statement time), mean "
            f"{_duration_ms(g.mean_ms)}, {g.rows} row(s), {g.blocks_read} shared block(s) "
            f"read; costliest: {top}")


@check("workload.operations",
       thresholds=("workload_slow_mean", "workload_min_calls", "workload_share"),
       probes=(mlflow_facts, _workload))
def test_operations(mlflowdb, mlflowdb_findings, mlflowdb_thresholds):
    """MLflow's operations by the time the database spends on them (pg_stat_statements)."""
    require_mlflow_schema(mlflowdb)
    pre = mlflowdb.preflight
    if EXTENSION not in pre.extensions:
        pytest.skip(f"extension missing: {EXTENSION} is not installed in {pre.dbname}, so "
                    f"the time MLflow's operations take is not counted (remedy: {_LOAD})")
    try:
        found = _workload(mlflowdb)
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        pytest.skip(f"{EXTENSION} cannot be read: {first} (remedy: {_LOAD})")
    t = mlflowdb_thresholds
    slow_s, min_calls, share_pct = (t["workload_slow_mean"], t["workload_min_calls"],
                                    t["workload_share"])
    statements = [s for s in found.statements if not s.auditor]
    groups = group(statements, load_operations())
    total = found.total_ms
    since = _since(found)
    slow = [g for g in groups if g.calls >= min_calls and g.mean_ms / 1000.0 >= slow_s]
    f = mlflowdb_findings
    for g in slow:
        f.warn(g.operation, f"{g.operation}: mean {_duration_ms(g.mean_ms)} per call, at or "
               f"above workload_slow_mean {format_value('duration', slow_s)} over "
               f"{g.calls} calls: {_describe(g, total)}; {since}",
               round(g.mean_ms, 3), format_value("duration", slow_s),
               remedy="EXPLAIN the costliest statement on this data (workload.plans) and "
                      "create the index its scan lacks with CREATE INDEX CONCURRENTLY")
    if found.hidden:
        note = (f"{found.hidden} statement(s) of other roles "
                f"({_duration_ms(found.hidden_ms)}) whose text is hidden without "
                "pg_read_all_stats")
        if not slow:
            pytest.skip(f"no privilege: needs pg_read_all_stats to read {note} "
                        f"({advice(mlflowdb, 'GRANT pg_read_all_stats')})")
        f.info(EXTENSION, f"not grouped: {note}", found.hidden, "pg_read_all_stats")
    for g in groups:
        if g in slow:
            continue
        share = 100.0 * g.total_ms / total if total else 0.0
        top = g.calls >= min_calls and share >= share_pct
        label = (f"the top consumer, at or above workload_share "
                 f"{format_value('percent', share_pct)}: " if top else "")
        name = g.operation if g.operation != UNKNOWN else \
            "unknown (statements on MLflow's tables no MLflow operation of the catalog sends)"
        f.ok(g.operation, f"{name}: {label}{_describe(g, total)}", round(g.mean_ms, 3),
             format_value("duration", slow_s))
    evicted = (f"; {found.dealloc} entries evicted since the reset (raise "
               f"{EXTENSION}.max)" if found.dealloc else "")
    f.info(EXTENSION, f"{len(statements)} of the database's {found.total_statements} "
           f"statement entries are on MLflow's tables, in {len(groups)} operation(s); "
           f"{_duration_ms(total)} of statement time {since}{evicted}",
           found.total_statements, None)


# -- workload.plans ----------------------------------------------------------------------
#: the operations whose statements are planned: what the UI and the registry wait on
HOT = ("search_runs", "get_metric_history", "get_metric_history_bulk_interval",
       "get_run", "search_experiments", "search_registered_models", "search_model_versions",
       "search_traces", "gc_hard_delete_run")
_EQUALS = re.compile(r"\(?\(?([a-z_][a-z0-9_]*)\)?(?:::[a-z ]+)?\)?\s*=\s*(?:any\s*)?\(?\$")


def hot_statements() -> list[tuple[str, str]]:
    """(operation, statement) of the hot operations' reads in the shipped catalog."""
    catalog = load_operations()
    return [(ops[0], with_values(catalog.examples[shaped]))
            for shaped, ops in catalog.by_shape.items()
            if ops[0] in HOT and shaped.startswith("select")]


def _plans(db) -> tuple[Plan, ...]:
    return plans(db, [text for _, text in hot_statements()])


def _sizes(db) -> dict[str, tuple[int, int]]:
    schema = mlflow_facts(db).schema
    return relation_sizes(db, schema, load_catalog().mlflow_tables()) if schema else {}


def _nodes(node: dict):
    yield node
    for child in node.get("Plans", ()):
        yield from _nodes(child)


def _index_for(table: str, condition: str) -> str:
    """The index that would serve a scan of ``table`` filtered by ``condition``: the
    platform guide's when one leads with a column compared for equality, else one on
    those columns."""
    columns = set(load_catalog().schema_at(load_catalog().head).columns(table))
    equal = []
    for name in _EQUALS.findall(condition.lower()):
        if name in columns and name not in equal:
            equal.append(name)
    for index in RECOMMENDED_INDEXES:
        if index.table == table and index.columns[0] in equal:
            return index.statement
    cols = equal[:2] or sorted(c for c in columns if c in condition.lower())[:1]
    if not cols:
        return f"-- no equality condition on {table} to index; look at the query's filter"
    return (f"CREATE INDEX CONCURRENTLY mlflowdb_{table}_{'_'.join(cols)} ON {table} "
            f"({', '.join(cols)});")


_INDEX_ON = re.compile(r"\bON (\w+) \(([^)]*)\)")


def _gain(db, plan: Plan, table: str, remedy: str) -> str:
    """What the remedy's index would do to the statement's estimated cost, measured with
    a hypothetical index where hypopg is installed."""
    found = _INDEX_ON.search(remedy)
    if found is None:
        return "no index to measure"
    if "hypopg" not in db.preflight.extensions:
        return ("the gain of the index was not measured (hypopg is not installed in this "
                "database)")
    schema = mlflow_facts(db).schema or "public"
    index = f"CREATE INDEX ON {sql_name(schema, found.group(1))} ({found.group(2)})"
    after = with_hypothetical_index(db, index, plan.statement)
    before = float((plan.plan or {}).get("Total Cost", 0.0))
    if isinstance(after, str):
        return f"the gain of the index could not be measured with hypopg: {after}"
    return (f"with the index the estimated cost falls from {before:.0f} to {after:.0f} "
            "(measured with a hypothetical index of hypopg, nothing built)")


@check("workload.plans", thresholds=("plan_seq_scan_min_size", "plan_cost_warn"),
       probes=(mlflow_facts, _plans, _sizes))
def test_plans(mlflowdb, mlflowdb_findings, mlflowdb_thresholds):
    """MLflow's hot queries planned on this data: no large table read whole, no huge cost."""
    require_mlflow_schema(mlflowdb)
    t = mlflowdb_thresholds
    min_size, max_cost = t["plan_seq_scan_min_size"], t["plan_cost_warn"]
    sizes = _sizes(mlflowdb)
    operations = dict((text, op) for op, text in hot_statements())
    f = mlflowdb_findings
    planned, worst, unplanned = 0, 0.0, []
    for plan in _plans(mlflowdb):
        operation = operations.get(plan.statement, "?")
        if plan.plan is None:
            unplanned.append(f"{operation}: {plan.error}")
            continue
        planned += 1
        cost = float(plan.plan.get("Total Cost", 0.0))
        worst = max(worst, cost)
        for node in _nodes(plan.plan):
            table = node.get("Relation Name")
            if node.get("Node Type") != "Seq Scan" or table not in sizes:
                continue
            size, rows = sizes[table]
            if size < min_size:
                continue
            condition = node.get("Filter", "")
            f.warn(f"{operation}: {table}", f"{operation} reads {table} whole "
                   f"({format_value('size', size)}, ~{rows} rows; at or above "
                   f"plan_seq_scan_min_size {format_value('size', min_size)})"
                   + (f" to filter {condition}" if condition else "")
                   + f"; {_gain(mlflowdb, plan, table, _index_for(table, condition))}; "
                   f"statement: {_snippet(plan.statement)}", size,
                   format_value("size", min_size), remedy=_index_for(table, condition))
        if cost >= max_cost:
            f.warn(operation, f"{operation}: estimated cost {cost:.0f}, at or above "
                   f"plan_cost_warn {max_cost:.0f}: {_snippet(plan.statement)}",
                   round(cost), f"{max_cost:.0f}",
                   remedy="EXPLAIN the statement on this data and index what it scans")
    for line in unplanned:
        f.info("EXPLAIN", f"not planned: {line}", None, None)
    f.ok("EXPLAIN", f"{planned} statement(s) of {len(HOT)} hot operations planned "
         f"(EXPLAIN with placeholder values, never executed); the highest estimated "
         f"cost {worst:.0f} (below "
         f"plan_cost_warn {max_cost:.0f}); no MLflow table of "
         f"{format_value('size', min_size)} or more read whole unless named above",
         round(worst), f"{max_cost:.0f}")


# -- what mlflow gc and the UI will meet -------------------------------------------------
def _exposures(db) -> Exposures | None:
    schema = mlflow_facts(db).schema
    return exposures(db, schema) if schema else None


def _largest(common: Common | None, table_rows: float, limit: float, what: str,
             analysed_hint: str, findings, name_of, why: str, remedy: str) -> None:
    """Warn for each most common value estimated at ``limit`` rows or more; an ok with
    the largest otherwise; a skip when the statistics cannot tell and the table is large
    enough to hold such a value."""
    over = [(v, rows) for v, rows in (common.values if common else ()) if rows >= limit]
    for value, rows in over:
        findings.warn(name_of(value), f"{name_of(value)}: ~{rows:,.0f} {what} (estimated "
                      f"from the planner's statistics), at or above {limit:,.0f}: {why}",
                      round(rows), f"{limit:.0f}", remedy=remedy)
    if over:
        return
    if common is None and table_rows >= limit:
        pytest.skip(f"the planner has no statistics of {analysed_hint} (up to "
                    f"{table_rows:,.0f} rows): no estimate per value without a count, which "
                    "the audit never makes on production (remedy: ANALYZE "
                    f"{analysed_hint.split('.')[0]})")
    if common is None:
        findings.ok(analysed_hint, f"no statistics yet, but the table holds at most "
                    f"{max(table_rows, 0):,.0f} rows, below {limit:,.0f} {what}",
                    round(max(table_rows, 0)), f"{limit:.0f}")
        return
    top = max((rows for _, rows in common.values), default=0.0)
    distinct = common.n_distinct if common.n_distinct > 0 else \
        -common.n_distinct * max(table_rows, 0.0)
    average = max(table_rows, 0.0) / distinct if distinct >= 1 else 0.0
    if average >= limit:  # no value stands out, all are large
        findings.warn(analysed_hint, f"~{average:,.0f} {what} on average over ~"
                      f"{distinct:,.0f} (estimated from the planner's statistics), at or "
                      f"above {limit:,.0f}: {why}", round(average), f"{limit:.0f}",
                      remedy=remedy)
        return
    findings.ok(analysed_hint, f"the largest ~{max(top, average):,.0f} {what} (estimated "
                f"from the planner's statistics; {max(table_rows, 0):,.0f} rows in all), "
                f"below {limit:,.0f}", round(max(top, average)), f"{limit:.0f}")


@check("workload.largest_runs", thresholds=("run_metric_rows_warn",),
       probes=(mlflow_facts, _exposures))
def test_largest_runs(mlflowdb, mlflowdb_findings, mlflowdb_thresholds):
    """Runs with a very large metric history: what mlflow gc and the UI's charts load."""
    require_mlflow_schema(mlflowdb)
    found = _exposures(mlflowdb)
    assert found is not None
    _largest(found.metrics_per_run, found.metrics_rows,
             mlflowdb_thresholds["run_metric_rows_warn"], "metric rows", "metrics.run_uuid",
             mlflowdb_findings, lambda v: f"run {v}",
             "mlflow gc loads a run's metrics to delete it, and the UI's charts read them",
             "log fewer steps or sample them (the metric history of one run is loaded "
             "whole by mlflow gc); delete the run with mlflow gc --run-ids in a quiet hour")


@check("workload.large_experiments", thresholds=("experiment_runs_warn",),
       probes=(mlflow_facts, _exposures))
def test_large_experiments(mlflowdb, mlflowdb_findings, mlflowdb_thresholds):
    """Experiments with more runs than the UI's search pages through comfortably."""
    require_mlflow_schema(mlflowdb)
    found = _exposures(mlflowdb)
    assert found is not None
    _largest(found.runs_per_experiment, found.runs_rows,
             mlflowdb_thresholds["experiment_runs_warn"], "runs", "runs.experiment_id",
             mlflowdb_findings, lambda v: f"experiment {v}",
             "search_runs over it sorts and joins that many runs for every page of the UI",
             "split the experiment, or delete old runs (mlflow gc); keep runs(experiment_id) "
             "indexed (see workload.plans)")


@check("workload.stuck_versions", thresholds=("stuck_version_age",),
       probes=(mlflow_facts, _exposures))
def test_stuck_versions(mlflowdb, mlflowdb_findings, mlflowdb_thresholds):
    """Model versions left in PENDING_REGISTRATION or FAILED_REGISTRATION."""
    require_mlflow_schema(mlflowdb)
    found = _exposures(mlflowdb)
    assert found is not None
    if found.versions_error:
        schema = mlflow_facts(mlflowdb).schema or "public"
        grant = f"GRANT SELECT ON {sql_name(schema, 'model_versions')}"
        pytest.skip(f"no privilege: model_versions cannot be read ({found.versions_error}; "
                    f"{advice(mlflowdb, grant)})")
    limit = mlflowdb_thresholds["stuck_version_age"]
    old = [v for v in found.stuck_versions if (v["age_ms"] or 0) / 1000.0 >= limit]
    for v in old:
        age = format_value("duration", (v["age_ms"] or 0) / 1000.0)
        mlflowdb_findings.warn(
            f"{v['name']} version {v['version']}", f"model {v['name']!r} version "
            f"{v['version']} is {v['status']} since {age} ago, at or above "
            f"stuck_version_age {format_value('duration', limit)}: clients waiting for it "
            "to be READY time out, and it is never served", round((v["age_ms"] or 0) / 1000.0),
            format_value("duration", limit),
            remedy=f"retry the registration, or delete the version: MlflowClient()."
                   f"delete_model_version({v['name']!r}, {v['version']})")
    if not old:
        mlflowdb_findings.ok("model_versions", f"{len(found.stuck_versions)} version(s) "
                             "in a registration state, none for stuck_version_age "
                             f"{format_value('duration', limit)} or longer",
                             len(found.stuck_versions), format_value("duration", limit))


# -- connections -----------------------------------------------------------------------
#: MLflow's SQLAlchemy pool settings (mlflow/environment_variables.py)
POOL_SETTINGS = ("MLFLOW_SQLALCHEMYSTORE_POOL_SIZE", "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW",
                 "MLFLOW_SQLALCHEMYSTORE_POOL_RECYCLE")


def _holder(h) -> str:
    app = f", application {h.application!r}" if h.application else ""
    return f"role {h.role}{app}, from {h.client}"


@check("workload.connections", thresholds=("pool_slots_warn",), probes=(connections,))
def test_connections(mlflowdb, mlflowdb_findings, mlflowdb_thresholds):
    """Who holds the connection slots: sessions per role, application and client, and the
    tracking server's pool pattern (one holder, mostly idle, hours-old connections)."""
    found = connections(mlflowdb)
    limit = mlflowdb_thresholds["pool_slots_warn"]
    usable = found.usable
    f = mlflowdb_findings
    pools = []
    for h in found.holders:
        share = 100.0 * h.sessions / usable
        if h.hidden == h.sessions or share < limit or h.idle * 2 < h.sessions:
            continue
        pools.append(h)
        f.warn(_holder(h), f"{_holder(h)} holds {h.sessions} of {usable} usable connection "
               f"slots ({format_value('percent', share)}, at or above pool_slots_warn "
               f"{format_value('percent', limit)}), {h.idle} idle; connected for up to "
               f"{format_value('duration', h.oldest_s)} (median "
               f"{format_value('duration', h.median_age_s)}), in {h.databases}: a pool "
               "keeping idle connections the other clients and MLflow's own workers need",
               h.sessions, format_value("percent", limit),
               remedy=f"lower the tracking server's pool: {POOL_SETTINGS[0]} (SQLAlchemy's "
                      f"pool_size per worker process), {POOL_SETTINGS[1]} (its overflow), "
                      f"{POOL_SETTINGS[2]} (seconds before a connection is replaced); or "
                      "put PgBouncer in front")
    hidden = sum(h.hidden for h in found.holders)
    if hidden and not pools:
        pytest.skip(f"no privilege: needs pg_monitor or pg_read_all_stats to see the state "
                    f"of {hidden} session(s) of other roles "
                    f"({advice(mlflowdb, 'GRANT pg_monitor')})")
    total = sum(h.sessions for h in found.holders)
    top = "; ".join(f"{_holder(h)}: {h.sessions} ({h.idle} idle, oldest "
                    f"{format_value('duration', h.oldest_s)})" for h in found.holders[:5])
    if not pools:
        f.ok("pg_stat_activity", f"{total} client session(s) of {usable} usable slots "
             f"({found.max_connections} max_connections, {found.reserved} reserved), no "
             f"holder of {format_value('percent', limit)} or more mostly idle"
             + (f"; by holder: {top}" if top else ""), total,
             format_value("percent", limit))


# -- MLflow's basic-auth database ----------------------------------------------------------
@check("workload.auth_schema", probes=(auth_database,))
def test_auth_schema(mlflowdb, mlflowdb_findings):
    """MLflow's basic-auth database: its revision and schema against MLflow's auth
    migrations (passes, saying so, on any other database)."""
    found = auth_database(mlflowdb)
    f = mlflowdb_findings
    if found is None:
        f.ok(mlflowdb.preflight.dbname, f"not MLflow's basic-auth database (no "
             f"{AUTH_VERSION_TABLE} on the search path)", None, None)
        return
    table = f"{found.schema}.{AUTH_VERSION_TABLE}"
    if found.revisions is None:
        grant = f"GRANT SELECT ON {sql_name(found.schema, AUTH_VERSION_TABLE)}"
        pytest.skip(f"no privilege: {table} cannot be read ({found.error}; "
                    f"{advice(mlflowdb, grant)})")
    catalog = load_auth_catalog()
    if len(found.revisions) != 1:
        shown = ", ".join(found.revisions) or "none"
        f.fail(table, f"holds {len(found.revisions)} rows ({shown}); alembic needs exactly "
               "one", len(found.revisions), "1 row")
        return
    (revision,) = found.revisions
    if revision not in catalog.chain:
        pytest.skip(f"{table} holds {revision}, an auth revision this pytest-mlflowdb does not "
                    f"know (it knows MLflow {catalog.mlflow}'s, up to {catalog.head}): "
                    "upgrade pytest-mlflowdb")
    diff = compare(catalog.schema_at(revision), found.snapshot)
    behind = catalog.chain.index(revision) < len(catalog.chain) - 1
    note = (f"; MLflow {catalog.mlflow}'s auth head is {catalog.head} (mlflow server "
            "--app-name basic-auth migrates it at start)" if behind else "")
    problems = ([f"table {t} missing" for t in diff.missing_tables]
                + [f"column {t}.{c.name} missing" for t, c in diff.missing_columns]
                + [f"column {c.table}.{c.column}: {c.field} {c.actual!r}, MLflow makes "
                   f"{c.expected!r}" for c in diff.changed_columns]
                + [f"index {i.name} missing" for i in diff.missing_indexes]
                + [f"constraint {c.name} on {c.table} missing"
                   for c in diff.missing_constraints])
    for problem in problems:
        f.fail(found.schema, f"MLflow's basic-auth schema at {revision}: {problem}",
               None, revision)
    if not problems:
        f.ok(table, f"MLflow's basic-auth database at revision {revision}, its tables, "
             f"columns, indexes and constraints as MLflow's auth migrations make them{note}",
             revision, None)
