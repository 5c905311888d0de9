"""Probes run side by side, their statements sent together: one flight per round.

A probe is ordinary code that calls ``db.rows()``; run alone, each statement is one
round trip. :class:`Gather` runs many probes at once, each in a greenlet of its own (a
function that can pause where it asks for rows and resume when they are back, all in the
calling thread), and holds every statement they ask for until no probe can go on without
an answer; then the held statements leave in one pipelined flight (one read-only
transaction, one snapshot) and each probe resumes with its rows or its own error. A probe
whose next statement depends on an answer simply asks again: it joins the next flight.
The round trips of a target's collection are therefore the depth of its probes' chains,
not their count. Greenlets rather than threads: the probes never run at the same moment
anyway (one flight at a time, on one connection), and switching between greenlets costs
neither a thread's start nor a hand-over of the interpreter's lock.

Shared results go through :meth:`Gather.cached`: a probe that needs what another is
computing waits for it instead of computing it twice.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from greenlet import GreenletExit, getcurrent, greenlet

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
    """Is ``error`` a probe's outcome to keep (not an interrupt, an exit or a paused
    probe unwound)?"""
    return not isinstance(error, (KeyboardInterrupt, SystemExit, GeneratorExit, GreenletExit))


_NOTHING = object()


class Failed:
    """A probe's error kept in the session's cache: later users get the same error."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Gather:
    """One round of collection on one database: probes in greenlets, statements in
    flights. Everything happens in the thread that calls :meth:`run` (the hub)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._hub: greenlet | None = None
        #: probes ready to go on, in the order they became ready
        self._ready: deque[greenlet] = deque()
        #: statements held for the next flight, with the probe waiting for each
        self._queue: list[tuple[Unit, greenlet]] = []
        self._members: set[greenlet] = set()
        #: keys being computed, with the probes waiting for each
        self._computing: dict[str, list[greenlet]] = {}
        #: an interrupt (Ctrl-C, exit) met in a probe: raised again in the hub
        self._interrupt: BaseException | None = None
        #: flights sent (round trips this gather took)
        self.flights = 0

    def is_member(self) -> bool:
        """Is the caller one of this gather's probes?"""
        return getcurrent() in self._members

    # -- what probes call (through Database) --------------------------------------------
    def submit(self, statements: Sequence[tuple[Statement, Any, Mapping[str, str] | None]]
               ) -> list[list[dict[str, Any]]]:
        """Hold ``statements`` for the next flight; return their rows once it is back."""
        unit = Unit(statements)
        self._queue.append((unit, getcurrent()))
        self._pause()
        if unit.error is not None:
            raise unit.error
        assert unit.results is not None
        return unit.results

    def cached(self, key: str, compute: Callable[[Database], T]) -> T:
        """``compute`` once for the session; a second probe asking waits for the first."""
        cache = self.db._cache
        while key in self._computing:
            self._computing[key].append(getcurrent())
            self._pause()
        if key not in cache:
            self._computing[key] = []
            try:
                stored: Any = compute(self.db)
            except BaseException as exc:  # pytest's skip too (a BaseException)
                self._finish(key, Failed(exc) if kept(exc) else _NOTHING)
                raise
            self._finish(key, stored)
        return unwrap(cache[key])

    def _finish(self, key: str, stored: Any) -> None:
        """``key`` is computed (``stored``; _NOTHING: interrupted, nothing kept)."""
        if stored is not _NOTHING:
            self.db._cache[key] = stored
        self._ready.extend(self._computing.pop(key, ()))

    def each(self, function: Callable[[Any], T], items: Sequence[Any]) -> list[T]:
        """``function(item)`` for every item, side by side (their statements share
        flights); the first error is raised once all are done."""
        out: list[Any] = [None] * len(items)
        failed: list[BaseException] = []
        left = [len(items)]
        caller = getcurrent()

        def one(i: int, item: Any) -> None:
            try:
                out[i] = function(item)
            except BaseException as exc:  # pytest's skip too; raised again in the caller
                failed.append(exc)
            finally:
                left[0] -= 1
                if left[0] == 0:
                    self._ready.append(caller)

        for i, item in enumerate(items):
            self._spawn(partial(one, i, item))
        while left[0]:
            self._pause()
        if failed:
            raise failed[0]
        return out

    # -- the hub -------------------------------------------------------------------------
    def run(self, jobs: Iterable[Callable[[], object]]) -> None:
        """Run every job (a probe with its arguments bound) to its end; errors stay with
        the probes (in the cache), never here."""
        self._hub = getcurrent()
        for job in jobs:
            self._spawn(job)
        try:
            while True:
                while self._ready:
                    self._ready.popleft().switch()
                    if self._interrupt is not None:
                        raise self._interrupt
                if not self._queue:
                    break
                held, self._queue = self._queue, []
                self.flights += 1
                self.db._flight([unit for unit, _ in held])
                for unit, probe in held:
                    if unit.done:
                        self._ready.append(probe)
                    else:
                        self._queue.append((unit, probe))
        finally:
            for probe in list(self._members):  # left by an interrupt: unwound here
                probe.throw()
            self._hub = None

    def _spawn(self, job: Callable[[], object]) -> None:
        def body() -> None:
            try:
                job()
            except BaseException as exc:  # kept in the cache by cached(); checks meet it
                if not kept(exc) and not isinstance(exc, GreenletExit):
                    self._interrupt = exc
            finally:
                self._members.discard(probe)

        probe = greenlet(body, parent=self._hub)
        self._members.add(probe)
        self._ready.append(probe)

    def _pause(self) -> None:
        """Give the hub its turn; back here once the hub resumes this probe."""
        assert self._hub is not None
        self._hub.switch()


def unwrap(stored: Any) -> Any:
    """A cached value, or its probe's error raised again."""
    if isinstance(stored, Failed):
        raise stored.error
    return stored
