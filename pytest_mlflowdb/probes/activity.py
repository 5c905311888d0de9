"""Running activity that holds back vacuum or blocks MLflow: sessions, lock waits,
prepared transactions, replication slots.

Statistics views only (``pg_stat_activity``, ``pg_locks``, ``pg_prepared_xacts``,
``pg_replication_slots``): the cost does not grow with the data. Only the audit's own
backend (``pg_backend_pid()``) is left out, never sessions by name: behind a pooler
MLflow's sessions may carry any application_name a client left on the server connection.
Sessions are those of the audited database; prepared transactions and replication slots
are cluster-wide, because they hold back the xmin horizon (and, for slots, WAL) of every
database.

Without ``pg_read_all_stats`` (or ``pg_monitor``) the rows of other roles' sessions are
listed with their details NULL (state, query, times, xmin): those sessions are counted
as ``hidden``, never taken for idle ones. ``pg_locks``, ``pg_prepared_xacts`` and
``pg_replication_slots`` hide nothing from any role.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_mlflowdb.db.database import Database

#: characters of a session's query text kept for a message (one line)
QUERY_SHOWN = 120


@dataclass(frozen=True)
class Session:
    """A client session of the audited database, as ``pg_stat_activity`` shows it."""

    pid: int
    user: str | None
    application: str | None
    client: str | None
    state: str | None
    #: seconds since the transaction began, the query began, the state last changed
    xact_age: float | None
    query_age: float | None
    state_age: float | None
    #: the xmin horizon the session holds back (``backend_xmin`` or its own xid) and its age
    xmin: str | None
    xmin_age: int | None
    query: str | None

    def who(self) -> str:
        """Who runs it: role, application and client address, those that are known."""
        parts = [self.user or "role hidden"]
        if self.application:
            parts.append(f"application {self.application!r}")
        if self.client:
            parts.append(f"from {self.client}")
        return ", ".join(parts)

    def horizon(self) -> str:
        """What the session holds back, in words."""
        if self.xmin is None:
            return "holds no xmin horizon back"
        return (f"holds back the xmin horizon at xid {self.xmin} "
                f"({self.xmin_age} transactions old)")

    def last_query(self) -> str:
        if not self.query:
            return "query hidden" if self.state is None else "no query"
        text = " ".join(self.query.split())
        return text if len(text) <= QUERY_SHOWN else text[: QUERY_SHOWN - 3] + "..."


@dataclass(frozen=True)
class Activity:
    """This database's client sessions other than the audit's own."""

    sessions: tuple[Session, ...]
    #: sessions of other roles whose details this role may not read
    hidden: int

    def in_state(self, *states: str) -> list[Session]:
        return [s for s in self.sessions if s.state in states]


# backend_type is NULL exactly for the rows whose details are hidden: such a row attached
# to this database is another role's session (autovacuum workers included) of unknown state.
_COLUMNS = f"""
SELECT pid, usename::text AS user, application_name AS application,
       host(client_addr) AS client, state, backend_type,
       extract(epoch FROM clock_timestamp() - xact_start)::float8 AS xact_age,
       extract(epoch FROM clock_timestamp() - query_start)::float8 AS query_age,
       extract(epoch FROM clock_timestamp() - state_change)::float8 AS state_age,
       coalesce(backend_xmin, backend_xid)::text AS xmin,
       age(coalesce(backend_xmin, backend_xid)) AS xmin_age,
       left(query, {QUERY_SHOWN * 4}) AS query
FROM pg_stat_activity
"""
_SESSIONS_SQL = _COLUMNS + """
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND (backend_type = 'client backend' OR backend_type IS NULL)
ORDER BY pid
"""


def _session(r: dict) -> Session:
    return Session(r["pid"], r["user"], r["application"] or None, r["client"], r["state"],
                   r["xact_age"], r["query_age"], r["state_age"], r["xmin"], r["xmin_age"],
                   r["query"])


def activity(db: Database) -> Activity:
    """This database's client sessions (not the audit's own), and how many are hidden."""

    def collect(db: Database) -> Activity:
        rows = db.rows(_SESSIONS_SQL)
        seen = tuple(_session(r) for r in rows if r["backend_type"] is not None)
        return Activity(seen, sum(1 for r in rows if r["backend_type"] is None))

    return db.cached("activity:sessions", collect)


@dataclass(frozen=True)
class LockWait:
    """A session of this database waiting for a lock, and the sessions it waits for."""

    pid: int
    #: seconds waited (``pg_locks.waitstart``; 0 in the instant before it is set)
    waited: float
    lock: str
    #: pids of the sessions it waits for; 0 stands for prepared transactions
    blockers: tuple[int, ...]
    #: the gids of the prepared transactions that hold what it waits for
    prepared: tuple[str, ...] = ()


# pg_locks and pg_blocking_pids() are readable by every role: who waits, for what and for
# how long is known even when pg_stat_activity hides the details of other roles' sessions.
# A lock a prepared transaction holds has no pid (pg_blocking_pids() says 0): the
# transaction is found through its own transactionid lock (same virtualtransaction).
_WAITS_SQL = """
SELECT l.pid,
       coalesce(extract(epoch FROM clock_timestamp() - min(l.waitstart)), 0)::float8 AS waited,
       string_agg(DISTINCT l.mode || ' on ' || CASE
           WHEN l.locktype = 'relation' AND l.database = d.oid THEN l.relation::regclass::text
           WHEN l.locktype = 'relation' THEN 'relation ' || l.relation
           WHEN l.locktype = 'transactionid' THEN 'transaction ' || l.transactionid
           ELSE l.locktype END, ', ') AS lock,
       pg_blocking_pids(l.pid) AS blockers,
       ARRAY(SELECT DISTINCT p.gid FROM pg_locks w
             JOIN pg_locks h ON h.granted AND h.pid IS NULL AND h.locktype = w.locktype
              AND h.database IS NOT DISTINCT FROM w.database
              AND h.relation IS NOT DISTINCT FROM w.relation
              AND h.page IS NOT DISTINCT FROM w.page AND h.tuple IS NOT DISTINCT FROM w.tuple
              AND h.virtualxid IS NOT DISTINCT FROM w.virtualxid
              AND h.transactionid IS NOT DISTINCT FROM w.transactionid
              AND h.classid IS NOT DISTINCT FROM w.classid
              AND h.objid IS NOT DISTINCT FROM w.objid
              AND h.objsubid IS NOT DISTINCT FROM w.objsubid
             JOIN pg_locks x ON x.pid IS NULL AND x.locktype = 'transactionid'
              AND x.virtualtransaction = h.virtualtransaction
             JOIN pg_prepared_xacts p ON p.transaction = x.transactionid
             WHERE w.pid = l.pid AND NOT w.granted ORDER BY 1) AS prepared
