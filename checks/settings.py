"""Settings: the server's settings that matter for MLflow's write and read pattern, each
with its value and where it comes from (``pg_settings.source``, or ``ALTER ROLE`` /
``ALTER DATABASE`` from ``pg_db_role_setting``), and a verdict.

Only what the audit can judge from the database warns: no idle-in-transaction timeout for
MLflow's role (a crashed client's open transaction holds back vacuum on metrics until
someone notices), autovacuum triggers that let a big append-mostly table go unvacuumed
for millions of rows, settings changed but waiting for a restart. What needs the host
(its memory, its disks) is information saying so: a libpq client cannot see them.
"""

from __future__ import annotations

import re

import pytest

from pytest_mlflowdb import check
from pytest_mlflowdb.audit.requirements import require_mlflow_schema
from pytest_mlflowdb.catalog import load_catalog
from pytest_mlflowdb.config.thresholds import format_value
from pytest_mlflowdb.probes import security
from pytest_mlflowdb.probes.mlflow import mlflow_facts
from pytest_mlflowdb.probes.settings import ROLE_TIMEOUTS, ServerSettings, server_settings
from pytest_mlflowdb.probes.stats import server_stats
from pytest_mlflowdb.results.findings import Findings, sql_name

#: the idle-in-transaction timeout README's platform guide sets for MLflow's role
GUIDE_IDLE_TIMEOUT = "5min"
_UNITS_MS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60000, "h": 3600000, "d": 86400000}


def _roles(db, settings) -> tuple[str, ...]:
    schema = require_mlflow_schema(db)
    roles = security.mlflow_roles(db, schema, load_catalog().mlflow_tables(),
                                  settings.area_options.get("app_role"))
    return tuple(n for n in roles.used if n in roles.facts)


def _review(db, settings) -> ServerSettings:
    """The reviewed settings, MLflow's roles' own, and the busy tables' triggers (the
    server's settings also where MLflow's schema is not found)."""
    schema = mlflow_facts(db).schema
    return server_settings(db, schema or "", _roles(db, settings) if schema else ())


def _review_and_stats(db, settings) -> None:
    _review(db, settings)
    server_stats(db)


def milliseconds(value: str | None) -> float | None:
    """A timeout as PostgreSQL stores it (``0``, ``300000``, ``5min``) in ms; None when
    it is not one."""
    if value is None:
        return None
    found = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*([a-z]*)\s*", value.lower())
    if not found or found.group(2) not in ("", *_UNITS_MS):
        return None
    return float(found.group(1)) * _UNITS_MS.get(found.group(2) or "ms", 1)


def _shown(value: str | None, unit: str | None) -> str:
    if value is None:
        return "hidden"
    if unit == "ms" and value.lstrip("-").isdigit() and int(value) > 0:
        return format_value("duration", int(value) / 1000)
    if unit == "kB" and value.isdigit():
        return format_value("size", int(value) * 1024)
    if unit == "8kB" and value.isdigit():
        return format_value("size", int(value) * 8192)
    return value


@check("settings.timeouts", probes=(_review,))
def test_timeouts(mlflowdb, mlflowdb_findings, mlflowdb_settings):
    """MLflow's role has an idle-in-transaction timeout (warns without one); its statement
    timeout is reported."""
    require_mlflow_schema(mlflowdb)
    roles = _roles(mlflowdb, mlflowdb_settings)
    if not roles:
        pytest.skip("no role owns MLflow's tables here (nothing to judge)")
    review = _review(mlflowdb, mlflowdb_settings)
    for role in roles:
        _judge_role(mlflowdb_findings, review, role)


