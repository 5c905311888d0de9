"""JUnit XML: each check's id, outcome and findings as properties of its ``<testcase>``,
and a warned check's findings as its ``system-out`` (a CI viewer shows that text; a
passing case's properties it hides)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

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

    def on_report(self, config: pytest.Config, report: pytest.TestReport,
                  record: dict[str, Any]) -> None:
        """A warned check's findings and remedies in its test case's ``system-out``,
        whatever ``junit_logging`` says (pytest writes captured output only)."""
        if record.get("outcome") != "warned" or report.when != "call":
            return
        from _pytest.junitxml import xml_key

        log = config.stash.get(xml_key, None)
        if log is None:
            return  # no --junitxml
        import xml.etree.ElementTree as ET

        from _pytest.junitxml import bin_xml_escape

        tag = ET.Element("system-out")
        tag.text = bin_xml_escape(findings_text(record))
        log.node_reporter(report).append(tag)


def findings_text(record: dict[str, Any]) -> str:
    """A check's findings as plain lines: severity, object, message, then its remedy."""
    lines = [f"{record['id']}: {record['outcome']}: {record.get('message') or ''}"]
    for finding in record.get("findings") or ():
        lines.append(f"{finding.get('severity')} {finding.get('object')}: "
                     f"{finding.get('message')}")
        if finding.get("remedy"):
            lines.append(f"  remedy: {finding['remedy']}")
    return "\n".join(lines) + "\n"
