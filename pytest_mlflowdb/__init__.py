"""pytest-mlflowdb: audit the PostgreSQL database behind MLflow, as a pytest plugin.

Public API for team checks: :func:`check`, :class:`Findings`, :class:`Finding`,
:class:`Threshold`, and for an area's declaration :class:`Area` and :class:`Option`.
Importing this package is cheap: psycopg, tabulate and testcontainers are imported only
when the plugin is active.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_mlflowdb.config.declare import Area, Option
    from pytest_mlflowdb.config.registry import check
    from pytest_mlflowdb.config.thresholds import Threshold
    from pytest_mlflowdb.results.findings import Finding, Findings

__version__ = "0.1.0"
__all__ = ["Area", "Finding", "Findings", "Option", "Threshold", "__version__", "check"]

# Loaded on first use (PEP 562): pytest imports this package to load the plugin in every
# run, also where the plugin stays dormant.
_EXPORTS = {"Finding": "results.findings", "Findings": "results.findings",
            "check": "config.registry", "Threshold": "config.thresholds",
            "Area": "config.declare", "Option": "config.declare"}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value
