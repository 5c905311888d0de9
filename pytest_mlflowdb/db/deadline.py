"""Client-side bounds on waiting for an audited server.

``statement_timeout`` is enforced by the server, so it cannot end a wait on a server
that is unreachable (a network partition, a dead link): psycopg would wait forever.
Each statement of a transaction therefore has a reply deadline (:func:`reply_deadline`)
after which :class:`Deadline` shuts the socket down, and libpq's TCP keepalives and
``tcp_user_timeout`` (:func:`tcp_options`) let the kernel give up on a dead link too.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

import psycopg


def reply_deadline(statement_timeout: float) -> float:
    """Seconds a statement may wait for its reply: its statement timeout (after which
    the server itself cancels and answers) plus a margin for the round trips."""
    return statement_timeout + max(5.0, statement_timeout / 2)


def tcp_options(deadline: float) -> dict[str, Any]:
    """libpq options that let the kernel notice a dead link within about ``deadline``.

    (Ignored for Unix sockets; ``tcp_user_timeout`` needs libpq 12 and Linux.)"""
    idle = max(1, int(deadline / 3))
    options: dict[str, Any] = {"keepalives": 1, "keepalives_idle": idle,
                               "keepalives_interval": idle, "keepalives_count": 3}
    if psycopg.pq.version() >= 120000:
        options["tcp_user_timeout"] = int(deadline * 1000)
    return options


class Deadline:
    """Shut the connection's socket down when a transaction's replies are late: each
    statement may take ``seconds`` (its statement timeout and a margin) counted from when
    it is sent, or, when statements are pipelined (sent together, answered one after
    another), from the end of the previous statement's allowance.

    The shutdown (not a close: the descriptor stays valid) wakes libpq's wait on the
    socket at once, so the waiting query fails instead of waiting on a partitioned
    server; a cancel request would not reach that server either. One watchdog thread
    per process keeps every armed deadline (a thread per transaction cost more than
    many of the audit's queries)."""

    def __init__(self, conn: psycopg.Connection, seconds: float,
                 cap: float | None = None) -> None:
        self._fd = conn.pgconn.socket
        self._seconds = seconds
        self._expires = time.monotonic() + seconds
        #: the most the whole transaction may wait, however many statements it sends
        self._latest = None if cap is None else self._expires - seconds + cap
        self._statements = 0
        self._lock = threading.Lock()
        self._done = False
        self.fired = False

    @property
    def expires(self) -> float:
        return self._expires

    def restart(self) -> None:
        """A statement is sent: its allowance starts now, or when the one before it ends
        (a pipeline's statements are answered in turn)."""
        now = time.monotonic()
        start = now if self._statements == 0 else max(self._expires, now)
        self._statements += 1
        self._expires = start + self._seconds
        if self._latest is not None:
            self._expires = min(self._expires, self._latest)

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            try:
                with socket.socket(fileno=os.dup(self._fd)) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> Deadline:
        _WATCHDOG.arm(self)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._done = True
        _WATCHDOG.disarm(self)


class _Watchdog:
    """The thread that fires the deadlines that expire (started on first use)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: set[Deadline] = set()
        self._thread: threading.Thread | None = None

    def arm(self, deadline: Deadline) -> None:
        with self._cond:
            self._armed.add(deadline)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="mlflowdb-deadlines")
                self._thread.start()
            self._cond.notify()

    def disarm(self, deadline: Deadline) -> None:
        with self._cond:
            self._armed.discard(deadline)

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = [d for d in self._armed if d.expires <= now]
                self._armed.difference_update(due)
                if not due:
                    nearest = min((d.expires for d in self._armed), default=None)
                    self._cond.wait(None if nearest is None else nearest - now)
                    continue
            for deadline in due:  # outside the lock: a shutdown may take a moment
                deadline._fire()


_WATCHDOG = _Watchdog()


class TimedCursor(psycopg.Cursor):
    """A cursor that restarts its transaction's reply deadline on every statement."""

    deadline: Deadline | None = None

    def execute(self, *args: Any, **kwargs: Any) -> TimedCursor:
        if self.deadline is not None:
            self.deadline.restart()
        super().execute(*args, **kwargs)
        return self
