"""Probes run side by side, their statements sent together: one flight per round.

A probe is ordinary code that calls ``db.rows()``; run alone, each statement is one
round trip. :class:`Gather` runs many probes at once, each in a thread of its own, and
holds every statement they ask for until no probe can go on without an answer; then the
held statements leave in one pipelined flight (one read-only transaction, one snapshot)
and each probe resumes with its rows or its own error. A probe whose next statement
depends on an answer simply asks again: it joins the next flight. The round trips of a
target's collection are therefore the depth of its probes' chains, not their count.

Shared results go through :meth:`Gather.cached`: a probe that needs what another is
computing waits for it instead of computing it twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pytest_mlflowdb.db.database import Database, Statement

T = TypeVar("T")


@dataclass
class Unit:
    """Statements one probe asked for together (one ``rows`` or ``rows_many`` call)."""

    statements: Sequence[tuple[Statement, Any, Mapping[str, str] | None]]
    results: list[list[dict[str, Any]]] | None = None
    error: BaseException | None = None
    #: answered (rows or error); a unit that was only aborted by an earlier statement's
    #: error goes out again in the next flight
    done: bool = False
    cursors: list[Any] = field(default_factory=list)


def kept(error: BaseException) -> bool:
    """Is ``error`` a probe's outcome to keep (not an interrupt or an exit)?"""
    return not isinstance(error, (KeyboardInterrupt, SystemExit, GeneratorExit))


_NOTHING = object()


class Failed:
    """A probe's error kept in the session's cache: later users get the same error."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Gather:
    """One round of collection on one database: probes in threads, statements in flights."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cond = threading.Condition()
        self._runnable = 0
        self._queue: list[Unit] = []
        self._members: set[int] = set()
        self._computing: set[str] = set()
        self._waiters: dict[str, int] = {}
        #: flights sent (round trips this gather took)
        self.flights = 0

    def is_member(self) -> bool:
        """Is the calling thread one of this gather's probes?"""
        return threading.get_ident() in self._members

    # -- what probes call (through Database) --------------------------------------------
    def submit(self, statements: Sequence[tuple[Statement, Any, Mapping[str, str] | None]]
               ) -> list[list[dict[str, Any]]]:
        """Hold ``statements`` for the next flight; return their rows once it is back."""
        unit = Unit(statements)
        with self._cond:
            self._queue.append(unit)
            self._runnable -= 1
            self._cond.notify_all()
            self._cond.wait_for(lambda: unit.done)
        if unit.error is not None:
            raise unit.error
        assert unit.results is not None
        return unit.results

    def cached(self, key: str, compute: Callable[[Database], T]) -> T:
        """``compute`` once for the session; a second probe asking waits for the first."""
        cache = self.db._cache
        with self._cond:
            while key in self._computing:
                self._waiters[key] = self._waiters.get(key, 0) + 1
                self._runnable -= 1
                self._cond.notify_all()
                self._cond.wait_for(lambda: key not in self._computing)
            if key not in cache:
                self._computing.add(key)
                mine = True
            else:
                mine = False
        if mine:
            try:
                stored: Any = compute(self.db)
            except BaseException as exc:  # pytest's skip too (a BaseException)
                self._finish(key, Failed(exc) if kept(exc) else _NOTHING)
                raise
            self._finish(key, stored)
        return unwrap(cache[key])

    def _finish(self, key: str, stored: Any) -> None:
        """``key`` is computed (``stored``; _NOTHING: interrupted, nothing kept)."""
        with self._cond:
            if stored is not _NOTHING:
                self.db._cache[key] = stored
            self._computing.discard(key)
            self._runnable += self._waiters.pop(key, 0)
            self._cond.notify_all()

    def each(self, function: Callable[[Any], T], items: Sequence[Any]) -> list[T]:
        """``function(item)`` for every item, side by side (their statements share
        flights); the first error is raised once all are done."""
        out: list[Any] = [None] * len(items)
        failed: list[BaseException] = []
        left = [len(items)]

        def one(i: int, item: Any) -> None:
            try:
                out[i] = function(item)
            except BaseException as exc:  # pytest's skip too; raised again in the caller
                failed.append(exc)

        def finished() -> None:  # under the lock, as the child stops counting
            left[0] -= 1
            if left[0] == 0:
                self._runnable += 1  # the caller goes on

        with self._cond:
            self._runnable += len(items) - 1  # the children run; the caller waits
            for i, item in enumerate(items):
                threading.Thread(target=self._member, args=(lambda i=i, item=item: one(i, item),
                                                            finished),
                                 daemon=True, name="mlflowdb-probe").start()
            self._cond.notify_all()
            self._cond.wait_for(lambda: left[0] == 0)
        if failed:
            raise failed[0]
        return out

    # -- the coordinator -------------------------------------------------------------------
    def run(self, jobs: Iterable[Callable[[], object]]) -> None:
        """Run every job (a probe with its arguments bound) to its end; errors stay with
        the probes (in the cache), never here."""
        jobs = list(jobs)
        if not jobs:
            return
        with self._cond:
            self._runnable = len(jobs)
        threads = [threading.Thread(target=self._member, args=(job,), daemon=True,
                                    name="mlflowdb-probe") for job in jobs]
        for thread in threads:
            thread.start()
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._runnable == 0)
                units, self._queue = self._queue, []
                if not units:
                    break
            self.flights += 1
            self.db._flight(units)
            with self._cond:
                answered = [u for u in units if u.done]
                self._queue[:0] = [u for u in units if not u.done]
                self._runnable += len(answered)
                self._cond.notify_all()
        for thread in threads:
            thread.join()

    def _member(self, job: Callable[[], object],
                finished: Callable[[], None] | None = None) -> None:
        with self._cond:
            self._members.add(threading.get_ident())
        try:
            job()
        except BaseException:  # noqa: S110 - kept in the cache by cached(); checks meet it
            pass
        finally:
            with self._cond:
                self._members.discard(threading.get_ident())
                self._runnable -= 1
                if finished is not None:
                    finished()
                self._cond.notify_all()


def unwrap(stored: Any) -> Any:
    """A cached value, or its probe's error raised again."""
    if isinstance(stored, Failed):
        raise stored.error
    return stored