FROM pg_locks l
JOIN pg_stat_activity a ON a.pid = l.pid
JOIN pg_database d ON d.datname = current_database()
WHERE NOT l.granted AND a.datid = d.oid AND l.pid <> pg_backend_pid()
GROUP BY l.pid
ORDER BY waited DESC, l.pid
"""


def lock_waits(db: Database) -> list[LockWait]:
    """Sessions of this database waiting for a lock, longest wait first."""
    return db.cached("activity:waits", lambda db: [
        LockWait(r["pid"], r["waited"], r["lock"], tuple(r["blockers"] or ()),
                 tuple(r["prepared"] or ()))
        for r in db.rows(_WAITS_SQL)])


def sessions_by_pid(db: Database, pids: list[int]) -> dict[int, Session]:
    """The sessions ``pids`` of any database (blockers may be elsewhere), as visible."""
    if not pids:
        return {}
    return db.cached(f"activity:pids:{','.join(map(str, pids))}", lambda db: {
        r["pid"]: _session(r)
        for r in db.rows(_COLUMNS + "WHERE pid = ANY(%(pids)s)", {"pids": pids})})


def backend_pid(db: Database) -> int:
    """The audit session's own server process."""
    return db.cached("activity:own_pid", lambda db: int(db.value("SELECT pg_backend_pid()")))


def blocking(db: Database) -> tuple[list[LockWait], dict[int, Session], int]:
    """Lock waits, the sessions that block them and the audit's own process."""
    waits = lock_waits(db)
    blockers = sorted({b for w in waits for b in w.blockers})
    return waits, sessions_by_pid(db, blockers), backend_pid(db)


@dataclass(frozen=True)
class PreparedXact:
    gid: str
    owner: str
    database: str
    #: seconds since PREPARE TRANSACTION
    age: float
    xid: str
    xid_age: int


@dataclass(frozen=True)
class Prepared:
    xacts: tuple[PreparedXact, ...]
    max_prepared: int


def prepared_xacts(db: Database) -> Prepared:
    """Every prepared transaction of the cluster (they hold back the xmin horizon and
    their locks across restarts until committed or rolled back), oldest first."""

    def collect(db: Database) -> Prepared:
        rows = db.rows("SELECT gid, owner::text, database::text, "
                       "extract(epoch FROM clock_timestamp() - prepared)::float8 AS age, "
                       "transaction::text AS xid, age(transaction) AS xid_age "
                       "FROM pg_prepared_xacts ORDER BY prepared, gid")
        limit = int(db.setting("max_prepared_transactions") or 0)
        return Prepared(tuple(PreparedXact(**r) for r in rows), limit)

    return db.cached("activity:prepared", collect)


@dataclass(frozen=True)
class Slot:
    name: str
    kind: str
    plugin: str | None
    database: str | None
    active: bool
    temporary: bool
    #: bytes of WAL kept for the slot (current WAL position minus restart_lsn)
    retained: int | None
    restart_lsn: str | None
    wal_status: str | None
    xmin: str | None
    xmin_age: int | None
    catalog_xmin: str | None
    catalog_xmin_age: int | None

    def horizon(self) -> str:
        held = []
        if self.xmin is not None:
            held.append(f"the xmin horizon at xid {self.xmin} ({self.xmin_age} "
                        "transactions old)")
        if self.catalog_xmin is not None:
            held.append(f"the catalog xmin horizon at xid {self.catalog_xmin} "
                        f"({self.catalog_xmin_age} transactions old)")
        return "holds back " + " and ".join(held) if held else "holds no xmin horizon back"


# On a standby pg_current_wal_lsn() raises: the position replayed is the one that counts.
_SLOTS_SQL = """
SELECT slot_name::text AS name, slot_type AS kind, plugin::text, database::text, active,
       temporary, restart_lsn::text, wal_status,
       pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                            ELSE pg_current_wal_lsn() END, restart_lsn)::bigint AS retained,
       xmin::text, age(xmin) AS xmin_age, catalog_xmin::text, age(catalog_xmin)
       AS catalog_xmin_age
FROM pg_replication_slots ORDER BY slot_name
"""


def replication_slots(db: Database) -> list[Slot]:
    """Every replication slot of the cluster, with the WAL it retains."""
    return db.cached("activity:slots", lambda db: [Slot(**r) for r in db.rows(_SLOTS_SQL)])
