"""Collect, then judge: each target's facts read before its checks run.

The probes the selected checks declare (``@check(..., probes=...)``) are run together on
each target's session (:meth:`Database.gather <pytest_mlflowdb.db.database.Database.gather>`:
their statements leave in a few pipelined flights), then the checks judge from the
session's cache. Several targets are collected at once, each in a thread of its own, at
most ``--mlflowdb-concurrency`` at a time: a fleet's time is spent waiting on the network,
and a target that stops answering waits only on its own deadline.

A probe declared ``alone`` (``connectivity.latency``: it times round trips) runs after
the gathered ones, by itself on its session.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_mlflowdb.db.gather import kept

if TYPE_CHECKING:
    import pytest

    from pytest_mlflowdb.audit.sessions import TargetParam, TargetSessions
    from pytest_mlflowdb.config.validate import Settings

#: ``probe(db)`` or ``probe(db, settings)``
Probe = Callable[..., object]


def alone(probe: Probe) -> Probe:
    """Mark a probe that must have its session to itself (it measures round trips)."""
    probe.mlflowdb_alone = True  # type: ignore[attr-defined]
    return probe


@dataclass
class Plan:
    """The probes to gather for one target, in the order the checks declared them."""

    key: TargetParam
    probes: list[Probe] = field(default_factory=list)

    def add(self, probes: Sequence[Probe]) -> None:
        for probe in probes:
            if probe not in self.probes:
                self.probes.append(probe)


def plans(items: Sequence[pytest.Item]) -> dict[str, Plan]:
    """What each target's selected checks declared, by target slot."""
    from pytest_mlflowdb.keys import MARKER, target_param_of

    found: dict[str, Plan] = {}
    for item in items:
        key = target_param_of(item)
        if key is None:
            continue
        plan = found.setdefault(key.slot, Plan(key))
        mark = item.get_closest_marker(MARKER)
        if mark is not None:
            plan.add(mark.kwargs.get("probes", ()))
    return found


def gather_target(sessions: TargetSessions, plan: Plan, settings: Settings) -> int:
    """Open the target's session and gather its probes but those that must be alone;
    returns the flights taken (0 when the target could not be reached: its checks say
    so)."""
    db = sessions.open(plan.key.slot, plan.key.id).database
    if db is None:
        return 0
    return db.gather([_bound(p, db, settings) for p in plan.probes if not _alone(p)])


def alone_target(sessions: TargetSessions, plan: Plan, settings: Settings) -> None:
    """The probes that need the session to themselves, one after another."""
    db = sessions.open(plan.key.slot, plan.key.id).database
    if db is not None:
        for probe in plan.probes:
            if _alone(probe):
                _bound(probe, db, settings)()


def collect(sessions: TargetSessions, wanted: Sequence[Plan], settings: Settings) -> None:
    """Collect each planned target, ``settings.concurrency`` at a time: every target's
    gathered probes first, then the ones that must be alone (they time round trips, which
    the other targets' gathering would slow down by holding the interpreter)."""
    if len(wanted) == 1:
        gather_target(sessions, wanted[0], settings)
        alone_target(sessions, wanted[0], settings)
        return
    workers = max(1, min(settings.concurrency, len(wanted)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlflowdb-target") as pool:
        for phase in (gather_target, alone_target):
            for future in [pool.submit(phase, sessions, p, settings) for p in wanted]:
                future.result()


def _alone(probe: Probe) -> bool:
    return getattr(probe, "mlflowdb_alone", False)


def _bound(probe: Probe, db: Any, settings: Settings) -> Callable[[], None]:
    takes_settings = len(inspect.signature(probe).parameters) > 1

    def run() -> None:
        try:
            probe(db, settings) if takes_settings else probe(db)
        except BaseException as exc:  # pytest's skip too; kept in db.cached for the checks
            if not kept(exc):
                raise

    return run
