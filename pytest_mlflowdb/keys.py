"""Names every layer may use: the check marker, the run's stash keys, the connect check's
id, where a check runs (its target, its process), and which pytest runs are live.

The lowest module of the plugin: it imports nothing of it at run time."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_mlflowdb.audit.sessions import TargetParam
    from pytest_mlflowdb.config.validate import Settings
    from pytest_mlflowdb.results.findings import Findings
    from pytest_mlflowdb.run.session import AuditSession

#: the marker of a check (``@check`` sets it; registered also when the plugin is dormant)
MARKER = "mlflowdb_check"
#: the check that every target's run keeps, whatever is selected
CONNECT = "connectivity.connect"

SESSION: pytest.StashKey[AuditSession] = pytest.StashKey()
#: the run's settings, also when the plugin is dormant (the settings fixtures read them)
SETTINGS: pytest.StashKey[Settings] = pytest.StashKey()
FINDINGS: pytest.StashKey[Findings] = pytest.StashKey()

#: the pytest runs configured in this process and not yet ended (their configs' ids):
#: more than one means a run inside another (pytester's in-process runs). A set, not a
#: count: pytest ends a run whose configure failed part-way, before this plugin's turn,
#: all the same.
LIVE_RUNS: set[int] = set()


def nested_run() -> bool:
    return len(LIVE_RUNS) > 1


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def target_param_of(item: pytest.Item) -> TargetParam | None:
    """The target a collected check runs on (None: not a check of a target)."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("_mlflowdb_key") if callspec is not None else None
