"""WAL archiving: the archiver works (no failure newer than its last success, the
failed segment named), it keeps up (segments waiting no longer than a threshold since the
last good archive: the recovery point a point-in-time restore can reach), and ``.ready``
files are few. ``archive_mode`` off on a primary is information (no point-in-time
recovery), a failure with ``--mlflowdb-require-archiving``.
"""

from __future__ import annotations

import pytest

from pytest_mlflowdb import check
from pytest_mlflowdb.config.thresholds import format_value
from pytest_mlflowdb.probes.archiving import Archiver, archiver
from pytest_mlflowdb.probes.grants import advice

_ENABLE = ("ALTER SYSTEM SET archive_mode = on; ALTER SYSTEM SET archive_command = "
           "'...';  -- your backup tool's (pgBackRest, WAL-G, Barman); takes a restart")


def _age(seconds: float) -> str:
    return format_value("duration", round(seconds))


def _last_good(a: Archiver) -> str:
    if a.last_archived_time is None:
        return f"nothing archived since the counters began ({_age(a.last_good_age)} ago)"
    return (f"last archived {a.last_archived_wal} {_age(a.last_good_age)} ago "
            f"({a.archived_count} archived)")


@check("archiving.status", thresholds=("archive_age_warn", "archive_age_fail"),
       probes=(archiver,))
def test_status(mlflowdb, mlflowdb_findings, mlflowdb_thresholds, mlflowdb_settings):
    """Archiving works and keeps up; archive_mode off on a primary is information
    (a failure with --mlflowdb-require-archiving)."""
    a = archiver(mlflowdb)
    f = mlflowdb_findings
    standby = mlflowdb.preflight.in_recovery
    if not a.on or (standby and a.mode != "always"):
        if standby:
            f.ok("archive_mode", f"a standby with archive_mode {a.mode}: its primary "
                 "archives (archive_mode = always archives here too)", a.mode)
        elif mlflowdb_settings.area_options.get("require_archiving"):
            f.fail("archive_mode", "archive_mode off: no WAL is archived, so no point-in-time "
                   "recovery (mlflowdb_require_archiving asks for it)", a.mode, "on",
                   remedy=_ENABLE)
        else:
            f.info("archive_mode", "archive_mode off: no WAL is archived, so a restore "
                   "reaches only the last base backup or dump (no point-in-time recovery)",
                   a.mode, remedy=_ENABLE)
        return
    warn, fail = mlflowdb_thresholds["archive_age_warn"], mlflowdb_thresholds["archive_age_fail"]
    age = a.last_good_age
    severity = "failure" if age >= fail else "warning" if age >= warn else "info"
    limit = fail if severity == "failure" else warn
    over = (f", at or above archive_age_{'fail' if severity == 'failure' else 'warn'} "
            f"{_age(limit)}" if severity != "info" else "")
    if a.failing:
        # failing now is a fault at once; the time since the last good archive makes it
        # a failure
        severity, limit = ("failure", fail) if age >= fail else ("warning", warn)
        over = f", at or above archive_age_fail {_age(fail)}" if age >= fail else ""
        failed_ago = _age((a.now - a.last_failed_time).total_seconds()) \
            if a.last_failed_time else "?"
        f.add(a.last_failed_wal or "archiver", severity,
              f"archiving fails: {a.last_failed_wal} failed {failed_ago} ago "
              f"({a.failed_count} failures counted); {_last_good(a)}{over}: WAL piles up "
              "in pg_wal and a point-in-time restore stops there", round(age),
              _age(limit), remedy="read the server log's 'archive command failed' lines "
              "and fix archive_command (or its destination); the archiver retries by itself")
        return
    waiting = a.waiting if a.ready is None else a.ready
    if waiting:
        f.add("archiver", severity if severity != "info" else "ok",
              f"{waiting} segment(s) wait to be archived; {_last_good(a)}{over}",
              round(age), _age(limit))
        return
    f.ok("archiver", f"archiving keeps up: {_last_good(a)}, the current segment is "
         f"{a.current_wal or 'not known on a standby'}; {a.failed_count} failure(s) "
         "counted, none since the last success", round(age), _age(warn))


@check("archiving.ready", thresholds=("archive_ready_warn",), probes=(archiver,))
def test_ready(mlflowdb, mlflowdb_findings, mlflowdb_thresholds):
    """WAL segments waiting in pg_wal/archive_status (.ready files)."""
    a = archiver(mlflowdb)
    if not a.on:
        mlflowdb_findings.ok("archive_status", f"archive_mode {a.mode}: nothing waits", 0)
        return
    if a.ready is None:
        pytest.skip("no privilege: listing pg_wal/archive_status "
                    "(pg_ls_archive_statusdir) needs pg_monitor or superuser "
                    f"({advice(mlflowdb, 'GRANT pg_monitor')})")
    limit = mlflowdb_thresholds["archive_ready_warn"]
    oldest = (f", the oldest written {_age((a.now - a.oldest_ready).total_seconds())} ago"
              if a.oldest_ready else "")
    what = f"{a.ready} .ready file(s) in pg_wal/archive_status{oldest}"
    if a.ready >= limit:
        mlflowdb_findings.warn("archive_status", f"{what}, at or above archive_ready_warn "
                               f"{int(limit)}: the archiver falls behind (see "
                               "archiving.status)", a.ready, int(limit))
    else:
        mlflowdb_findings.ok("archive_status", f"{what} (below {int(limit)})", a.ready,
                             int(limit))
