"""Group by target under pytest-xdist: each target's checks on one worker, one session.

Without this, xdist's default ``load`` scheduling deals checks to workers one by one, so
with ``-n 2`` every worker opens a session to every target: twice the connections, twice
the preflight reads, and forty targets cost eighty sessions. So when the user gave ``-n``
without ``--dist``, or ``--dist loadgroup``, the audit schedules with xdist's load-scope
scheduling whose scope is a check's target (any other test keeps what that mode gives
it: its own scope under the default, its ``xdist_group`` under ``loadgroup``). Node ids
stay as they are. Another explicit ``--dist`` (``load``, ``loadscope``, ``loadfile``,
``worksteal``, ``each``) is the user's choice and is kept.

Why not ``xdist_group`` marks alone: xdist applies them by rewriting ``item._nodeid``,
which pytest 9.2 no longer reads (node ids come from ``Node._id``), so the marks group
nothing there. This module is a pytest plugin (``plugin.py`` lists it in
``pytest_plugins``): it must see the options before pytest-xdist's own
``pytest_cmdline_main`` turns an unset ``--dist`` into ``load``.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

#: the user gave no ``--dist``: the scheduling is ours to choose
_DIST_DEFAULTED = pytest.StashKey[bool]()
GROUP_PREFIX = "mlflowdb:"


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Generator[None, Any, Any]:
    # a wrapper runs before pytest-xdist's tryfirst hook turns an unset --dist into "load"
    option = config.option
    config.stash[_DIST_DEFAULTED] = (getattr(option, "dist", None) == "no"
                                     and not getattr(option, "distload", False))
    return (yield)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from pytest_mlflowdb.keys import SESSION

    session = config.stash.get(SESSION, None)
    dist = config.getvalue("dist")
    defaulted = dist == "load" and config.stash.get(_DIST_DEFAULTED, False)
    if session is None or not (defaulted or dist == "loadgroup"):
        return None  # dormant, or the user chose how to distribute
    return target_scheduling(config, log, [key.id for key in session.sessions.keys()],
                             by_group=dist == "loadgroup")


def target_scheduling(config: pytest.Config, log: Any, target_ids: list[str], *,
                      by_group: bool = False) -> Any:
    """xdist's load-scope scheduling (``by_group``: load-group) whose scope is a check's
    target; any other test is a scope of its own (``by_group``: its ``xdist_group``)."""
    from xdist.scheduler import (  # type: ignore[import-untyped]
        LoadGroupScheduling,
        LoadScopeScheduling,
    )

    from pytest_mlflowdb.results.records import check_of_nodeid

    base = LoadGroupScheduling if by_group else LoadScopeScheduling

    class TargetScheduling(base):  # type: ignore[misc, valid-type]
        def _split_scope(self, nodeid: str) -> str:
            target = check_of_nodeid(nodeid, target_ids)[1]
            if target is not None:
                return f"{GROUP_PREFIX}{target}"
            return super()._split_scope(nodeid) if by_group else nodeid

        def remove_node(self, node: Any) -> str | None:
            """As xdist's, but the test that crashed the worker is not queued again.

            xdist's load-scope scheduling puts the crashed worker's unfinished scope back
            in the queue, the crashed test included: it crashes each new worker in turn
            until xdist stops replacing them. Under ``load`` it is reported once, as
            failed; so it is here.
            """
            workload = self.assigned_work.pop(node)
            if not self._pending_of(workload):
                return None
            crashed = next(nodeid for unit in workload.values()
                           for nodeid, done in unit.items() if not done)
            for unit in workload.values():
                if crashed in unit:
                    unit[crashed] = True  # xdist reports it as failed: never run again
            self.workqueue.update({scope: unit for scope, unit in workload.items()
                                   if not all(unit.values())})
            for other in self.assigned_work:
                self._reschedule(other)
            return crashed

    return TargetScheduling(config, log)
