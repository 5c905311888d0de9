"""Server statistics since their reset: checkpoints (most of them requested rather than
timed: ``max_wal_size`` too small for MLflow's write bursts), the audited database's
temporary files (sorts and hashes past ``work_mem``), deadlocks, rollbacks, and queries
a standby cancelled for recovery conflicts. Each finding says when its counters began;
rates are per day of that age, at least a day, so a young server's few events are never
extrapolated into an alarm.
"""

from __future__ import annotations

from pytest_mlflowdb import check
from pytest_mlflowdb.config.thresholds import format_value
from pytest_mlflowdb.probes.stats import server_stats


@check("stats.checkpoints", thresholds=("checkpoints_requested_warn", "checkpoints_min"),
       probes=(server_stats,))
def test_checkpoints(mlflowdb, mlflowdb_findings, mlflowdb_thresholds):
    """Share of checkpoints that WAL forced rather than time (warns when most are)."""
    c = server_stats(mlflowdb).checkpoints
    t = mlflowdb_thresholds
    total = c.timed + c.requested
    pct = c.forced_pct
    counts = (f"{c.requested} requested and {c.timed} timed checkpoints, "
              f"{c.since.describe()}")
    if c.forced < c.requested:
        counts += (f"; the WAL written since the server was made "
                   f"({format_value('size', c.wal_bytes or 0)}) could force at most "
                   f"{c.forced} of them at max_wal_size "
                   f"{format_value('size', c.max_wal_size or 0)}: the others were asked "
                   "for (CHECKPOINT, CREATE DATABASE, a base backup)")
    shown = format_value("percent", round(pct or 0.0, 1))
    limit = format_value("percent", t["checkpoints_requested_warn"])
    if total < t["checkpoints_min"]:
        mlflowdb_findings.info("checkpoints", f"{counts}: fewer than checkpoints_min "
                               f"{int(t['checkpoints_min'])}, not judged", shown, limit)
    elif (pct or 0.0) >= t["checkpoints_requested_warn"]:
        mlflowdb_findings.warn(
            "checkpoints", f"{shown} of checkpoints forced by WAL ({counts}), at or above "
            f"checkpoints_requested_warn {limit}: WAL fills max_wal_size between timed "
            "checkpoints, so write bursts pay for extra checkpoints and full-page writes",
            shown, limit,
            remedy="ALTER SYSTEM SET max_wal_size = '4GB'; SELECT pg_reload_conf();  -- "
                   "size it to the WAL written per checkpoint_timeout")
    else:
        mlflowdb_findings.ok("checkpoints", f"{shown} of checkpoints forced by WAL "
                             f"({counts}; below {limit})", shown, limit)


@check("stats.temp_files", thresholds=("temp_bytes_per_day_warn",), probes=(server_stats,))
def test_temp_files(mlflowdb, mlflowdb_findings, mlflowdb_thresholds):
    """Temporary file bytes the database writes per day (sorts and hashes past work_mem)."""
    d = server_stats(mlflowdb).database
    per_day = d.temp_bytes / d.since.days
    what = (f"{format_value('size', per_day)} of temporary files per day in {d.name} "
            f"({d.temp_files} files, {format_value('size', d.temp_bytes)}, "
            f"{d.since.describe()})")
    limit = mlflowdb_thresholds["temp_bytes_per_day_warn"]
    if d.temp_files and per_day >= limit:
        mlflowdb_findings.warn(
            d.name, f"{what}, at or above temp_bytes_per_day_warn "
            f"{format_value('size', limit)}: sorts and hashes spill past work_mem",
            format_value("size", per_day), format_value("size", limit),
            remedy="ALTER SYSTEM SET log_temp_files = '10MB'; SELECT pg_reload_conf();  -- "
                   "names the statements; then raise work_mem for MLflow's role (ALTER "
                   "ROLE ... SET work_mem), within the host's memory")
    else:
        mlflowdb_findings.ok(d.name, f"{what} (below {format_value('size', limit)})",
                             format_value("size", per_day), format_value("size", limit))


