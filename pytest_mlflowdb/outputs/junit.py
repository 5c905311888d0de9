"""JUnit XML properties: each check's id, outcome and findings on its ``<testcase>``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from pytest_mlflowdb.outputs import Output

if TYPE_CHECKING:
    import pytest

    from pytest_mlflowdb.results.records import CheckRecord


class JunitProperties(Output):
    """pytest's ``--junitxml`` writes ``item.user_properties``: the check's record goes
    there, so a CI system that reads only JUnit XML sees what the JSON report says.
    Only with ``--junitxml``: an xdist worker sends them with each test report."""

    name = "junit"

    def on_record(self, item: pytest.Item, record: CheckRecord) -> None:
        if not item.config.getoption("xmlpath", None):
            return  # no JUnit XML: the properties would only weigh down every test report
        item.user_properties.append(("mlflowdb.check", record.id))
        item.user_properties.append(("mlflowdb.outcome", record.outcome))
        for finding in record.findings:
            item.user_properties.append(("mlflowdb.finding", json.dumps(finding, default=str)))
