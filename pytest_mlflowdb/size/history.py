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
        # the comparison with a baseline belongs to this run's outputs, not to the history
        kept = {key: value for key, value in report.items() if key != "baseline"}
        save_report(folder, scrub_all(kept, session.secrets))
    except OSError as exc:
        sys.stderr.write(f"mlflowdb: cannot keep the report in {folder}: "
                         f"{exc.strerror or exc}\n")
    keep = session.settings.area_options.get("history_keep")
    if keep:
        from pytest_mlflowdb.size.forecast import prune_reports

        try:
            prune_reports(folder, keep)
        except OSError as exc:
            sys.stderr.write(f"mlflowdb: cannot prune the history in {folder}: "
                             f"{exc.strerror or exc}\n")
    report["history"] = history_block(folder, report, session.settings)


#: objects (the database and the largest tables) and points per object the block holds:
#: a chart shows no more, and a fleet's report stays small
CHARTED_OBJECTS = 9
CHARTED_POINTS = 120


def history_block(folder: str, report: dict[str, Any], settings: Any) -> dict[str, Any]:
    """The kept sizes of each target of ``report`` (epoch seconds, bytes), for charts:
    the database and its largest MLflow tables, the newest points of each (not the
    growth findings' bytes per day, which the size checks record beside them)."""
    from pytest_mlflowdb.size.forecast import load_history

    points: dict[str, dict[str, list[list[float]]]] = {}
    reports: dict[str, int] = {}
    for target in report.get("targets", ()):
        history = load_history(folder, target["id"])
        reports[target["id"]] = history.reports
        sizes = {o: p for o, p in history.points.items() if not o.endswith(" growth")}
        ranked = sorted(sizes.items(), key=lambda kv: -kv[1][-1][1])
        points[target["id"]] = {obj: [[t, v] for t, v in sorted(pts)[-CHARTED_POINTS:]]
                                for obj, pts in ranked[:CHARTED_OBJECTS]}
    return {"folder": folder, "reports": reports, "points": points,
            "horizon_s": settings.thresholds["forecast_horizon"]}
