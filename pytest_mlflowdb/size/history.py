"""Keeps each run's JSON report in ``--mlflowdb-history`` (the size area's option), for
the growth forecast of the size checks.

A plugin of its own because the size area's module is collected as a test module, where
pytest hears no hooks, and because the report is made on the controller only (never on
pytest-xdist workers, where the checks run). The document is masked before it is kept,
as every report file is.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest


def pytest_mlflowdb_report(report: dict[str, Any], config: pytest.Config) -> None:
    """Keep the finished report in the history folder; a failure to write is one line on
    stderr, never a failed run (the audit itself is what the run is about)."""
    from pytest_mlflowdb.keys import SESSION

    session = config.stash.get(SESSION, None)
    if session is None:
        return
    folder = session.settings.area_options.get("history")
    if not folder:
        return
    from pytest_mlflowdb.config.targets import scrub_all
    from pytest_mlflowdb.size.forecast import save_report

    try:
        save_report(folder, scrub_all(report, session.secrets))
    except OSError as exc:
        sys.stderr.write(f"mlflowdb: cannot keep the report in {folder}: "
                         f"{exc.strerror or exc}\n")
