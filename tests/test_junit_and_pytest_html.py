"""CI viewers: in JUnit XML a warned check carries its findings in ``system-out``; with
pytest-html installed each check's findings and remedies are on its row."""

from __future__ import annotations

import importlib.util
import xml.etree.ElementTree as ET
from urllib.parse import quote

import pytest
from helpers import audit, dbname_of, role_uri, sql

REDUNDANT = ("CREATE INDEX team_params_value ON params (value)",
             "CREATE INDEX team_params_value_again ON params (value)")


def _cases(path) -> dict[str, ET.Element]:
    """Test cases by check id (its ``mlflowdb.check`` property)."""
    cases = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        for prop in case.iter("property"):
            if prop.get("name") == "mlflowdb.check":
                cases[prop.get("value")] = case
    return cases


@pytest.mark.parametrize("workers", [(), ("-p", "xdist", "-n", "2")], ids=["in-process", "xdist"])
def test_a_warned_check_carries_its_findings_in_system_out(pytester, mlflow_uri, workers):
    sql(mlflow_uri, *REDUNDANT)
    xml_path = pytester.path / "junit.xml"
    result, checks = audit(pytester, mlflow_uri, f"--junitxml={xml_path}", *workers)
    assert result.ret == 0
    cases = _cases(xml_path)
    assert set(cases) == set(checks)
    redundant = cases["indexes.redundant"]
    assert redundant.find("failure") is None  # a warning is no failure by default
    (out,) = redundant.findall("system-out")
    assert out.text.startswith("indexes.redundant: warned: ")
    assert "warning public.team_params_value_again: " in out.text
    assert "  remedy: DROP INDEX CONCURRENTLY" in out.text
    passed = [i for i, c in checks.items() if c["outcome"] == "passed"]
    assert passed and all(cases[i].find("system-out") is None for i in passed)


@pytest.mark.skipif(importlib.util.find_spec("pytest_html") is None,
                    reason="pytest-html is not installed")
def test_pytest_html_rows_carry_findings_and_remedies(pytester, mlflow_uri, pg18, mlflow_role):
    sql(mlflow_uri, *REDUNDANT)
    page = pytester.path / "pytest-report.html"
    audit(pytester, mlflow_uri, f"--html={page}", "--self-contained-html")
    text = page.read_text()
    # pytest-html keeps its rows as escaped JSON in the page
    assert "public.team_params_value_again" in text
    # the remedy in its box (the row's HTML, escaped into pytest-html's JSON blob)
    assert "div class=\\&#34;remedy\\&#34;&gt;DROP INDEX CONCURRENTLY" in text
    user, password = mlflow_role
    uri = role_uri(pg18, dbname_of(mlflow_uri), user, password)
    masked = pytester.path / "masked.html"
    audit(pytester, uri, f"--html={masked}", "--self-contained-html")
    body = masked.read_text()
    assert "connectivity.connect" in body
    for form in (password, quote(password, safe=""), quote(password)):
        assert form not in body
