"""The declaration of the area of ``checks/backup.py``: its thresholds and options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_mlflowdb.config.declare import Area, Option
from pytest_mlflowdb.config.thresholds import Threshold

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def parse_switch(raw: Any) -> bool | None:
    """A flag (``True``) or its ini twin (``true``/``false``...): True, or None when off
    (None, not False: an opt-in check is enabled by any value that is set)."""
    if raw is None or raw is False:
        return None
    if raw is True:
        return True
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return None
    raise ValueError(f"{str(raw).strip()!r} is not a switch; use true or false")


def parse_backup_path(raw: Any) -> str | None:
    """The backup's absolute path. Whether it exists is backup.readable's business (a
    missing nightly dump is a failed check in the report, not a typo); something that is
    neither a regular file nor a folder (a FIFO would block, ``/dev/zero`` never end) is
    refused here."""
    import os
    import stat

    if raw is None or not str(raw).strip():
        return None
    path = Path(str(raw).strip()).expanduser().absolute()
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return str(path)
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        from pytest_mlflowdb.config.fleet import describe_mode

        raise ValueError(f"{path} is {describe_mode(mode)}: give a pg_dump file or a "
                         "pg_dump directory archive")
    return str(path)


def parse_uri(raw: Any) -> Any:
    """A :class:`~pytest_mlflowdb.config.targets.Target` (its repr never shows the password; its
    secrets are masked in every output like the targets'), or None: the scratch server's,
    pg_dump's direct connection."""
    if raw is None or not str(raw).strip():
        return None
    from pytest_mlflowdb.config.targets import TargetError, parse_target

    try:
        return parse_target(str(raw))
    except TargetError as exc:
        raise ValueError(str(exc)) from None


THRESHOLDS = (
    Threshold("max_backup_age", "26h", "duration", "backup.freshness fails when the backup "
              "file, or the newest data in its restored copy against the live target (RPO), "
              "is older than this", minimum=60.0, maximum=3650 * 86400.0),
    Threshold("max_restore_time", "0", "duration", "backup.rto fails when restoring and "
              "verifying the copy takes longer (0: no limit; the time is always reported)",
              maximum=30 * 86400.0),
    Threshold("backup_step_timeout", "60s", "duration", "the least time pg_dump, "
              "pg_restore or psql may run in one step of the backup checks before it is "
              "stopped and its check fails; each step also gets 1s per MiB of the archive "
              "(per 4 MiB of the live database for pg_dump)", minimum=1.0,
              maximum=30 * 86400.0),
    Threshold("backup_row_tolerance", "25%", "percent", "backup.complete fails a table whose "
              "copy holds this much fewer rows than the live estimate"),
)
OPTIONS = (
    Option("backup", "--mlflowdb-backup", "mlflowdb_backup",
           "a pg_dump file (custom, directory, tar, plain SQL or .sql.gz) to verify: "
           "readable, restores into a scratch database, schema, rows, RPO and RTO", "PATH",
           parse=parse_backup_path),
    Option("restore_test", "--mlflowdb-restore-test", "mlflowdb_restore_test",
           "dump the live target now (pg_dump -Fc, read-only) and run the backup checks on "
           "that dump: it reads the whole database", None,
           (("action", "store_true"), ("default", None)),
           parse=parse_switch),
    Option("scratch_uri", "--mlflowdb-scratch-uri", "mlflowdb_scratch_uri",
           "an existing server to restore into (scratch databases are made there and "
           "dropped; never the audited database); default: a throwaway server", "URI",
           parse=parse_uri),
    Option("dump_uri", "--mlflowdb-dump-uri", "mlflowdb_dump_uri",
           "a direct connection to the audited database for pg_dump "
           "(--mlflowdb-restore-test), when the target is reached through a transaction "
           "pooler: pg_dump never runs through one", "URI",
           parse=parse_uri),
    Option("upgrade_rehearsal", "--mlflowdb-upgrade-rehearsal", "mlflowdb_upgrade_rehearsal",
           "after a restore, run the installed MLflow's migrations on the copy and report "
           "each one's time and locks (needs the mlflow extra)", None,
           (("action", "store_true"), ("default", None)),
           parse=parse_switch),
)

AREA = Area("backup", thresholds=THRESHOLDS, options=OPTIONS)