def _judge_role(findings: Findings, review: ServerSettings, role: str) -> None:
    for name in ROLE_TIMEOUTS:
        value, source = review.effective_for(role, name)
        ms = milliseconds(value)
        obj = f"role {role}: {name}"
        if ms is None:
            findings.info(obj, f"{name} {value!r} for {role} ({source}): not read as a "
                          "duration", value)
            continue
        if ms > 0:
            findings.ok(obj, f"{name} {format_value('duration', ms / 1000)} for {role}'s "
                        f"sessions (from {source})", format_value("duration", ms / 1000))
            continue
        if name == "idle_in_transaction_session_timeout":
            findings.warn(obj, f"no {name} for {role}'s sessions (0, from {source}): a "
                          "client that dies inside a transaction keeps it open, holding "
                          "back vacuum on metrics and its locks, until someone ends it",
                          "0", GUIDE_IDLE_TIMEOUT,
                          remedy=f"ALTER ROLE {sql_name(role)} SET {name} = "
                          f"'{GUIDE_IDLE_TIMEOUT}';  -- new sessions get it")
        else:
            findings.info(obj, f"no {name} for {role}'s sessions (0, from {source}); "
                          "MLflow's migrations and mlflow gc run as this role and may "
                          "rightly run long, so none is not a fault: a role of its own for "
                          "the tracking server could have one", "0",
                          remedy=f"ALTER ROLE {sql_name(role)} SET {name} = '1h';  -- "
                          "only for a role that runs no migration")


@check("settings.autovacuum", thresholds=("autovacuum_trigger_warn",), probes=(_review,))
def test_autovacuum(mlflowdb, mlflowdb_findings, mlflowdb_settings, mlflowdb_thresholds):
    """How many rows metrics, latest_metrics, params and tags take in before autovacuum
    visits them, at their current size (per-table settings honoured)."""
    schema = require_mlflow_schema(mlflowdb)
    review = _review(mlflowdb, mlflowdb_settings)
    limit = mlflowdb_thresholds["autovacuum_trigger_warn"]
    if not review.tables:
        pytest.skip(f"none of metrics, latest_metrics, params, tags in {schema}")

    def number(name: str, options: dict[str, str]) -> float | None:
        raw = options.get(name)
        if raw is None:
            found = review.settings.get(name)
            raw = found.setting if found else None
        try:
            return float(raw) if raw is not None else None
        except ValueError:
            return None

    for table in review.tables:
        obj = f"{schema}.{table.name}"
        parts = []
        worst = base = 0.0
        for kind, prefix in (("changed", "autovacuum_vacuum"),
                             ("inserted", "autovacuum_vacuum_insert")):
            threshold = number(f"{prefix}_threshold", table.options)
            factor = number(f"{prefix}_scale_factor", table.options)
            if threshold is None or factor is None or threshold < 0:
                continue  # insert-triggered vacuum off (-1) or the setting hidden
            trigger = threshold + factor * table.rows
            cap = number("autovacuum_vacuum_max_threshold", table.options) \
                if kind == "changed" else None
            capped = cap is not None and 0 <= cap < trigger
            if capped:
                trigger = cap  # PostgreSQL 18's cap on the dead-row trigger
            worst, base = max(worst, trigger), max(base, threshold)
            own = f"{prefix}_scale_factor" in table.options
            parts.append(f"{kind}: {trigger:,.0f} rows ({threshold:g} + {factor:g} x "
                         f"{table.rows:,.0f}{', per-table' if own else ''}"
                         f"{', capped by autovacuum_vacuum_max_threshold' if capped else ''})")
        what = f"autovacuum visits after rows {'; '.join(parts) or 'not readable'}"
        if worst >= limit:
            # half the limit, after the fixed part of the trigger
            factor = float(f"{max(limit / 2 - base, 0) / max(table.rows, 1):.2g}")
            findings_remedy = (f"ALTER TABLE {sql_name(schema, table.name)} SET "
                               f"(autovacuum_vacuum_scale_factor = {factor:g}, "
                               f"autovacuum_vacuum_insert_scale_factor = {factor:g});")
            mlflowdb_findings.warn(obj, f"{what}: at or above autovacuum_trigger_warn "
                                   f"{limit:,.0f}; per-table settings bring it down",
                                   round(worst), f"{limit:,.0f}", remedy=findings_remedy)
        else:
            mlflowdb_findings.ok(obj, f"{what} (below {limit:,.0f})", round(worst),
                                 f"{limit:,.0f}")


#: sources that outrank the configuration files: a restart keeps their value, so a file's
#: other value (which PostgreSQL flags pending_restart after a reload) never applies
_OUTRANKING = ("command line", "environment variable", "override")


