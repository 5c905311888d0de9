"""The read-only session on an audited database, and the server facts about it.

A :class:`Database` knows PostgreSQL, not MLflow: its :class:`Preflight` holds the
server's version, recovery state, this role and its memberships, extensions and
connection details. What MLflow sees through the session (its schema, its alembic
revision) is a probe of its own, :mod:`pytest_mlflowdb.probes.mlflow`.

Every session: ``default_transaction_read_only=on``, ``statement_timeout``,
``lock_timeout``, libpq ``connect_timeout`` and ``application_name=pytest-mlflowdb``.
The settings are applied with ``SET`` right after connecting (rather than in the
startup packet) so that connection poolers which reject startup options still work,
and they are read back: a session that is not read-only is closed and refused.

``statement_timeout`` is enforced by the server, so it cannot help when the server is
unreachable (a network partition): every statement also has a client-side deadline
(:mod:`pytest_mlflowdb.db.deadline`), and libpq's TCP keepalives and ``tcp_user_timeout`` let the
kernel give up on a dead link too. A missed deadline ends the session for good: every
later query raises :class:`TargetStoppedAnswering` at once instead of waiting again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg.sql import Composable

from pytest_mlflowdb.config.targets import Target
from pytest_mlflowdb.db.deadline import Deadline, TimedCursor, reply_deadline, tcp_options
from pytest_mlflowdb.db.errors import (
    DatabaseError,
    PreflightError,
    TargetStoppedAnswering,
    one_line,
)
from pytest_mlflowdb.db.gather import Failed, Gather, Unit, unwrap
from pytest_mlflowdb.db.preflight import (
    EXTENSIONS_SQL,
    PREFLIGHT_SQL,
    PREFLIGHT_WHAT,
    Preflight,
    collect_preflight,
    preflight_from,
)
from pytest_mlflowdb.text import first_line

APPLICATION_NAME = "pytest-mlflowdb"
#: backend pids of this process's open audit sessions: the audit's own connections, which
#: a view of the server's sessions leaves out (a fleet on one server holds many at once,
#: idle between their transactions and so without the application_name above)
_OWN_PIDS: set[int] = set()


def own_backend_pids() -> list[int]:
    """The backend pids of this process's open audit sessions."""
    return sorted(_OWN_PIDS)

T = TypeVar("T")
#: what the query methods take: SQL text or a ``psycopg.sql`` composition
Statement = str | bytes | Composable


