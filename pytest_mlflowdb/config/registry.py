"""The ``check`` decorator: a stable dotted id and the thresholds a check reads.

Built-in checks and team checks use it alike::

    from pytest_mlflowdb import check

    @check("team.experiments_named", thresholds=("latency_warn",))
    def test_experiments_named(mlflowdb, mlflowdb_findings):
        ...

It adds the ``mlflowdb_check`` marker (which the plugin reads for ids and reports) and
records the check in a registry so ``--mlflowdb-list-checks`` can print it and tests can
find the set of checks (see :func:`pytest_mlflowdb.config.areas.builtin_check_ids`). The first
part of the id is the check's area; the thresholds it names are declared by an area's
``AREA`` or a plugin's ``pytest_mlflowdb_thresholds`` hook.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

F = TypeVar("F", bound=Callable[..., Any])
_ID = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+")


@dataclass(frozen=True)
class CheckSpec:
    """What ``@check`` recorded: the id, the thresholds read, the docstring's first line,
    the function's dotted name and the file that defines it.

    The file, not the dotted name, says which area a check belongs to: pytest may import
    one check module under two names (``checks.connectivity`` from a source tree,
    ``pytest_mlflowdb.checks.connectivity`` when installed).
    """

    id: str
    thresholds: tuple[str, ...]
    description: str
    function: str
    path: str = ""
    enabled_by: tuple[str, ...] = ()

    @property
    def area(self) -> str:
        """The area the check belongs to: the first part of its id."""
        return self.id.split(".", 1)[0]


REGISTRY: dict[str, CheckSpec] = {}


#: a probe a check declares: called as ``probe(db)`` or ``probe(db, settings)`` before the
#: target's checks run, it reads through ``db`` (its statements gathered with the other
#: probes') and keeps what it read in ``db.cached``, where the check finds it
Probe = Callable[..., object]


def check(check_id: str, *, thresholds: tuple[str, ...] = (),
          enabled_by: tuple[str, ...] = (), probes: tuple[Probe, ...] = ()) -> Callable[[F], F]:
    """Declare a check with a stable dotted id, e.g. ``connectivity.latency``.

    ``probes`` are the facts the check reads (see :data:`Probe`): gathered for every
    selected check of a target in a few round trips before the first of them runs
    (:mod:`pytest_mlflowdb.audit.collect`). A check that declares none, or reads more than it
    declared, still works: what is not in the cache is read when the check asks.

    ``enabled_by`` makes a check opt-in: it names area options (``Option`` dests such as
    ``"backup"``) of which at least one must be set, else the check is deselected at
    collection (not a skip line that every run would carry: the user did not ask for it).
    """
    if not _ID.fullmatch(check_id):
        raise ValueError(f"check id {check_id!r} must be dotted lower_snake_case, e.g. area.name")

    def decorate(function: F) -> F:
        doc = (function.__doc__ or "").strip().splitlines()
        spec = CheckSpec(check_id, tuple(thresholds), doc[0] if doc else "",
                         f"{function.__module__}.{function.__qualname__}",
                         function.__code__.co_filename, tuple(enabled_by))
        REGISTRY[check_id] = spec
        return pytest.mark.mlflowdb_check(check_id, thresholds=tuple(thresholds),
                                          enabled_by=tuple(enabled_by),
                                          probes=tuple(probes))(function)

    return decorate
