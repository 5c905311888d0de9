"""Hooks that other plugins and conftest files can implement.

Registered unconditionally (also when the plugin is dormant) so that implementing
them never errors. See docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_mlflowdb.config.thresholds import Threshold
    from pytest_mlflowdb.outputs import Output


@pytest.hookspec
def pytest_mlflowdb_thresholds(config: pytest.Config) -> list[Threshold] | None:
    """Return thresholds to add, or to replace built-ins of the same name.

    Called once at configure time. A returned :class:`pytest_mlflowdb.Threshold` with
    the name of a built-in replaces its default (``--mlflowdb-set`` still wins).
    """


@pytest.hookspec
def pytest_mlflowdb_report(report: dict[str, Any], config: pytest.Config) -> None:
    """Receive the finished report (the JSON document of docs/ARCHITECTURE.md) before
    files are written.

    Called once, on the controller only (never on pytest-xdist workers). The dict may be
    extended in place (for example with extra keys under ``"extra"``).
    """


@pytest.hookspec
def pytest_mlflowdb_outputs(config: pytest.Config) -> list[Output] | None:
    """Return outputs to add (:class:`pytest_mlflowdb.outputs.Output` objects).

    Called once at configure time (hooks in the rootdir's conftest.py and in plugins are
    heard). An output whose ``suffixes`` name a file suffix writes ``--mlflowdb-report``
    paths ending in it; one with the ``name`` of a built-in (``json``, ``markdown``,
    ``terminal``, ``junit``) replaces it.
    """
