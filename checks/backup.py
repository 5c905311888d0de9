"""Backup: would this backup restore into a working MLflow database, how much data would
a restore lose (RPO) and how long would it take (RTO)?

Opt-in (it reads a whole dump, or the whole database): the checks are collected only
with ``--mlflowdb-backup=PATH`` (a pg_dump file: custom, directory, tar, plain or
plain.gz) or ``--mlflowdb-restore-test`` (dump the live target now, read-only). The work
is done once per target by ``pytest_mlflowdb.backup.pipeline`` (restore into a scratch
database, verify, drop it); each check reports its part. The restore never touches the
audited database: a throwaway server, or ``--mlflowdb-scratch-uri`` (refused when it is
the audited database).
"""

from __future__ import annotations

import pytest

from pytest_mlflowdb import check

_BY = ("backup", "restore_test")


@pytest.fixture(scope="session")
def _mlflowdb_backup(mlflowdb_connection, mlflowdb_target, mlflowdb_settings,
                     mlflowdb_thresholds, request):
    """The backup verification of the current target, run once whatever check asks."""
    from pytest_mlflowdb.backup.pipeline import Plan, run
    from pytest_mlflowdb.backup.shared import once_per_run
    from pytest_mlflowdb.backup.verdicts import duration_text

    options = mlflowdb_settings.area_options
    plan = Plan(backup=options.get("backup"), restore_test=bool(options.get("restore_test")),
                rehearsal=bool(options.get("upgrade_rehearsal")),
                scratch=options.get("scratch_uri"), pg_bin=mlflowdb_settings.pg_bin,
                server_kind=mlflowdb_settings.server_kind,
                statement_timeout=mlflowdb_settings.statement_timeout,
                lock_timeout=mlflowdb_settings.lock_timeout,
                max_backup_age=mlflowdb_thresholds["max_backup_age"],
                max_restore_time=mlflowdb_thresholds["max_restore_time"],
                limit_texts=(duration_text(mlflowdb_thresholds["max_backup_age"]),
                             duration_text(mlflowdb_thresholds["max_restore_time"])),
                row_tolerance=mlflowdb_thresholds["backup_row_tolerance"],
                step_floor=mlflowdb_thresholds["backup_step_timeout"],
                dump_uri=options.get("dump_uri"))
    live = mlflowdb_connection.database
    from pytest_mlflowdb.backup.shared import WORKER_KEY

    worker = getattr(request.config, "workerinput", None)
    return once_per_run(worker.get(WORKER_KEY) if worker else None, mlflowdb_target.id,
                        lambda: run(plan, live, mlflowdb_target.conninfo if live is not None
                                    else None, mlflowdb_connection.error))


def _report(result, check_id: str, findings) -> None:
    """Replay the pipeline's findings for one check, or skip with why it could not look
    (a check never passes on what it could not see, whatever else it found)."""
    for found in result.findings[check_id]:
        findings.add(found.object, found.severity, found.message, found.value,
                     found.threshold, remedy=found.remedy)
    if check_id in result.skips and findings.severity != "failure":
        pytest.skip(result.skips[check_id])


@pytest.mark.slow
@check("backup.readable", thresholds=("backup_step_timeout",), enabled_by=_BY)
def test_readable(_mlflowdb_backup, mlflowdb_findings):
    """The archive is complete and readable end to end (every data block, not its TOC)."""
    _report(_mlflowdb_backup, "backup.readable", mlflowdb_findings)


@pytest.mark.slow
@check("backup.restore", thresholds=("backup_step_timeout",), enabled_by=_BY)
def test_restore(_mlflowdb_backup, mlflowdb_findings):
    """It restores into a scratch database with no error (pg_restore exit 1 included)."""
    _report(_mlflowdb_backup, "backup.restore", mlflowdb_findings)


@pytest.mark.slow
@check("backup.schema", enabled_by=_BY)
def test_schema(_mlflowdb_backup, mlflowdb_findings):
    """The restored copy's schema and indexes match MLflow's at its own revision."""
    _report(_mlflowdb_backup, "backup.schema", mlflowdb_findings)


@pytest.mark.slow
@check("backup.complete", thresholds=("backup_row_tolerance",), enabled_by=_BY)
def test_complete(_mlflowdb_backup, mlflowdb_findings):
    """Every MLflow table of the live target is in the copy, with about its rows."""
    _report(_mlflowdb_backup, "backup.complete", mlflowdb_findings)


@pytest.mark.slow
@check("backup.freshness", thresholds=("max_backup_age",), enabled_by=_BY)
def test_freshness(_mlflowdb_backup, mlflowdb_findings):
    """RPO: the copy's newest runs, metrics, model versions, traces against the live target's.

    And the backup file's age, both against max_backup_age."""
    _report(_mlflowdb_backup, "backup.freshness", mlflowdb_findings)


@pytest.mark.slow
@check("backup.rto", thresholds=("max_restore_time",), enabled_by=_BY)
def test_rto(_mlflowdb_backup, mlflowdb_findings):
    """RTO: the time from the start of the restore to a queryable, verified copy."""
    _report(_mlflowdb_backup, "backup.rto", mlflowdb_findings)


@pytest.mark.slow
@check("backup.upgrade", enabled_by=("upgrade_rehearsal",))
def test_upgrade(_mlflowdb_backup, mlflowdb_findings):
    """The installed MLflow's migrations run on the restored copy: time and locks of each."""
    _report(_mlflowdb_backup, "backup.upgrade", mlflowdb_findings)
