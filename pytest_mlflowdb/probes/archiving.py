"""WAL archiving: ``archive_mode``, the archiver's counters (``pg_stat_archiver``), the
WAL segment being written now, and the ``.ready`` files waiting in
``pg_wal/archive_status`` (``pg_ls_archive_statusdir()``: superuser or ``pg_monitor``;
None when this role may not list them).

``pg_stat_archiver`` and the settings are readable by every role.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_mlflowdb.db.database import Database

_ARCHIVER = """
SELECT current_setting('archive_mode') AS mode, archived_count, last_archived_wal,
       last_archived_time, failed_count, last_failed_wal, last_failed_time, stats_reset,
       pg_postmaster_start_time() AS started, now() AS now,
       pg_size_bytes(current_setting('wal_segment_size')) AS segment_size,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE pg_walfile_name(pg_current_wal_lsn()) END AS current_wal
FROM pg_stat_archiver
"""

_READY = """
SELECT count(*) AS ready, min(modification) AS oldest
FROM pg_ls_archive_statusdir() WHERE name ~ '\\.ready$'
"""


@dataclass(frozen=True)
class Archiver:
    mode: str
    archived_count: int
    last_archived_wal: str | None
    last_archived_time: datetime.datetime | None
    failed_count: int
    last_failed_wal: str | None
    last_failed_time: datetime.datetime | None
    #: when the counters start: their last reset, else the server's start
    since: datetime.datetime
    now: datetime.datetime
    #: the segment being written (None on a standby)
    current_wal: str | None
    segment_size: int
    #: ``.ready`` files waiting and the oldest one's time; None: not listable by this role
    ready: int | None
    oldest_ready: datetime.datetime | None

    @property
    def on(self) -> bool:
        return self.mode in ("on", "always")

    @property
    def failing(self) -> bool:
        """The last attempt failed: a failure newer than the last success."""
        return self.last_failed_time is not None and (
            self.last_archived_time is None or self.last_failed_time > self.last_archived_time)

    @property
    def last_good_age(self) -> float:
        """Seconds since the last segment was archived (since the counters began when
        none was)."""
        return max(0.0, (self.now - (self.last_archived_time or self.since)).total_seconds())


    @property
    def waiting(self) -> int | None:
        """Complete segments not archived yet, from the names of the last archived and
        the current segment (None: on another timeline, on a standby, or nothing
        archived yet)."""
        last, now = _segment(self.last_archived_wal, self.segment_size), \
            _segment(self.current_wal, self.segment_size)
        if last is None or now is None or last[0] != now[0]:
            return None
        return max(0, now[1] - last[1] - 1)


def _segment(name: str | None, size: int) -> tuple[str, int] | None:
    """(timeline, segment number) of a WAL file name; None for a history or backup file."""
    if not name or len(name) != 24 or not size:
        return None
    try:
        log, seg = int(name[8:16], 16), int(name[16:24], 16)
    except ValueError:
        return None
    return name[:8], log * (0x100000000 // size) + seg


def can_list_status(db: Database) -> bool:
    pre = db.preflight
    return pre.is_superuser or "pg_monitor" in pre.roles


def archiver(db: Database) -> Archiver:
    """The archiver's state (cached)."""
    return db.cached("archiving:archiver", _collect)


def _collect(db: Database) -> Archiver:
    statements = [(_ARCHIVER, None)] + ([(_READY, None)] if can_list_status(db) else [])
    found = db.rows_many(statements)
    a = found[0][0]
    ready = found[1][0] if len(found) > 1 else None
    return Archiver(
        a["mode"], int(a["archived_count"]), a["last_archived_wal"], a["last_archived_time"],
        int(a["failed_count"]), a["last_failed_wal"], a["last_failed_time"],
        a["stats_reset"] or a["started"], a["now"], a["current_wal"], int(a["segment_size"]),
        int(ready["ready"]) if ready else None, ready["oldest"] if ready else None)