@check("settings.pending_restart", probes=(_review,))
def test_pending_restart(mlflowdb, mlflowdb_findings, mlflowdb_settings):
    """Settings changed in the configuration that the running server has not taken:
    they wait for a restart (warns)."""
    review = _review(mlflowdb, mlflowdb_settings)
    pending = sorted((s for s in review.settings.values() if s.pending_restart),
                     key=lambda s: s.name)
    waiting = [s for s in pending if s.source not in _OUTRANKING]
    for s in pending:
        shown = _shown(s.setting, s.unit)
        if s.source in _OUTRANKING:
            mlflowdb_findings.info(s.name, f"{s.name} {shown} is set on the {s.source}; the "
                                   "configuration files hold another value, which a restart "
                                   "would not apply either (PostgreSQL flags it "
                                   "pending_restart after a reload)", shown)
            continue
        mlflowdb_findings.warn(s.name, f"{s.name} was changed but the server still runs with "
                               f"{shown}: the new value waits for a restart", shown, None,
                               remedy="restart the server at a quiet moment (pg_ctl restart, "
                               "or your platform's restart), or revert the change")
    if not waiting:
        mlflowdb_findings.ok("pg_settings", "no setting waits for a restart")


def _line(review: ServerSettings, name: str) -> tuple[str, str, str | None]:
    """A setting's shown value, its source, its raw value (None: hidden)."""
    s = review.settings.get(name)
    if s is None:
        return "hidden", "hidden from this role (pg_read_all_settings shows it)", None
    return _shown(s.server_value, s.unit), s.server_source, s.server_value


_ADVICE = {
    "random_page_cost": ("4", "the spinning-disk default; on SSD, NVMe or cloud block "
                         "storage 1.1 is usual (index scans of metrics by run look dearer "
                         "than they are)"),
    "effective_io_concurrency": ("1", "the spinning-disk default; on SSD, NVMe or cloud "
                                 "block storage 200 is usual (bitmap heap scans prefetch)"),
    "track_io_timing": ("off", "statement statistics and EXPLAIN (BUFFERS) then show no I/O "
                        "time; on is cheap on most hosts (pg_test_timing tells)"),
    "log_min_duration_statement": ("-1", "slow statements are not logged; e.g. 1s names "
                                   "the slow search_runs and log_batch calls"),
    "log_lock_waits": ("off", "lock waits longer than deadlock_timeout are not logged"),
    "log_autovacuum_min_duration": ("-1", "autovacuum's runs are not logged; e.g. 10min "
                                    "(the default from PostgreSQL 15) shows the slow ones"),
}
_HOST = ("shared_buffers", "effective_cache_size", "maintenance_work_mem")


@check("settings.review", probes=(_review_and_stats,))
def test_review(mlflowdb, mlflowdb_findings, mlflowdb_settings):
    """The settings that matter for MLflow, each with its value and source (information:
    what needs the host's memory or disks is said, never guessed)."""
    review = _review(mlflowdb, mlflowdb_settings)
    f = mlflowdb_findings
    for name, (default, advice) in _ADVICE.items():
        shown, source, raw = _line(review, name)
        at_default = raw is not None and raw == default
        note = f"; {advice}" if at_default else ""
        host = name in ("random_page_cost", "effective_io_concurrency") and at_default
        f.info(name, f"{name} {shown} ({source}){note}"
               + ("; the storage is not visible to a database client, so this is not "
                  "judged" if host else ""), shown)
    libraries, source, raw = _line(review, "shared_preload_libraries")
    loaded = [x.strip().strip('"') for x in (raw or "").split(",") if x.strip()]
    if raw is not None and "pg_stat_statements" not in loaded:
        f.info("shared_preload_libraries", f"shared_preload_libraries {raw or 'empty'!s} "
               f"({source}): without pg_stat_statements the server keeps no statistics of "
               "MLflow's statements", raw or "",
               remedy="ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'; "
               "-- appended to any already listed; takes a restart")
    else:
        f.info("shared_preload_libraries", f"shared_preload_libraries {libraries} "
               f"({source})", libraries)
    stats = server_stats(mlflowdb).database
    work_mem, source, _ = _line(review, "work_mem")
    temp = (f"{stats.temp_files} temporary files, {format_value('size', stats.temp_bytes)} "
            f"written by {stats.name}, {stats.since.describe()}")
    f.info("work_mem", f"work_mem {work_mem} ({source}); {temp}"
           + ("; see stats.temp_files, and log_temp_files to name the statements"
              if stats.temp_files else ""), work_mem)
    for name in _HOST:
        shown, source, _ = _line(review, name)
        f.info(name, f"{name} {shown} ({source}); judging it needs the host's memory, "
               "which a database client cannot see", shown)
