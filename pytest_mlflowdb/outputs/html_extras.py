"""pytest-html extras: each check's findings and remedies attached to its row of
pytest-html's report (``--html=report.html``).

A plugin loaded only when ``pytest_html`` is importable and an audit runs (plugin.py),
so the plugin never needs pytest-html. The extras are made from the check's record,
masked already by the Scrubber where it stands and again here with the run's secrets.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest


def findings_html(record: dict[str, Any]) -> str:
    """The record's findings (remedies included) as the HTML report's table."""
    from html import escape

    from pytest_mlflowdb.outputs.html import findings_table

    return (f'<div class="mlflowdb"><p><b>{escape(record["id"])}</b>: '
            f'{escape(record["outcome"])}</p>{findings_table(record)}</div>')


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, Any, Any]:
    report = yield
    record = getattr(report, "mlflowdb", None)
    if not record or not (record.get("findings") or record.get("message")):
        return report
    from pytest_html import extras  # type: ignore[import-untyped]

    from pytest_mlflowdb.config.targets import scrub
    from pytest_mlflowdb.keys import SESSION

    session = item.config.stash.get(SESSION, None)
    secrets = session.secrets if session is not None else ()
    added = list(getattr(report, "extras", []))
    added.append(extras.html(scrub(findings_html(record), secrets)))
    report.extras = added
    return report
