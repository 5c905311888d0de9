"""Hooks that other plugins and conftest files can implement.

Registered unconditionally (also when the plugin is dormant) so that implementing
them never errors. Added in 0.1.0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .thresholds import Threshold


def pytest_mlflowdb_thresholds(config: pytest.Config) -> list[Threshold] | None:
    """Return thresholds to add, or to replace built-ins of the same name.

    Called once at configure time. A returned :class:`pytest_mlflowdb.Threshold` with
    the name of a built-in replaces its default (``--mlflowdb-set`` still wins).
    """


def pytest_mlflowdb_report(report: dict[str, Any], config: pytest.Config) -> None:
    """Receive the finished report (the JSON document of DESIGN.md) before files are written.

    Called once, on the controller only (never on pytest-xdist workers). The dict may be
    extended in place (for example with extra keys under ``"extra"``).
    """