class Database:
    """A read-only connection to one target with small query helpers for probes."""

    def __init__(
        self,
        target: Target,
        *,
        connect_timeout: float = 10.0,
        statement_timeout: float = 30.0,
        lock_timeout: float = 1.0,
    ) -> None:
        self.target = target
        self.connect_timeout = connect_timeout
        self.statement_timeout = statement_timeout
        self.lock_timeout = lock_timeout
        self._conn: psycopg.Connection | None = None
        self._preflight: Preflight | None = None
        #: per-session results of probes (see :meth:`cached`), by a key the probe chooses
        self._cache: dict[str, Any] = {}
        self.connect_seconds = 0.0
        self.deadline = reply_deadline(statement_timeout)
        #: why the session ended for good (a missed deadline), if it did
        self.stopped: str | None = None
        #: the collection in progress (see :meth:`gather`), if any
        self._gather: Gather | None = None
        #: what the statements sent during a collection answered (rows, or a Failed), by
        #: the statements: a check that sends one of them again is answered from here
        self._answers: dict[tuple[str, ...], Any] = {}

    # -- connection ------------------------------------------------------------------
    def connect(self) -> Database:
        """Open the session or raise DatabaseError with a one-line reason.

        Read-only and the timeouts are set per transaction (``BEGIN READ ONLY`` and
        ``set_config(..., true)``), never on the session: behind a transaction-mode pooler
        a session setting would leak into MLflow's own connections and break its writes.
        """
        if self._conn is not None and not self._conn.closed:
            return self
        if self.stopped:
            raise TargetStoppedAnswering(self.stopped)
        started = time.perf_counter()
        try:
            conn = psycopg.connect(
                self.target.conninfo,
                connect_timeout=max(1, int(round(self.connect_timeout))),
                autocommit=False,
                # never PREPARE: behind a transaction pooler a prepared statement stays on
                # a server connection that the next client (MLflow) gets, and is missing
                # from the one our next transaction gets
                prepare_threshold=None,
                **tcp_options(self.deadline),
            )
            conn.read_only = True
        except psycopg.Error as exc:
            raise DatabaseError(one_line(exc, self.target)) from None
        except OSError as exc:  # e.g. an unreadable .pgpass or service file
            raise DatabaseError(self.target.scrub(str(exc))) from None
        self.connect_seconds = time.perf_counter() - started
        self._conn = conn
        _OWN_PIDS.add(conn.info.backend_pid)
        try:
            # the read-only check and the server's facts in one flight
            (state,), facts, extensions = self.read_many(PREFLIGHT_WHAT, [
                ("SHOW transaction_read_only", None), (PREFLIGHT_SQL, None),
                (EXTENSIONS_SQL, None)])
            if state["transaction_read_only"] != "on":
                raise DatabaseError("the session could not be made read-only; refusing to audit")
            self._preflight = preflight_from(self, facts[0], extensions)
        except psycopg.Error as exc:
            self.close()
            raise DatabaseError(one_line(exc, self.target)) from None
        except DatabaseError:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            _OWN_PIDS.discard(conn.info.backend_pid)
            try:
                conn.close()
            except (psycopg.Error, OSError):  # a connection already broken
                pass

    @property
    def connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self.connect()
        assert self._conn is not None
        return self._conn

    @contextmanager
    def transaction(self, *, snapshot: bool = False,
                    cap: float | None = None) -> Iterator[psycopg.Cursor]:
        """A read-only transaction with this audit's timeouts, and a dict-row cursor in it.

        One round trip for a caller that only executes: ``BEGIN READ ONLY``, the
        transaction-local settings, the caller's statements and ``COMMIT`` leave in one
        pipeline flight and their replies come back together; the cursor holds its rows
        after the block. A caller that fetches inside the block waits there (one round trip
        more). The connection is in autocommit only for the block (its own BEGIN and
        COMMIT); outside it psycopg opens every transaction read-only itself.

        ``snapshot``: ``REPEATABLE READ``, every statement of the block sees the same data;
        ``cap``: the most the whole block may wait for its replies (see :meth:`_flight`)."""
        conn = self.connection
        if conn.info.transaction_status != TransactionStatus.IDLE:
            conn.rollback()  # left open by a direct use of the connection: read-only
        deadline = Deadline(conn, self.deadline, cap)
        conn.autocommit = True
        try:
            with deadline:
                with conn.pipeline():
                    # application_name too is transaction-local: set at connect time, a
                    # pooler keeps it on the server connection that MLflow's sessions get
                    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
                                 if snapshot else "BEGIN READ ONLY")
                    # jit off: the audit's reads are small, and a plan made costly by a
                    # planner setting (enable_seqscan off) would be compiled on every run
                    conn.execute(
                        "SELECT set_config('statement_timeout', %s, true), "
                        "set_config('lock_timeout', %s, true), "
                        "set_config('application_name', %s, true), "
                        "set_config('jit', 'off', true)",
                        (f"{max(1, round(self.statement_timeout * 1000))}ms",
                         f"{max(1, round(self.lock_timeout * 1000))}ms", APPLICATION_NAME))
                    # TimedCursor (deadline.py) is not generic in its row type
                    cur = TimedCursor(conn, row_factory=dict_row)  # type: ignore[call-overload]
                    cur.deadline = deadline
                    yield cur
                    conn.execute("COMMIT")
        except BaseException as exc:
            self._end_failed()
            if not isinstance(exc, psycopg.Error):
                raise
            if deadline.fired:
                raise TargetStoppedAnswering(self._stop()) from None
            if conn.broken or conn.closed:  # the server ended the session (shutdown, kill)
                self.close()
                raise DatabaseError(f"the session was lost while reading: "
                                    f"{one_line(exc, self.target)}") from None
            raise
        finally:
            if not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE:
                conn.autocommit = False
        if deadline.fired:  # the reply came just as the socket was shut down
            self._stop()

    def _end_failed(self) -> None:
        """Roll back what a failed flight left open (its COMMIT never ran)."""
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            return
        if conn.info.transaction_status != TransactionStatus.IDLE:
            try:
                conn.execute("ROLLBACK")
            except psycopg.Error:
                self.close()

    def _stop(self) -> str:
        """End the session for good after a missed deadline; return the one-line reason."""
        self.stopped = (f"target stopped answering: no reply within {self.deadline:g}s "
                        "(network partition or server gone); its remaining checks cannot run")
        self.close()
        return self.stopped

    # -- queries ----------------------------------------------------------------------
    def rows(self, sql: Statement, params: Any = None, *,
             planner: Mapping[str, str] | None = None,
             fresh: bool = False) -> list[dict[str, Any]]:
        """Run one statement (text or psycopg's ``sql`` composition) in its own read-only
        transaction; return its rows as dicts. ``planner`` settings (``enable_seqscan``:
        ``off``) hold for that transaction only, so that a probe written for an index
        reads through it whatever the table's statistics make the planner think. A
        statement the collection answered is answered again from memory, unless
        ``fresh``: a read whose point is what the server says now (which backend answers,
        say) asks it again."""
        known = None if fresh else self._answers.get(_unit_key([(sql, params, planner)]))
        if known is not None:
            return list(unwrap(known)[0])
        if self._gather is not None and self._gather.is_member():
            return self._gather.submit([(sql, params, planner)])[0]
        with self.transaction() as cur:
            for name, value in (planner or {}).items():
                self.connection.execute("SELECT set_config(%s, %s, true)", (name, value))
            cur.execute(cast(Any, sql), params)
        # the rows came back with the COMMIT, in the same flight; dict_row: TimedCursor's
        # annotation cannot say so
        return cast(list[dict[str, Any]], cur.fetchall()) if cur.description else []

    def rows_many(self, statements: Sequence[tuple[Statement, Any]]
                  ) -> list[list[dict[str, Any]]]:
        """Run independent statements in one read-only transaction, sent in one flight
        (one round trip for all); return each one's rows, in order."""
        unit = [(sql, params, None) for sql, params in statements]
        known = self._answers.get(_unit_key(unit))
        if known is not None:
            return [list(rows) for rows in unwrap(known)]
        if self._gather is not None and self._gather.is_member():
            return self._gather.submit(unit)
        with self.transaction() as first:
            cursors = [first]
            for _ in statements[1:]:
                # TimedCursor (deadline.py) is not generic in its row type
                cursor = TimedCursor(self.connection, row_factory=dict_row)  # type: ignore[call-overload]
                cursor.deadline = first.deadline  # type: ignore[attr-defined]
                cursors.append(cursor)
            for cursor, (sql, params) in zip(cursors, statements, strict=True):
                cursor.execute(cast(Any, sql), params)
        return [cast(list[dict[str, Any]], c.fetchall()) if c.description else []
                for c in cursors]

    def row(self, sql: Statement, params: Any = None, *,
            planner: Mapping[str, str] | None = None,
            fresh: bool = False) -> dict[str, Any] | None:
        found = self.rows(sql, params, planner=planner, fresh=fresh)
        return found[0] if found else None

    def value(self, sql: Statement, params: Any = None, *, fresh: bool = False) -> Any:
        found = self.row(sql, params, fresh=fresh)
        return next(iter(found.values())) if found else None

    def setting(self, name: str) -> str | None:
        return self.value("SELECT current_setting(%s, true)", (name,))

    def read(self, what: str, query: Any, params: Any = None, *,
             passthrough: tuple[type[Exception], ...] = ()) -> list[dict[str, Any]]:
        """:meth:`rows` that names what it was reading when it fails (a lock, a timeout…).

        The session-opening reads (preflight, MLflow's facts) use it, so that a lock on,
        say, ``alembic_version`` is reported as that, not as a failure to connect.
        ``passthrough`` errors are raised as they are, for the caller to explain.
        """
        try:
            return self.rows(query, params)
        except passthrough:
            raise
        except psycopg.Error as exc:
            raise self._read_error(what, exc) from None

    def _read_error(self, what: str, exc: psycopg.Error) -> PreflightError:
        first = first_line(exc)
        held = ("; another session holds a lock on it"
                if isinstance(exc, psycopg.errors.LockNotAvailable) else "")
        return PreflightError(self.target.scrub(f"{first} while reading {what}{held}"))

    def read_many(self, what: str, statements: Sequence[tuple[Statement, Any]]
                  ) -> list[list[dict[str, Any]]]:
        """:meth:`rows_many` that names what it was reading when it fails, as :meth:`read`."""
        try:
            return self.rows_many(statements)
        except psycopg.Error as exc:
            raise self._read_error(what, exc) from None

    def cached(self, key: str, compute: Callable[[Database], T]) -> T:
        """``compute(self)`` once per session: probes shared by several checks.

        A generic store: each probe picks its own key (``"mlflow"``, ``"snapshot:public"``);
        the session knows nothing of what is kept. An error is kept too: every check that
        needs the probe meets the same error (and skips or fails as the first did) without
        asking the server again.
        """
        if self._gather is not None and self._gather.is_member():
            return self._gather.cached(key, compute)
        if key not in self._cache:
            try:
                self._cache[key] = compute(self)
            except Exception as exc:  # pytest's Skipped too: it is an Exception subclass
                self._cache[key] = Failed(exc)
        result: T = unwrap(self._cache[key])
        return result

    def each(self, function: Callable[[Any], T], items: Sequence[Any]) -> list[T]:
        """``[function(item) for item in items]``; during a collection side by side, so
        that a probe reading one statement per object (each sequence's next value) takes
        one round trip for all of them."""
        if self._gather is not None and self._gather.is_member() and len(items) > 1:
            return self._gather.each(function, items)
        return [function(item) for item in items]

    # -- collection -------------------------------------------------------------------
    def gather(self, jobs: Sequence[Callable[[], object]]) -> int:
        """Run ``jobs`` (probes bound to this database) side by side, their statements
        sent together (:mod:`pytest_mlflowdb.db.gather`); their results and errors land in
        :meth:`cached`. Returns the flights (round trips) it took."""
        gather = Gather(self)
        self._gather = gather
        try:
            gather.run(jobs)
        finally:
            self._gather = None
        return gather.flights

    def _flight(self, units: Sequence[Unit]) -> None:
        """Send the held statements of a gather in one read-only transaction and flight.

        Each unit gets its rows, or its error; a statement's error aborts the statements
        sent after it, whose units are left unanswered for the next flight. Planner
        settings hold for their own statement (a savepoint rolled back after it).

        The server answers a flight's statements only once it has run them all, so the
        flight's replies may take twice one statement's allowance, however many it
        holds: the catalog and statistics reads of a collection take milliseconds each,
        and a target that is silent that long has stopped answering."""
        conn: psycopg.Connection | None = None
        try:
            with self.transaction(snapshot=True, cap=2 * self.deadline) as first:
                conn = self.connection
                for unit in units:
                    for sql, params, planner in unit.statements:
                        # TimedCursor (deadline.py) is not generic in its row type
                        cursor = TimedCursor(conn, row_factory=dict_row)  # type: ignore[call-overload]
                        cursor.deadline = first.deadline  # type: ignore[attr-defined]
                        if planner:
                            conn.execute("SAVEPOINT mlflowdb_planner")
                            for name, value in planner.items():
                                conn.execute("SELECT set_config(%s, %s, true)", (name, value))
                        cursor.execute(cast(Any, sql), params)
                        if planner:
                            conn.execute("ROLLBACK TO SAVEPOINT mlflowdb_planner")
                        unit.cursors.append(cursor)
            failure: BaseException | None = None
        except Exception as exc:  # a statement's error, or the session lost or stopped
            failure = exc
        blamed = False
        for unit in units:
            answered = len(unit.cursors) == len(unit.statements) and all(
                c.pgresult is not None for c in unit.cursors)
            if answered:
                unit.results = [cast(list[dict[str, Any]], c.fetchall()) if c.description
                                else [] for c in unit.cursors]
                unit.done = True
                self._answers[_unit_key(unit.statements)] = unit.results
            elif failure is not None and (not blamed or isinstance(failure, DatabaseError)
                                          or conn is None):
                unit.error, unit.done, blamed = failure, True, True
                self._answers[_unit_key(unit.statements)] = Failed(failure)
            unit.cursors = []

    # -- preflight --------------------------------------------------------------------
    @property
    def preflight(self) -> Preflight:
        if self._preflight is None:
            self._preflight = collect_preflight(self)
        return self._preflight


def _unit_key(statements: Sequence[tuple[Statement, Any, Mapping[str, str] | None]]
              ) -> tuple[str, ...]:
    """What identifies statements sent together: their text (a composition's repr names
    every part), parameters and planner settings."""
    return tuple(f"{sql!r}\x00{params!r}\x00{sorted((planner or {}).items())!r}"
                 for sql, params, planner in statements)


