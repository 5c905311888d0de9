"""The server's cumulative counters since their reset: checkpoints (``pg_stat_bgwriter``,
``pg_stat_checkpointer`` on 17+) and the audited database's temporary files, deadlocks,
commits and rollbacks, and recovery conflicts (``pg_stat_database``), each with the
moment its counters start (their last reset, else the server's start).

Every role may read these views.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_mlflowdb.db.database import Database

#: the checkpoint counters (pg_stat_checkpointer from 17, pg_stat_bgwriter before), the
#: WAL written and max_wal_size (see Checkpoints.wal_bound)
_CHECKPOINTS = """
SELECT {timed} AS timed, {requested} AS requested, stats_reset,
       pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                            ELSE pg_current_wal_lsn() END, '0/0')::bigint AS wal_bytes,
       pg_size_bytes(current_setting('max_wal_size')) AS max_wal_size,
       pg_postmaster_start_time() AS started, now() AS now
FROM {view}
"""
_CHECKPOINTER = _CHECKPOINTS.format(timed="num_timed", requested="num_requested",
                                    view="pg_stat_checkpointer")
_BGWRITER = _CHECKPOINTS.format(timed="checkpoints_timed", requested="checkpoints_req",
                                view="pg_stat_bgwriter")

_DATABASE = """
SELECT datname AS name, xact_commit AS commits, xact_rollback AS rollbacks,
       temp_files, temp_bytes, deadlocks, conflicts, stats_reset,
       pg_postmaster_start_time() AS started, now() AS now
FROM pg_stat_database WHERE datname = current_database()
"""


@dataclass(frozen=True)
class Since:
    """When a set of counters starts: its last reset, else the server's start."""

    at: datetime.datetime
    reset: bool
    age_seconds: float

    @property
    def days(self) -> float:
        """The counters' age in days, never less than one: a young server's counts are
        not extrapolated into rates they have not reached."""
        return max(1.0, self.age_seconds / 86400.0)

    def describe(self) -> str:
        from pytest_mlflowdb.config.thresholds import format_value

        when = self.at.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        age = format_value("duration", round(self.age_seconds))
        what = "the statistics were reset" if self.reset else "the server started"
        return f"counted since {what} at {when} ({age} ago)"


def _since(row: dict) -> Since:
    at = row["stats_reset"] or row["started"]
    return Since(at, row["stats_reset"] is not None,
                 max(0.0, (row["now"] - at).total_seconds()))


@dataclass(frozen=True)
class Checkpoints:
    timed: int
    requested: int
    since: Since
    #: WAL this server has written (replayed, on a standby) since it was made: more than
    #: it wrote since the counters began (None: not known)
    wal_bytes: int | None = None
    max_wal_size: int | None = None

    @property
    def wal_bound(self) -> int | None:
        """The most checkpoints the WAL written could have forced: one each time WAL
        fills max_wal_size / (1 + checkpoint_completion_target), at most every half
        max_wal_size. A checkpoint is also requested by CHECKPOINT, CREATE DATABASE or a
        base backup, which says nothing about max_wal_size."""
        if self.wal_bytes is None or not self.max_wal_size:
            return None
        return int(2 * self.wal_bytes // self.max_wal_size)

    @property
    def forced(self) -> int:
        """Requested checkpoints that WAL may have forced (all, when not known)."""
        bound = self.wal_bound
        return self.requested if bound is None else min(self.requested, bound)

    @property
    def requested_pct(self) -> float | None:
        total = self.timed + self.requested
        return 100.0 * self.requested / total if total else None

    @property
    def forced_pct(self) -> float | None:
        total = self.timed + self.requested
        return 100.0 * self.forced / total if total else None


@dataclass(frozen=True)
class DatabaseCounters:
    name: str
    commits: int
    rollbacks: int
    temp_files: int
    temp_bytes: int
    deadlocks: int
    conflicts: int
    since: Since

    @property
    def rollback_pct(self) -> float | None:
        total = self.commits + self.rollbacks
        return 100.0 * self.rollbacks / total if total else None


@dataclass(frozen=True)
class ServerStats:
    checkpoints: Checkpoints
    database: DatabaseCounters


def server_stats(db: Database) -> ServerStats:
    """Checkpoint counters of the server and this database's counters (cached)."""
    return db.cached("stats:server", _collect)


def _collect(db: Database) -> ServerStats:
    checkpoint_sql = _CHECKPOINTER if db.preflight.major >= 17 else _BGWRITER
    (c,), (d,) = db.rows_many([(checkpoint_sql, None), (_DATABASE, None)])
    return ServerStats(
        Checkpoints(int(c["timed"]), int(c["requested"]), _since(c),
                    None if c["wal_bytes"] is None else int(c["wal_bytes"]),
                    None if c["max_wal_size"] is None else int(c["max_wal_size"])),
        DatabaseCounters(d["name"], int(d["commits"]), int(d["rollbacks"]),
                         int(d["temp_files"]), int(d["temp_bytes"]), int(d["deadlocks"]),
                         int(d["conflicts"]), _since(d)))
