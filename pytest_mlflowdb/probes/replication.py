"""Replication: on a primary each standby's lag from ``pg_stat_replication`` (in bytes
behind the current WAL position and in time) and ``synchronous_standby_names``; on a
standby what it received and replayed, and since when it replayed nothing.

``pg_stat_replication`` shows other roles' walsenders' positions only to superusers and
``pg_monitor`` / ``pg_read_all_stats``: without them the rows come with NULL positions,
which the probe counts as hidden.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_mlflowdb.db.database import Database

_STANDBYS = """
SELECT pid, application_name AS name, host(client_addr) AS client, state, sync_state,
       sent_lsn IS NULL AS hidden,
       pg_wal_lsn_diff(pg_current_wal_lsn(), write_lsn)::float8 AS write_bytes,
       pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn)::float8 AS flush_bytes,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 AS replay_bytes,
       extract(epoch FROM write_lag)::float8 AS write_lag,
       extract(epoch FROM flush_lag)::float8 AS flush_lag,
       extract(epoch FROM replay_lag)::float8 AS replay_lag
FROM pg_stat_replication ORDER BY application_name, pid
"""

_SYNC = "SELECT current_setting('synchronous_standby_names') AS names"

_RECOVERY = """
SELECT pg_last_wal_receive_lsn()::text AS received, pg_last_wal_replay_lsn()::text AS replayed,
       pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::float8 AS behind,
       pg_last_xact_replay_timestamp() AS replayed_at, now() AS now,
       pg_is_wal_replay_paused() AS paused,
       (SELECT status FROM pg_stat_wal_receiver) AS receiver
"""


@dataclass(frozen=True)
class Standby:
    pid: int
    name: str
    client: str | None
    state: str | None
    sync_state: str | None
    hidden: bool
    write_bytes: float | None
    flush_bytes: float | None
    replay_bytes: float | None
    write_lag: float | None
    flush_lag: float | None
    replay_lag: float | None

    def label(self) -> str:
        return f"standby {self.name or '(no application_name)'} (pid {self.pid}" + \
            (f", from {self.client})" if self.client else ")")


@dataclass(frozen=True)
class Recovery:
    """A standby's own view: what it received and replayed."""

    received: str | None
    replayed: str | None
    #: bytes received but not yet replayed (None when streaming never started)
    behind: float | None
    replayed_at: datetime.datetime | None
    now: datetime.datetime
    paused: bool
    receiver: str | None

    @property
    def replay_delay(self) -> float | None:
        """Seconds since the last replayed transaction's commit, or None when there
        is nothing to replay (received equals replayed: the primary may just be idle)."""
        if not self.behind or self.replayed_at is None:
            return None  # nothing waits, or no transaction replayed since the start
        return max(0.0, (self.now - self.replayed_at).total_seconds())


@dataclass(frozen=True)
class Replication:
    in_recovery: bool
    standbys: tuple[Standby, ...]
    synchronous_names: str
    recovery: Recovery | None


def replication(db: Database) -> Replication:
    """The primary's standbys, or the standby's own replay (cached)."""
    return db.cached("replication", _collect)


def _collect(db: Database) -> Replication:
    if db.preflight.in_recovery:
        (r,), (s,) = db.rows_many([(_RECOVERY, None), (_SYNC, None)])
        return Replication(True, (), s["names"], Recovery(
            r["received"], r["replayed"], r["behind"], r["replayed_at"], r["now"],
            bool(r["paused"]), r["receiver"]))
    rows, (s,) = db.rows_many([(_STANDBYS, None), (_SYNC, None)])
    return Replication(False, tuple(Standby(
        r["pid"], r["name"], r["client"], r["state"], r["sync_state"], bool(r["hidden"]),
        r["write_bytes"], r["flush_bytes"], r["replay_bytes"], r["write_lag"],
        r["flush_lag"], r["replay_lag"]) for r in rows), s["names"], None)


def required_sync(names: str) -> int:
    """How many synchronous standbys ``synchronous_standby_names`` asks for (0: none):
    ``FIRST n (...)``, ``ANY n (...)``, ``n (...)``, or a plain list (one)."""
    import re

    text = names.strip()
    if not text:
        return 0
    found = re.match(r"(?i)^(?:first|any)?\s*(\d+)\s*\(", text)
    return int(found.group(1)) if found else 1
