"""Workload: what the database spends its time on, per MLflow operation.

``pg_stat_statements``' entries that name MLflow's tables, grouped by the MLflow
operation that sends them (``pytest_mlflowdb.workload``: a catalog captured from MLflow's
own stores), with calls, total and mean time, share of the database's time, rows and
blocks read, and each group's costliest statements. An operation slow on average over
enough calls warns (PgHero's slow query); the operation over a share of the time is named
(information: MLflow's main operation takes that share of a healthy database's time).
The auditing role's statements do not count (the audit's own reads), unless that role
owns MLflow's tables.
"""

from __future__ import annotations

import datetime

import psycopg
import pytest

from pytest_mlflowdb import check
from pytest_mlflowdb.audit.requirements import require_mlflow_schema
from pytest_mlflowdb.catalog import load_catalog
from pytest_mlflowdb.config.thresholds import format_value
from pytest_mlflowdb.probes.grants import advice
from pytest_mlflowdb.probes.mlflow import mlflow_facts
from pytest_mlflowdb.probes.workload import EXTENSION, Workload, workload
from pytest_mlflowdb.workload.operations import UNKNOWN, Group, group, load_operations

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