@check("stats.deadlocks", thresholds=("deadlocks_per_day_warn",), probes=(server_stats,))
def test_deadlocks(mlflowdb, mlflowdb_findings, mlflowdb_thresholds):
    """Deadlocks per day in the database."""
    d = server_stats(mlflowdb).database
    per_day = d.deadlocks / d.since.days
    limit = mlflowdb_thresholds["deadlocks_per_day_warn"]
    what = (f"{d.deadlocks} deadlock(s) in {d.name}, {per_day:.3g} per day, "
            f"{d.since.describe()}")
    if d.deadlocks and per_day >= limit:
        mlflowdb_findings.warn(d.name, f"{what}, at or above deadlocks_per_day_warn "
                               f"{limit:g}: one of the two transactions was rolled back each "
                               "time (the server log names them)", round(per_day, 3),
                               f"{limit:g}", remedy="ALTER SYSTEM SET log_lock_waits = on; "
                               "SELECT pg_reload_conf();  -- and read the server log's "
                               "'deadlock detected' entries")
    else:
        mlflowdb_findings.ok(d.name, f"{what} (below {limit:g})", round(per_day, 3),
                             f"{limit:g}")


@check("stats.rollbacks", thresholds=("rollback_ratio_warn", "rollback_min_xacts"),
       probes=(server_stats,))
def test_rollbacks(mlflowdb, mlflowdb_findings, mlflowdb_thresholds):
    """Share of the database's transactions rolled back (errors, cancelled requests)."""
    d = server_stats(mlflowdb).database
    t = mlflowdb_thresholds
    total = d.commits + d.rollbacks
    shown = format_value("percent", round(d.rollback_pct or 0.0, 2))
    limit = format_value("percent", t["rollback_ratio_warn"])
    what = f"{d.rollbacks} of {total} transactions rolled back in {d.name}, {d.since.describe()}"
    if total < t["rollback_min_xacts"]:
        mlflowdb_findings.info(d.name, f"{what}: fewer than rollback_min_xacts "
                               f"{int(t['rollback_min_xacts'])}, not judged", shown, limit)
    elif (d.rollback_pct or 0.0) >= t["rollback_ratio_warn"]:
        mlflowdb_findings.warn(d.name, f"{shown} of transactions rolled back ({what}), at or "
                               f"above rollback_ratio_warn {limit}: statements failing "
                               "(MLflow's errors, constraint violations, cancellations)",
                               shown, limit, remedy="ALTER SYSTEM SET log_min_error_statement"
                               " = 'error'; SELECT pg_reload_conf();  -- the log names them")
    else:
        mlflowdb_findings.ok(d.name, f"{shown} rolled back ({what}; below {limit})", shown,
                             limit)


@check("stats.conflicts", thresholds=("conflicts_per_day_warn",), probes=(server_stats,))
def test_conflicts(mlflowdb, mlflowdb_findings, mlflowdb_thresholds):
    """Queries a standby cancelled for recovery conflicts, per day (a primary has none)."""
    d = server_stats(mlflowdb).database
    if not mlflowdb.preflight.in_recovery:
        mlflowdb_findings.ok(d.name, "a primary: recovery conflicts happen on standbys only",
                             d.conflicts)
        return
    per_day = d.conflicts / d.since.days
    limit = mlflowdb_thresholds["conflicts_per_day_warn"]
    what = (f"{d.conflicts} queries cancelled by recovery conflicts in {d.name}, "
            f"{per_day:.3g} per day, {d.since.describe()}")
    if d.conflicts and per_day >= limit:
        mlflowdb_findings.warn(d.name, f"{what}, at or above conflicts_per_day_warn {limit:g}"
                               ": reports read from this standby fail", round(per_day, 3),
                               f"{limit:g}", remedy="ALTER SYSTEM SET hot_standby_feedback = "
                               "on; SELECT pg_reload_conf();  -- on the standby; or raise "
                               "max_standby_streaming_delay")
    else:
        mlflowdb_findings.ok(d.name, f"{what} (below {limit:g})", round(per_day, 3),
                             f"{limit:g}")
